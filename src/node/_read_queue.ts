/**
 * The driver's linearizable reads (Raft dissertation §6.4, ReadIndex): each read asks the core
 * for a read index under a unique context, waits for the core's ReadState, then for the state
 * machine to apply up to that index. A term change drops the reads the core had not indexed
 * yet; they are asked again under new contexts once a leader is known.
 *
 * @module
 */
import { NONE, NotLeaderError, ProposalDroppedError, type ReadState } from "../raft/mod.ts";
import { NoLeaderError, OverloadedError } from "./errors.ts";
import { settle, wait, type Waiter } from "./_waiters.ts";

/** A linearizable read waiting for the core's ReadState (its context changes when re-asked). */
interface PendingRead {
  context: string;
  /** When it started waiting (the driver's clock, ms). */
  readonly since: number;
  /** Whether the core gave its index (then only the apply is awaited; no re-asking). */
  indexed: boolean;
  waiter: Waiter<void>;
}

/** What the reads need from the driver. */
export interface ReadHost {
  /** The node's id (in contexts and messages). */
  readonly nodeId: string;
  /** The core's part: its term and leader, and the ReadIndex request. */
  readonly raft: {
    readonly term: number;
    readonly leader: string;
    readIndex(context: string): void;
  };
  /** The state machine's applied index. */
  applied(): number;
  /** The driver's clock, in ms. */
  now(): number;
  /** Sends the heartbeat round that confirms leadership, soon; runs the Ready loop. */
  kick(): void;
  /** Counts a read the core took (its ReadIndex request went out). */
  asked(): void;
  /** Counts a read asked again after a term change. */
  reissued(): void;
}

/** The reads waiting on one node. */
export class ReadQueue {
  readonly #host: ReadHost;
  /** Reads waiting for their index, by their current context. */
  readonly #reads = new Map<string, PendingRead>();
  /** The term the waiting reads were last checked in (see {@linkcode reissue}). */
  #term = 0;
  /** Whether some waiting read was dropped by a term change and awaits a leader. */
  #orphaned = false;
  #ready: ReadState[] = [];
  #seq = 0;
  /** Makes read contexts unique across restarts: a leader may still hold a pre-restart one. */
  readonly #bootNonce = crypto.randomUUID().slice(0, 13);

  constructor(host: ReadHost) {
    this.#host = host;
  }

  /** Reads waiting. */
  get size(): number {
    return this.#reads.size;
  }

  /** The oldest waiting read, if any (for the queue-wait limit). */
  oldest(): { readonly since: number } | undefined {
    for (const r of this.#reads.values()) return r;
    return undefined;
  }

  /**
   * Asks the core for a read index and resolves once the state reflects it; the caller has
   * checked its limits. Throws `NoLeaderError`, `OverloadedError` or the wait's timeout.
   */
  async barrier(timeoutMs: number): Promise<void> {
    const context = this.#context();
    try {
      this.#host.raft.readIndex(context);
    } catch (e) {
      if (e instanceof NotLeaderError) throw new NoLeaderError(e.message);
      if (e instanceof ProposalDroppedError) throw new OverloadedError(e.message);
      throw e;
    }
    this.#host.asked();
    this.#host.kick();
    const read: PendingRead = {
      context,
      since: this.#host.now(),
      indexed: false,
      waiter: undefined!,
    };
    const p = wait<void>(
      (w) => {
        read.waiter = w;
        this.#reads.set(context, read);
      },
      "The read",
      timeoutMs,
    );
    p.catch(() => this.#reads.delete(read.context));
    await p;
  }

  /** The core's ReadStates of a Ready: their reads now wait for the apply only. */
  indexed(states: readonly ReadState[]): void {
    this.#ready.push(...states);
    for (const rs of states) {
      const read = this.#reads.get(rs.context);
      if (read !== undefined) read.indexed = true;
    }
  }

  /** Answers every read whose index the state machine has applied. */
  serve(): void {
    const waiting: ReadState[] = [];
    const applied = this.#host.applied();
    for (const rs of this.#ready) {
      if (rs.index > applied) {
        waiting.push(rs);
        continue;
      }
      const read = this.#reads.get(rs.context);
      if (read === undefined) continue; // timed out meanwhile
      this.#reads.delete(rs.context);
      settle(read.waiter, undefined);
    }
    this.#ready = waiting;
  }

  /**
   * A new term drops every read the core had not answered yet (the old leader's confirmation
   * round, or a follower's request to the old leader, can no longer be trusted), so their
   * waiters would wait for nothing until they time out. Instead each is asked again, under a
   * new context, as soon as a leader is known: a client reading from a follower while its
   * leader dies gets its answer from the new leader a moment after the election.
   */
  reissue(): void {
    const raft = this.#host.raft;
    const term = raft.term;
    if (term === this.#term && !this.#orphaned) return;
    if (term !== this.#term) {
      this.#term = term;
      for (const read of this.#reads.values()) if (!read.indexed) this.#orphaned = true;
    }
    if (!this.#orphaned || raft.leader === NONE) return;
    for (const read of [...this.#reads.values()]) {
      if (read.indexed) continue;
      this.#reads.delete(read.context);
      read.context = this.#context();
      try {
        raft.readIndex(read.context);
      } catch (e) {
        const error = e instanceof NotLeaderError ? new NoLeaderError(e.message) : e;
        settle(read.waiter, error instanceof Error ? error : new Error(String(error)));
        continue;
      }
      this.#reads.set(read.context, read);
      this.#host.reissued();
    }
    this.#orphaned = false;
    this.#host.kick();
  }

  /** Fails every waiting read with `error` (the node closes). */
  failAll(error: Error): void {
    for (const r of this.#reads.values()) settle(r.waiter, error);
    this.#reads.clear();
  }

  #context(): string {
    return `${this.#host.nodeId}:${this.#bootNonce}:${++this.#seq}`;
  }
}

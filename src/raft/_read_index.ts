/**
 * ReadIndex bookkeeping (Raft dissertation §6.4): the leader's queue of reads waiting for a
 * heartbeat round, and a follower's record of the reads it forwarded.
 *
 * @module
 */
import { ProposalDroppedError } from "./_errors.ts";
import type { NodeId } from "./_types.ts";

/** A read request at the leader: from itself or forwarded by `from`. */
export interface ReadRequest {
  /** The requester's opaque context, echoed in the answer. */
  readonly context: string;
  /** Who asked: the leader itself or a follower. */
  readonly from: NodeId;
}

/** A read waiting for the heartbeat round `seq` to be acknowledged by a quorum. */
export interface PendingRead extends ReadRequest {
  /** The heartbeat round that confirms the leadership for this read. */
  readonly seq: number;
  /** The commit index when the read arrived: serve it once applied reaches it. */
  readonly index: number;
}

/**
 * The leader's reads. Until an entry of its term commits, the leader's commit index may lag
 * the true one, so reads wait in `beforeCommit`; then each is given the commit index and the
 * next heartbeat round, and released once a quorum acknowledged that round.
 */
export class LeaderReads {
  /** The latest heartbeat round; never reset, so an acknowledgement is never mistaken for a
   * later round's. */
  seq = 0;
  #pending: PendingRead[] = [];
  #beforeCommit: ReadRequest[] = [];

  /** Reads waiting, in both queues. */
  get size(): number {
    return this.#pending.length + this.#beforeCommit.length;
  }

  /** Queues a read until an entry of the leader's term commits. */
  waitForCommit(read: ReadRequest): void {
    this.#beforeCommit.push(read);
  }

  /** The reads that waited for the first commit of the term (and empties that queue). */
  takeBeforeCommit(): ReadRequest[] {
    const out = this.#beforeCommit;
    this.#beforeCommit = [];
    return out;
  }

  /** Queues a read at commit index `index` behind a new heartbeat round. */
  add(read: ReadRequest, index: number): void {
    this.seq++;
    this.#pending.push({ ...read, seq: this.seq, index });
  }

  /** Removes and returns the reads whose round `acked` covers. */
  release(acked: number): PendingRead[] {
    let n = 0;
    while (n < this.#pending.length && this.#pending[n].seq <= acked) n++;
    if (n === 0) return [];
    const out = this.#pending.slice(0, n);
    this.#pending = this.#pending.slice(n);
    return out;
  }

  /** Drops every waiting read (leadership lost: the requesters time out and retry). */
  clear(): void {
    this.#pending = [];
    this.#beforeCommit = [];
  }
}

/** Where a follower sent a read. */
interface Forwarded {
  readonly leader: NodeId;
  readonly term: number;
}

/**
 * The reads a follower forwarded and not yet got an answer for. An answer is taken only for
 * an outstanding context, from the leader and in the term it was sent to: anything else is a
 * late answer to a request of an earlier process or leader, and serving it would be a stale
 * read. Cleared when the term or the leader changes; the application's waiters time out and
 * retry.
 */
export class ForwardedReads {
  readonly #max: number;
  #outstanding = new Map<string, Forwarded>();

  /** Creates the record, holding at most `max` reads. */
  constructor(max: number) {
    this.#max = max;
  }

  /** Reads forwarded and not answered. */
  get size(): number {
    return this.#outstanding.size;
  }

  /**
   * Records a read sent to `leader` in `term`. When `max` reads are outstanding the oldest is
   * forgotten: a request or answer lost on the way would otherwise hold its place for the
   * whole term; a late answer to it is dropped and its waiter times out. Throws
   * `ProposalDroppedError` when `context` is outstanding already: an answer could not tell
   * the two requests apart, and the older one's index may be stale for the newer.
   */
  add(context: string, leader: NodeId, term: number): void {
    if (this.#outstanding.has(context)) {
      throw new ProposalDroppedError(`Cannot read: context ${context} is already outstanding`);
    }
    if (this.#outstanding.size >= this.#max) {
      this.#outstanding.delete(this.#outstanding.keys().next().value!);
    }
    this.#outstanding.set(context, { leader, term });
  }

  /** Whether an answer from `from` in `term` answers the outstanding read `context`. */
  matches(context: string, from: NodeId, term: number): boolean {
    const f = this.#outstanding.get(context);
    return f !== undefined && f.leader === from && f.term === term;
  }

  /** Forgets an answered read. */
  delete(context: string): void {
    this.#outstanding.delete(context);
  }

  /** Forgets every read. */
  clear(): void {
    this.#outstanding.clear();
  }
}

/**
 * Writes proposed to the core and waiting for their entry to apply. Bounded in count
 * (`proposalsPendingMax`) and in age (`queueWaitMaxMs`, see {@linkcode refusalWhileQueued}):
 * past either, a new write is refused at once (503) instead of joining a queue that would
 * only make every answer later.
 *
 * @module
 */
import type { KvResult } from "../storage/mod.ts";
import { NoLeaderError, OverloadedError } from "./errors.ts";
import { settle, wait, type Waiter } from "./_waiters.ts";

interface ProposalWaiter extends Waiter<KvResult | undefined> {
  readonly term: number;
  /** When it started waiting (the driver's clock, ms). */
  readonly since: number;
}

/**
 * The refusal (503 overloaded) of new work while the oldest of its kind has waited longer than
 * `queueWaitMaxMs`, or undefined: past that, what is queued already is more than the node
 * gets through in that time, and queueing more would only make every answer later (until all
 * time out with unknown outcomes) instead of telling the excess at once to come back.
 */
export function refusalWhileQueued(
  oldest: { readonly since: number } | undefined,
  what: string,
  context: { readonly now: number; readonly queueWaitMaxMs: number; readonly nodeId: string },
): OverloadedError | undefined {
  if (oldest === undefined) return undefined;
  const waited = context.now - oldest.since;
  if (waited <= context.queueWaitMaxMs) return undefined;
  return new OverloadedError(
    `The oldest of the ${what} waiting on node ${context.nodeId} has waited ${
      Math.round(waited)
    } ms (limit ${context.queueWaitMaxMs} ms): retry later`,
  );
}

/** The limits proposals wait under. */
export interface ProposalLimits {
  readonly proposalsPendingMax: number;
  readonly queueWaitMaxMs: number;
  readonly requestTimeoutMs: number;
}

/** Proposals waiting for their entry, by log index. */
export class ProposalWaiters {
  readonly #byIndex = new Map<number, ProposalWaiter>();
  readonly #limits: ProposalLimits;
  readonly #nodeId: string;
  readonly #now: () => number;
  /** Proposals whose index another term's entry took (they were not applied). */
  lost = 0;
  /** Proposals refused because the oldest waited too long. */
  refusedQueued = 0;

  /** Waits under `limits`, timing with `now` (ms). */
  constructor(limits: ProposalLimits, nodeId: string, now: () => number) {
    this.#limits = limits;
    this.#nodeId = nodeId;
    this.#now = now;
  }

  /** How many wait. */
  get size(): number {
    return this.#byIndex.size;
  }

  /** Throws {@linkcode OverloadedError} when a new proposal would exceed the limits. */
  admit(): void {
    if (this.#byIndex.size >= this.#limits.proposalsPendingMax) {
      throw new OverloadedError(`${this.#byIndex.size} writes wait on node ${this.#nodeId}`);
    }
    const refusal = refusalWhileQueued(this.#oldest(), "writes", {
      now: this.#now(),
      queueWaitMaxMs: this.#limits.queueWaitMaxMs,
      nodeId: this.#nodeId,
    });
    if (refusal !== undefined) {
      this.refusedQueued++;
      throw refusal;
    }
  }

  /** Resolves with the result of the entry proposed at `p` once it applies. */
  wait(p: { index: number; term: number }, what: string): Promise<KvResult | undefined> {
    const since = this.#now();
    const promise = wait<KvResult | undefined>(
      (w) => this.#byIndex.set(p.index, { ...w, term: p.term, since }),
      what,
      this.#limits.requestTimeoutMs,
    );
    promise.catch(() => {
      if (this.#byIndex.get(p.index)?.term === p.term) this.#byIndex.delete(p.index);
    });
    return promise;
  }

  /** The entry at `index` of `term` applied with `result`: settles its proposal, if any. */
  applied(index: number, term: number, result: KvResult | undefined): void {
    const w = this.#byIndex.get(index);
    if (w === undefined) return;
    this.#byIndex.delete(index);
    if (w.term === term) {
      settle(w, undefined, result);
    } else {
      this.lost++;
      settle(
        w,
        new NoLeaderError(`Leadership changed before the write committed; it was not applied`),
      );
    }
  }

  /** Fails every waiting proposal with `error`. */
  failAll(error: unknown): void {
    for (const w of this.#byIndex.values()) settle(w, error);
    this.#byIndex.clear();
  }

  /** The oldest waiting (a Map keeps insertion order). */
  #oldest(): ProposalWaiter | undefined {
    for (const w of this.#byIndex.values()) return w;
    return undefined;
  }
}

/**
 * Callers of the driver waiting on its progress: for a condition to hold after an apply (a
 * membership change left joint, a transfer done, a lock gone), or for the log on disk to
 * reach an index (a background snapshot covers only what is durable).
 *
 * @module
 */
import { settle, wait, type Waiter } from "./_waiters.ts";

interface AppliedWaiter {
  readonly until: () => boolean;
  readonly waiter: Waiter<void>;
}

/** Waiters for a condition over the applied state; {@linkcode check} after every apply. */
export class AppliedWaiters {
  #waiting: AppliedWaiter[] = [];
  readonly #timeoutMs: number;

  /** Waits at most `timeoutMs` unless a caller says otherwise. */
  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /** How many wait. */
  get size(): number {
    return this.#waiting.length;
  }

  /** Settles the waiters whose condition now holds. */
  check(): void {
    if (this.#waiting.length === 0) return;
    const still: AppliedWaiter[] = [];
    for (const aw of this.#waiting) {
      if (aw.until()) settle(aw.waiter, undefined);
      else still.push(aw);
    }
    this.#waiting = still;
  }

  /** Resolves once `until()` holds after an apply (or at once if it holds now). */
  until(until: () => boolean, what: string, timeoutMs = this.#timeoutMs): Promise<void> {
    if (until()) return Promise.resolve();
    const promise = wait<void>((waiter) => this.#waiting.push({ until, waiter }), what, timeoutMs);
    promise.catch(() => {
      this.#waiting = this.#waiting.filter((aw) => aw.until !== until);
    });
    return promise;
  }

  /** Fails every waiter with `error`. */
  failAll(error: unknown): void {
    for (const { waiter } of this.#waiting.splice(0)) settle(waiter, error);
  }
}

interface DurableWaiter {
  readonly index: number;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/** Waiters for the log on disk to reach an index; {@linkcode release} after every persist. */
export class DurableWaiters {
  #waiting: DurableWaiter[] = [];
  readonly #lastIndex: () => number;

  /** `lastIndex` answers the last index on disk. */
  constructor(lastIndex: () => number) {
    this.#lastIndex = lastIndex;
  }

  /** Resolves once the log on disk holds `index`. */
  when(index: number): Promise<void> {
    if (this.#lastIndex() >= index) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiting.push({ index, resolve, reject }));
  }

  /** Resolves the waiters the disk now covers. */
  release(): void {
    if (this.#waiting.length === 0) return;
    const last = this.#lastIndex();
    this.#waiting = this.#waiting.filter((w) => {
      if (w.index > last) return true;
      w.resolve();
      return false;
    });
  }

  /** Fails every waiter with `error`. */
  failAll(error: unknown): void {
    for (const w of this.#waiting.splice(0)) w.reject(error);
  }
}

/**
 * How late the node's event loop runs its timers. Raft's heartbeats, elections and the
 * transport share that one loop with the HTTP server: a loop blocked for longer than the
 * election timeout (a large answer built or copied, a long garbage collection, a starved
 * process) makes followers elect another leader although nothing failed. The node measures
 * the lag, counts the stalls, shows both in `/metrics` and logs a stall as it ends, so an
 * operator can tell a blocked node from a failed network.
 *
 * @module
 */

/** How often the loop is sampled, in milliseconds. */
export const LOOP_LAG_SAMPLE_MS = 50;
/** A sample this late (beyond its interval) counts as a stall and is logged. */
export const LOOP_STALL_MS = 200;
/** Stalls are logged at most this often (the count in `/metrics` has them all). */
export const LOOP_STALL_LOG_EVERY_MS = 10_000;

/** The counters of a {@linkcode LoopLag}. */
export interface LoopLagStats {
  /** The longest lag since the node started, in milliseconds. */
  readonly eventLoopLagMaxMs: number;
  /** The lag of the last sample, in milliseconds. */
  readonly eventLoopLagMs: number;
  /** Samples later than {@linkcode LOOP_STALL_MS}. */
  readonly eventLoopStalls: number;
}

/** Samples the event loop's lag with a timer (see the module). */
export class LoopLag {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #last = 0;
  #max = 0;
  #stalls = 0;
  #loggedAt = -Infinity;
  readonly #onStall: (lagMs: number, stalls: number) => void;

  /** `onStall` is told of a stall (at most every {@linkcode LOOP_STALL_LOG_EVERY_MS}). */
  constructor(onStall: (lagMs: number, stalls: number) => void) {
    this.#onStall = onStall;
  }

  /**
   * Starts sampling. The first {@linkcode LOOP_STALL_LOG_EVERY_MS} log nothing (stalls are
   * still counted): loading and compiling the modules stalls every node as it starts, which
   * says nothing an operator can act on.
   */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#loggedAt = performance.now();
    let due = performance.now() + LOOP_LAG_SAMPLE_MS;
    const tick = () => {
      const now = performance.now();
      this.record(now - due, now);
      due = now + LOOP_LAG_SAMPLE_MS;
      this.#timer = setTimeout(tick, LOOP_LAG_SAMPLE_MS);
      Deno.unrefTimer(this.#timer);
    };
    this.#timer = setTimeout(tick, LOOP_LAG_SAMPLE_MS);
    Deno.unrefTimer(this.#timer);
  }

  /** Records one sample `lagMs` late, taken at `now` (exported for tests). */
  record(lagMs: number, now: number): void {
    const lag = Math.max(0, Math.round(lagMs));
    this.#last = lag;
    if (lag > this.#max) this.#max = lag;
    if (lag < LOOP_STALL_MS) return;
    this.#stalls++;
    if (now - this.#loggedAt < LOOP_STALL_LOG_EVERY_MS) return;
    this.#loggedAt = now;
    this.#onStall(lag, this.#stalls);
  }

  /** Stops sampling. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The counters for `/metrics`. */
  stats(): LoopLagStats {
    return {
      eventLoopLagMaxMs: this.#max,
      eventLoopLagMs: this.#last,
      eventLoopStalls: this.#stalls,
    };
  }
}

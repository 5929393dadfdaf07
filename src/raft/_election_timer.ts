/**
 * The election timer (Raft §5.2), counted in ticks of the logical clock. Its randomness comes
 * only from the injected `random`, so a seeded simulation replays exactly.
 *
 * @module
 */
import { assert } from "./_errors.ts";

/**
 * Ticks since the timer was last restarted, against two bounds: `electionTicks`, the leader's
 * check-quorum round and the lease in which a follower ignores vote requests, and a timeout
 * drawn anew at each restart from `[electionTicks, electionTicksMax)`, after which a follower
 * campaigns. Drawing it anew keeps candidates that split a vote from retrying in lockstep.
 */
export class ElectionTimer {
  readonly #electionTicks: number;
  readonly #electionTicksMax: number;
  readonly #random: () => number;
  #elapsed = 0;
  #randomized = 0;

  /** A timer with the node's bounds; {@linkcode restart} draws its first timeout. */
  constructor(electionTicks: number, electionTicksMax: number, random: () => number) {
    this.#electionTicks = electionTicks;
    this.#electionTicksMax = electionTicksMax;
    this.#random = random;
  }

  /** The one place that restarts the election timeout (and draws a new random one). */
  restart(): void {
    this.#elapsed = 0;
    const span = this.#electionTicksMax - this.#electionTicks;
    this.#randomized = this.#electionTicks + Math.floor(this.#random() * span);
    assert(
      this.#randomized >= this.#electionTicks && this.#randomized < this.#electionTicksMax,
      "injected random() must return a number in [0, 1)",
    );
  }

  /** Counts one tick. */
  tick(): void {
    this.#elapsed++;
  }

  /** Whether the randomized timeout passed: time for a follower or candidate to campaign. */
  get timedOut(): boolean {
    return this.#elapsed >= this.#randomized;
  }

  /**
   * Whether `electionTicks` passed, the lower bound of the timeout: a leader's check-quorum
   * round is over, and a follower's lease on the leader it last heard from has run out.
   */
  get minTimeoutPassed(): boolean {
    return this.#elapsed >= this.#electionTicks;
  }
}

/**
 * The leader's side of versionstamps (docs/kv_connect.md, "Versionstamps"): each write it
 * proposes gets the greater of its wall clock (in versionstamp units), the last one it handed
 * out plus 1, the state machine's last one plus 1, and what the caller has seen plus 1. The
 * state machine refuses a versionstamp that does not exceed the last one it applied (a new
 * leader whose clock is behind), and the driver then proposes the write again.
 *
 * @module
 */
import { versionstampAt } from "../storage/mod.ts";

/** Proposals of one write whose versionstamp turned out stale, at most (then it is answered). */
export const STAMP_ATTEMPTS_MAX = 8;
/**
 * Versionstamps tried for one write whose keys depend on it (a key suffixed with it must be
 * this cluster's): with n clusters about n are needed.
 */
export const STAMP_TRIES_MAX = 4096;

/** How far ahead of this node's clock a caller's `after` may be, in milliseconds. */
export const VERSIONSTAMP_AFTER_AHEAD_MS_MAX = 60_000;

/**
 * Versionstamps are split among the clusters: a cluster hands out only those equal to its slot
 * (its position in config.toml) modulo this, so two clusters never give two commits the same
 * versionstamp (each clock is its own, and a cross-cluster commit takes the primary's). Found by
 * the attack: concurrent transactions of different clusters got equal versionstamps (38 of 1,744
 * commits), which a program that takes a versionstamp as a commit's identity cannot tell apart.
 * It leaves 1024 / 32 = 32 per millisecond to a cluster before its clock runs ahead.
 */
export const VERSIONSTAMP_SLOTS = 32;

/** Hands out increasing versionstamps for proposals. */
export class VersionstampClock {
  readonly #wall: () => number;
  readonly #applied: () => number;
  readonly #slot: number;
  #last = 0;

  /**
   * `wall`: ms since 1970; `applied`: the state machine's last versionstamp; `slot`: the
   * cluster's position in the deployment (taken modulo {@linkcode VERSIONSTAMP_SLOTS}).
   */
  constructor(wall: () => number, applied: () => number, slot = 0) {
    this.#wall = wall;
    this.#applied = applied;
    this.#slot = ((slot % VERSIONSTAMP_SLOTS) + VERSIONSTAMP_SLOTS) % VERSIONSTAMP_SLOTS;
  }

  /**
   * Whether a caller's `after` is acceptable: a natural number at most
   * {@linkcode VERSIONSTAMP_AFTER_AHEAD_MS_MAX} ahead of this clock (so that a forged one cannot
   * use up the range of versionstamps).
   */
  acceptsAfter(after: number): boolean {
    return Number.isSafeInteger(after) && after >= 0 &&
      after <= versionstampAt(this.#wall() + VERSIONSTAMP_AFTER_AHEAD_MS_MAX);
  }

  /** The next versionstamp of this cluster's slot, greater than `after`. */
  next(after = 0): number {
    const floor = Math.max(
      this.#last + 1,
      this.#applied() + 1,
      versionstampAt(this.#wall()),
      after + 1,
    );
    const vs = floor + ((this.#slot - (floor % VERSIONSTAMP_SLOTS) + VERSIONSTAMP_SLOTS) %
      VERSIONSTAMP_SLOTS);
    this.#last = vs;
    return vs;
  }
}

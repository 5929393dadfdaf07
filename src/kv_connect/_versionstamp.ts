/**
 * Versionstamps as koi makes them (10 bytes: a big-endian u64 `vs`, then two zero bytes) and
 * the largest one a gateway has seen, which it passes on with each write (`x-koi-after-vs`) so
 * that a later commit anywhere gets a greater versionstamp.
 *
 * @module
 */

/** The bytes of a versionstamp. */
export const VERSIONSTAMP_BYTES = 10;

/** The `vs` of a versionstamp (its first 8 bytes, big-endian); undefined when it is not 10 bytes. */
export function versionstampValue(stamp: Uint8Array): bigint | undefined {
  if (stamp.length !== VERSIONSTAMP_BYTES) return undefined;
  return new DataView(stamp.buffer, stamp.byteOffset, 8).getBigUint64(0, false);
}

/** The versionstamp's 20 lowercase hex characters (as Deno shows it). */
export function versionstampHex(stamp: Uint8Array): string {
  return [...stamp].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The largest `vs` seen so far. */
export class HighestVersionstamp {
  #value = 0n;

  /** Takes note of `stamp` (ignored unless it is a versionstamp). */
  note(stamp: Uint8Array): void {
    const value = versionstampValue(stamp);
    if (value !== undefined && value > this.#value) this.#value = value;
  }

  /** The largest `vs` seen, 0 before any. */
  get value(): bigint {
    return this.#value;
  }

  /** The `x-koi-after-vs` header's value: the largest `vs` seen, in decimal. */
  get header(): string {
    return this.#value.toString(10);
  }
}

/**
 * A seeded pseudo-random generator for the load generator: the same seed gives the same key
 * choices and operation mix on every machine, so two runs (or koi and another store) can be
 * driven by the same sequence. Not for anything secret.
 *
 * @module
 */

/** A source of uniform doubles in [0, 1); {@linkcode Rng} is the seeded one. */
export interface RandomSource {
  /** A uniform double in [0, 1). */
  next(): number;
}

/**
 * xoshiro128** (Blackman and Vigna), seeded through splitmix32. 32-bit integer arithmetic
 * only, so results do not depend on the engine; {@linkcode Rng.next} combines two outputs
 * into 53 random bits, because the zipfian generator compares `u * zeta(n)` against small
 * thresholds and a 32-bit double would make its tail coarse.
 */
export class Rng implements RandomSource {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** A generator seeded with `seed` (any integer; only its low 32 bits matter). */
  constructor(seed: number) {
    let s = seed >>> 0;
    const splitmix = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = splitmix();
    this.#b = splitmix();
    this.#c = splitmix();
    this.#d = splitmix();
  }

  /** The next 32 random bits, as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9) >>> 0;
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67_108_864 + low) / 9_007_199_254_740_992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

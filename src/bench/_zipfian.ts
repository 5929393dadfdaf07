/**
 * Key choosers: uniform, and YCSB's zipfian (theta 0.99) with the ranks scrambled so that
 * the hot keys are spread over the key space, and so over the clusters.
 *
 * @module
 */
import type { RandomSource } from "./_rng.ts";

/** YCSB's default skew: the hottest key is asked about 1 / zeta(n, 0.99) of the time. */
export const ZIPFIAN_THETA = 0.99;

/**
 * The largest key space a chooser accepts: the zipfian chooser computes zeta(n) up front,
 * n powers (0.2 s for 10^7), and a load run's key space is written or read many times over.
 */
export const KEYS_MAX = 10_000_000;

/** Chooses key indices in [0, n). */
export interface KeyChooser {
  /** The number of keys, n. */
  readonly keys: number;
  /** The next key index, an integer in [0, n). */
  next(): number;
}

/** Every key equally likely. */
export class UniformChooser implements KeyChooser {
  /** The number of keys, n. */
  readonly keys: number;
  readonly #random: RandomSource;

  /** A chooser over `keys` ≥ 1 keys drawing from `random`. */
  constructor(keys: number, random: RandomSource) {
    checkKeys(keys);
    this.keys = keys;
    this.#random = random;
  }

  /** A uniform index in [0, n). */
  next(): number {
    return Math.min(this.keys - 1, Math.floor(this.#random.next() * this.keys));
  }
}

/** zeta(n, theta) = sum of 1 / i^theta for i = 1..n, exactly (YCSB's zetastatic). */
export function zeta(n: number, theta: number): number {
  let sum = 0;
  for (let i = 1; i <= n; i++) sum += 1 / i ** theta;
  return sum;
}

/**
 * YCSB's ZipfianGenerator (Gray et al., "Quickly generating billion-record synthetic
 * databases", SIGMOD 1994): rank r in [0, n) with probability about 1 / ((r+1)^theta ·
 * zeta(n, theta)). Ranks 0 and 1 are exact; the rest follow Gray's closed form, as in YCSB,
 * so the same skew as YCSB's workloads.
 */
export class ZipfianRanks {
  /** The number of ranks, n. */
  readonly keys: number;
  readonly #random: RandomSource;
  readonly #theta: number;
  readonly #zetan: number;
  readonly #alpha: number;
  readonly #eta: number;
  readonly #second: number;

  /** Ranks of `keys` ≥ 1 keys from `random`, skewed by `theta` (0 < theta < 1). */
  constructor(keys: number, random: RandomSource, theta = ZIPFIAN_THETA) {
    checkKeys(keys);
    if (!(theta > 0 && theta < 1)) throw new RangeError(`Invalid zipfian theta: ${theta}`);
    this.keys = keys;
    this.#random = random;
    this.#theta = theta;
    this.#zetan = zeta(keys, theta);
    this.#alpha = 1 / (1 - theta);
    this.#eta = (1 - (2 / keys) ** (1 - theta)) / (1 - zeta(2, theta) / this.#zetan);
    this.#second = 1 + 0.5 ** theta;
  }

  /** The share of all draws the hottest `top` ranks get, exactly: zeta(top) / zeta(n). */
  share(top: number): number {
    return zeta(Math.min(top, this.keys), this.#theta) / this.#zetan;
  }

  /** The next rank; 0 is the hottest. */
  next(): number {
    const u = this.#random.next();
    const uz = u * this.#zetan;
    if (uz < 1) return 0;
    if (uz < this.#second) return 1;
    const rank = Math.floor(this.keys * (this.#eta * u - this.#eta + 1) ** this.#alpha);
    return Math.min(this.keys - 1, rank);
  }
}

/**
 * Zipfian over the keys with the ranks scrambled: rank r is key {@linkcode scramble}(r, n),
 * a fixed permutation of [0, n). YCSB's ScrambledZipfianGenerator hashes a rank drawn over
 * 10^10 items modulo n instead, which folds ranks together and flattens the skew; a
 * permutation keeps exactly the zipfian shares over these n keys while the hot keys land
 * far apart (user0 is not the hottest key, nor are the hottest keys neighbours).
 */
export class ScrambledZipfianChooser implements KeyChooser {
  /** The number of keys, n. */
  readonly keys: number;
  readonly #ranks: ZipfianRanks;
  readonly #domain: Feistel;

  /** A chooser over `keys` ≥ 1 keys drawing from `random`. */
  constructor(keys: number, random: RandomSource) {
    this.#ranks = new ZipfianRanks(keys, random);
    this.keys = keys;
    this.#domain = new Feistel(keys);
  }

  /** The next key index: a zipfian rank through the permutation. */
  next(): number {
    return this.#domain.permute(this.#ranks.next());
  }
}

/** Where rank `rank` of `keys` lands under the scrambling permutation. */
export function scramble(rank: number, keys: number): number {
  return new Feistel(keys).permute(rank);
}

/**
 * A permutation of [0, n): a 4-round Feistel network over the smallest even number of bits
 * that holds n, with cycle walking (apply again until the result is below n). A bijection
 * of the larger domain walked this way is a bijection of [0, n); the domain is under 4n,
 * so a walk takes fewer than 4 steps on average. The round keys are fixed: the same keys
 * are hot on every run, whatever the seed.
 */
class Feistel {
  readonly #n: number;
  readonly #halfBits: number;
  readonly #mask: number;

  constructor(n: number) {
    this.#n = n;
    let bits = 2;
    while (2 ** bits < n) bits += 2;
    this.#halfBits = bits / 2;
    this.#mask = 2 ** this.#halfBits - 1;
  }

  permute(x: number): number {
    if (this.#n <= 1) return 0;
    let y = x;
    do y = this.#once(y); while (y >= this.#n);
    return y;
  }

  #once(x: number): number {
    const half = 2 ** this.#halfBits;
    let left = Math.floor(x / half);
    let right = x % half;
    for (const key of ROUND_KEYS) {
      const next = (left ^ (mix32(right ^ key) & this.#mask)) >>> 0;
      left = right;
      right = next;
    }
    return left * half + right;
  }
}

const ROUND_KEYS = [0x9e3779b9, 0x7f4a7c15, 0x85ebca6b, 0xc2b2ae35];

/** murmur3's 32-bit finaliser: every input bit moves every output bit. */
function mix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function checkKeys(keys: number): void {
  if (!Number.isSafeInteger(keys) || keys < 1 || keys > KEYS_MAX) {
    throw new RangeError(`Invalid key count: ${keys}; expected 1 to ${KEYS_MAX}`);
  }
}

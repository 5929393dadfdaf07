/**
 * Scheme `"carp64"`: CARP's shape (member hash, key hash, combination, weights, highest
 * score wins) with a 64-bit key hash, SplitMix64's finalizer as the combination, a uniform
 * `h` in (0, 1) from the top 53 bits, and the weighted rendezvous score `w / -ln(h)`.
 * docs/carp.md specifies every step. 64-bit values are kept as two unsigned 32-bit lanes
 * (`hi`, `lo`), multiplied with `Math.imul` and 16-bit halves: no BigInt on the hot path.
 */

import { CarpConfigError } from "./_errors.ts";
import { encodeUtf8, scratchBytes } from "./_utf8.ts";
import { hex32 } from "./_validate.ts";

/** A 64-bit value as `[hi, lo]`, each an unsigned 32-bit number. */
export type Hash64 = readonly [hi: number, lo: number];

/** Seed of the key hash's high lane (the first 32 bits of pi's fraction). */
export const CARP64_SEED_HI = 0x243f6a88;
/** Seed of the key hash's low lane (the next 32 bits of pi's fraction). */
export const CARP64_SEED_LO = 0x85a308d3;

const MURMUR_C1 = 0xcc9e2d51;
const MURMUR_C2 = 0x1b873593;
const MURMUR_N = 0xe6546b64;
const FMIX32_C1 = 0x85ebca6b;
const FMIX32_C2 = 0xc2b2ae35;

/** SplitMix64's finalizer multipliers 0xbf58476d1ce4e5b9 and 0x94d049bb133111eb, as lanes. */
const MIX_C1_HI = 0xbf58476d;
const MIX_C1_LO = 0x1ce4e5b9;
const MIX_C2_HI = 0x94d049bb;
const MIX_C2_LO = 0x133111eb;

/** 2^-53: the spacing of `h`. */
const UNIT = 2 ** -53;

/**
 * Bound used to skip the logarithm of a member that cannot win: for `h < 1/2`,
 * `-ln(h) > ln 2`, so the score is below `w / ln 2 < 1.4428 w`.
 */
const LOWER_HALF_SCORE_PER_WEIGHT_MAX = 1.4428;
/**
 * Safety factor of the skip test in the upper half (`-ln(h) > 1 - h`): far larger than the
 * few ulps of rounding in the test and in `log1p`, so a skipped member could never have won.
 */
const SKIP_MARGIN = 1 - 2 ** -40;

/** Where the key hash is written, so that hashing allocates nothing. */
const keyLanes = new Uint32Array(2);

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, FMIX32_C1);
  h ^= h >>> 13;
  h = Math.imul(h, FMIX32_C2);
  h ^= h >>> 16;
  return h;
}

function mixBlock(k: number): number {
  k = Math.imul(k, MURMUR_C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, MURMUR_C2);
}

function stepLane(h: number, k: number): number {
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + MURMUR_N) | 0;
}

/**
 * MurmurHash3_x86_32 of `bytes[0, length)` under both seeds in one pass (the block mix does
 * not depend on the seed), written to `out` as `[hi, lo]`.
 */
function keyHashInto(bytes: Uint8Array, length: number, out: Uint32Array): void {
  let h1 = CARP64_SEED_HI | 0;
  let h2 = CARP64_SEED_LO | 0;
  const blocksEnd = length & ~3;
  for (let i = 0; i < blocksEnd; i += 4) {
    const k = mixBlock(
      bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24),
    );
    h1 = stepLane(h1, k);
    h2 = stepLane(h2, k);
  }
  const tail = length & 3;
  if (tail !== 0) {
    let k = bytes[blocksEnd];
    if (tail > 1) k |= bytes[blocksEnd + 1] << 8;
    if (tail > 2) k |= bytes[blocksEnd + 2] << 16;
    k = mixBlock(k);
    h1 ^= k;
    h2 ^= k;
  }
  out[0] = fmix32(h1 ^ length);
  out[1] = fmix32(h2 ^ length);
}

/** MurmurHash3_x86_32 (Austin Appleby's reference, little-endian blocks) of `bytes`. */
export function murmur3x86_32(bytes: Uint8Array, seed: number): number {
  let h = seed | 0;
  const blocksEnd = bytes.length & ~3;
  for (let i = 0; i < blocksEnd; i += 4) {
    h = stepLane(
      h,
      mixBlock(bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24)),
    );
  }
  const tail = bytes.length & 3;
  if (tail !== 0) {
    let k = bytes[blocksEnd];
    if (tail > 1) k |= bytes[blocksEnd + 1] << 8;
    if (tail > 2) k |= bytes[blocksEnd + 2] << 16;
    h ^= mixBlock(k);
  }
  return fmix32(h ^ bytes.length) >>> 0;
}

/**
 * The high lane of `(hi, lo) * (cHi, cLo) mod 2^64`, as a signed 32-bit number (the low lane
 * is `Math.imul(lo, cLo)`). `lo * cLo` is split into 16-bit halves to get its carry exactly.
 */
function mulHi(hi: number, lo: number, cHi: number, cLo: number): number {
  const a0 = lo & 0xffff;
  const a1 = lo >>> 16;
  const b0 = cLo & 0xffff;
  const b1 = cLo >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const carry = a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  return (carry + Math.imul(hi, cLo) + Math.imul(lo, cHi)) | 0;
}

/**
 * SplitMix64's finalizer (Stafford's Mix13) of `(hi, lo)`: `z ^= z >>> 30; z *= C1;
 * z ^= z >>> 27; z *= C2; z ^= z >>> 31`, written to `out` as `[hi, lo]`. The hot loop in
 * {@linkcode carp64Argmax} repeats these lines inline.
 */
function mix64Into(hi: number, lo: number, out: Uint32Array): void {
  lo ^= (lo >>> 30) | (hi << 2);
  hi ^= hi >>> 30;
  hi = mulHi(hi, lo, MIX_C1_HI, MIX_C1_LO);
  lo = Math.imul(lo, MIX_C1_LO);
  lo ^= (lo >>> 27) | (hi << 5);
  hi ^= hi >>> 27;
  hi = mulHi(hi, lo, MIX_C2_HI, MIX_C2_LO);
  lo = Math.imul(lo, MIX_C2_LO);
  lo ^= (lo >>> 31) | (hi << 1);
  hi ^= hi >>> 31;
  out[0] = hi;
  out[1] = lo;
}

/**
 * `-ln(h)` for the combined value `x = (hi, lo)` (unsigned lanes): `u = x >>> 11` (53 bits)
 * and `h = (u + 1/2) / 2^53`, so `h` is never 0 or 1. The upper half takes `log1p` of the
 * exact distance to 1, so `-ln(h)` keeps full precision where the winning scores are.
 */
export function negLogUnit(hi: number, lo: number): number {
  if (hi < 0x80000000) {
    const u = hi * 0x200000 + (lo >>> 11); // < 2^52, so u + 1/2 is exact
    return -Math.log((u + 0.5) * UNIT);
  }
  const t = (~hi >>> 0) * 0x200000 + (~lo >>> 11); // 2^53 - 1 - u, < 2^52
  return -Math.log1p(-(t + 0.5) * UNIT);
}

/** The carp64 key hash: `[murmur3(bytes, SEED_HI), murmur3(bytes, SEED_LO)]`. */
export function carp64KeyHash(key: Uint8Array | string): Hash64 {
  if (typeof key === "string") {
    const length = encodeUtf8(key); // may replace the scratch buffer: read it afterwards
    keyHashInto(scratchBytes(), length, keyLanes);
  } else {
    keyHashInto(key, key.length, keyLanes);
  }
  return [keyLanes[0], keyLanes[1]];
}

/** The carp64 member hash: SplitMix64's finalizer of the key hash of the id's UTF-8 bytes. */
export function carp64MemberHash(id: string): Hash64 {
  const [hi, lo] = carp64KeyHash(id);
  const out = new Uint32Array(2);
  mix64Into(hi, lo, out);
  return [out[0], out[1]];
}

/** The carp64 combination: SplitMix64's finalizer of `keyHash XOR memberHash`. */
export function carp64Combine(keyHash: Hash64, memberHash: Hash64): Hash64 {
  const out = new Uint32Array(2);
  mix64Into(keyHash[0] ^ memberHash[0], keyHash[1] ^ memberHash[1], out);
  return [out[0], out[1]];
}

/** The carp64 score of a member for a key: `loadFactor / -ln(h)`; the highest wins. */
export function carp64Score(keyHash: Hash64, memberHash: Hash64, loadFactor: number): number {
  const [hi, lo] = carp64Combine(keyHash, memberHash);
  return loadFactor / negLogUnit(hi, lo);
}

/**
 * The index in `hi`/`lo`/`loadFactors` of the member with the highest
 * {@linkcode carp64Score} for the key in `bytes[0, length)`; ties go to the lowest index
 * (the caller orders members by id). A member whose score provably stays below the best so
 * far is skipped before its logarithm: the answer is the same, only cheaper.
 */
export function carp64Argmax(
  bytes: Uint8Array,
  length: number,
  members: { hi: Uint32Array; lo: Uint32Array; loadFactors: Float64Array },
): number {
  keyHashInto(bytes, length, keyLanes);
  const kHi = keyLanes[0] | 0;
  const kLo = keyLanes[1] | 0;
  const { hi: memberHi, lo: memberLo, loadFactors } = members;
  let best = 0;
  let bestScore = -Infinity;
  for (let i = 0; i < memberHi.length; i++) {
    // mix64Into(kHi ^ memberHi[i], kLo ^ memberLo[i]), inline
    let hi = kHi ^ memberHi[i];
    let lo = kLo ^ memberLo[i];
    lo ^= (lo >>> 30) | (hi << 2);
    hi ^= hi >>> 30;
    hi = mulHi(hi, lo, MIX_C1_HI, MIX_C1_LO);
    lo = Math.imul(lo, MIX_C1_LO);
    lo ^= (lo >>> 27) | (hi << 5);
    hi ^= hi >>> 27;
    hi = mulHi(hi, lo, MIX_C2_HI, MIX_C2_LO);
    lo = Math.imul(lo, MIX_C2_LO);
    lo ^= (lo >>> 31) | (hi << 1);
    hi ^= hi >>> 31;

    const weight = loadFactors[i];
    let negLog: number;
    if (hi >= 0) { // h < 1/2: -ln(h) > ln 2
      if (weight * LOWER_HALF_SCORE_PER_WEIGHT_MAX <= bestScore) continue;
      negLog = -Math.log((hi * 0x200000 + (lo >>> 11) + 0.5) * UNIT);
    } else { // h >= 1/2: -ln(h) > 1 - h = d
      const d = ((~hi >>> 0) * 0x200000 + (~lo >>> 11) + 0.5) * UNIT;
      if (weight <= bestScore * d * SKIP_MARGIN) continue;
      negLog = -Math.log1p(-d);
    }
    const score = weight / negLog;
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  }
  return best;
}

/** Throws {@linkcode CarpConfigError} when two member ids have the same 64-bit member hash. */
export function checkCarp64Hashes(ids: readonly string[], hashes: readonly Hash64[]): void {
  const seen = new Map<string, number>();
  for (let i = 0; i < ids.length; i++) {
    const key = hex64(hashes[i]);
    const j = seen.get(key);
    if (j === undefined) {
      seen.set(key, i);
      continue;
    }
    throw new CarpConfigError(
      `CARP member ids collide under scheme "carp64": ${JSON.stringify(ids[j])} and ` +
        `${JSON.stringify(ids[i])} have the same member hash ${key}, so they would tie on ` +
        `every key; rename one`,
      [ids[j], ids[i]],
    );
  }
}

/** Formats a {@linkcode Hash64} as `0x` and 16 hex digits. */
export function hex64(value: Hash64): string {
  return hex32(value[0]) + hex32(value[1]).slice(2);
}

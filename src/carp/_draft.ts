/**
 * Scheme `"carp"`: draft-vinod-carp-v1-03 exactly, as Squid's `carp.c` implements it and
 * docs/carp.md pins it. All integer arithmetic is unsigned 32-bit and wraps.
 */

import { CarpConfigError } from "./_errors.ts";
import type { CarpMember } from "./_types.ts";
import { compareUtf8, encodeUtf8, scratchBytes } from "./_utf8.ts";
import { checkMembers, hex32 } from "./_validate.ts";

/** The draft's mixing constant `M`. */
export const CARP_MIX = 0x62531965;

/** Bits of the draft's rotations: 19 while hashing bytes, 21 after the mix. */
const ROTATE_BYTES = 19;
const ROTATE_MIX = 21;

/** The draft's hash of the first `length` bytes: `h = h + rotl(h, 19) + b` per byte. */
export function hashRange(bytes: Uint8Array, length: number): number {
  let h = 0;
  for (let i = 0; i < length; i++) {
    h = (h + ((h << ROTATE_BYTES) | (h >>> (32 - ROTATE_BYTES))) + bytes[i]) | 0;
  }
  return h >>> 0;
}

/** `rotl(x + x * M, 21)`: the draft's final mix of a member hash and of a combination. */
function mix(x: number): number {
  const c = (x + Math.imul(x, CARP_MIX)) | 0;
  return ((c << ROTATE_MIX) | (c >>> (32 - ROTATE_MIX))) >>> 0;
}

/** The draft's hash of a key's bytes (an unsigned 32-bit number). */
export function carpHashBytes(bytes: Uint8Array): number {
  return hashRange(bytes, bytes.length);
}

/** The draft's hash of a string key: {@linkcode carpHashBytes} of its UTF-8 bytes. */
export function carpHashString(text: string): number {
  const length = encodeUtf8(text);
  return hashRange(scratchBytes(), length);
}

/** The draft's member hash: `rotl(h + h * M, 21)` with `h` the hash of the id's UTF-8 bytes. */
export function carpMemberHash(id: string): number {
  return mix(carpHashString(id));
}

/** The draft's combination of a key hash and a member hash: `rotl(c + c * M, 21)`, `c = k ^ m`. */
export function carpCombine(keyHash: number, memberHash: number): number {
  return mix(keyHash ^ memberHash);
}

/**
 * The draft's load multipliers `X_i`, in the order of `members` (float64, as Squid computes
 * them). Members are processed by relative load factor ascending, ties by id; the sum of
 * load factors is taken in the same order, so the result does not depend on the input order.
 */
export function carpMultipliers(members: readonly CarpMember[]): number[] {
  checkMembers(members);
  const byFactor = members.map((m, index) => ({ id: m.id, index, p: m.loadFactor }));
  byFactor.sort(byPThenId);
  let total = 0;
  for (const m of byFactor) total += m.p;
  for (const m of byFactor) m.p = members[m.index].loadFactor / total;
  byFactor.sort(byPThenId);

  const count = byFactor.length;
  const out = new Array<number>(count);
  let pPrev = 0;
  let xPrev = 0;
  let product = 1;
  for (let k = 1; k <= count; k++) {
    const m = count - k + 1;
    const { index, p } = byFactor[k - 1];
    const x = Math.pow((m * (p - pPrev)) / product + Math.pow(xPrev, m), 1 / m);
    out[index] = x;
    product *= x;
    xPrev = x;
    pPrev = p;
  }
  return out;
}

function byPThenId(a: { id: string; p: number }, b: { id: string; p: number }): number {
  return a.p - b.p || compareUtf8(a.id, b.id);
}

/**
 * Throws {@linkcode CarpConfigError} when two member hashes agree in their low 31 bits. The
 * mix multiplies by `M + 1`, which is even, so the top bit of `k ^ m` never reaches the
 * result: such members would get the same combination for every key, and one of them none.
 */
export function checkCarpHashes(ids: readonly string[], hashes: readonly number[]): void {
  const seen = new Map<number, number>();
  for (let i = 0; i < ids.length; i++) {
    const low = hashes[i] & 0x7fffffff;
    const j = seen.get(low);
    if (j === undefined) {
      seen.set(low, i);
      continue;
    }
    const how = hashes[i] === hashes[j]
      ? "are equal"
      : "differ only in the top bit, which the mix drops";
    throw new CarpConfigError(
      `CARP member ids collide under scheme "carp": ${JSON.stringify(ids[j])} and ` +
        `${JSON.stringify(ids[i])} have member hashes ${hex32(hashes[j])} and ` +
        `${hex32(hashes[i])}, which ${how}, so they would tie on every key; rename one`,
      [ids[j], ids[i]],
    );
  }
}

/**
 * The index of the member with the highest score `combine(k, hashes[i]) * multipliers[i]`
 * for the key in `bytes[0, length)`; ties go to the lowest index (the caller orders by id).
 */
export function carpArgmax(
  bytes: Uint8Array,
  length: number,
  members: { hashes: Uint32Array; multipliers: Float64Array },
): number {
  const k = hashRange(bytes, length);
  const { hashes, multipliers } = members;
  let best = 0;
  let bestScore = -1;
  for (let i = 0; i < hashes.length; i++) {
    const score = mix(k ^ hashes[i]) * multipliers[i];
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  }
  return best;
}

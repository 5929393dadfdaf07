/**
 * Versionstamps (docs/kv_connect.md, "Versionstamps"): a hybrid logical clock, one value per
 * commit. The leader picks each commit's as the greater of its wall clock in milliseconds
 * times {@linkcode VS_PER_MS} and the last one plus 1, and the state machine refuses one that
 * does not exceed the last it applied, so they increase in log order whatever the clocks of
 * successive leaders. As bytes (what KV Connect clients see) it is 10 bytes: the value as a
 * big-endian u64, then two zero bytes.
 *
 * Also here: the little-endian u64 arithmetic of `sum`, `min` and `max`.
 *
 * @module
 */
import { ValueEncoding } from "./kv_command.ts";

/** Versionstamps per millisecond of the clock: commits beyond it in one ms run ahead. */
export const VS_PER_MS = 1024;
/** Bytes of a versionstamp as KV Connect carries it. */
export const VERSIONSTAMP_BYTES = 10;

/** The clock time (ms since 1970) a versionstamp stands for. */
export function timeOfVersionstamp(vs: number): number {
  return Math.floor(vs / VS_PER_MS);
}

/** The first versionstamp of a millisecond. */
export function versionstampAt(ms: number): number {
  return Math.floor(ms) * VS_PER_MS;
}

/** The 10 bytes of a versionstamp. */
export function versionstampBytes(vs: number): Uint8Array {
  const out = new Uint8Array(VERSIONSTAMP_BYTES);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.floor(vs / 0x100000000));
  view.setUint32(4, vs >>> 0);
  return out;
}

/** The versionstamp of 10 bytes, or undefined when they are not one koi could have made. */
export function versionstampFromBytes(b: Uint8Array): number | undefined {
  if (b.length !== VERSIONSTAMP_BYTES || b[8] !== 0 || b[9] !== 0) return undefined;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const vs = view.getUint32(0) * 0x100000000 + view.getUint32(4);
  return Number.isSafeInteger(vs) ? vs : undefined;
}

/** The 20 lowercase hex digits Deno shows for a versionstamp (and appends to suffixed keys). */
export function versionstampHex(vs: number): string {
  let hex = "";
  for (const b of versionstampBytes(vs)) hex += b.toString(16).padStart(2, "0");
  return hex;
}

const U64_WRAP = 1n << 64n;

function readU64(b: Uint8Array): bigint {
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
}

function u64Bytes(n: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, n, true);
  return out;
}

/**
 * The new value of a `sum` (wrapping at 2^64), `min` or `max` of a stored value and an
 * 8-byte little-endian operand; a missing key takes the operand. A message (string) when the
 * stored value is not a u64.
 */
export function numericResult(
  op: "sum" | "min" | "max",
  old: { readonly value: Uint8Array; readonly encoding: number } | undefined,
  operand: Uint8Array,
): Uint8Array | string {
  if (operand.length !== 8) return `The ${op} operand is not a 64-bit unsigned integer`;
  if (old === undefined) return operand.slice();
  const current = old.value;
  if (old.encoding !== ValueEncoding.LE64 || current.length !== 8) {
    return `Failed to perform '${op}' mutation on a non-U64 value in the database`;
  }
  const a = readU64(current);
  const b = readU64(operand);
  if (op === "sum") return u64Bytes((a + b) % U64_WRAP);
  return u64Bytes(op === "min" ? (a < b ? a : b) : (a > b ? a : b));
}

const utf8 = new TextEncoder();

/**
 * The key `prefix` with versionstamp `vs` appended as a Deno KV tuple string part (`0x02`, 20
 * hex digits, `0x00`), as Deno's `kv.commitVersionstamp()` asks for.
 */
export function suffixedKey(prefix: Uint8Array, vs: number): Uint8Array {
  const hex = utf8.encode(versionstampHex(vs));
  const out = new Uint8Array(prefix.length + hex.length + 2);
  out.set(prefix);
  out[prefix.length] = 0x02;
  out.set(hex, prefix.length + 1);
  out[out.length - 1] = 0x00;
  return out;
}

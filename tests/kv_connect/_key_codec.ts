/**
 * The bytes of a Deno KV key as the KV Connect protocol carries them (the tuple layer encoding
 * that Deno's client sends in `snapshot_read` ranges and `atomic_write` keys), written from the
 * encoding's description so that a test can compute which koi cluster owns a key: CARP hashes
 * the whole key bytes. `key_codec_test.ts` checks it against the bytes Deno 2.9.6's own client
 * sends, and against the order `Deno.openKv(":memory:")` lists keys in.
 *
 * Each part is a type byte followed by its payload:
 *
 * | part         | type byte                    | payload                                        |
 * | ------------ | ---------------------------- | ---------------------------------------------- |
 * | `Uint8Array` | 0x01                         | the bytes, 0x00 escaped as 0x00 0xff, then 0x00 |
 * | `string`     | 0x02                         | UTF-8, escaped the same way, then 0x00          |
 * | `bigint`     | 0x14 ± byte length (≤ 8)     | big-endian magnitude (one's complement if < 0)  |
 * |              | 0x1d / 0x0b (longer)         | a length byte (complemented if < 0), magnitude  |
 * | `number`     | 0x21                         | the IEEE 754 bits big-endian: all bits flipped  |
 * |              |                              | when negative, else only the sign bit           |
 * | `false`      | 0x26                         | —                                              |
 * | `true`       | 0x27                         | —                                              |
 *
 * @module
 */

const BYTES = 0x01;
const STRING = 0x02;
const INT_ZERO = 0x14;
const NEG_INT_LONG = 0x0b;
const POS_INT_LONG = 0x1d;
const DOUBLE = 0x21;
const FALSE = 0x26;
const TRUE = 0x27;

function pushEscaped(out: number[], bytes: Uint8Array): void {
  for (const b of bytes) {
    out.push(b);
    if (b === 0x00) out.push(0xff);
  }
  out.push(0x00);
}

function magnitudeBytes(n: bigint): number[] {
  const bytes: number[] = [];
  while (n > 0n) {
    bytes.unshift(Number(n & 0xffn));
    n >>= 8n;
  }
  return bytes;
}

function pushBigint(out: number[], n: bigint): void {
  if (n === 0n) {
    out.push(INT_ZERO);
    return;
  }
  const negative = n < 0n;
  const magnitude = magnitudeBytes(negative ? -n : n);
  if (magnitude.length > 255) throw new RangeError("bigint key part too large");
  const payload = negative ? magnitude.map((b) => b ^ 0xff) : magnitude;
  if (magnitude.length <= 8) {
    out.push(negative ? INT_ZERO - magnitude.length : INT_ZERO + magnitude.length, ...payload);
  } else if (negative) {
    out.push(NEG_INT_LONG, magnitude.length ^ 0xff, ...payload);
  } else {
    out.push(POS_INT_LONG, magnitude.length, ...payload);
  }
}

function pushNumber(out: number[], n: number): void {
  const bits = new Uint8Array(8);
  new DataView(bits.buffer).setFloat64(0, n, false);
  if (bits[0] & 0x80) {
    for (let i = 0; i < 8; i++) bits[i] ^= 0xff;
  } else {
    bits[0] ^= 0x80;
  }
  out.push(DOUBLE, ...bits);
}

/** The key bytes of `key` (throws for a part type Deno KV keys cannot hold). */
export function encodeKey(key: Deno.KvKey): Uint8Array {
  const out: number[] = [];
  for (const part of key) {
    if (part instanceof Uint8Array) {
      out.push(BYTES);
      pushEscaped(out, part);
    } else if (typeof part === "string") {
      out.push(STRING);
      pushEscaped(out, new TextEncoder().encode(part));
    } else if (typeof part === "bigint") {
      pushBigint(out, part);
    } else if (typeof part === "number") {
      pushNumber(out, part);
    } else if (typeof part === "boolean") {
      out.push(part ? TRUE : FALSE);
    } else {
      throw new TypeError(`Not a Deno KV key part: ${String(part)}`);
    }
  }
  return new Uint8Array(out);
}

/** Byte order of two keys' bytes (negative when `a` sorts first). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

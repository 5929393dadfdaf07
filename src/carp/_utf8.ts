/**
 * UTF-8 encoding into a reusable buffer, so that hashing a string key allocates nothing.
 * The bytes are exactly what `TextEncoder` produces: a lone surrogate becomes U+FFFD.
 */

/** Worst case of UTF-8 bytes per UTF-16 code unit (a code unit of the BMP above U+07FF). */
const UTF8_BYTES_PER_CODE_UNIT_MAX = 3;

let scratch = new Uint8Array(256);

/**
 * Encodes `text` as UTF-8 into the module's scratch buffer and returns the byte count; the
 * bytes are `[0, count)` of {@linkcode scratchBytes}, valid until the next call.
 */
export function encodeUtf8(text: string): number {
  const needed = text.length * UTF8_BYTES_PER_CODE_UNIT_MAX;
  if (scratch.length < needed) scratch = new Uint8Array(Math.max(needed, scratch.length * 2));
  return encodeInto(text, scratch);
}

/** The scratch buffer the last {@linkcode encodeUtf8} call wrote to (it grows, so re-read it). */
export function scratchBytes(): Uint8Array {
  return scratch;
}

/** Writes the UTF-8 bytes of `text` to `out` (which has room for 3 bytes per code unit). */
function encodeInto(text: string, out: Uint8Array): number {
  let j = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      out[j++] = c;
    } else if (c < 0x800) {
      out[j++] = 0xc0 | (c >>> 6);
      out[j++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = c <= 0xdbff && i + 1 < n ? text.charCodeAt(i + 1) : 0;
        if (d >= 0xdc00 && d <= 0xdfff) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          out[j++] = 0xf0 | (cp >>> 18);
          out[j++] = 0x80 | ((cp >>> 12) & 0x3f);
          out[j++] = 0x80 | ((cp >>> 6) & 0x3f);
          out[j++] = 0x80 | (cp & 0x3f);
          i++;
          continue;
        }
        c = 0xfffd; // a lone surrogate, as TextEncoder does
      }
      out[j++] = 0xe0 | (c >>> 12);
      out[j++] = 0x80 | ((c >>> 6) & 0x3f);
      out[j++] = 0x80 | (c & 0x3f);
    }
  }
  return j;
}

/** A fresh copy of the UTF-8 bytes of `text`. */
export function utf8Bytes(text: string): Uint8Array {
  const length = encodeUtf8(text);
  return scratch.slice(0, length);
}

/** Orders two strings by their UTF-8 bytes (unsigned, then by length): <0, 0 or >0. */
export function compareUtf8(a: string, b: string): number {
  const x = utf8Bytes(a);
  const y = utf8Bytes(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

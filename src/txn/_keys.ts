/**
 * Keys are bytes; indexes use a "binary string" (one char per byte), so that JavaScript string
 * order is bytewise order. The store's index and the lock table both key by it.
 *
 * @module
 */

/** The binary string of `key`. */
export function keyString(key: Uint8Array): string {
  let s = "";
  for (let i = 0; i < key.length; i += 4096) {
    s += String.fromCharCode(...key.subarray(i, i + 4096));
  }
  return s;
}

/** The bytes of a binary string. */
export function keyBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** The smallest key greater than `key`. */
export function justAfter(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1);
  out.set(key);
  return out;
}

/** The end of the keys starting with `prefix` (everything at or after it when none is). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] !== 0xff) {
      const out = prefix.slice(0, i + 1);
      out[i]++;
      return out;
    }
  }
  return new Uint8Array([0xff, 0xff, 0xff, 0xff]);
}

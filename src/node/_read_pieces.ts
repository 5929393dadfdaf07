/**
 * A transaction's snapshot-read part (`POST /v1/txn/read`) as msgpack pieces: the same bytes
 * as `encode({ index, entries })`, with each stored value its own piece (the value itself, not
 * a copy), so that a large part is written piece by piece (src/http/_pieced.ts) instead of
 * being encoded into one buffer on the event loop that Raft's heartbeats share.
 *
 * @module
 */

import { encode } from "@msgpack/msgpack";
import type { RangeEntry } from "./service.ts";

/** A one-byte tag, then `n` as a big-endian 16- or 32-bit number (`tag16`, `tag16 + 1`). */
function sized(tag16: number, n: number): Uint8Array {
  const wide = n >= 0x10000;
  const out = new Uint8Array(wide ? 5 : 3);
  out[0] = wide ? tag16 + 1 : tag16;
  const view = new DataView(out.buffer);
  if (wide) view.setUint32(1, n);
  else view.setUint16(1, n);
  return out;
}

/** A msgpack array header for `n` elements (fixarray, array 16, array 32). */
export function arrayHeader(n: number): Uint8Array {
  return n < 16 ? Uint8Array.of(0x90 | n) : sized(0xdc, n);
}

/** A msgpack bin header for `n` bytes (bin 8, bin 16, bin 32). */
export function binHeader(n: number): Uint8Array {
  return n < 0x100 ? Uint8Array.of(0xc4, n) : sized(0xc5, n);
}

/** The pieces of `encode({ index, entries })`, each entry `[key, value, rev, vs, enc, exp]`. */
export function partPieces(index: number, lists: readonly (readonly RangeEntry[])[]): Uint8Array[] {
  const out: Uint8Array[] = [
    Uint8Array.of(0x82), // a map of two
    encode("index"),
    encode(index),
    encode("entries"),
    arrayHeader(lists.length),
  ];
  for (const list of lists) {
    out.push(arrayHeader(list.length));
    for (const { key, entry } of list) {
      out.push(
        Uint8Array.of(0x96), // an array of six
        encode(key),
        binHeader(entry.value.length),
        entry.value,
        encode([entry.rev, entry.vs ?? 0, entry.encoding ?? 3, entry.expireAt ?? 0]).subarray(1),
      );
    }
  }
  return out;
}

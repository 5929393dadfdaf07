/**
 * msgpack encode/decode through one long-lived Encoder and Decoder: the library's `encode()`
 * and `decode()` build a new one (with its buffers) on every call, which on the write path
 * cost more than the encoding itself. Both are re-entrant (the library clones itself when
 * called while already encoding), so sharing them is safe.
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import { ByteSlab } from "./_byte_slab.ts";

const ENCODER = new Encoder();
const DECODER = new Decoder();
const SLAB = new ByteSlab();

/** Encodes `value` (a fresh copy, not a view of the shared buffer). */
export function encode(value: unknown): Uint8Array {
  return ENCODER.encode(value);
}

/**
 * Encodes `value` into a {@linkcode ByteSlab} shared with other small encodings: for bytes
 * that live long and die in order (log entries), not for anything that serializes its buffer.
 */
export function encodeToSlab(value: unknown): Uint8Array {
  return SLAB.copy(ENCODER.encodeSharedRef(value));
}

/** Decodes one msgpack value; throws on malformed input, like the library's `decode`. */
export function decode(bytes: Uint8Array): unknown {
  return DECODER.decode(bytes);
}

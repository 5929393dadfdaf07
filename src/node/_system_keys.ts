/**
 * koi's own records in the replicated key space. They live under the byte 0xFF, which no
 * UTF-8 key contains and the HTTP API refuses, so no client can read or overwrite them, and
 * they sort after every user key (so a listing can stop at the first one).
 */

/** The first byte of every system key. */
export const SYSTEM_KEY_BYTE = 0xff;

const INCARNATION_PREFIX = new TextEncoder().encode("\u0000koi/incarnation/");
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** Whether `key` is one of koi's system records. */
export function isSystemKey(key: Uint8Array): boolean {
  return key.length > 0 && key[0] === SYSTEM_KEY_BYTE;
}

/** The key recording which data-directory incarnation the cluster accepts for `nodeId`. */
export function incarnationKey(nodeId: string): Uint8Array {
  const id = utf8.encode(nodeId);
  const key = new Uint8Array(1 + INCARNATION_PREFIX.length + id.length);
  key[0] = SYSTEM_KEY_BYTE;
  key.set(INCARNATION_PREFIX, 1);
  key.set(id, 1 + INCARNATION_PREFIX.length);
  return key;
}

/** Encodes an incarnation id as a record value. */
export function encodeIncarnation(incarnation: string): Uint8Array {
  return utf8.encode(incarnation);
}

/** Decodes a record value written by {@linkcode encodeIncarnation}. */
export function decodeIncarnation(value: Uint8Array): string {
  return utf8Decoder.decode(value);
}

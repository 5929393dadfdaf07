/**
 * How the state machine holds a value. A small value is packed into a one-byte string (one
 * char per byte): it then lives in the V8 heap at its size plus a 16-byte header, instead of
 * a Uint8Array view (~100 bytes of objects) that keeps alive the whole buffer it was decoded
 * from (a log entry, a peer's frame of many entries, a snapshot chunk). A larger value is a
 * copy of its own. Readers get a fresh Uint8Array either way.
 *
 * @module
 */
import type { KvValue } from "./kv_state_machine.ts";

/** Values up to this many bytes are packed into strings. */
export const PACKED_VALUE_BYTES_MAX = 4096;

/** A value as the state machine stores it. */
export class StoredValue implements KvValue {
  readonly #packed: string | Uint8Array;
  /** The log index of the write that last set the key. */
  readonly rev: number;
  /** The versionstamp of the commit that last set the key (0: written before they existed). */
  readonly vs: number;
  /** How KV Connect clients read the bytes (`ValueEncoding`; 3 = plain bytes). */
  readonly encoding: number;
  /** When the key expires, in ms since 1970; 0: never. */
  readonly expireAt: number;

  /**
   * Stores `bytes` (copied or packed: the caller's buffer is not kept) at revision `rev`, with
   * the commit's versionstamp, the value's encoding and its expiry time.
   */
  constructor(bytes: Uint8Array, rev: number, vs = 0, encoding = 3, expireAt = 0) {
    this.#packed = bytes.length <= PACKED_VALUE_BYTES_MAX
      ? String.fromCharCode.apply(null, bytes as unknown as number[])
      : bytes.slice();
    this.rev = rev;
    this.vs = vs;
    this.encoding = encoding;
    this.expireAt = expireAt;
  }

  /** The value's bytes (a fresh copy for a packed value). */
  get value(): Uint8Array {
    const packed = this.#packed;
    if (typeof packed !== "string") return packed;
    const bytes = new Uint8Array(packed.length);
    for (let i = 0; i < packed.length; i++) bytes[i] = packed.charCodeAt(i);
    return bytes;
  }

  /** The value's length in bytes, without unpacking it. */
  get size(): number {
    return this.#packed.length;
  }
}

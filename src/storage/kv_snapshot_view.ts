import type { Membership } from "../raft/mod.ts";
import { keyString, snapshotPieces, type StateParts, yieldToEventLoop } from "./_sm_snapshot.ts";
import type { KvValue, MemberAddress } from "./kv_state_machine.ts";
import { concat } from "./_log_layout.ts";

/** Default size of the pieces of {@linkcode KvSnapshotView.encodeChunks}. */
export const SNAPSHOT_ENCODE_CHUNK_BYTES = 256 * 1024;

/**
 * An immutable view of a {@linkcode KvStateMachine} at one applied index, made in O(1) by
 * `snapshotView()` (copy-on-write B-tree clones): later applies do not change it, so it can
 * be encoded in the background while the store moves on.
 */
export class KvSnapshotView {
  readonly #s: StateParts;

  /** Wraps state parts that nobody mutates any more (see `KvStateMachine.snapshotView`). */
  constructor(parts: StateParts) {
    this.#s = parts;
  }

  /** The index of the last entry applied to the viewed state. */
  get applied(): number {
    return this.#s.applied;
  }

  /** The membership of the last applied config entry. */
  get membership(): Membership {
    return this.#s.membership;
  }

  /** Number of keys. */
  get size(): number {
    return this.#s.data.size;
  }

  /** The known addresses of members. */
  addresses(): ReadonlyMap<string, MemberAddress> {
    return this.#s.addresses;
  }

  /** The value and revision of `key` in the view, or undefined. */
  get(key: Uint8Array): KvValue | undefined {
    const stored = this.#s.data.get(keyString(key));
    return stored === undefined ? undefined : { value: stored.value, rev: stored.rev };
  }

  /** The whole snapshot at once (blocks for its whole size; prefer {@linkcode encodeChunks}). */
  encode(): Uint8Array {
    return concat([...snapshotPieces(this.#s, SNAPSHOT_ENCODE_CHUNK_BYTES)]);
  }

  /**
   * The snapshot in pieces of about `chunkBytes`, yielding to the event loop after each one,
   * so that encoding a large store never blocks for longer than one piece takes (about 4 ms
   * per 256 KiB of small records on the development machine). The concatenation is what {@linkcode encode} returns.
   */
  async *encodeChunks(
    chunkBytes: number = SNAPSHOT_ENCODE_CHUNK_BYTES,
  ): AsyncGenerator<Uint8Array> {
    if (!(chunkBytes >= 1)) throw new RangeError(`Cannot encode in chunks of ${chunkBytes} bytes`);
    for (const piece of snapshotPieces(this.#s, chunkBytes)) {
      yield piece;
      await yieldToEventLoop();
    }
  }
}

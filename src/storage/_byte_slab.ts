/**
 * Copies small byte strings side by side into shared 64 KiB buffers. Every ArrayBuffer costs
 * about 200 bytes beyond its contents (the JavaScript object and V8's backing-store record,
 * allocated one by one with malloc), which for a log entry of 150 bytes more than doubled
 * it: a leader holding 200,000 entries between snapshots spent ~50 MB on that alone. Entries
 * leave the log in order (compaction cuts a prefix), so a slab is freed once its last entry
 * is; a follower's entries already share buffers the same way, being views of the frames
 * they arrived in.
 *
 * A view of a slab must not be handed to anything that serializes its whole buffer (e.g.
 * structured clone); the log storage encodes entries before writing them, so it does not.
 *
 * @module
 */

/** The size of each slab. */
export const SLAB_BYTES = 64 * 1024;

/** Byte strings longer than this get a buffer of their own. */
export const SLAB_COPY_BYTES_MAX = 4 * 1024;

/** Hands out copies of byte strings that share slabs; see the module doc. */
export class ByteSlab {
  #slab = new Uint8Array(SLAB_BYTES);
  #at = 0;

  /** A copy of `bytes` (a view of a slab when small, a buffer of its own otherwise). */
  copy(bytes: Uint8Array): Uint8Array {
    const n = bytes.length;
    if (n > SLAB_COPY_BYTES_MAX) return bytes.slice();
    if (this.#at + n > SLAB_BYTES) {
      this.#slab = new Uint8Array(SLAB_BYTES);
      this.#at = 0;
    }
    const out = this.#slab.subarray(this.#at, this.#at + n);
    out.set(bytes);
    this.#at += n;
    return out;
  }
}

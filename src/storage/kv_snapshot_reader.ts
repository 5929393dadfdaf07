/**
 * A snapshot's bytes read from its chunks in Deno.Kv on demand, so that a node does not keep
 * its encoded state in memory beside the live one (at 10⁶ keys of 100 bytes that copy alone
 * is ~130 MB). The leader's core asks for a transfer's next piece synchronously; a piece not
 * in memory yet is fetched in the background and served when the core asks again, and the
 * piece after it is fetched ahead, so a transfer to a follower rarely waits.
 *
 * @module
 */
import type { SnapshotReader } from "../raft/mod.ts";
import { CHUNK_BYTES } from "./_commit_plan.ts";
import type { StoredSnapshot } from "./_codec.ts";

/** Chunks kept in memory beyond the ones a read asks for: 64 × 60 KiB, under 4 MiB. */
export const SNAPSHOT_READER_CHUNKS_MAX = 64;

/** What {@linkcode KvSnapshotReader} counts. */
export interface SnapshotReaderStats {
  /** Reads answered from memory. */
  readonly hits: number;
  /** Reads answered "not yet" (their chunks were being fetched). */
  readonly misses: number;
  /** Deno.Kv range reads made. */
  readonly fetches: number;
  /** Fetches that failed (the chunks were gone: a newer snapshot replaced this one). */
  readonly failures: number;
}

/** The chunks of a snapshot are not (all, or not whole) in the store. */
class ChunksGoneError extends Error {}

/** Reads the chunks `["snap", id, part]` of one stored snapshot from Deno.Kv. */
export class KvSnapshotReader implements SnapshotReader {
  readonly #kv: Deno.Kv;
  readonly #stored: StoredSnapshot;
  readonly #chunksMax: number;
  readonly #onError: (error: unknown) => void;
  /** Fetched chunks by part number, oldest first (insertion order). */
  readonly #chunks = new Map<number, Uint8Array>();
  /** Parts `[lo, hi)` being fetched, if any: one fetch at a time. */
  #fetching: { lo: number; hi: number; done: Promise<void> } | undefined;
  readonly #onFetched: () => void;
  #failed = false;
  #stats = { hits: 0, misses: 0, fetches: 0, failures: 0 };

  /**
   * A reader of `stored` in `kv`, keeping at most `chunksMax` chunks beyond those of the
   * read being served; `onError` hears of a fetch that failed (the reader then answers
   * "not yet" for good: the core moves on to a newer snapshot).
   */
  constructor(
    kv: Deno.Kv,
    stored: StoredSnapshot,
    options: {
      chunksMax?: number;
      onError?: (error: unknown) => void;
      /** Called after each fetch that brought chunks in (a miss can now be read again). */
      onFetched?: () => void;
    } = {},
  ) {
    this.#kv = kv;
    this.#stored = stored;
    this.#chunksMax = options.chunksMax ?? SNAPSHOT_READER_CHUNKS_MAX;
    this.#onError = options.onError ?? (() => {});
    this.#onFetched = options.onFetched ?? (() => {});
  }

  /** See {@linkcode SnapshotReader.length}. */
  get length(): number {
    return this.#stored.bytes;
  }

  /** What the reader did so far. */
  get stats(): SnapshotReaderStats {
    return { ...this.#stats };
  }

  /** Chunks held in memory now. */
  get chunksHeld(): number {
    return this.#chunks.size;
  }

  /** See {@linkcode SnapshotReader.read}. */
  read(offset: number, bytes: number): Uint8Array | undefined | null {
    const [lo, hi] = this.#parts(offset, bytes);
    if (lo >= hi) return new Uint8Array(0);
    if (hi > this.#stored.parts) return null; // a descriptor whose chunks cannot hold its bytes
    const out = this.#assemble(offset, bytes, lo, hi);
    if (out === undefined) {
      if (this.#failed) return null;
      this.#stats.misses++;
      this.#fetch(lo, hi + (hi - lo));
      return undefined;
    }
    this.#stats.hits++;
    // Transfers move forward: what lies before this read is not asked again soon.
    for (const part of this.#chunks.keys()) if (part < lo) this.#chunks.delete(part);
    this.#fetch(hi, hi + (hi - lo)); // the next piece, ahead of the core asking
    return out;
  }

  /** Resolves when no fetch is under way (for tests and tools; the core never waits). */
  async idle(): Promise<void> {
    while (this.#fetching !== undefined) await this.#fetching.done;
  }

  /** The same bytes as {@linkcode read}, waiting for them; rejects when a fetch fails. */
  async load(offset: number, bytes: number): Promise<Uint8Array> {
    for (;;) {
      const out = this.read(offset, bytes);
      if (out === null) throw new Error("the snapshot's chunks are gone from the store");
      if (out !== undefined) return out;
      // A miss always starts a fetch (also after a transient error), so there is one to wait for.
      await this.#fetching!.done;
    }
  }

  /** Parts `[lo, hi)` that hold `[offset, offset + bytes)`, cut at the end. */
  #parts(offset: number, bytes: number): [number, number] {
    const end = Math.min(offset + bytes, this.#stored.bytes);
    if (offset >= end || offset < 0) return [0, 0];
    return [Math.floor(offset / CHUNK_BYTES), Math.ceil(end / CHUNK_BYTES)];
  }

  #assemble(offset: number, bytes: number, lo: number, hi: number): Uint8Array | undefined {
    for (let part = lo; part < hi; part++) if (!this.#chunks.has(part)) return undefined;
    const end = Math.min(offset + bytes, this.#stored.bytes);
    if (hi - lo === 1) {
      const base = lo * CHUNK_BYTES;
      return this.#chunks.get(lo)!.subarray(offset - base, end - base);
    }
    const out = new Uint8Array(end - offset);
    for (let part = lo; part < hi; part++) {
      const chunk = this.#chunks.get(part)!;
      const base = part * CHUNK_BYTES;
      const from = Math.max(offset, base) - base;
      const to = Math.min(end, base + chunk.length) - base;
      out.set(chunk.subarray(from, to), base + from - offset);
    }
    return out;
  }

  /** Starts fetching the parts of `[lo, hi)` not held, unless a fetch is under way. */
  #fetch(lo: number, hi: number): void {
    hi = Math.min(hi, this.#stored.parts);
    while (lo < hi && this.#chunks.has(lo)) lo++;
    if (lo >= hi || this.#fetching !== undefined || this.#failed) return;
    this.#stats.fetches++;
    let fetched = false;
    const done = this.#list(lo, hi).then(
      (chunks) => {
        chunks.forEach((chunk, i) => this.#chunks.set(lo + i, chunk));
        this.#evict(lo, hi);
        fetched = true;
      },
      (error) => {
        // Chunks missing or malformed are gone for good (a newer snapshot replaced this one,
        // or the store is damaged); any other error (I/O) is retried by the next read.
        if (error instanceof ChunksGoneError) this.#failed = true;
        this.#stats.failures++;
        this.#onError(error);
      },
    ).finally(() => {
      this.#fetching = undefined;
      // After the fetch is no longer under way: the listener's read may start the next one.
      // Only on success: after an error, a listener that reads again would spin on the store
      // (the next heartbeat answer retries instead).
      if (fetched) this.#onFetched();
    });
    this.#fetching = { lo, hi, done };
  }

  async #list(lo: number, hi: number): Promise<Uint8Array[]> {
    const id = this.#stored.id;
    const chunks: Uint8Array[] = [];
    const range = { start: ["snap", id, lo], end: ["snap", id, hi] };
    const last = this.#stored.parts - 1;
    const lastBytes = this.#stored.bytes - last * CHUNK_BYTES;
    for await (const e of this.#kv.list<Uint8Array>(range)) {
      const part = lo + chunks.length;
      if (e.key[2] !== part || !(e.value instanceof Uint8Array)) break;
      if (e.value.length !== (part === last ? lastBytes : CHUNK_BYTES)) {
        throw new ChunksGoneError(`snapshot ${id}: chunk ${part} has ${e.value.length} bytes`);
      }
      chunks.push(e.value);
    }
    if (chunks.length !== hi - lo) {
      throw new ChunksGoneError(`snapshot ${id}: chunks ${lo}..${hi - 1} are not all in the store`);
    }
    return chunks;
  }

  /** Drops the oldest chunks outside `[lo, hi)` (the ones just fetched) beyond the bound. */
  #evict(lo: number, hi: number): void {
    for (const part of this.#chunks.keys()) {
      if (this.#chunks.size <= this.#chunksMax) return;
      if (part < lo || part >= hi) this.#chunks.delete(part);
    }
  }
}

/**
 * Deno.Kv key layout of the Raft state, and the reads of it done at open.
 *
 * - `["meta", "hard"]`: hard state; `["meta", "last"]`: last log index written;
 *   `["meta", "snap"]`: descriptor of the current snapshot; `["meta", "incarnation"]`: the
 *   random id of this data directory's life.
 * - `["log", index]`: an entry (msgpack) or, when larger than a chunk, a {@linkcode PartsHeader}
 *   whose chunks are at `["logp", index, id, i]`. Chunk set ids are never reused, so a write
 *   never touches the chunks of an older entry at the same index.
 * - `["snap", id, i]`: the chunks of snapshot data set `id` (ids are never reused either).
 *
 * Only what the descriptor, `last` and the headers reference is read; anything else (entries
 * after `last`, unreferenced chunk sets, log keys at or before the snapshot) is garbage that a
 * crash between the commits of a plan may leave and that {@linkcode collectGarbage} removes.
 *
 * @module
 */
import type { Entry, ReceivedSnapshot } from "../raft/mod.ts";
import { checksum, decodeEntry, decodeStoredSnapshot, StorageCorruptError } from "./_codec.ts";
import type { StoredSnapshot } from "./_codec.ts";
import { CHUNK_BYTES, type KvMutation } from "./_commit_plan.ts";

/** The hard state record. */
export const KEY_HARD = ["meta", "hard"] as const;
/** The last log index written. */
export const KEY_LAST = ["meta", "last"] as const;
/** The current snapshot's descriptor. */
export const KEY_SNAP = ["meta", "snap"] as const;
/** The data directory's incarnation id. */
export const KEY_INCARNATION = ["meta", "incarnation"] as const;
/** Chunk set ids of entries start here, above any term (older stores used the term as id). */
export const CHUNK_ID_MIN = 2 ** 32;

/** The record at `["log", index]` of an entry stored in chunks. */
export interface PartsHeader {
  /** Number of chunks. */
  readonly parts: number;
  /** The entry's term (checked against the decoded entry). */
  readonly term: number;
  /** The chunk set id; absent in stores written before ids existed (the term was the id). */
  readonly id?: number;
}

/** Where the chunks of a chunked entry live. */
export interface ChunkSet {
  /** The chunk set id: the third key part of `["logp", index, id, i]`. */
  readonly id: number;
  /** Number of chunks. */
  readonly parts: number;
}

function isPartsHeader(v: unknown): v is PartsHeader {
  if (typeof v !== "object" || v === null || v instanceof Uint8Array) return false;
  const h = v as PartsHeader;
  return typeof h.parts === "number" && typeof h.term === "number" &&
    (h.id === undefined || typeof h.id === "number");
}

/** Splits `data` into views of at most {@linkcode CHUNK_BYTES}. */
export function chunksOf(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += CHUNK_BYTES) out.push(data.subarray(i, i + CHUNK_BYTES));
  return out;
}

/** Re-cuts `data` into chunks of exactly `size` bytes (the last may be shorter). */
export async function* rechunk(
  data: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  size: number,
): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) {
    yield* chunksOf(data);
    return;
  }
  let buf = new Uint8Array(size);
  let n = 0;
  for await (const piece of data) {
    for (let o = 0; o < piece.length;) {
      const take = Math.min(size - n, piece.length - o);
      buf.set(piece.subarray(o, o + take), n);
      n += take;
      o += take;
      if (n === size) {
        yield buf;
        buf = new Uint8Array(size);
        n = 0;
      }
    }
  }
  if (n > 0) yield buf.subarray(0, n);
}

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Delete mutations for the chunks of a chunked entry. */
export function chunkSetKeys(index: number, set: ChunkSet): KvMutation[] {
  const out: KvMutation[] = [];
  for (let p = 0; p < set.parts; p++) out.push({ key: ["logp", index, set.id, p] });
  return out;
}

/** Delete mutations for the chunks of a snapshot's data. */
export function snapshotKeys(s: { readonly id: number; readonly parts: number }): KvMutation[] {
  const out: KvMutation[] = [];
  for (let i = 0; i < s.parts; i++) out.push({ key: ["snap", s.id, i] });
  return out;
}

/** Reads and checks the current snapshot, if any. */
export async function loadSnapshot(
  kv: Deno.Kv,
): Promise<{ descriptor: StoredSnapshot; snapshot: ReceivedSnapshot } | undefined> {
  const rec = await kv.get<Uint8Array>(KEY_SNAP);
  if (rec.value === null) return undefined;
  const descriptor = decodeStoredSnapshot(rec.value);
  const parts: Uint8Array[] = [];
  const range = {
    start: ["snap", descriptor.id, 0],
    end: ["snap", descriptor.id, descriptor.parts],
  };
  for await (const p of kv.list<Uint8Array>(range)) parts.push(p.value);
  const data = concat(parts);
  if (parts.length !== descriptor.parts || data.length !== descriptor.bytes) {
    throw new StorageCorruptError("snapshot", `${parts.length} of ${descriptor.parts} chunks`);
  }
  if (checksum(data) !== descriptor.checksum) {
    throw new StorageCorruptError("snapshot", "checksum mismatch");
  }
  return { descriptor, snapshot: { meta: descriptor.meta, data } };
}

/** What {@linkcode loadEntries} read. */
export interface LoadedLog {
  /** The entries of `[first, last]`. */
  readonly entries: Entry[];
  /** The encoded size of each entry, in the same order. */
  readonly sizes: number[];
  /** The chunk sets of the chunked entries, by index. */
  readonly chunked: Map<number, ChunkSet>;
}

/** Reads and checks the entries `[first, last]`. */
export async function loadEntries(kv: Deno.Kv, first: number, last: number): Promise<LoadedLog> {
  const out: LoadedLog = { entries: [], sizes: [], chunked: new Map() };
  if (last < first) return out;
  const iter = kv.list<Uint8Array | PartsHeader>({ start: ["log", first], end: ["log", last + 1] });
  for await (const { key, value } of iter) {
    const index = key[1] as number;
    if (index !== first + out.entries.length) {
      throw new StorageCorruptError(`log entry ${first + out.entries.length}`, "missing");
    }
    if (value instanceof Uint8Array) {
      out.entries.push(decodeEntry(index, value));
      out.sizes.push(value.length);
    } else if (isPartsHeader(value)) {
      const set = { id: value.id ?? value.term, parts: value.parts };
      const parts: Uint8Array[] = [];
      const range = { start: ["logp", index, set.id, 0], end: ["logp", index, set.id, set.parts] };
      for await (const p of kv.list<Uint8Array>(range)) parts.push(p.value);
      if (parts.length !== set.parts) {
        throw new StorageCorruptError(
          `log entry ${index}`,
          `${parts.length} of ${set.parts} chunks`,
        );
      }
      const bytes = concat(parts);
      const e = decodeEntry(index, bytes);
      if (e.term !== value.term) {
        throw new StorageCorruptError(`log entry ${index}`, "term mismatch");
      }
      out.chunked.set(index, set);
      out.entries.push(e);
      out.sizes.push(bytes.length);
    } else {
      throw new StorageCorruptError(`log entry ${index}`, "unknown record");
    }
  }
  if (out.entries.length !== last - first + 1) {
    throw new StorageCorruptError(`log entry ${first + out.entries.length}`, "missing");
  }
  return out;
}

/** What is reachable: the current snapshot's chunk set and the log `[first, last]`. */
export interface Reachable {
  readonly snapshotId: number | undefined;
  readonly first: number;
  readonly last: number;
  readonly chunked: ReadonlyMap<number, ChunkSet>;
}

/** The garbage found by {@linkcode findGarbage} and the largest ids in use. */
export interface Garbage {
  /** Deletes of unreachable keys. */
  readonly deletes: KvMutation[];
  /** The largest snapshot chunk set id found (0 when none). */
  readonly snapshotIdMax: number;
  /** The largest entry chunk set id found (below {@linkcode CHUNK_ID_MIN} when none). */
  readonly chunkIdMax: number;
}

/** Lists every key a crash between commits may have left unreachable. */
export async function findGarbage(kv: Deno.Kv, live: Reachable): Promise<Garbage> {
  const deletes: KvMutation[] = [];
  let snapshotIdMax = live.snapshotId ?? 0;
  let chunkIdMax = CHUNK_ID_MIN - 1;
  for await (const { key } of kv.list({ prefix: ["snap"] })) {
    const id = key[1] as number;
    snapshotIdMax = Math.max(snapshotIdMax, id);
    if (id !== live.snapshotId) deletes.push({ key });
  }
  for await (const { key } of kv.list({ prefix: ["log"] })) {
    const index = key[1] as number;
    if (index < live.first || index > live.last) deletes.push({ key });
  }
  for await (const { key } of kv.list({ prefix: ["logp"] })) {
    const [index, id, part] = [key[1] as number, key[2] as number, key[3] as number];
    chunkIdMax = Math.max(chunkIdMax, id);
    const set = live.chunked.get(index);
    if (set === undefined || set.id !== id || part >= set.parts) deletes.push({ key });
  }
  return { deletes, snapshotIdMax, chunkIdMax };
}

import {
  type Entry,
  type HardState,
  type InitialState,
  type LogStorage,
  type Membership,
  MemoryStorage,
  type PersistBatch,
  type Snapshot,
  SnapshotOutOfDateError,
  UnavailableError,
} from "../raft/mod.ts";
import {
  checksum,
  decodeEntry,
  decodeHardState,
  decodeStoredSnapshot,
  encodeEntry,
  encodeHardState,
  encodeStoredSnapshot,
  StorageCorruptError,
  type StoredSnapshot,
} from "./_codec.ts";
import { CHUNK_BYTES, CommitPlan, type KvMutation, type MutationGroup } from "./_commit_plan.ts";

/**
 * Deno.Kv key layout of the Raft state:
 * - `["meta", "hard"]`: hard state; `["meta", "last"]`: last log index written;
 *   `["meta", "snap"]`: descriptor of the current snapshot.
 * - `["log", index]`: an entry (msgpack) or, when larger than a chunk, `{ parts, term }` with
 *   the chunks at `["logp", index, term, i]`.
 * - `["snap", id, i]`: the chunks of snapshot data set `id`.
 * Entries after `["meta", "last"]` are leftovers of a truncation and never read.
 */
const KEY_HARD = ["meta", "hard"] as const;
const KEY_LAST = ["meta", "last"] as const;
const KEY_SNAP = ["meta", "snap"] as const;

interface PartsHeader {
  readonly parts: number;
  readonly term: number;
}

function isPartsHeader(v: unknown): v is PartsHeader {
  return typeof v === "object" && v !== null && !(v instanceof Uint8Array) &&
    typeof (v as PartsHeader).parts === "number" && typeof (v as PartsHeader).term === "number";
}

/** Splits `data` into chunks of at most {@linkcode CHUNK_BYTES}. */
function chunksOf(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += CHUNK_BYTES) out.push(data.subarray(i, i + CHUNK_BYTES));
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
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

/** Counters for metrics: how many Ready batches were persisted and with how many commits. */
export interface KvLogStorageStats {
  /** Calls of persist() (one per Ready). */
  readonly persists: number;
  /** Deno.Kv commits made by persist() (each one fsync). */
  readonly persistCommits: number;
  /** Deno.Kv commits made for snapshots and compaction. */
  readonly snapshotCommits: number;
}

/**
 * The Raft log, hard state and snapshots of one node in its Deno.Kv file. Reads are served
 * from memory (a {@linkcode MemoryStorage} mirror); every write is durable before the mirror
 * changes, so the core never sees state a crash could take back. A Ready batch costs one
 * Deno.Kv commit (one fsync) unless it exceeds Deno.Kv's limits, in which case it is split
 * into commits whose every prefix is a consistent log.
 */
export class KvLogStorage implements LogStorage {
  readonly #kv: Deno.Kv;
  readonly #mem: MemoryStorage;
  #stored: StoredSnapshot | undefined;
  /** Indexes of entries stored in chunks, with their term (for deleting the chunks). */
  readonly #chunked = new Map<number, number>();
  #queue: Promise<unknown> = Promise.resolve();
  #stats = { persists: 0, persistCommits: 0, snapshotCommits: 0 };

  private constructor(kv: Deno.Kv, mem: MemoryStorage, stored: StoredSnapshot | undefined) {
    this.#kv = kv;
    this.#mem = mem;
    this.#stored = stored;
  }

  /** Loads the Raft state kept in `kv` (an empty store gives an empty log). */
  static async open(kv: Deno.Kv): Promise<KvLogStorage> {
    const mem = new MemoryStorage();
    const stored = await loadSnapshot(kv);
    if (stored !== undefined) mem.applySnapshot(stored.snapshot);
    const storage = new KvLogStorage(kv, mem, stored?.descriptor);
    const last = (await kv.get<number>(KEY_LAST)).value ?? mem.lastIndex();
    const entries = await storage.#loadEntries(mem.firstIndex(), last);
    mem.append(entries);
    const hard = await kv.get<Uint8Array>(KEY_HARD);
    if (hard.value !== null) {
      const hs = decodeHardState(hard.value);
      if (hs.commit > mem.lastIndex() || hs.commit < mem.firstIndex() - 1) {
        throw new StorageCorruptError("hard state", `commit ${hs.commit} outside the stored log`);
      }
      mem.setHardState(hs);
    }
    await storage.#collectGarbage();
    return storage;
  }

  async #loadEntries(first: number, last: number): Promise<Entry[]> {
    const entries: Entry[] = [];
    if (last < first) return entries;
    const iter = this.#kv.list<Uint8Array | PartsHeader>({
      start: ["log", first],
      end: ["log", last + 1],
    });
    for await (const { key, value } of iter) {
      const index = key[1] as number;
      if (index !== first + entries.length) {
        throw new StorageCorruptError(`log entry ${first + entries.length}`, "missing");
      }
      if (value instanceof Uint8Array) {
        entries.push(decodeEntry(index, value));
      } else if (isPartsHeader(value)) {
        const parts: Uint8Array[] = [];
        for await (const p of this.#kv.list<Uint8Array>({ prefix: ["logp", index, value.term] })) {
          parts.push(p.value);
        }
        if (parts.length !== value.parts) {
          throw new StorageCorruptError(
            `log entry ${index}`,
            `${parts.length} of ${value.parts} chunks`,
          );
        }
        const e = decodeEntry(index, concat(parts));
        if (e.term !== value.term) {
          throw new StorageCorruptError(`log entry ${index}`, "term mismatch");
        }
        this.#chunked.set(index, e.term);
        entries.push(e);
      } else {
        throw new StorageCorruptError(`log entry ${index}`, "unknown record");
      }
    }
    if (entries.length !== last - first + 1) {
      throw new StorageCorruptError(`log entry ${first + entries.length}`, "missing");
    }
    return entries;
  }

  /** Deletes what a crash between commits may have left: stale chunk sets and log keys. */
  async #collectGarbage(): Promise<void> {
    const plan = new CommitPlan();
    const currentId = this.#stored?.id;
    for await (const { key } of this.#kv.list({ prefix: ["snap"] })) {
      if (key[1] !== currentId) plan.add({ mutations: [{ key }] });
    }
    const first = this.#mem.firstIndex();
    const last = this.#mem.lastIndex();
    for await (const { key } of this.#kv.list({ prefix: ["log"] })) {
      const index = key[1] as number;
      if (index < first || index > last) plan.add({ mutations: [{ key }] });
    }
    for await (const { key } of this.#kv.list({ prefix: ["logp"] })) {
      const index = key[1] as number;
      if (this.#chunked.get(index) !== key[2]) plan.add({ mutations: [{ key }] });
    }
    this.#stats.snapshotCommits += await plan.run(this.#kv);
  }

  // ---------------------------------------------------------------------------------------
  // Reads: from memory.

  /** See `Storage.initialState`. */
  initialState(): InitialState {
    return this.#mem.initialState();
  }

  /** The persisted hard state. */
  hardState(): HardState {
    return this.#mem.hardState();
  }

  /** See `Storage.entries`. */
  entries(lo: number, hi: number, maxBytes?: number): Entry[] {
    return this.#mem.entries(lo, hi, maxBytes);
  }

  /** See `Storage.term`. */
  term(index: number): number {
    return this.#mem.term(index);
  }

  /** See `Storage.firstIndex`. */
  firstIndex(): number {
    return this.#mem.firstIndex();
  }

  /** See `Storage.lastIndex`. */
  lastIndex(): number {
    return this.#mem.lastIndex();
  }

  /** See `Storage.snapshot`. */
  snapshot(): Snapshot {
    return this.#mem.snapshot();
  }

  /** Persist and commit counters. */
  stats(): KvLogStorageStats {
    return { ...this.#stats };
  }

  // ---------------------------------------------------------------------------------------
  // Writes: one at a time, durable before the mirror changes.

  #serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** See `LogStorage.append`. */
  append(entries: readonly Entry[]): Promise<void> {
    return this.persist({ entries });
  }

  /** See `LogStorage.setHardState`. */
  setHardState(hardState: HardState): Promise<void> {
    return this.persist({ entries: [], hardState });
  }

  /** See `LogStorage.applySnapshot`. */
  applySnapshot(snapshot: Snapshot): Promise<void> {
    return this.persist({ snapshot, entries: [] });
  }

  /** See `LogStorage.persist`: usually exactly one Deno.Kv commit. */
  persist(batch: PersistBatch): Promise<void> {
    return this.#serialize(async () => {
      this.#validateBatch(batch);
      const plan = new CommitPlan();
      let lastWritten: number | undefined;
      plan.reserve(
        1,
        64,
        () => (lastWritten === undefined ? [] : [{ key: KEY_LAST, value: lastWritten }]),
      );
      const garbage: KvMutation[] = [];
      let newStored: StoredSnapshot | undefined;
      if (batch.snapshot !== undefined) {
        newStored = this.#planSnapshotData(plan, batch.snapshot);
        plan.add({ mutations: [{ key: KEY_SNAP, value: encodeStoredSnapshot(newStored) }] });
        lastWritten = batch.snapshot.meta.index;
        // After the switch the old log and data are unreachable: delete them before the new
        // entries are written (so no deletion can hit a new entry).
        const old = this.#logKeys(this.#mem.firstIndex(), this.#mem.lastIndex());
        if (this.#stored !== undefined) old.push(...this.#snapshotKeys(this.#stored));
        for (const m of old) plan.add({ mutations: [m] });
      }
      const oldLast = batch.snapshot === undefined
        ? this.#mem.lastIndex()
        : batch.snapshot.meta.index;
      const chunked: [number, number][] = [];
      for (const e of batch.entries) {
        const groups = this.#entryGroups(e);
        if (groups.length > 1) chunked.push([e.index, e.term]);
        for (const g of groups) plan.add(g);
        lastWritten = e.index;
      }
      const newLast = batch.entries.at(-1)?.index;
      if (newLast !== undefined && newLast < oldLast && batch.snapshot === undefined) {
        garbage.push(...this.#logKeys(newLast + 1, oldLast)); // the replaced suffix
      }
      if (batch.hardState !== undefined) {
        plan.add({ mutations: [{ key: KEY_HARD, value: encodeHardState(batch.hardState) }] });
      }
      for (const m of garbage) plan.add({ mutations: [m] });
      const commits = await plan.run(this.#kv);
      this.#stats.persists++;
      this.#stats.persistCommits += commits;
      if (batch.snapshot !== undefined) {
        this.#stored = newStored;
        this.#chunked.clear();
      }
      this.#noteChunked(batch.entries[0]?.index, chunked);
      this.#mem.persist(batch);
    });
  }

  #validateBatch(batch: PersistBatch): void {
    if (
      batch.snapshot !== undefined && batch.snapshot.meta.index < this.#mem.snapshot().meta.index
    ) {
      throw new SnapshotOutOfDateError(batch.snapshot.meta.index, this.#mem.snapshot().meta.index);
    }
    const first = batch.entries[0]?.index;
    if (first === undefined) return;
    const lo = batch.snapshot === undefined
      ? this.#mem.firstIndex()
      : batch.snapshot.meta.index + 1;
    const hi = batch.snapshot === undefined ? this.#mem.lastIndex() + 1 : lo;
    if (first < lo || first > hi) {
      throw new RangeError(`Cannot append entries from ${first}: the log accepts ${lo}..${hi}`);
    }
  }

  /** Records which of the entries written from `first` on were stored in chunks. */
  #noteChunked(first: number | undefined, chunked: readonly [number, number][]): void {
    if (first === undefined) return;
    for (const index of [...this.#chunked.keys()]) if (index >= first) this.#chunked.delete(index);
    for (const [index, term] of chunked) this.#chunked.set(index, term);
  }

  /** The groups that store one entry: its chunks, then the record that makes it visible. */
  #entryGroups(e: Entry): MutationGroup[] {
    const encoded = encodeEntry(e);
    if (encoded.length <= CHUNK_BYTES) {
      return [{ mutations: [{ key: ["log", e.index], value: encoded }] }];
    }
    const parts = chunksOf(encoded);
    const groups: MutationGroup[] = parts.map((p, i) => ({
      mutations: [{ key: ["logp", e.index, e.term, i], value: p }],
    }));
    groups.push({
      mutations: [{ key: ["log", e.index], value: { parts: parts.length, term: e.term } }],
    });
    return groups;
  }

  /** Delete mutations for the log keys of `[lo, hi]` (with chunks of chunked entries). */
  #logKeys(lo: number, hi: number): KvMutation[] {
    const out: KvMutation[] = [];
    for (let i = lo; i <= hi; i++) {
      out.push({ key: ["log", i] });
      const term = this.#chunked.get(i);
      if (term !== undefined) {
        const parts = Math.ceil(encodeEntry(this.#mem.entries(i, i + 1)[0]).length / CHUNK_BYTES);
        for (let p = 0; p < parts; p++) out.push({ key: ["logp", i, term, p] });
      }
    }
    return out;
  }

  #snapshotKeys(s: StoredSnapshot): KvMutation[] {
    const out: KvMutation[] = [];
    for (let i = 0; i < s.parts; i++) out.push({ key: ["snap", s.id, i] });
    return out;
  }

  /** Adds the chunks of a snapshot's data to `plan`; returns its descriptor. */
  #planSnapshotData(plan: CommitPlan, snapshot: Snapshot): StoredSnapshot {
    const id = (this.#stored?.id ?? 0) + 1;
    const parts = chunksOf(snapshot.data);
    parts.forEach((p, i) => plan.add({ mutations: [{ key: ["snap", id, i], value: p }] }));
    return {
      meta: snapshot.meta,
      id,
      parts: parts.length,
      bytes: snapshot.data.length,
      checksum: checksum(snapshot.data),
    };
  }

  /**
   * See `LogStorage.createSnapshot`: stores the application's snapshot at `index` (at most the
   * applied index) and compacts the log up to it.
   */
  createSnapshot(
    index: number,
    options: { membership: Membership; data: Uint8Array },
  ): Promise<Snapshot> {
    return this.#serialize(async () => {
      const current = this.#mem.snapshot().meta.index;
      if (index <= current) throw new SnapshotOutOfDateError(index, current);
      if (index > this.#mem.lastIndex()) throw new UnavailableError(index, this.#mem.lastIndex());
      const snapshot: Snapshot = {
        meta: { index, term: this.#mem.term(index), membership: options.membership },
        data: options.data,
      };
      const plan = new CommitPlan();
      const stored = this.#planSnapshotData(plan, snapshot);
      plan.add({ mutations: [{ key: KEY_SNAP, value: encodeStoredSnapshot(stored) }] });
      const garbage = this.#logKeys(this.#mem.firstIndex(), index);
      if (this.#stored !== undefined) garbage.push(...this.#snapshotKeys(this.#stored));
      for (const m of garbage) plan.add({ mutations: [m] });
      this.#stats.snapshotCommits += await plan.run(this.#kv);
      this.#stored = stored;
      for (const i of [...this.#chunked.keys()]) if (i <= index) this.#chunked.delete(i);
      return this.#mem.createSnapshot(index, options);
    });
  }
}

/** Reads and checks the current snapshot, if any. */
async function loadSnapshot(
  kv: Deno.Kv,
): Promise<{ descriptor: StoredSnapshot; snapshot: Snapshot } | undefined> {
  const rec = await kv.get<Uint8Array>(KEY_SNAP);
  if (rec.value === null) return undefined;
  const descriptor = decodeStoredSnapshot(rec.value);
  const parts: Uint8Array[] = [];
  for await (const p of kv.list<Uint8Array>({ prefix: ["snap", descriptor.id] })) {
    parts.push(p.value);
  }
  const data = concat(parts);
  if (parts.length !== descriptor.parts || data.length !== descriptor.bytes) {
    throw new StorageCorruptError("snapshot", `${parts.length} of ${descriptor.parts} chunks`);
  }
  if (checksum(data) !== descriptor.checksum) {
    throw new StorageCorruptError("snapshot", "checksum mismatch");
  }
  return { descriptor, snapshot: { meta: descriptor.meta, data } };
}

import {
  EMPTY_HARD_STATE,
  type Entry,
  type HardState,
  type InitialState,
  type LogStorage,
  type Membership,
  MemoryStorage,
  type PersistBatch,
  type ReceivedSnapshot,
  type Snapshot,
  SnapshotOutOfDateError,
  UnavailableError,
} from "../raft/mod.ts";
import {
  CHECKSUM_SEED,
  checksumUpdate,
  decodeHardState,
  encodeEntry,
  encodeHardState,
  encodeStoredSnapshot,
  StorageCorruptError,
  type StoredSnapshot,
} from "./_codec.ts";
import {
  type BeforeCommitHook,
  CHUNK_BYTES,
  CommitPlan,
  KV_COMMIT_BYTES_MAX,
  KV_MUTATIONS_MAX,
  type KvMutation,
  type MutationGroup,
} from "./_commit_plan.ts";
import { LogBytes } from "./_log_bytes.ts";
import {
  type ChunkSet,
  chunkSetKeys,
  chunksOf,
  findGarbage,
  KEY_HARD,
  KEY_INCARNATION,
  KEY_LAST,
  KEY_SNAP,
  loadEntries,
  loadSnapshot,
  rechunk,
  snapshotKeys,
} from "./_log_layout.ts";
import { KvSnapshotReader } from "./kv_snapshot_reader.ts";

/** Snapshot chunks written per background commit by `createSnapshot` (about 720 KiB). */
export const SNAPSHOT_CHUNKS_PER_COMMIT = 12;
/** Deletes of garbage per background commit. */
export const GARBAGE_DELETES_PER_COMMIT = 900;
/** Room kept in every commit for the hard state and the last index records. */
const CLOSER_BYTES = 320;

/** Counters for metrics: how many Ready batches were persisted and at what cost. */
export interface KvLogStorageStats {
  /** Calls of persist() (one per Ready). */
  readonly persists: number;
  /** Deno.Kv commits made by persist() (each one fsync). */
  readonly persistCommits: number;
  /** Calls of persist() that needed no commit (nothing, or only a new commit index). */
  readonly persistsSkipped: number;
  /** Deno.Kv commits made for snapshots, compaction and their garbage. */
  readonly snapshotCommits: number;
  /** Deno.Kv commits made by open (incarnation id, garbage a crash left). */
  readonly openCommits: number;
  /** Key and value bytes of every commit (an upper bound of what Deno.Kv counts). */
  readonly bytesWritten: number;
  /** Background garbage deletions that failed (the next open removes the garbage). */
  readonly backgroundErrors: number;
  /**
   * Reads of a snapshot's chunks for a transfer that failed (they were deleted: a newer
   * snapshot replaced it, and the transfer moves on to that one).
   */
  readonly snapshotReadFailures: number;
}

/** Options of {@linkcode KvLogStorage.open}. */
export interface KvLogStorageOptions {
  /**
   * Runs before every Deno.Kv commit the storage makes; throwing there fails that commit
   * and every later step of its write, as a crash would. For fault injection in tests.
   */
  readonly beforeCommit?: BeforeCommitHook;
}

/**
 * A snapshot's data for {@linkcode KvLogStorage.createSnapshot}: whole, or as chunks of any
 * size that the caller produces incrementally (see `KvSnapshotView.encodeChunks`).
 */
export type SnapshotData = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/**
 * The Raft log, hard state and snapshots of one node in its Deno.Kv file. Reads are served
 * from memory (a {@linkcode MemoryStorage} mirror); every write is durable before the mirror
 * changes, so the core never sees state a crash could take back. A Ready batch costs one
 * Deno.Kv commit (one fsync) unless it exceeds Deno.Kv's limits, in which case it is split
 * into commits whose every prefix reopens to a consistent state.
 *
 * Crash consistency: every commit of a write records the hard state it may (term and vote
 * in the first commit, so they are never behind a stored entry; a commit index only as far
 * as the log on disk agrees with the new one) and the last index written so far. A commit
 * index alone is written lazily, with the next commit made anyway: after a crash it may lag,
 * which is safe because the state machine is rebuilt from the log; at open it is raised to
 * the snapshot's index (a snapshot is committed by definition).
 */
export class KvLogStorage implements LogStorage {
  readonly #kv: Deno.Kv;
  readonly #mem: MemoryStorage;
  readonly #beforeCommit: BeforeCommitHook | undefined;
  #stored: StoredSnapshot | undefined;
  /** The snapshot before `#stored`, whose chunks are kept until the next one (or an open). */
  #previous: StoredSnapshot | undefined;
  #onSnapshotBytesFetched: () => void = () => {};
  /** The hard state as stored (the mirror's commit index may be ahead of it). */
  #diskHard: HardState;
  /** Chunk sets of the entries stored in chunks, by index. */
  #chunked: Map<number, ChunkSet>;
  readonly #logBytes = new LogBytes();
  #incarnation = "";
  #nextSnapshotId = 1;
  #nextChunkId = 0;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #background = new Set<Promise<void>>();
  /** Deletes a failed background job left undone (see {@linkcode #deleteInBackground}). */
  #garbageLeft: KvMutation[] = [];
  #stats = {
    persists: 0,
    persistCommits: 0,
    persistsSkipped: 0,
    snapshotCommits: 0,
    openCommits: 0,
    bytesWritten: 0,
    backgroundErrors: 0,
    snapshotReadFailures: 0,
  };

  private constructor(
    kv: Deno.Kv,
    mem: MemoryStorage,
    init: { stored?: StoredSnapshot; disk: HardState; options: KvLogStorageOptions },
  ) {
    this.#kv = kv;
    this.#mem = mem;
    this.#stored = init.stored;
    this.#diskHard = init.disk;
    this.#beforeCommit = init.options.beforeCommit;
    this.#chunked = new Map();
  }

  /**
   * Loads the Raft state kept in `kv` (an empty store gives an empty log), gives the store an
   * incarnation id when it has none, and deletes what a crash between commits left behind.
   */
  static async open(kv: Deno.Kv, options: KvLogStorageOptions = {}): Promise<KvLogStorage> {
    const mem = new MemoryStorage();
    const loaded = await loadSnapshot(kv);
    if (loaded !== undefined) mem.applySnapshot(loaded.snapshot);
    const snapIndex = mem.snapshot().meta.index;
    const lastRecord = (await kv.get<number>(KEY_LAST)).value;
    const last = Math.max(lastRecord ?? snapIndex, snapIndex);
    const log = await loadEntries(kv, snapIndex + 1, last);
    mem.append(log.entries);
    const hard = await kv.get<Uint8Array>(KEY_HARD);
    const disk = hard.value === null ? EMPTY_HARD_STATE : decodeHardState(hard.value);
    if (disk.commit > last) {
      throw new StorageCorruptError(
        "hard state",
        `commit ${disk.commit} is after last index ${last}`,
      );
    }
    mem.setHardState(disk.commit < snapIndex ? { ...disk, commit: snapIndex } : disk);
    const storage = new KvLogStorage(kv, mem, { stored: loaded?.descriptor, disk, options });
    storage.#chunked = log.chunked;
    storage.#logBytes.reset(snapIndex + 1);
    log.sizes.forEach((size, i) => storage.#logBytes.append(snapIndex + 1 + i, size));
    await storage.#finishOpen();
    return storage;
  }

  /** Incarnation id and garbage collection: deletes only unreachable keys. */
  async #finishOpen(): Promise<void> {
    const garbage = await findGarbage(this.#kv, {
      snapshotId: this.#stored?.id,
      first: this.#mem.firstIndex(),
      last: this.#mem.lastIndex(),
      chunked: this.#chunked,
    });
    this.#nextSnapshotId = garbage.snapshotIdMax + 1;
    this.#nextChunkId = garbage.chunkIdMax + 1;
    const plan = this.#jobPlan();
    const incarnation = (await this.#kv.get<string>(KEY_INCARNATION)).value;
    this.#incarnation = incarnation ?? crypto.randomUUID();
    if (incarnation === null) {
      plan.add({ mutations: [{ key: KEY_INCARNATION, value: this.#incarnation }] });
    }
    for (const m of garbage.deletes) plan.add({ mutations: [m] });
    this.#stats.openCommits += await this.#runJob(plan);
  }

  // ---------------------------------------------------------------------------------------
  // Reads: from memory.

  /** See `Storage.initialState`. */
  initialState(): InitialState {
    return this.#mem.initialState();
  }

  /** The persisted hard state (its commit index may not be on disk yet, see the class doc). */
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

  /** Total encoded bytes of the entries in the log (after the snapshot), kept in O(1). */
  logBytes(): number {
    return this.#logBytes.total;
  }

  /** The random id of this store's life, made at its first open; a wiped store gets a new one. */
  get incarnation(): string {
    return this.#incarnation;
  }

  /** Persist and commit counters. */
  stats(): KvLogStorageStats {
    return { ...this.#stats };
  }

  /**
   * Resolves when every queued write and background deletion has finished. Await it before
   * closing the Deno.Kv handle (what is left undone is garbage that the next open removes).
   */
  async idle(): Promise<void> {
    while (this.#background.size > 0) await Promise.all([...this.#background]);
    await this.#queue;
  }

  // ---------------------------------------------------------------------------------------
  // Writes: one at a time, durable before the mirror changes.

  #serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** A plan for a write that leaves the log as it is: it also records a lagging commit index. */
  #jobPlan(): CommitPlan {
    const plan = new CommitPlan({ beforeCommit: this.#beforeCommit });
    plan.reserve(1, CLOSER_BYTES, () => {
      const h = this.#mem.hardState();
      return sameHardState(h, this.#diskHard) ? [] : [{ key: KEY_HARD, value: encodeHardState(h) }];
    });
    return plan;
  }

  /** Runs a {@linkcode #jobPlan}; returns its commits. */
  async #runJob(plan: CommitPlan): Promise<number> {
    const hard = this.#mem.hardState();
    const { commits, bytes } = await plan.run(this.#kv);
    this.#stats.bytesWritten += bytes;
    if (commits > 0) this.#diskHard = hard;
    return commits;
  }

  /**
   * Deletes unreachable keys in small queued jobs, so that other writes interleave. What a
   * failed job (a full or failing disk) left is tried again after the next write that
   * succeeds: on a full disk that garbage is the space the node needs back. Deleting late is
   * safe: garbage keys are never written again (chunk and snapshot ids are never reused, and
   * no entry is appended at or before the snapshot).
   */
  #deleteInBackground(deletes: readonly KvMutation[]): void {
    if (deletes.length === 0) return;
    let done = 0;
    const task: Promise<void> = (async () => {
      for (; done < deletes.length; done += GARBAGE_DELETES_PER_COMMIT) {
        const group = { mutations: deletes.slice(done, done + GARBAGE_DELETES_PER_COMMIT) };
        await this.#serialize(async () => {
          const plan = this.#jobPlan();
          plan.add(group);
          this.#stats.snapshotCommits += await this.#runJob(plan);
        });
      }
    })().catch(() => {
      this.#stats.backgroundErrors++;
      for (let i = done; i < deletes.length; i++) this.#garbageLeft.push(deletes[i]);
    }).finally(() => {
      this.#background.delete(task);
    });
    this.#background.add(task);
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
  applySnapshot(snapshot: ReceivedSnapshot): Promise<void> {
    return this.persist({ snapshot, entries: [] });
  }

  /**
   * See `LogStorage.persist`: usually exactly one Deno.Kv commit, none when only the commit
   * index changed (it is written with the next commit; see the class doc).
   */
  persist(batch: PersistBatch): Promise<void> {
    return this.#serialize(async () => {
      this.#validateBatch(batch);
      this.#stats.persists++;
      const hs = batch.hardState;
      if (
        batch.snapshot === undefined && batch.entries.length === 0 &&
        (hs === undefined || (hs.term === this.#diskHard.term && hs.vote === this.#diskHard.vote))
      ) {
        if (hs !== undefined) this.#mem.setHardState(hs);
        this.#stats.persistsSkipped++;
        return;
      }
      await this.#persistWithCommits(batch);
    });
  }

  async #persistWithCommits(batch: PersistBatch): Promise<void> {
    const snap = batch.snapshot;
    const target = batch.hardState ?? this.#mem.hardState();
    const oldFirst = this.#mem.firstIndex();
    const oldLast = this.#mem.lastIndex();
    const first = batch.entries[0]?.index;
    // Before any new entry is visible, the log on disk agrees with the new one up to here.
    const agreed = snap !== undefined
      ? this.#mem.hardState().commit
      : first === undefined
      ? oldLast
      : first - 1;
    let lastWritten: number | undefined;
    let lastRecorded: number | undefined;
    let hardRecorded: HardState | undefined;
    const plan = new CommitPlan({ beforeCommit: this.#beforeCommit });
    plan.reserve(2, CLOSER_BYTES, (final) => {
      const out: KvMutation[] = [];
      if (!sameHardState(target, this.#diskHard)) {
        const commit = final ? target.commit : Math.min(target.commit, lastWritten ?? agreed);
        if (hardRecorded === undefined || hardRecorded.commit !== commit) {
          hardRecorded = { ...target, commit };
          out.push({ key: KEY_HARD, value: encodeHardState(hardRecorded) });
        }
      }
      if (lastWritten !== undefined && lastWritten !== lastRecorded) {
        lastRecorded = lastWritten;
        out.push({ key: KEY_LAST, value: lastWritten });
      }
      return out;
    });
    let stored: StoredSnapshot | undefined;
    if (snap !== undefined) {
      stored = this.#planSnapshot(plan, snap);
      plan.add({ mutations: [{ key: KEY_SNAP, value: encodeStoredSnapshot(stored) }] });
      lastWritten = snap.meta.index;
    }
    const written: { index: number; bytes: number; set?: ChunkSet }[] = [];
    for (const e of batch.entries) {
      const { groups, bytes, set } = this.#entryGroups(e);
      for (const g of groups) plan.add(g);
      lastWritten = e.index;
      written.push({ index: e.index, bytes, set });
    }
    const newLast = lastWritten ?? oldLast;
    // Log keys after the new last index could be hit by a later append: delete them now.
    // Chunk sets, old snapshot data and keys at or before the snapshot are never written
    // again: delete them in the background.
    const later: KvMutation[] = [];
    const from = snap !== undefined ? oldFirst : first ?? oldLast + 1;
    for (let i = from; i <= oldLast; i++) {
      if (i > newLast) plan.add({ mutations: [{ key: ["log", i] }] });
      else if (snap !== undefined && i <= snap.meta.index) later.push({ key: ["log", i] });
      const set = this.#chunked.get(i);
      if (set !== undefined) later.push(...chunkSetKeys(i, set));
    }
    if (snap !== undefined) later.push(...this.#retiredKeys());
    const { commits, bytes } = await plan.run(this.#kv);
    this.#stats.persistCommits += commits;
    this.#stats.bytesWritten += bytes;
    if (hardRecorded !== undefined) this.#diskHard = hardRecorded;
    if (snap !== undefined) {
      this.#replaceStored(stored!);
      this.#chunked.clear();
      this.#logBytes.reset(snap.meta.index + 1);
    }
    for (let i = from; i <= oldLast; i++) this.#chunked.delete(i);
    for (const w of written) {
      if (w.set !== undefined) this.#chunked.set(w.index, w.set);
      this.#logBytes.append(w.index, w.bytes);
    }
    this.#mem.persist(batch);
    // The received bytes are on disk now: serve transfers from there, not from memory.
    if (stored !== undefined) this.#mem.replaceSnapshotData(this.#readerOf(stored));
    this.#deleteInBackground(later);
    this.#retryGarbage();
  }

  /** A write succeeded: the disk takes writes again, so delete what failed jobs left. */
  #retryGarbage(): void {
    if (this.#garbageLeft.length > 0) this.#deleteInBackground(this.#garbageLeft.splice(0));
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
    batch.entries.forEach((e, i) => {
      if (e.index !== first + i) {
        throw new RangeError(`Cannot append entry ${e.index}: expected index ${first + i}`);
      }
    });
  }

  /** The groups that store one entry: its chunks, then the record that makes it visible. */
  #entryGroups(e: Entry): { groups: MutationGroup[]; bytes: number; set?: ChunkSet } {
    const encoded = encodeEntry(e);
    if (encoded.length <= CHUNK_BYTES) {
      return {
        groups: [{ mutations: [{ key: ["log", e.index], value: encoded }] }],
        bytes: encoded.length,
      };
    }
    const parts = chunksOf(encoded);
    const set: ChunkSet = { id: this.#nextChunkId++, parts: parts.length };
    const groups: MutationGroup[] = parts.map((p, i) => ({
      mutations: [{ key: ["logp", e.index, set.id, i], value: p }],
    }));
    groups.push({
      mutations: [{ key: ["log", e.index], value: { parts: set.parts, term: e.term, id: set.id } }],
    });
    return { groups, bytes: encoded.length, set };
  }

  /** Adds the chunks of a snapshot's data under a new chunk set id; returns its descriptor. */
  #planSnapshot(plan: CommitPlan, snapshot: ReceivedSnapshot): StoredSnapshot {
    const id = this.#nextSnapshotId++;
    const parts = chunksOf(snapshot.data);
    parts.forEach((p, i) => plan.add({ mutations: [{ key: ["snap", id, i], value: p }] }));
    return {
      meta: snapshot.meta,
      id,
      parts: parts.length,
      bytes: snapshot.data.length,
      checksum: checksumUpdate(CHECKSUM_SEED, snapshot.data),
    };
  }

  // ---------------------------------------------------------------------------------------
  // Snapshots taken by this node: written in the background.

  /**
   * The deletes for the snapshot before the current one, once a new one replaces the current
   * one: a snapshot's chunks outlive it by one generation, so that a transfer reading them
   * (see {@linkcode KvSnapshotReader}) can finish after the leader took a newer one. Changes
   * nothing: a write that fails (a full disk) and is retried must retire the same snapshot.
   */
  #retiredKeys(): KvMutation[] {
    return this.#previous === undefined ? [] : snapshotKeys(this.#previous);
  }

  /** `stored` is current on disk: the current one becomes the previous generation. */
  #replaceStored(stored: StoredSnapshot): void {
    this.#previous = this.#stored;
    this.#stored = stored;
  }

  /**
   * Calls `listener` whenever a snapshot reader of this storage fetched bytes it had answered
   * "not yet" for (the driver then lets the Raft core send the waiting chunks at once).
   */
  onSnapshotBytesFetched(listener: () => void): void {
    this.#onSnapshotBytesFetched = listener;
  }

  /** A reader of `stored`'s bytes in the store (see {@linkcode KvSnapshotReader}). */
  #readerOf(stored: StoredSnapshot): KvSnapshotReader {
    return new KvSnapshotReader(this.#kv, stored, {
      onError: () => this.#stats.snapshotReadFailures++,
      onFetched: () => this.#onSnapshotBytesFetched(),
    });
  }

  /**
   * After {@linkcode open}, `snapshot().data` holds the snapshot's bytes in memory, for the
   * caller to rebuild its state from; once it has, this frees them (later reads go to disk).
   */
  releaseSnapshotBytes(): void {
    if (this.#stored !== undefined && this.#mem.snapshot().data instanceof Uint8Array) {
      this.#mem.replaceSnapshotData(this.#readerOf(this.#stored));
    }
  }

  #checkSnapshotIndex(index: number): void {
    const current = this.#mem.snapshot().meta.index;
    if (index <= current) throw new SnapshotOutOfDateError(index, current);
    if (index > this.#mem.lastIndex()) throw new UnavailableError(index, this.#mem.lastIndex());
  }

  /**
   * See `LogStorage.createSnapshot`: stores the application's snapshot at `index` (at most the
   * applied index) and compacts the log up to it. The data is written in small queued jobs of
   * at most one commit ({@linkcode SNAPSHOT_CHUNKS_PER_COMMIT} chunks each), so persists
   * interleave; the chunks stay invisible until one small commit switches the descriptor to
   * them. The promise resolves then, with the new snapshot; the old log and snapshot data are
   * deleted by further interleaved jobs ({@linkcode idle} waits for them). `data` may be an
   * async iterable of chunks of any size, consumed as the writes progress.
   */
  async createSnapshot(
    index: number,
    options: { membership: Membership; data: SnapshotData },
  ): Promise<Snapshot> {
    this.#checkSnapshotIndex(index);
    const term = this.#mem.term(index);
    const id = this.#nextSnapshotId++;
    let pending: Uint8Array[] = [];
    let parts = 0;
    let bytes = 0;
    let sum = CHECKSUM_SEED;
    let switching = false;
    const flush = () => {
      const plan = this.#jobPlan();
      for (const chunk of pending) {
        plan.add({ mutations: [{ key: ["snap", id, parts++], value: chunk }] });
      }
      pending = [];
      return this.#serialize(async () => {
        this.#stats.snapshotCommits += await this.#runJob(plan);
      });
    };
    try {
      for await (const chunk of rechunk(options.data, CHUNK_BYTES)) {
        sum = checksumUpdate(sum, chunk);
        bytes += chunk.length;
        pending.push(chunk);
        if (pending.length === SNAPSHOT_CHUNKS_PER_COMMIT) await flush();
      }
      if (pending.length > 0) await flush();
      return await this.#serialize(async () => {
        this.#checkSnapshotIndex(index);
        if (this.#mem.term(index) !== term) {
          throw new Error(`Cannot create a snapshot at ${index}: its entry was replaced meanwhile`);
        }
        const meta = { index, term, membership: options.membership };
        const stored: StoredSnapshot = { meta, id, parts, bytes, checksum: sum };
        switching = true;
        return await this.#switchSnapshot(stored);
      });
    } catch (e) {
      // Chunks of a snapshot that never became current are garbage; after a failed switch
      // commit they might be current, so the next open decides.
      if (!switching) this.#deleteInBackground(snapshotKeys({ id, parts }));
      throw e;
    }
  }

  /** Makes `stored` the current snapshot in one commit and compacts the log up to it. */
  async #switchSnapshot(stored: StoredSnapshot): Promise<Snapshot> {
    const index = stored.meta.index;
    const garbage: KvMutation[] = [];
    for (let i = this.#mem.firstIndex(); i <= index; i++) {
      garbage.push({ key: ["log", i] });
      const set = this.#chunked.get(i);
      if (set !== undefined) garbage.push(...chunkSetKeys(i, set));
    }
    garbage.push(...this.#retiredKeys());
    const plan = this.#jobPlan();
    plan.add({ mutations: [{ key: KEY_SNAP, value: encodeStoredSnapshot(stored) }] });
    this.#stats.snapshotCommits += await this.#runJob(plan);
    this.#replaceStored(stored);
    for (let i = this.#mem.firstIndex(); i <= index; i++) this.#chunked.delete(i);
    this.#logBytes.compactTo(index);
    const snapshot = this.#mem.createSnapshot(index, {
      membership: stored.meta.membership,
      data: this.#readerOf(stored),
    });
    this.#deleteInBackground(garbage);
    this.#retryGarbage();
    return snapshot;
  }
}

// A background job is one commit: its mutations and the closer's records fit Deno.Kv's limits.
if (GARBAGE_DELETES_PER_COMMIT + 2 > KV_MUTATIONS_MAX) {
  throw new Error("GARBAGE_DELETES_PER_COMMIT does not fit one Deno.Kv commit");
}
if (SNAPSHOT_CHUNKS_PER_COMMIT * (CHUNK_BYTES + 64) + CLOSER_BYTES > KV_COMMIT_BYTES_MAX) {
  throw new Error("SNAPSHOT_CHUNKS_PER_COMMIT chunks do not fit one Deno.Kv commit");
}

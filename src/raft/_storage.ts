import type { Entry, HardState, Membership, ReceivedSnapshot, Snapshot } from "./_types.ts";

/** What a node starts from: its hard state and the membership of its snapshot. */
export interface InitialState {
  /** The persisted term, vote and commit index. */
  readonly hardState: HardState;
  /** The membership recorded in the latest snapshot (empty when there is none). */
  readonly membership: Membership;
}

/**
 * The core's read view of durable state. Every method is synchronous and served from memory;
 * ranges are half-open `[lo, hi)`. Indexes at or before the snapshot index are compacted
 * ({@linkcode CompactedError}); indexes after the last are unavailable
 * ({@linkcode UnavailableError}).
 */
export interface Storage {
  /** The state to start from. */
  initialState(): InitialState;
  /**
   * Entries `[lo, hi)`, at most `maxBytes` of them by {@linkcode entryBytes} but always at
   * least one when `lo < hi`. Throws `CompactedError` when `lo < firstIndex()` and
   * `UnavailableError` when `hi > lastIndex() + 1`.
   */
  entries(lo: number, hi: number, maxBytes?: number): Entry[];
  /** The term of the entry at `index`, for `firstIndex() - 1 <= index <= lastIndex()`. */
  term(index: number): number;
  /** The first index still in the log: the snapshot index + 1. */
  firstIndex(): number;
  /** The last index in the log (the snapshot index when the log is empty). */
  lastIndex(): number;
  /**
   * The latest snapshot (index 0 and empty data when none was taken). Its data may be a
   * reader of bytes the storage keeps elsewhere, readable while the storage is open.
   */
  snapshot(): Snapshot;
}

/**
 * A {@linkcode Storage} the driver writes to. Writes may be asynchronous (a durable commit);
 * once the promise settles, the read methods reflect them. The core never calls these.
 */
export interface LogStorage extends Storage {
  /**
   * Appends entries contiguous from `entries[0].index`, which must be in
   * `[firstIndex(), lastIndex() + 1]`. Every existing entry at or after `entries[0].index` is
   * removed first: a new leader's entries replace a conflicting suffix.
   */
  append(entries: readonly Entry[]): void | Promise<void>;
  /** Persists the hard state. */
  setHardState(hardState: HardState): void | Promise<void>;
  /**
   * Persists the core's Ready batch: snapshot (if any), entries and hard state. A crash may
   * keep only a prefix of it, which must be a consistent state: the new term and vote no
   * later than any entry of the batch, the entries a prefix of the batch's, and a commit
   * index never past the entries kept. A batch that changes only the commit index may be
   * written lazily (the state machine is rebuilt from the log, so a lower commit index after
   * a crash is safe).
   */
  persist(batch: PersistBatch): void | Promise<void>;
  /**
   * Replaces the whole log with a snapshot received from the leader. Throws
   * `SnapshotOutOfDateError` when the storage already holds a newer snapshot.
   */
  applySnapshot(snapshot: ReceivedSnapshot): void | Promise<void>;
  /**
   * Records a snapshot of the application at `index` (<= the applied index) with the
   * membership in effect there, and compacts the log up to `index`.
   */
  createSnapshot(
    index: number,
    options: { membership: Membership; data: Uint8Array },
  ): Snapshot | Promise<Snapshot>;
}

/** What one Ready asks the driver to make durable, in this order. */
export interface PersistBatch {
  /** A snapshot to install before anything else. */
  readonly snapshot?: ReceivedSnapshot;
  /** Entries to append (replacing any suffix from `entries[0].index`). */
  readonly entries: readonly Entry[];
  /** A hard state to record. */
  readonly hardState?: HardState;
}

/** Per-entry overhead counted by {@linkcode entryBytes}: term, index, type and framing. */
export const ENTRY_OVERHEAD_BYTES = 24;

/** The size an entry counts for in byte limits (messages, batches). */
export function entryBytes(entry: Entry): number {
  return entry.data.length + ENTRY_OVERHEAD_BYTES;
}

/**
 * Takes entries from the front of `entries` while their total stays within `maxBytes`, but
 * always at least one.
 */
export function limitBytes(entries: Entry[], maxBytes: number): Entry[] {
  if (entries.length === 0) return entries;
  let size = entryBytes(entries[0]);
  let n = 1;
  while (n < entries.length) {
    size += entryBytes(entries[n]);
    if (size > maxBytes) break;
    n++;
  }
  return n === entries.length ? entries : entries.slice(0, n);
}

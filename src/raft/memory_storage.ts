import { assert, CompactedError, SnapshotOutOfDateError, UnavailableError } from "./_errors.ts";
import { limitBytes } from "./_storage.ts";
import type { InitialState, LogStorage, PersistBatch } from "./_storage.ts";
import {
  EMPTY_HARD_STATE,
  EMPTY_MEMBERSHIP,
  type Entry,
  type HardState,
  type Membership,
  type ReceivedSnapshot,
  type Snapshot,
  type SnapshotData,
} from "./_types.ts";

/**
 * An in-memory {@linkcode LogStorage}: the reference implementation, used by the simulation
 * (where it plays the disk: what was handed to it survives a simulated crash) and by tests.
 */
export class MemoryStorage implements LogStorage {
  #hardState: HardState = EMPTY_HARD_STATE;
  #snapshot: Snapshot = {
    meta: { index: 0, term: 0, membership: EMPTY_MEMBERSHIP },
    data: new Uint8Array(0),
  };
  /** Entries from `snapshot.index + 1` on; `#entries[i]` holds index `firstIndex() + i`. */
  #entries: Entry[] = [];

  /** The state to start from. */
  initialState(): InitialState {
    return { hardState: this.#hardState, membership: this.#snapshot.meta.membership };
  }

  /** The persisted hard state. */
  hardState(): HardState {
    return this.#hardState;
  }

  /** See {@linkcode Storage.entries}. */
  entries(lo: number, hi: number, maxBytes = Infinity): Entry[] {
    const first = this.firstIndex();
    if (lo < first) throw new CompactedError(lo, first);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex());
    if (lo >= hi) return [];
    return limitBytes(this.#entries.slice(lo - first, hi - first), maxBytes);
  }

  /** See {@linkcode Storage.term}. */
  term(index: number): number {
    const snapIndex = this.#snapshot.meta.index;
    if (index < snapIndex) throw new CompactedError(index, snapIndex + 1);
    if (index > this.lastIndex()) throw new UnavailableError(index, this.lastIndex());
    if (index === snapIndex) return this.#snapshot.meta.term;
    return this.#entries[index - snapIndex - 1].term;
  }

  /** See {@linkcode Storage.firstIndex}. */
  firstIndex(): number {
    return this.#snapshot.meta.index + 1;
  }

  /** See {@linkcode Storage.lastIndex}. */
  lastIndex(): number {
    return this.#snapshot.meta.index + this.#entries.length;
  }

  /** See {@linkcode Storage.snapshot}. */
  snapshot(): Snapshot {
    return this.#snapshot;
  }

  /** See {@linkcode LogStorage.append}. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const lo = entries[0].index;
    const first = this.firstIndex();
    assert(
      lo >= first && lo <= this.lastIndex() + 1,
      () => `append at ${lo} outside [${first}, ${this.lastIndex() + 1}]`,
    );
    for (let i = 1; i < entries.length; i++) {
      assert(entries[i].index === lo + i, "appended entries are not contiguous");
    }
    this.#entries.length = lo - first; // drop the conflicting suffix
    for (const e of entries) this.#entries.push(e);
  }

  /** See {@linkcode LogStorage.setHardState}. */
  setHardState(hardState: HardState): void {
    this.#hardState = hardState;
  }

  /** See {@linkcode LogStorage.persist}. */
  persist(batch: PersistBatch): void {
    if (batch.snapshot !== undefined) this.applySnapshot(batch.snapshot);
    this.append(batch.entries);
    if (batch.hardState !== undefined) this.setHardState(batch.hardState);
  }

  /** See {@linkcode LogStorage.applySnapshot}. */
  applySnapshot(snapshot: ReceivedSnapshot): void {
    const current = this.#snapshot.meta.index;
    if (snapshot.meta.index < current) {
      throw new SnapshotOutOfDateError(snapshot.meta.index, current);
    }
    this.#snapshot = snapshot;
    this.#entries = [];
  }

  /** See {@linkcode LogStorage.createSnapshot}. */
  createSnapshot(index: number, options: { membership: Membership; data: SnapshotData }): Snapshot {
    const current = this.#snapshot.meta.index;
    if (index <= current) throw new SnapshotOutOfDateError(index, current);
    if (index > this.lastIndex()) throw new UnavailableError(index, this.lastIndex());
    const term = this.term(index);
    this.#entries = this.#entries.slice(index - current);
    this.#snapshot = { meta: { index, term, membership: options.membership }, data: options.data };
    return this.#snapshot;
  }

  /**
   * Holds the current snapshot's bytes as `data` from now on (e.g. a reader of the same bytes
   * on disk instead of them in memory); `data` must be as long as the bytes it replaces.
   */
  replaceSnapshotData(data: SnapshotData): void {
    assert(
      data.length === this.#snapshot.data.length,
      "replacement snapshot data of another length",
    );
    this.#snapshot = { meta: this.#snapshot.meta, data };
  }
}

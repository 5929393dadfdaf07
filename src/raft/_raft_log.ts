import { assert, CompactedError } from "./_errors.ts";
import { limitBytes, type Storage } from "./_storage.ts";
import type { Entry, Membership, ReceivedSnapshot, Snapshot } from "./_types.ts";

/** A membership and the log index of the config entry that set it. */
interface MembershipAt {
  readonly index: number;
  readonly membership: Membership;
}

/**
 * The core's log: the durable part (read through {@linkcode Storage}) followed by unstable
 * entries and possibly an unstable snapshot, which the driver has not persisted yet.
 *
 * It also tracks the membership in effect: the one set by the last config entry in the log,
 * committed or not (Raft dissertation §4.1). Truncating that entry reverts to the previous one.
 */
export class RaftLog {
  readonly #storage: Storage;
  /** The highest index known to be committed. */
  committed: number;
  /** The highest index handed to the application for applying. */
  applied: number;
  #unstableSnapshot: ReceivedSnapshot | undefined;
  #unstable: Entry[] = [];
  /** The index of `#unstable[0]` (when there is one). */
  #offset: number;
  /** The membership before every config entry in `#configs` (from the snapshot). */
  #base: MembershipAt;
  /** Config entries present in the log after `#base`, in index order. */
  #configs: MembershipAt[] = [];

  /** Opens the log over `storage` with the persisted commit index and the applied index. */
  constructor(storage: Storage, options: { committed: number; applied: number }) {
    this.#storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.#offset = last + 1;
    this.#base = { index: first - 1, membership: storage.initialState().membership };
    if (last >= first) {
      for (const e of storage.entries(first, last + 1)) this.#noteConfig(e);
    }
    assert(
      options.committed >= first - 1 && options.committed <= last,
      () => `persisted commit ${options.committed} outside the log [${first - 1}, ${last}]`,
    );
    this.committed = options.committed;
    this.applied = Math.min(Math.max(options.applied, first - 1), this.committed);
  }

  #noteConfig(e: Entry): void {
    if (e.type === "config") {
      assert(e.membership !== undefined, () => `config entry ${e.index} without membership`);
      this.#configs.push({ index: e.index, membership: e.membership });
    }
  }

  /** The membership in effect: set by the last config entry in the log. */
  membership(): Membership {
    return (this.#configs.at(-1) ?? this.#base).membership;
  }

  /** The membership before the one in effect, when that one came from a config entry. */
  previousMembership(): Membership | undefined {
    const n = this.#configs.length;
    if (n === 0) return undefined;
    return (n >= 2 ? this.#configs[n - 2] : this.#base).membership;
  }

  /** The index of the config entry that set the membership in effect. */
  membershipIndex(): number {
    return (this.#configs.at(-1) ?? this.#base).index;
  }

  /** The first index still in the log. */
  firstIndex(): number {
    return this.#unstableSnapshot !== undefined
      ? this.#unstableSnapshot.meta.index + 1
      : this.#storage.firstIndex();
  }

  /** The last index in the log. */
  lastIndex(): number {
    if (this.#unstable.length > 0) return this.#offset + this.#unstable.length - 1;
    if (this.#unstableSnapshot !== undefined) return this.#unstableSnapshot.meta.index;
    return this.#storage.lastIndex();
  }

  /** The term of the last entry. */
  lastTerm(): number {
    return this.term(this.lastIndex())!;
  }

  /** The term at `index`, or undefined when it is compacted or beyond the last index. */
  term(index: number): number | undefined {
    if (index >= this.#offset && index < this.#offset + this.#unstable.length) {
      return this.#unstable[index - this.#offset].term;
    }
    const snap = this.#unstableSnapshot;
    if (snap !== undefined) return index === snap.meta.index ? snap.meta.term : undefined;
    if (index < this.#storage.firstIndex() - 1 || index > this.lastIndex()) return undefined;
    return this.#storage.term(index);
  }

  /** Whether the entry at `index` has term `term`. */
  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /**
   * Entries `[lo, hi)`, limited to `maxBytes` (at least one). Throws `CompactedError` when
   * `lo` is before the first index.
   */
  entries(lo: number, hi: number, maxBytes = Infinity): Entry[] {
    const first = this.firstIndex();
    if (lo < first) throw new CompactedError(lo, first);
    assert(hi <= this.lastIndex() + 1, () => `entries up to ${hi} beyond ${this.lastIndex()}`);
    if (lo >= hi) return [];
    let out: Entry[] = [];
    if (lo < this.#offset) {
      out = this.#storage.entries(lo, Math.min(hi, this.#offset), maxBytes);
      if (out.length < Math.min(hi, this.#offset) - lo) return out; // byte limit reached
    }
    if (hi > this.#offset) {
      const from = Math.max(lo, this.#offset) - this.#offset;
      const tail = this.#unstable.slice(from, hi - this.#offset);
      out = out.length === 0 ? tail : out.concat(tail);
    }
    return limitBytes(out, maxBytes);
  }

  /** Whether a log ending at (`lastIndex`, `lastTerm`) is at least as up to date as this. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Appends entries contiguous from `entries[0].index`, replacing any suffix from there.
   * Returns the new last index. Committed entries are never replaced.
   */
  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    const lo = entries[0].index;
    assert(lo > this.committed, () => `append at ${lo} would replace committed ${this.committed}`);
    assert(
      lo <= this.lastIndex() + 1,
      () => `append at ${lo} leaves a gap after ${this.lastIndex()}`,
    );
    if (lo === this.#offset + this.#unstable.length) {
      for (const e of entries) this.#unstable.push(e);
    } else if (lo <= this.#offset) {
      this.#offset = lo;
      this.#unstable = entries.slice();
    } else {
      this.#unstable = this.#unstable.slice(0, lo - this.#offset).concat(entries);
    }
    while (this.#configs.length > 0 && this.#configs[this.#configs.length - 1].index >= lo) {
      this.#configs.pop();
    }
    for (const e of entries) this.#noteConfig(e);
    return this.lastIndex();
  }

  /**
   * The follower's side of AppendEntries: when the log holds (`prevIndex`, `prevTerm`),
   * appends what is new in `entries` (truncating a conflicting suffix), advances the commit
   * index to at most the last new entry and returns that entry's index. Returns undefined
   * when the log does not hold (`prevIndex`, `prevTerm`).
   */
  maybeAppend(
    prevIndex: number,
    prevTerm: number,
    committed: number,
    entries: readonly Entry[],
  ): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + entries.length;
    const conflict = this.#findConflict(entries);
    if (conflict !== 0) {
      assert(
        conflict > this.committed,
        () => `conflict at ${conflict} <= commit ${this.committed}`,
      );
      this.append(entries.slice(conflict - prevIndex - 1));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  /** The index of the first entry that is new or conflicts with the log; 0 when none. */
  #findConflict(entries: readonly Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast back-off: the largest index `<= index` whose term is `<= term`, with that term
   * (0 when unknown). Every entry after it up to `index` has a higher term and cannot match.
   */
  findConflictByTerm(index: number, term: number): [number, number] {
    let i = Math.min(index, this.lastIndex());
    for (;;) {
      const t = this.term(i);
      if (t === undefined) return [i, 0];
      if (t <= term) return [i, t];
      i--;
    }
  }

  /** Advances the commit index to `index`; it never decreases and never passes the log. */
  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), () => `commit ${index} beyond last ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Commits up to `index` if its entry has `term` (a leader commits only its own term). */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  /** Replaces the log with a snapshot (follower install). */
  restore(snapshot: ReceivedSnapshot): void {
    assert(snapshot.meta.index > this.committed, "restoring a snapshot at or before commit");
    this.committed = snapshot.meta.index;
    this.#unstableSnapshot = snapshot;
    this.#unstable = [];
    this.#offset = snapshot.meta.index + 1;
    this.#base = { index: snapshot.meta.index, membership: snapshot.meta.membership };
    this.#configs = [];
  }

  /** The snapshot a lagging follower should receive: the newest one. */
  snapshot(): Snapshot {
    return this.#unstableSnapshot ?? this.#storage.snapshot();
  }

  /** Whether a received snapshot waits to be persisted and applied. */
  hasPendingSnapshot(): boolean {
    return this.#unstableSnapshot !== undefined;
  }

  /** The unstable snapshot, if any. */
  unstableSnapshot(): ReceivedSnapshot | undefined {
    return this.#unstableSnapshot;
  }

  /** Whether entries wait to be persisted. */
  hasUnstableEntries(): boolean {
    return this.#unstable.length > 0;
  }

  /** The unstable entries (a copy), up to `maxBytes` (at least one). */
  unstableEntries(maxBytes = Infinity): Entry[] {
    return limitBytes(this.#unstable.slice(), maxBytes);
  }

  /** The last index whose entry is durable (the unstable entries and snapshot excluded). */
  stableLastIndex(): number {
    if (this.#unstableSnapshot !== undefined) return this.#storage.lastIndex();
    return this.#unstable.length > 0 ? this.#offset - 1 : this.#storage.lastIndex();
  }

  /** Whether there are entries committed but not yet handed to the application. */
  hasNextCommittedEntries(): boolean {
    return !this.hasPendingSnapshot() && this.committed > this.applied;
  }

  /**
   * Committed entries not yet handed to the application, up to `maxBytes` and up to index
   * `maxIndex` (see ReadyCycle.applyLimit).
   */
  nextCommittedEntries(maxBytes: number, maxIndex = Infinity): Entry[] {
    if (!this.hasNextCommittedEntries()) return [];
    const lo = Math.max(this.applied + 1, this.firstIndex());
    const hi = Math.min(this.committed, maxIndex) + 1;
    return lo >= hi ? [] : this.entries(lo, hi, maxBytes);
  }

  /** Records that the application was handed everything up to `index`. */
  appliedTo(index: number): void {
    if (index <= this.applied) return;
    assert(index <= this.committed, () => `applied ${index} beyond commit ${this.committed}`);
    this.applied = index;
  }

  /**
   * Entries up to (`index`, `term`) are durable: drop them from the unstable part. After a
   * restore, call {@linkcode stableSnapTo} first: until the snapshot is stable, the log's
   * bounds come from it.
   */
  stableTo(index: number, term: number): void {
    const i = index - this.#offset;
    if (i < 0 || i >= this.#unstable.length || this.#unstable[i].term !== term) return;
    this.#unstable = this.#unstable.slice(i + 1);
    this.#offset = index + 1;
    this.#foldConfigs();
  }

  /** The snapshot at `index` is durable. */
  stableSnapTo(index: number): void {
    if (this.#unstableSnapshot?.meta.index === index) this.#unstableSnapshot = undefined;
  }

  /** Drops config entries the storage compacted away, keeping the latest as the base. */
  #foldConfigs(): void {
    const first = this.firstIndex();
    while (this.#configs.length > 1 && this.#configs[1].index < first) this.#configs.shift();
    if (this.#configs.length > 0 && this.#configs[0].index < first) {
      this.#base = this.#configs.shift()!;
    }
  }
}

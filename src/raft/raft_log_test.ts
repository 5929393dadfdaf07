import assert from "node:assert/strict";
import fc from "fast-check";
import { CompactedError, RaftInvariantError } from "./_errors.ts";
import { RaftLog } from "./_raft_log.ts";
import { entryBytes } from "./_storage.ts";
import { EMPTY_MEMBERSHIP, type Entry, type Membership, type ReceivedSnapshot } from "./_types.ts";
import { MemoryStorage } from "./memory_storage.ts";

const ABC: Membership = { voters: ["a", "b", "c"], outgoing: [], learners: [] };
const ABCD_JOINT: Membership = {
  voters: ["a", "b", "c", "d"],
  outgoing: ["a", "b", "c"],
  learners: [],
};
const ABCD: Membership = { voters: ["a", "b", "c", "d"], outgoing: [], learners: [] };

function ent(index: number, term: number, bytes = 0): Entry {
  return { index, term, type: "normal", data: new Uint8Array(bytes) };
}

function conf(index: number, term: number, membership: Membership): Entry {
  return { index, term, type: "config", data: new Uint8Array(0), membership };
}

/** Normal entries from `lo` on, one per term in `terms`. */
function ents(lo: number, terms: readonly number[]): Entry[] {
  return terms.map((term, i) => ent(lo + i, term));
}

function snap(index: number, term: number, membership: Membership = ABC): ReceivedSnapshot {
  return { meta: { index, term, membership }, data: new Uint8Array([index]) };
}

/** A storage holding `entries` (after `snapshot`, when given). */
function storageWith(entries: readonly Entry[], snapshot?: ReceivedSnapshot): MemoryStorage {
  const storage = new MemoryStorage();
  if (snapshot !== undefined) storage.applySnapshot(snapshot);
  storage.append(entries);
  return storage;
}

/** A log over a storage holding `entries`, with `committed` and `applied` (default 0). */
function logWith(entries: readonly Entry[], committed = 0, applied = 0): RaftLog {
  return new RaftLog(storageWith(entries), { committed, applied });
}

function termsOf(log: RaftLog, lo: number, hi: number): (number | undefined)[] {
  const out = [];
  for (let i = lo; i <= hi; i++) out.push(log.term(i));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Opening

Deno.test("RaftLog over an empty storage is empty", () => {
  const log = logWith([]);
  assert.equal(log.firstIndex(), 1);
  assert.equal(log.lastIndex(), 0);
  assert.equal(log.lastTerm(), 0);
  assert.equal(log.term(0), 0);
  assert.equal(log.term(1), undefined);
  assert.deepEqual(log.membership(), EMPTY_MEMBERSHIP);
  assert.equal(log.membershipIndex(), 0);
  assert.deepEqual(log.unstableEntries(), []);
  assert.equal(log.hasPendingSnapshot(), false);
  assert.equal(log.hasNextCommittedEntries(), false);
});

Deno.test("RaftLog opens over a snapshot and entries, with the last config in effect", () => {
  const storage = storageWith([ent(6, 2), conf(7, 2, ABCD_JOINT), ent(8, 3)], snap(5, 2));
  const log = new RaftLog(storage, { committed: 7, applied: 0 });
  assert.equal(log.firstIndex(), 6);
  assert.equal(log.lastIndex(), 8);
  assert.deepEqual(termsOf(log, 4, 9), [undefined, 2, 2, 2, 3, undefined]);
  assert.deepEqual(log.membership(), ABCD_JOINT);
  assert.equal(log.membershipIndex(), 7);
  assert.equal(log.applied, 5, "applied starts no lower than the snapshot");
  assert.deepEqual(log.snapshot(), snap(5, 2));
});

Deno.test("RaftLog without config entries takes the snapshot's membership", () => {
  const log = new RaftLog(storageWith(ents(6, [2]), snap(5, 2, ABCD)), {
    committed: 5,
    applied: 5,
  });
  assert.deepEqual(log.membership(), ABCD);
  assert.equal(log.membershipIndex(), 5);
});

Deno.test("RaftLog asserts that the persisted commit lies in the log", () => {
  const storage = storageWith(ents(6, [2, 2]), snap(5, 2));
  assert.throws(() => new RaftLog(storage, { committed: 4, applied: 0 }), RaftInvariantError);
  assert.throws(() => new RaftLog(storage, { committed: 8, applied: 0 }), RaftInvariantError);
  const log = new RaftLog(storage, { committed: 6, applied: 9 });
  assert.equal(log.applied, 6, "applied never passes commit");
});

// ---------------------------------------------------------------------------------------------
// Stable and unstable views

Deno.test("RaftLog serves stable then unstable entries as one log", () => {
  const log = logWith(ents(1, [1, 1, 1]), 3, 3);
  assert.equal(log.append(ents(4, [2, 2])), 5);
  assert.equal(log.lastIndex(), 5);
  assert.equal(log.lastTerm(), 2);
  assert.deepEqual(log.unstableEntries(), ents(4, [2, 2]));
  assert.deepEqual(log.entries(2, 6), ents(2, [1, 1, 2, 2]));
  assert.deepEqual(log.entries(4, 5), ents(4, [2]));
  assert.deepEqual(log.entries(6, 6), []);
  assert.deepEqual(termsOf(log, 0, 6), [0, 1, 1, 1, 2, 2, undefined]);
});

Deno.test("RaftLog.entries limits bytes across the stable and unstable parts", () => {
  const log = logWith([ent(1, 1, 10), ent(2, 1, 10)], 2, 2);
  log.append([ent(3, 2, 10), ent(4, 2, 10)]);
  const size = entryBytes(ent(1, 1, 10));
  assert.deepEqual(log.entries(1, 5, 0).map((e) => e.index), [1]);
  assert.deepEqual(log.entries(1, 5, size * 2 - 1).map((e) => e.index), [1]);
  assert.deepEqual(log.entries(1, 5, size * 2).map((e) => e.index), [1, 2]);
  assert.deepEqual(log.entries(1, 5, size * 3).map((e) => e.index), [1, 2, 3]);
  assert.deepEqual(log.entries(2, 5, size * 2).map((e) => e.index), [2, 3]);
  assert.deepEqual(log.entries(3, 5, 0).map((e) => e.index), [3]);
  assert.deepEqual(log.entries(1, 5).map((e) => e.index), [1, 2, 3, 4]);
});

Deno.test("RaftLog.entries never skips an entry when the stable part hits the byte limit", () => {
  const log = logWith([ent(1, 1, 10), ent(2, 1, 100)], 2, 2);
  log.append([ent(3, 2, 0)]);
  const budget = entryBytes(ent(1, 1, 10)) + entryBytes(ent(3, 2, 0));
  assert.deepEqual(log.entries(1, 4, budget).map((e) => e.index), [1]);
});

Deno.test("RaftLog.entries throws CompactedError before the first index and asserts past the last", () => {
  const log = new RaftLog(storageWith(ents(6, [2, 2]), snap(5, 2)), { committed: 5, applied: 5 });
  assert.throws(() => log.entries(5, 7), CompactedError);
  assert.throws(() => log.entries(6, 9), RaftInvariantError);
  assert.deepEqual(log.entries(6, 8), ents(6, [2, 2]));
});

Deno.test("RaftLog.stableTo drops unstable entries up to a matching entry", () => {
  const storage = storageWith(ents(1, [1]));
  const log = new RaftLog(storage, { committed: 1, applied: 1 });
  log.append(ents(2, [2, 2, 2]));
  storage.append(ents(2, [2, 2]));
  log.stableTo(3, 2);
  assert.deepEqual(log.unstableEntries(), ents(4, [2]));
  assert.equal(log.lastIndex(), 4);
  assert.deepEqual(log.entries(1, 5), ents(1, [1, 2, 2, 2]));
});

Deno.test("RaftLog.stableTo ignores a mismatched term and indexes outside the unstable part", () => {
  const log = logWith(ents(1, [1]), 1, 1);
  log.append(ents(2, [2, 2]));
  log.stableTo(3, 1); // the entry at 3 was replaced since: term 2, not 1
  log.stableTo(4, 2); // beyond the log
  log.stableTo(1, 1); // already stable
  assert.deepEqual(log.unstableEntries(), ents(2, [2, 2]));
});

Deno.test("RaftLog.stableTo after a truncation racing the write ignores the old entry", () => {
  const storage = storageWith(ents(1, [1]));
  const log = new RaftLog(storage, { committed: 1, applied: 1 });
  log.append(ents(2, [2, 2, 2])); // handed to the driver as 2..4 term 2
  storage.append(ents(2, [2, 2, 2]));
  log.append(ents(3, [3])); // a new leader replaces 3.. before advance()
  log.stableTo(4, 2);
  assert.deepEqual(log.unstableEntries(), ents(2, [2, 3]));
  assert.equal(log.lastIndex(), 3);
  assert.equal(log.term(4), undefined);
});

// ---------------------------------------------------------------------------------------------
// Appending

Deno.test("RaftLog.append replaces a conflicting unstable suffix", () => {
  const log = logWith([]);
  log.append(ents(1, [1, 1, 1, 1]));
  assert.equal(log.append(ents(3, [2])), 3);
  assert.deepEqual(log.unstableEntries(), ents(1, [1, 1, 2]));
  assert.equal(log.term(4), undefined);
});

Deno.test("RaftLog.append replaces a conflicting stable suffix", () => {
  const storage = storageWith(ents(1, [1, 1, 1, 1, 1]));
  const log = new RaftLog(storage, { committed: 2, applied: 2 });
  assert.equal(log.append(ents(3, [2, 2])), 4);
  assert.equal(log.lastIndex(), 4);
  assert.deepEqual(termsOf(log, 1, 5), [1, 1, 2, 2, undefined]);
  assert.deepEqual(log.entries(1, 5), ents(1, [1, 1, 2, 2]));
  assert.deepEqual(log.unstableEntries(), ents(3, [2, 2]));
  storage.append(log.unstableEntries());
  log.stableTo(4, 2);
  assert.deepEqual(log.unstableEntries(), []);
  assert.equal(log.lastIndex(), 4);
  assert.deepEqual(log.entries(1, 5), ents(1, [1, 1, 2, 2]));
});

Deno.test("RaftLog.append asserts it neither replaces committed entries nor leaves a gap", () => {
  const log = logWith(ents(1, [1, 1, 1]), 2, 2);
  assert.throws(() => log.append(ents(2, [2])), RaftInvariantError);
  assert.throws(() => log.append(ents(5, [2])), RaftInvariantError);
  assert.equal(log.append([]), 3);
  assert.equal(log.lastIndex(), 3);
});

// ---------------------------------------------------------------------------------------------
// Membership

Deno.test("RaftLog membership follows the last config entry, committed or not", () => {
  const log = logWith([conf(1, 1, ABC)], 1, 1);
  assert.deepEqual(log.membership(), ABC);
  assert.equal(log.membershipIndex(), 1);
  log.append([ent(2, 2), conf(3, 2, ABCD_JOINT), ent(4, 2), conf(5, 2, ABCD)]);
  assert.deepEqual(log.membership(), ABCD);
  assert.equal(log.membershipIndex(), 5);
});

Deno.test("RaftLog membership reverts when its config entry is truncated", () => {
  const log = logWith([conf(1, 1, ABC)], 1, 1);
  log.append([ent(2, 2), conf(3, 2, ABCD_JOINT), ent(4, 2), conf(5, 2, ABCD)]);
  log.append(ents(5, [3]));
  assert.deepEqual(log.membership(), ABCD_JOINT);
  assert.equal(log.membershipIndex(), 3);
  log.append(ents(3, [4]));
  assert.deepEqual(log.membership(), ABC);
  assert.equal(log.membershipIndex(), 1);
  log.append([conf(3, 5, ABCD)]);
  assert.deepEqual(log.membership(), ABCD);
  assert.equal(log.membershipIndex(), 3);
});

Deno.test("RaftLog membership reverts when a stable config entry is truncated", () => {
  const storage = storageWith([conf(1, 1, ABC), ent(2, 1), conf(3, 1, ABCD_JOINT)]);
  const log = new RaftLog(storage, { committed: 1, applied: 1 });
  assert.deepEqual(log.membership(), ABCD_JOINT);
  log.append(ents(2, [2]));
  assert.deepEqual(log.membership(), ABC);
  assert.equal(log.membershipIndex(), 1);
});

Deno.test("RaftLog membership reverts to the snapshot's when every config entry is truncated", () => {
  const storage = storageWith([conf(6, 2, ABCD_JOINT)], snap(5, 2, ABC));
  const log = new RaftLog(storage, { committed: 5, applied: 5 });
  assert.deepEqual(log.membership(), ABCD_JOINT);
  log.append(ents(6, [3]));
  assert.deepEqual(log.membership(), ABC);
  assert.equal(log.membershipIndex(), 5);
});

Deno.test("RaftLog keeps the membership when the storage compacts its config entries", () => {
  const storage = storageWith([conf(1, 1, ABC), conf(2, 1, ABCD_JOINT), ent(3, 1)]);
  const log = new RaftLog(storage, { committed: 3, applied: 3 });
  storage.createSnapshot(3, { membership: ABCD_JOINT, data: new Uint8Array(0) });
  log.append(ents(4, [2]));
  storage.append(ents(4, [2]));
  log.stableTo(4, 2);
  assert.deepEqual(log.membership(), ABCD_JOINT);
  assert.equal(log.membershipIndex(), 2);
  log.append([conf(5, 2, ABCD)]);
  log.append(ents(5, [3])); // truncating the newer config reverts to the folded one
  assert.deepEqual(log.membership(), ABCD_JOINT);
  assert.equal(log.membershipIndex(), 2);
});

Deno.test("RaftLog membership reverts to the compacted config when a config at firstIndex is truncated", () => {
  const storage = storageWith([conf(1, 1, ABC), conf(2, 1, ABCD_JOINT)]);
  const log = new RaftLog(storage, { committed: 1, applied: 1 });
  storage.createSnapshot(1, { membership: ABC, data: new Uint8Array(0) });
  log.append([conf(3, 2, ABCD)]);
  storage.append([conf(3, 2, ABCD)]);
  log.stableTo(3, 2); // folds the config at 1 (compacted) but not the one at 2 (firstIndex)
  log.append(ents(2, [3]));
  assert.deepEqual(log.membership(), ABC);
  assert.equal(log.membershipIndex(), 1);
});

// ---------------------------------------------------------------------------------------------
// The follower's side of AppendEntries

Deno.test("RaftLog.maybeAppend appends new entries and commits up to the last new one", () => {
  const log = logWith(ents(1, [1, 1, 1]), 1, 1);
  assert.equal(log.maybeAppend(3, 1, 10, ents(4, [1, 1])), 5);
  assert.equal(log.lastIndex(), 5);
  assert.equal(log.committed, 5, "commit is capped by the last new entry");
  assert.equal(log.maybeAppend(5, 1, 3, []), 5);
  assert.equal(log.committed, 5, "commit never decreases");
});

Deno.test("RaftLog.maybeAppend refuses when the previous entry does not match", () => {
  const log = logWith(ents(1, [1, 1, 2]), 1, 1);
  assert.equal(log.maybeAppend(3, 1, 3, ents(4, [2])), undefined);
  assert.equal(log.maybeAppend(4, 2, 3, ents(5, [2])), undefined);
  assert.equal(log.lastIndex(), 3);
  assert.equal(log.committed, 1);
});

Deno.test("RaftLog.maybeAppend truncates from the first conflicting entry", () => {
  const log = logWith(ents(1, [1, 1, 1, 2, 2]), 2, 2);
  assert.equal(log.maybeAppend(2, 1, 2, [ent(3, 1), ent(4, 3)]), 4);
  assert.equal(log.lastIndex(), 4);
  assert.deepEqual(termsOf(log, 1, 5), [1, 1, 1, 3, undefined]);
  assert.deepEqual(log.unstableEntries(), [ent(4, 3)]);
});

Deno.test("RaftLog.maybeAppend of entries already held keeps the longer log", () => {
  const log = logWith(ents(1, [1, 1, 1, 2, 2]), 1, 1);
  assert.equal(log.maybeAppend(1, 1, 5, ents(2, [1, 1])), 3);
  assert.equal(log.lastIndex(), 5, "a delayed message must not truncate matching entries");
  assert.equal(log.committed, 3);
  assert.deepEqual(log.unstableEntries(), []);
});

Deno.test("RaftLog.maybeAppend asserts on a conflict at or before commit", () => {
  const log = logWith(ents(1, [1, 1, 1]), 3, 3);
  assert.throws(() => log.maybeAppend(1, 1, 3, ents(2, [5])), RaftInvariantError);
});

Deno.test("RaftLog.findConflictByTerm skips entries with higher terms", () => {
  const log = logWith(ents(1, [1, 1, 2, 2, 5, 5]), 0, 0);
  assert.deepEqual(log.findConflictByTerm(6, 5), [6, 5]);
  assert.deepEqual(log.findConflictByTerm(6, 4), [4, 2]);
  assert.deepEqual(log.findConflictByTerm(6, 1), [2, 1]);
  assert.deepEqual(log.findConflictByTerm(6, 0), [0, 0]);
  assert.deepEqual(log.findConflictByTerm(3, 9), [3, 2]);
  assert.deepEqual(log.findConflictByTerm(10, 3), [4, 2], "clamped to the last index");
});

Deno.test("RaftLog.findConflictByTerm stops with term 0 at the compacted prefix", () => {
  const storage = storageWith(ents(4, [2, 5, 5]), snap(3, 2));
  const log = new RaftLog(storage, { committed: 3, applied: 3 });
  assert.deepEqual(log.findConflictByTerm(6, 3), [4, 2]);
  assert.deepEqual(log.findConflictByTerm(6, 1), [2, 0]);
});

// ---------------------------------------------------------------------------------------------
// Commit and apply

Deno.test("RaftLog.commitTo never decreases and asserts it stays within the log", () => {
  const log = logWith(ents(1, [1, 1, 1]));
  log.commitTo(2);
  assert.equal(log.committed, 2);
  log.commitTo(1);
  assert.equal(log.committed, 2);
  assert.throws(() => log.commitTo(4), RaftInvariantError);
  assert.equal(log.committed, 2);
  log.append(ents(4, [2]));
  log.commitTo(4);
  assert.equal(log.committed, 4);
});

Deno.test("RaftLog.maybeCommit commits only an entry of the given term", () => {
  const log = logWith(ents(1, [1, 1, 2]));
  assert.equal(log.maybeCommit(2, 2), false);
  assert.equal(log.committed, 0);
  assert.equal(log.maybeCommit(3, 2), true);
  assert.equal(log.committed, 3);
  assert.equal(log.maybeCommit(3, 2), false, "already committed");
  assert.equal(log.maybeCommit(4, 2), false, "beyond the log");
});

Deno.test("RaftLog.isUpToDate compares the last term, then the last index", () => {
  const log = logWith(ents(1, [1, 2, 2]));
  assert.equal(log.isUpToDate(3, 2), true);
  assert.equal(log.isUpToDate(9, 2), true);
  assert.equal(log.isUpToDate(2, 2), false);
  assert.equal(log.isUpToDate(1, 3), true);
  assert.equal(log.isUpToDate(9, 1), false);
});

Deno.test("RaftLog.nextCommittedEntries hands out committed entries after applied", () => {
  const log = logWith([ent(1, 1, 10), ent(2, 1, 10), ent(3, 1, 10), ent(4, 1, 10)], 0, 0);
  assert.deepEqual(log.nextCommittedEntries(Infinity), []);
  log.commitTo(3);
  assert.equal(log.hasNextCommittedEntries(), true);
  assert.deepEqual(log.nextCommittedEntries(Infinity).map((e) => e.index), [1, 2, 3]);
  const size = entryBytes(ent(1, 1, 10));
  assert.deepEqual(log.nextCommittedEntries(size * 2).map((e) => e.index), [1, 2]);
  assert.deepEqual(log.nextCommittedEntries(0).map((e) => e.index), [1], "at least one");
  log.appliedTo(2);
  assert.deepEqual(log.nextCommittedEntries(Infinity).map((e) => e.index), [3]);
  log.appliedTo(1); // never decreases
  assert.equal(log.applied, 2);
  assert.throws(() => log.appliedTo(4), RaftInvariantError);
  log.appliedTo(3);
  assert.equal(log.hasNextCommittedEntries(), false);
  assert.deepEqual(log.nextCommittedEntries(Infinity), []);
});

Deno.test("RaftLog.nextCommittedEntries includes committed unstable entries", () => {
  const log = logWith(ents(1, [1]), 1, 1);
  log.maybeAppend(1, 1, 3, ents(2, [1, 1]));
  assert.deepEqual(log.nextCommittedEntries(Infinity), ents(2, [1, 1]));
});

// ---------------------------------------------------------------------------------------------
// Snapshots

Deno.test("RaftLog.restore replaces the log with a pending snapshot", () => {
  const log = logWith([conf(1, 1, ABC), ...ents(2, [1, 1])], 1, 1);
  log.append(ents(4, [2]));
  const s = snap(10, 3, ABCD);
  log.restore(s);
  assert.equal(log.hasPendingSnapshot(), true);
  assert.equal(log.unstableSnapshot(), s);
  assert.equal(log.snapshot(), s);
  assert.equal(log.committed, 10);
  assert.equal(log.firstIndex(), 11);
  assert.equal(log.lastIndex(), 10);
  assert.equal(log.lastTerm(), 3);
  assert.deepEqual(termsOf(log, 2, 11), [...new Array(8).fill(undefined), 3, undefined]);
  assert.deepEqual(log.unstableEntries(), []);
  assert.deepEqual(log.membership(), ABCD);
  assert.equal(log.membershipIndex(), 10);
  assert.throws(() => log.entries(10, 11), CompactedError);
  assert.equal(log.hasNextCommittedEntries(), false, "the snapshot is applied first");
  assert.deepEqual(log.nextCommittedEntries(Infinity), []);
});

Deno.test("RaftLog.restore asserts the snapshot is past the commit index", () => {
  const log = logWith(ents(1, [1, 1, 1]), 2, 2);
  assert.throws(() => log.restore(snap(2, 1)), RaftInvariantError);
  assert.throws(() => log.restore(snap(1, 1)), RaftInvariantError);
});

Deno.test("RaftLog after restore appends, then settles on the persisted snapshot", () => {
  const storage = storageWith(ents(1, [1, 1, 1]));
  const log = new RaftLog(storage, { committed: 1, applied: 1 });
  const s = snap(10, 3, ABCD);
  log.restore(s);
  log.append(ents(11, [3, 3]));
  assert.equal(log.lastIndex(), 12);
  assert.deepEqual(log.entries(11, 13), ents(11, [3, 3]));
  // The driver persists the Ready (snapshot first, then entries), then advance():
  storage.applySnapshot(s);
  storage.append(log.unstableEntries());
  log.stableSnapTo(10);
  log.appliedTo(10);
  log.stableTo(12, 3);
  assert.equal(log.hasPendingSnapshot(), false);
  assert.deepEqual(log.unstableEntries(), []);
  assert.equal(log.firstIndex(), 11);
  assert.equal(log.lastIndex(), 12);
  assert.deepEqual(termsOf(log, 9, 13), [undefined, 3, 3, 3, undefined]);
  assert.deepEqual(log.membership(), ABCD);
});

Deno.test("RaftLog.stableSnapTo ignores another snapshot's index", () => {
  const log = logWith(ents(1, [1]), 1, 1);
  log.restore(snap(10, 3));
  log.stableSnapTo(9);
  assert.equal(log.hasPendingSnapshot(), true);
});

// ---------------------------------------------------------------------------------------------
// Model-based property

/** The log as the Raft paper sees it: a base (index, term, membership) and the entries after. */
interface Model {
  base: { index: number; term: number; membership: Membership };
  tail: Entry[];
}

function modelTerm(model: Model, index: number): number | undefined {
  if (index === model.base.index) return model.base.term;
  return model.tail[index - model.base.index - 1]?.term;
}

function modelLast(model: Model): number {
  return model.base.index + model.tail.length;
}

function modelMembership(model: Model, upTo = Infinity): [number, Membership] {
  for (let i = model.tail.length - 1; i >= 0; i--) {
    const e = model.tail[i];
    if (e.index <= upTo && e.membership !== undefined) return [e.index, e.membership];
  }
  return [model.base.index, model.base.membership];
}

/** The reference byte limit: the longest prefix within `maxBytes`, but at least one entry. */
function limited(entries: readonly Entry[], maxBytes: number): Entry[] {
  let n = 0;
  let size = 0;
  while (n < entries.length && (n === 0 || size + entryBytes(entries[n]) <= maxBytes)) {
    size += entryBytes(entries[n]);
    n++;
  }
  return entries.slice(0, n);
}

type Op =
  | { kind: "append"; at: number; count: number; config: number }
  | { kind: "commit"; at: number }
  | { kind: "apply" }
  | { kind: "ready" }
  | { kind: "advance" }
  | { kind: "compact"; at: number }
  | { kind: "restore"; beyond: number; config: number };

const MEMBERSHIPS = [ABC, ABCD_JOINT, ABCD];

const OP: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("append" as const),
      at: fc.nat(6),
      count: fc.integer({ min: 1, max: 3 }),
      config: fc.nat(5),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("commit" as const), at: fc.nat(4) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("apply" as const) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("ready" as const) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("advance" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("compact" as const), at: fc.nat(4) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("restore" as const),
      beyond: fc.integer({ min: 1, max: 4 }),
      config: fc.nat(2),
    }),
  },
);

/** Drives a RaftLog as raft.ts does (ready, persist, advance) and compares it to the model. */
class Driver {
  readonly storage = new MemoryStorage();
  readonly log = new RaftLog(this.storage, { committed: 0, applied: 0 });
  model: Model = { base: { index: 0, term: 0, membership: EMPTY_MEMBERSHIP }, tail: [] };
  term = 0;
  handed: { snapshotIndex?: number; last?: Entry } | undefined;

  step(op: Op): void {
    const log = this.log;
    switch (op.kind) {
      case "append": {
        const lo = Math.min(log.committed + 1 + op.at, log.lastIndex() + 1);
        const term = ++this.term; // (index, term) identifies an entry, as in Raft
        const entries = Array.from(
          { length: op.count },
          (_, i) =>
            op.config === i ? conf(lo + i, term, MEMBERSHIPS[(lo + i) % 3]) : ent(lo + i, term),
        );
        log.append(entries);
        this.model.tail = this.model.tail.slice(0, lo - this.model.base.index - 1).concat(entries);
        return;
      }
      case "commit":
        log.commitTo(Math.min(log.committed + op.at, log.lastIndex()));
        return;
      case "apply": {
        // The application applies only what is committed and already persisted.
        const unstable = log.unstableEntries();
        const stable = unstable.length > 0 ? unstable[0].index - 1 : log.lastIndex();
        if (!log.hasPendingSnapshot()) log.appliedTo(Math.min(log.committed, stable));
        return;
      }
      case "ready": {
        if (this.handed !== undefined) return;
        const snapshot = log.unstableSnapshot();
        const entries = log.unstableEntries();
        if (snapshot !== undefined) this.storage.applySnapshot(snapshot);
        this.storage.append(entries);
        this.handed = { snapshotIndex: snapshot?.meta.index, last: entries.at(-1) };
        return;
      }
      case "advance": {
        if (this.handed === undefined) return;
        const { snapshotIndex, last } = this.handed;
        this.handed = undefined;
        if (snapshotIndex !== undefined) {
          log.stableSnapTo(snapshotIndex);
          log.appliedTo(snapshotIndex);
        }
        if (last !== undefined) log.stableTo(last.index, last.term);
        return;
      }
      case "compact": {
        const at = Math.min(this.storage.snapshot().meta.index + 1 + op.at, log.applied);
        if (at <= this.storage.snapshot().meta.index || at > this.storage.lastIndex()) return;
        const [, membership] = modelMembership(this.model, at);
        this.storage.createSnapshot(at, { membership, data: new Uint8Array(0) });
        return;
      }
      case "restore": {
        const index = Math.max(log.committed, log.lastIndex()) + op.beyond - 2;
        if (index <= log.committed) return;
        const s = snap(index, ++this.term, MEMBERSHIPS[op.config]);
        log.restore(s);
        this.model = { base: { ...s.meta }, tail: [] };
        return;
      }
    }
  }

  check(): void {
    const { log, model } = this;
    const last = modelLast(model);
    assert.equal(log.lastIndex(), last, "lastIndex");
    const pending = log.unstableSnapshot();
    const first = pending !== undefined ? pending.meta.index + 1 : this.storage.firstIndex();
    assert.equal(log.firstIndex(), first, "firstIndex");
    for (let i = first - 1; i <= last; i++) {
      assert.equal(log.term(i), modelTerm(model, i), `term(${i})`);
    }
    assert.equal(log.term(last + 1), undefined, "term past the last index");
    if (first >= 2) assert.equal(log.term(first - 2), undefined, "term before the snapshot");
    const expected = model.tail.slice(first - model.base.index - 1);
    assert.deepEqual(log.entries(first, last + 1), expected, "entries");
    for (const maxBytes of [0, 30, 60, 100]) {
      assert.deepEqual(
        log.entries(first, last + 1, maxBytes),
        limited(expected, maxBytes),
        "bytes",
      );
    }
    const [index, membership] = modelMembership(model);
    assert.deepEqual(log.membership(), membership, "membership");
    assert.equal(log.membershipIndex(), index, "membershipIndex");
    assert.ok(log.applied <= log.committed && log.committed <= last, "applied <= commit <= last");
    const next = pending !== undefined ? [] : model.tail.slice(
      Math.max(log.applied + 1, first) - model.base.index - 1,
      log.committed - model.base.index,
    );
    assert.deepEqual(log.nextCommittedEntries(Infinity), next, "nextCommittedEntries");
  }
}

Deno.test("RaftLog agrees with a model log under appends, truncations, persistence, compaction and restores (property)", () => {
  fc.assert(
    fc.property(fc.array(OP, { minLength: 10, maxLength: 80, size: "max" }), (ops) => {
      const driver = new Driver();
      for (const op of ops) {
        driver.step(op);
        driver.check();
      }
    }),
    { numRuns: 500 },
  );
});

/**
 * The conformance suite every {@linkcode LogStorage} must pass, as data: one list of cases
 * that each implementation's test file runs (hono's `router/common.case.test.ts`). The
 * module stays pure (no `Deno.*`, no timers) so that it lives beside the interface; the
 * test files wrap each case in `Deno.test`.
 *
 * @example Running the suite against an implementation
 * ```ts ignore
 * import { STORAGE_CASES } from "./storage_conformance.ts";
 * for (const c of STORAGE_CASES) {
 *   Deno.test({ name: `MyStorage: ${c.name}`, fn: () => c.run(openMyStorage) });
 * }
 * ```
 *
 * @module
 */
import { CompactedError, SnapshotOutOfDateError, UnavailableError } from "./_errors.ts";
import { entryBytes, type LogStorage } from "./_storage.ts";
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
 * A storage under test and how to reopen it from its durable state (for restart cases).
 * `reopen` may be called more than once: each call returns a storage opened from what the
 * previous instances made durable, and the case never uses an older instance again.
 */
export interface StorageUnderTest {
  /** A fresh, empty storage. */
  storage: LogStorage;
  /** Reopens the storage from its durable state, as after a restart. */
  reopen?: () => Promise<LogStorage>;
}

/** One conformance case: throws on the first violation, with what was expected and found. */
export interface StorageCase {
  /** What the case checks, as a sentence. */
  name: string;
  /** Whether the case restarts the storage: run it only when `reopen` is given (it throws otherwise). */
  reopens?: boolean;
  /** Runs the case against a fresh storage obtained from `open`. */
  run(open: () => Promise<StorageUnderTest>): Promise<void>;
}

/** A violation of the storage contract found by a conformance case. */
export class StorageConformanceError extends Error {
  /** Creates the error with what was expected and what was found. */
  constructor(message: string, options?: ErrorOptions) {
    super(`Storage conformance: ${message}`, options);
    this.name = "StorageConformanceError";
  }
}

// ---------------------------------------------------------------------------------------------
// Checks

/** Structural equality: Uint8Array by bytes, arrays by elements, a missing field = undefined. */
function equal(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && a.length === b.length &&
      a.every((v, i) => v === b[i]);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
      a.every((v, i) => equal(v, b[i]));
  }
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  for (const key of new Set([...Object.keys(x), ...Object.keys(y)])) {
    if (!equal(x[key], y[key])) return false;
  }
  return true;
}

function show(value: unknown): string {
  if (value === undefined) return "undefined";
  return JSON.stringify(value, (_key, v) => {
    if (!(v instanceof Uint8Array)) return v === Infinity ? "Infinity" : v;
    const head = [...v.subarray(0, 8)].join(",");
    return `<${v.length} bytes: ${head}${v.length > 8 ? ",…" : ""}>`;
  });
}

function expectEqual(actual: unknown, expected: unknown, what: string): void {
  if (!equal(actual, expected)) {
    throw new StorageConformanceError(`${what}: expected ${show(expected)}, got ${show(actual)}`);
  }
}

type ErrorClass = abstract new (...args: never[]) => Error;

/** Expects `fn` to throw (or reject with) an instance of `expected`. */
async function expectThrows(fn: () => unknown, expected: ErrorClass, what: string): Promise<void> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof expected) return;
    const got = error instanceof Error ? `${error.name}: ${error.message}` : show(error);
    throw new StorageConformanceError(`${what}: expected ${expected.name}, got ${got}`, {
      cause: error,
    });
  }
  throw new StorageConformanceError(`${what}: expected ${expected.name}, nothing was thrown`);
}

/** Checks the bounds of the log and every entry in it. */
function expectLog(storage: LogStorage, first: number, log: readonly Entry[], what: string): void {
  expectEqual(storage.firstIndex(), first, `${what}: firstIndex()`);
  expectEqual(storage.lastIndex(), first + log.length - 1, `${what}: lastIndex()`);
  expectEqual(storage.entries(first, first + log.length), log, `${what}: entries()`);
  for (const e of log) expectEqual(storage.term(e.index), e.term, `${what}: term(${e.index})`);
}

/** The bytes of `data`, waiting for a reader to fetch them. */
function bytesOf(data: SnapshotData): Promise<Uint8Array> | Uint8Array {
  return data instanceof Uint8Array ? data : data.load(0, data.length);
}

/** Expects `actual` to have the metadata and bytes of `expected` (either may be a reader). */
async function expectSameSnapshot(actual: Snapshot, expected: Snapshot, what: string) {
  expectEqual(actual.meta, expected.meta, `${what}.meta`);
  expectEqual(await bytesOf(actual.data), await bytesOf(expected.data), `${what}.data`);
}

/**
 * Expects the storage to hold `snapshot`: the same metadata and bytes (a storage may answer
 * with a reader of them instead of the bytes).
 */
async function expectSnapshot(
  storage: LogStorage,
  snapshot: Snapshot,
  what: string,
): Promise<void> {
  await expectSameSnapshot(storage.snapshot(), snapshot, `${what}: snapshot()`);
  expectEqual(storage.firstIndex(), snapshot.meta.index + 1, `${what}: firstIndex()`);
  expectEqual(storage.term(snapshot.meta.index), snapshot.meta.term, `${what}: term(snapshot)`);
  expectEqual(
    storage.initialState().membership,
    snapshot.meta.membership,
    `${what}: initialState().membership`,
  );
}

/** Reopens the storage under test; a case marked `reopens` needs it. */
async function reopened(sut: StorageUnderTest): Promise<LogStorage> {
  if (sut.reopen === undefined) throw new StorageConformanceError("reopen() is missing");
  return await sut.reopen();
}

// ---------------------------------------------------------------------------------------------
// Fixtures

const TEXT = new TextEncoder();

/** Every byte value, to catch encodings that are not binary-safe. */
const ALL_BYTES: Uint8Array = Uint8Array.from({ length: 256 }, (_, i) => i);

const VOTERS_ABC: Membership = { voters: ["a", "b", "c"], outgoing: [], learners: [] };
const JOINT_ABD: Membership = {
  voters: ["a", "b", "d"],
  outgoing: ["a", "b", "c"],
  learners: ["e", "f"],
};

function entry(index: number, term: number, data: Uint8Array | string = `e${index}`): Entry {
  return {
    index,
    term,
    type: "normal",
    data: typeof data === "string" ? TEXT.encode(data) : data,
  };
}

function configEntry(index: number, term: number, membership: Membership): Entry {
  return { index, term, type: "config", data: TEXT.encode(`conf${index}`), membership };
}

/** Normal entries from `lo` on, one per term in `terms`. */
function entriesFrom(lo: number, terms: readonly number[]): Entry[] {
  return terms.map((term, i) => entry(lo + i, term));
}

/** Entries 1..4 exercising every field: binary data, an empty command, two config entries. */
function richLog(): Entry[] {
  return [
    entry(1, 1, ALL_BYTES),
    configEntry(2, 1, JOINT_ABD),
    entry(3, 2, new Uint8Array(0)),
    configEntry(4, 3, VOTERS_ABC),
  ];
}

function snapshot(index: number, term: number, membership: Membership): ReceivedSnapshot {
  return { meta: { index, term, membership }, data: ALL_BYTES.slice().reverse() };
}

/** A snapshot of {@linkcode ALL_BYTES} at `index`, as `createSnapshot` makes it. */
function snapshotAt(index: number, term: number, membership: Membership): ReceivedSnapshot {
  return { meta: { index, term, membership }, data: ALL_BYTES };
}

const EMPTY_SNAPSHOT: ReceivedSnapshot = {
  meta: { index: 0, term: 0, membership: EMPTY_MEMBERSHIP },
  data: new Uint8Array(0),
};

// ---------------------------------------------------------------------------------------------
// Cases

const EMPTY_CASES: StorageCase[] = [
  {
    name: "an empty storage starts from the empty state",
    async run(open) {
      const { storage } = await open();
      expectEqual(storage.initialState().hardState, EMPTY_HARD_STATE, "initialState().hardState");
      expectEqual(storage.initialState().membership, EMPTY_MEMBERSHIP, "initialState().membership");
      expectEqual(storage.firstIndex(), 1, "firstIndex()");
      expectEqual(storage.lastIndex(), 0, "lastIndex()");
      expectEqual(storage.term(0), 0, "term(0)");
      await expectSnapshot(storage, EMPTY_SNAPSHOT, "snapshot()");
      expectEqual(storage.entries(1, 1), [], "entries(1, 1)");
      await expectThrows(() => storage.entries(1, 2), UnavailableError, "entries(1, 2)");
      await expectThrows(() => storage.entries(0, 1), CompactedError, "entries(0, 1)");
      await expectThrows(() => storage.term(1), UnavailableError, "term(1)");
    },
  },
];

const APPEND_CASES: StorageCase[] = [
  {
    name: "append then read back every field, binary data and config membership included",
    async run(open) {
      const { storage } = await open();
      const log = richLog();
      await storage.append(log);
      expectLog(storage, 1, log, "after append");
      for (const e of log) {
        expectEqual(storage.entries(e.index, e.index + 1), [e], `entries(${e.index}, +1)`);
      }
    },
  },
  {
    name: "append at lastIndex + 1 extends the log",
    async run(open) {
      const { storage } = await open();
      await storage.append(entriesFrom(1, [1, 1]));
      await storage.append(entriesFrom(3, [1, 2, 2]));
      expectLog(storage, 1, entriesFrom(1, [1, 1, 1, 2, 2]), "after two appends");
    },
  },
  {
    name: "an empty append changes nothing",
    async run(open) {
      const { storage } = await open();
      await storage.append([]);
      expectEqual(storage.lastIndex(), 0, "lastIndex() of an empty storage");
      await storage.append(entriesFrom(1, [1, 2]));
      await storage.append([]);
      expectLog(storage, 1, entriesFrom(1, [1, 2]), "after an empty append");
    },
  },
  {
    name: "append inside the log replaces the conflicting suffix",
    async run(open) {
      const { storage } = await open();
      await storage.append(entriesFrom(1, [1, 1, 1, 1, 1]));
      await storage.append([entry(3, 2, "x3"), entry(4, 2, "x4")]);
      const log = [...entriesFrom(1, [1, 1]), entry(3, 2, "x3"), entry(4, 2, "x4")];
      expectLog(storage, 1, log, "after replacing from 3");
      await expectThrows(() => storage.term(5), UnavailableError, "term(5) after truncation");
      await expectThrows(() => storage.entries(1, 6), UnavailableError, "entries(1, 6)");
      await storage.append([entry(4, 3, "y4")]);
      expectLog(storage, 1, [...log.slice(0, 3), entry(4, 3, "y4")], "after replacing the last");
      await storage.append([entry(1, 4, "z1")]);
      expectLog(storage, 1, [entry(1, 4, "z1")], "after replacing from firstIndex");
    },
  },
  {
    name: "append that would leave a gap throws and changes nothing",
    async run(open) {
      const { storage } = await open();
      await expectThrows(() => storage.append([entry(2, 1)]), Error, "append at 2 when empty");
      expectEqual(storage.lastIndex(), 0, "lastIndex() after the refused append");
      await storage.append(entriesFrom(1, [1, 1, 1]));
      await expectThrows(
        () => storage.append(entriesFrom(5, [1, 1])),
        Error,
        "append at 5 after 3",
      );
      expectLog(storage, 1, entriesFrom(1, [1, 1, 1]), "after the refused append");
    },
  },
  {
    name: "append of non-contiguous entries throws and changes nothing",
    async run(open) {
      const { storage } = await open();
      await storage.append(entriesFrom(1, [1]));
      const broken = [entry(2, 1), entry(4, 1)];
      await expectThrows(() => storage.append(broken), Error, "append of indexes 2, 4");
      expectLog(storage, 1, entriesFrom(1, [1]), "after the refused append");
    },
  },
  {
    name: "append before firstIndex throws and changes nothing",
    async run(open) {
      const { storage } = await open();
      await storage.append(entriesFrom(1, [1, 1, 2, 2, 2]));
      await storage.createSnapshot(3, { membership: VOTERS_ABC, data: ALL_BYTES });
      await expectThrows(() => storage.append([entry(3, 5)]), Error, "append at the snapshot");
      await expectThrows(() => storage.append(entriesFrom(2, [5, 5])), Error, "append before it");
      expectLog(storage, 4, entriesFrom(4, [2, 2]), "after the refused appends");
      await storage.append([entry(4, 5)]);
      expectLog(storage, 4, [entry(4, 5)], "after an append at firstIndex");
    },
  },
];

const READ_CASES: StorageCase[] = [
  {
    name: "entries() serves half-open ranges",
    async run(open) {
      const { storage } = await open();
      const log = entriesFrom(1, [1, 1, 2, 3, 3]);
      await storage.append(log);
      expectEqual(storage.entries(1, 6), log, "entries(1, 6)");
      expectEqual(storage.entries(2, 4), log.slice(1, 3), "entries(2, 4)");
      expectEqual(storage.entries(5, 6), log.slice(4), "entries(5, 6)");
      expectEqual(storage.entries(3, 3), [], "entries(3, 3)");
      expectEqual(storage.entries(6, 6), [], "entries(6, 6)");
    },
  },
  {
    name: "entries() stops at maxBytes but returns at least one entry",
    async run(open) {
      const { storage } = await open();
      const log = [10, 20, 30, 40].map((n, i) => entry(i + 1, 1, new Uint8Array(n).fill(i)));
      await storage.append(log);
      const [b1, b2, b3] = log.map(entryBytes);
      const cases: [lo: number, maxBytes: number, count: number][] = [
        [1, 0, 1],
        [1, b1, 1],
        [1, b1 + b2 - 1, 1],
        [1, b1 + b2, 2],
        [1, b1 + b2 + b3, 3],
        [1, Infinity, 4],
        [2, b2, 1],
        [2, b2 + b3, 2],
        [4, 1, 1],
      ];
      for (const [lo, maxBytes, count] of cases) {
        expectEqual(
          storage.entries(lo, 5, maxBytes),
          log.slice(lo - 1, lo - 1 + count),
          `entries(${lo}, 5, ${maxBytes})`,
        );
      }
      expectEqual(storage.entries(1, 3, Infinity), log.slice(0, 2), "entries(1, 3, Infinity)");
    },
  },
  {
    name: "entries() throws CompactedError before firstIndex",
    async run(open) {
      const { storage } = await open();
      await expectThrows(() => storage.entries(0, 1), CompactedError, "entries(0, 1) when empty");
      await storage.append(entriesFrom(1, [1, 1, 1, 2, 2]));
      await storage.createSnapshot(3, { membership: VOTERS_ABC, data: ALL_BYTES });
      await expectThrows(() => storage.entries(3, 6), CompactedError, "entries(3, 6)");
      await expectThrows(() => storage.entries(1, 2), CompactedError, "entries(1, 2)");
      expectEqual(storage.entries(4, 6), entriesFrom(4, [2, 2]), "entries(4, 6)");
    },
  },
  {
    name: "entries() throws UnavailableError past lastIndex + 1",
    async run(open) {
      const { storage } = await open();
      await expectThrows(() => storage.entries(1, 2), UnavailableError, "entries(1, 2) when empty");
      await storage.append(entriesFrom(1, [1, 1, 1]));
      await expectThrows(() => storage.entries(1, 5), UnavailableError, "entries(1, 5)");
      await expectThrows(() => storage.entries(4, 5), UnavailableError, "entries(4, 5)");
      expectEqual(storage.entries(1, 4), entriesFrom(1, [1, 1, 1]), "entries(1, 4)");
    },
  },
  {
    name: "term() answers from firstIndex - 1 to lastIndex and throws outside",
    async run(open) {
      const { storage } = await open();
      await storage.append(entriesFrom(1, [1, 1, 2, 3]));
      expectEqual(storage.term(0), 0, "term(0)");
      expectEqual(storage.term(4), 3, "term(4)");
      await expectThrows(() => storage.term(5), UnavailableError, "term(5)");
      await storage.createSnapshot(2, { membership: VOTERS_ABC, data: ALL_BYTES });
      expectEqual(storage.term(2), 1, "term(2) at the snapshot");
      expectEqual(storage.term(3), 2, "term(3)");
      await expectThrows(() => storage.term(1), CompactedError, "term(1) after compaction");
      await expectThrows(() => storage.term(0), CompactedError, "term(0) after compaction");
      await expectThrows(() => storage.term(5), UnavailableError, "term(5) after compaction");
    },
  },
];

const HARD_STATE_CASES: StorageCase[] = [
  {
    name: "setHardState round trips through initialState()",
    async run(open) {
      const { storage } = await open();
      const first: HardState = { term: 5, vote: "b", commit: 0 };
      await storage.setHardState(first);
      expectEqual(storage.initialState().hardState, first, "after setHardState");
      await storage.append(entriesFrom(1, [5, 5, 6]));
      const second: HardState = { term: 6, vote: "", commit: 3 };
      await storage.setHardState(second);
      expectEqual(storage.initialState().hardState, second, "after a second setHardState");
      expectEqual(storage.initialState().membership, EMPTY_MEMBERSHIP, "membership unchanged");
    },
  },
  {
    name: "persist writes a snapshot, then entries, then the hard state",
    async run(open) {
      const { storage } = await open();
      await storage.append(entriesFrom(1, [1, 1, 1]));
      const snap = snapshot(10, 3, VOTERS_ABC);
      const log = [entry(11, 3, ALL_BYTES), configEntry(12, 4, JOINT_ABD)];
      const hardState: HardState = { term: 4, vote: "a", commit: 11 };
      await storage.persist({ snapshot: snap, entries: log, hardState });
      await expectSnapshot(storage, snap, "after persist");
      expectLog(storage, 11, log, "after persist");
      expectEqual(storage.initialState().hardState, hardState, "initialState().hardState");
    },
  },
  {
    name: "persist without a snapshot appends and sets the hard state",
    async run(open) {
      const { storage } = await open();
      const hardState: HardState = { term: 1, vote: "a", commit: 0 };
      await storage.setHardState(hardState);
      await storage.persist({ entries: entriesFrom(1, [1, 1, 1]) });
      expectLog(storage, 1, entriesFrom(1, [1, 1, 1]), "after persisting entries only");
      expectEqual(storage.initialState().hardState, hardState, "hard state kept");
      const next: HardState = { term: 2, vote: "c", commit: 1 };
      await storage.persist({ entries: [entry(2, 2)], hardState: next });
      expectLog(storage, 1, [entry(1, 1), entry(2, 2)], "after a replacing persist");
      expectEqual(storage.initialState().hardState, next, "after a replacing persist");
      const last: HardState = { term: 2, vote: "c", commit: 2 };
      await storage.persist({ entries: [], hardState: last });
      expectLog(storage, 1, [entry(1, 1), entry(2, 2)], "after persisting a hard state only");
      expectEqual(storage.initialState().hardState, last, "after persisting a hard state only");
      await expectSnapshot(storage, EMPTY_SNAPSHOT, "no snapshot");
    },
  },
];

const SNAPSHOT_CASES: StorageCase[] = [
  {
    name: "createSnapshot compacts the log up to its index",
    async run(open) {
      const { storage } = await open();
      const log = [entry(1, 1), configEntry(2, 1, VOTERS_ABC), ...entriesFrom(3, [2, 2, 3])];
      await storage.append(log);
      const data = TEXT.encode("state at 3");
      const made = await storage.createSnapshot(3, { membership: VOTERS_ABC, data });
      const expected: Snapshot = { meta: { index: 3, term: 2, membership: VOTERS_ABC }, data };
      await expectSameSnapshot(made, expected, "createSnapshot() result");
      await expectSnapshot(storage, expected, "after createSnapshot(3)");
      expectLog(storage, 4, log.slice(3), "after createSnapshot(3)");
      await expectThrows(() => storage.entries(3, 4), CompactedError, "entries(3, 4)");
      await expectThrows(() => storage.term(2), CompactedError, "term(2)");
      await storage.createSnapshot(4, { membership: JOINT_ABD, data });
      expectLog(storage, 5, log.slice(4), "after createSnapshot(4)");
      expectEqual(storage.initialState().membership, JOINT_ABD, "membership of the newer one");
    },
  },
  {
    name: "createSnapshot at lastIndex leaves an empty log that appends continue",
    async run(open) {
      const { storage } = await open();
      await storage.append(entriesFrom(1, [1, 2, 2]));
      await storage.createSnapshot(3, { membership: VOTERS_ABC, data: ALL_BYTES });
      expectLog(storage, 4, [], "after createSnapshot(3)");
      expectEqual(storage.term(3), 2, "term(3)");
      expectEqual(storage.entries(4, 4), [], "entries(4, 4)");
      await storage.append(entriesFrom(4, [3]));
      expectLog(storage, 4, entriesFrom(4, [3]), "after appending at 4");
    },
  },
  {
    name: "createSnapshot at or below the current snapshot throws SnapshotOutOfDateError",
    async run(open) {
      const { storage } = await open();
      const options = { membership: VOTERS_ABC, data: ALL_BYTES };
      await expectThrows(
        () => storage.createSnapshot(0, options),
        SnapshotOutOfDateError,
        "createSnapshot(0) when empty",
      );
      await storage.append(entriesFrom(1, [1, 1, 2, 2, 2]));
      await storage.createSnapshot(3, options);
      const held = storage.snapshot();
      for (const index of [3, 2]) {
        await expectThrows(
          () => storage.createSnapshot(index, { membership: JOINT_ABD, data: ALL_BYTES }),
          SnapshotOutOfDateError,
          `createSnapshot(${index}) after one at 3`,
        );
      }
      await expectSnapshot(storage, held, "after the refused snapshots");
      expectLog(storage, 4, entriesFrom(4, [2, 2]), "after the refused snapshots");
    },
  },
  {
    name: "createSnapshot beyond lastIndex throws UnavailableError",
    async run(open) {
      const { storage } = await open();
      await storage.append(entriesFrom(1, [1, 1, 1]));
      await expectThrows(
        () => storage.createSnapshot(4, { membership: VOTERS_ABC, data: ALL_BYTES }),
        UnavailableError,
        "createSnapshot(4) with lastIndex 3",
      );
      await expectSnapshot(storage, EMPTY_SNAPSHOT, "after the refused snapshot");
      expectLog(storage, 1, entriesFrom(1, [1, 1, 1]), "after the refused snapshot");
    },
  },
  {
    name: "applySnapshot replaces the whole log",
    async run(open) {
      const { storage } = await open();
      const hardState: HardState = { term: 4, vote: "b", commit: 2 };
      await storage.append(entriesFrom(1, [1, 1, 2, 2, 2]));
      await storage.setHardState(hardState);
      const snap = snapshot(8, 4, JOINT_ABD);
      await storage.applySnapshot(snap);
      await expectSnapshot(storage, snap, "after applySnapshot(8)");
      expectLog(storage, 9, [], "after applySnapshot(8)");
      await expectThrows(() => storage.entries(5, 6), CompactedError, "entries(5, 6)");
      expectEqual(storage.initialState().hardState, hardState, "hard state kept");
      await storage.append(entriesFrom(9, [4]));
      expectLog(storage, 9, entriesFrom(9, [4]), "after appending at 9");
      await expectThrows(() => storage.append([entry(11, 4)]), Error, "append at 11");
    },
  },
  {
    name: "applySnapshot behind lastIndex still drops every entry",
    async run(open) {
      const { storage } = await open();
      await storage.append(entriesFrom(1, [1, 1, 2, 2, 2]));
      const snap = snapshot(3, 2, VOTERS_ABC);
      await storage.applySnapshot(snap);
      await expectSnapshot(storage, snap, "after applySnapshot(3)");
      expectLog(storage, 4, [], "after applySnapshot(3)");
      await expectThrows(() => storage.term(4), UnavailableError, "term(4)");
    },
  },
  {
    name: "applySnapshot older than the held snapshot throws SnapshotOutOfDateError",
    async run(open) {
      const { storage } = await open();
      const snap = snapshot(10, 3, VOTERS_ABC);
      await storage.applySnapshot(snap);
      await storage.append(entriesFrom(11, [3, 3]));
      await expectThrows(
        () => storage.applySnapshot(snapshot(5, 2, JOINT_ABD)),
        SnapshotOutOfDateError,
        "applySnapshot(5) after one at 10",
      );
      await expectSnapshot(storage, snap, "after the refused snapshot");
      expectLog(storage, 11, entriesFrom(11, [3, 3]), "after the refused snapshot");
      await storage.createSnapshot(12, { membership: JOINT_ABD, data: ALL_BYTES });
      await expectThrows(
        () => storage.applySnapshot(snapshot(11, 3, VOTERS_ABC)),
        SnapshotOutOfDateError,
        "applySnapshot(11) after createSnapshot(12)",
      );
    },
  },
  {
    name: "initialState().membership is the latest snapshot's, not the log's",
    async run(open) {
      const { storage } = await open();
      await storage.append([configEntry(1, 1, VOTERS_ABC), configEntry(2, 1, JOINT_ABD)]);
      expectEqual(storage.initialState().membership, EMPTY_MEMBERSHIP, "without a snapshot");
      await storage.createSnapshot(1, { membership: VOTERS_ABC, data: ALL_BYTES });
      expectEqual(storage.initialState().membership, VOTERS_ABC, "after createSnapshot(1)");
      await storage.applySnapshot(snapshot(7, 2, JOINT_ABD));
      expectEqual(storage.initialState().membership, JOINT_ABD, "after applySnapshot(7)");
    },
  },
];

const REOPEN_CASES: StorageCase[] = [
  {
    name: "after reopen: an empty storage is still empty",
    reopens: true,
    async run(open) {
      const sut = await open();
      const storage = await reopened(sut);
      expectEqual(storage.initialState().hardState, EMPTY_HARD_STATE, "hardState");
      await expectSnapshot(storage, EMPTY_SNAPSHOT, "after reopen");
      expectLog(storage, 1, [], "after reopen");
    },
  },
  {
    name: "after reopen: the hard state survives",
    reopens: true,
    async run(open) {
      const sut = await open();
      await sut.storage.append(entriesFrom(1, [7]));
      const hardState: HardState = { term: 7, vote: "c", commit: 1 };
      await sut.storage.setHardState(hardState);
      const storage = await reopened(sut);
      expectEqual(storage.initialState().hardState, hardState, "hardState after reopen");
    },
  },
  {
    name: "after reopen: entries survive with every field",
    reopens: true,
    async run(open) {
      const sut = await open();
      const log = richLog();
      await sut.storage.append(log);
      const storage = await reopened(sut);
      expectLog(storage, 1, log, "after reopen");
      expectEqual(storage.initialState().membership, EMPTY_MEMBERSHIP, "membership");
    },
  },
  {
    name: "after reopen: a replaced suffix stays replaced",
    reopens: true,
    async run(open) {
      const sut = await open();
      await sut.storage.append(entriesFrom(1, [1, 1, 1, 1, 1]));
      await sut.storage.append([entry(3, 2, "x3")]);
      const storage = await reopened(sut);
      expectLog(storage, 1, [...entriesFrom(1, [1, 1]), entry(3, 2, "x3")], "after reopen");
      await expectThrows(() => storage.term(4), UnavailableError, "term(4) after reopen");
    },
  },
  {
    name: "after reopen: a created snapshot and its compaction survive",
    reopens: true,
    async run(open) {
      const sut = await open();
      await sut.storage.append(entriesFrom(1, [1, 1, 2, 2, 3]));
      const made = await sut.storage.createSnapshot(3, { membership: JOINT_ABD, data: ALL_BYTES });
      await expectSameSnapshot(made, snapshotAt(3, 2, JOINT_ABD), "createSnapshot(3)");
      const storage = await reopened(sut);
      await expectSnapshot(storage, snapshotAt(3, 2, JOINT_ABD), "after reopen");
      expectLog(storage, 4, entriesFrom(4, [2, 3]), "after reopen");
      await expectThrows(() => storage.entries(3, 4), CompactedError, "entries(3, 4)");
    },
  },
  {
    name: "after reopen: an applied snapshot survives and the old log stays gone",
    reopens: true,
    async run(open) {
      const sut = await open();
      await sut.storage.append(entriesFrom(1, [1, 1, 2, 2, 3]));
      const snap = snapshot(4, 2, VOTERS_ABC);
      await sut.storage.applySnapshot(snap);
      const storage = await reopened(sut);
      await expectSnapshot(storage, snap, "after reopen");
      expectLog(storage, 5, [], "after reopen");
      await expectThrows(() => storage.term(5), UnavailableError, "term(5) after reopen");
    },
  },
  {
    name: "after reopen: a persisted batch survives whole",
    reopens: true,
    async run(open) {
      const sut = await open();
      await sut.storage.append(entriesFrom(1, [1, 1, 1]));
      const snap = snapshot(10, 3, JOINT_ABD);
      const log = [configEntry(11, 3, VOTERS_ABC), entry(12, 4, ALL_BYTES)];
      const hardState: HardState = { term: 4, vote: "d", commit: 11 };
      await sut.storage.persist({ snapshot: snap, entries: log, hardState });
      const storage = await reopened(sut);
      await expectSnapshot(storage, snap, "after reopen");
      expectLog(storage, 11, log, "after reopen");
      expectEqual(storage.initialState().hardState, hardState, "hardState after reopen");
    },
  },
  {
    name: "after reopen: the storage takes further writes that survive the next reopen",
    reopens: true,
    async run(open) {
      const sut = await open();
      await sut.storage.append(entriesFrom(1, [1, 1, 1, 1]));
      await sut.storage.createSnapshot(2, { membership: VOTERS_ABC, data: ALL_BYTES });
      const second = await reopened(sut);
      await second.append([entry(4, 2, "y4"), configEntry(5, 2, JOINT_ABD)]);
      await second.createSnapshot(3, { membership: VOTERS_ABC, data: TEXT.encode("at 3") });
      const hardState: HardState = { term: 2, vote: "a", commit: 4 };
      await second.setHardState(hardState);
      // A reader a storage answers with reads from that storage: take the bytes while it is open.
      const held = second.snapshot();
      const expected = { meta: held.meta, data: await bytesOf(held.data) };
      const third = await reopened(sut);
      await expectSnapshot(third, expected, "after the second reopen");
      expectLog(third, 4, [entry(4, 2, "y4"), configEntry(5, 2, JOINT_ABD)], "second reopen");
      expectEqual(third.initialState().hardState, hardState, "hardState after the second reopen");
    },
  },
];

/** Every case of the storage contract; restart cases are marked `reopens`. */
export const STORAGE_CASES: readonly StorageCase[] = [
  ...EMPTY_CASES,
  ...APPEND_CASES,
  ...READ_CASES,
  ...HARD_STATE_CASES,
  ...SNAPSHOT_CASES,
  ...REOPEN_CASES,
];

/**
 * Crash consistency of every multi-commit write plan: each test runs a real write on a real
 * Deno.Kv file once to count its commits N, then, for every k in 0..N-1, replays it on a fresh
 * store with a crash injected before commit k (that commit and all later ones fail), reopens
 * with a fresh `KvLogStorage.open` and checks that the state is "before" or "after" in the Raft
 * sense.
 */
import assert from "node:assert/strict";
import type { Entry, HardState, ReceivedSnapshot } from "../raft/mod.ts";
import { KvLogStorage } from "./kv_log_storage.ts";

class CrashError extends Error {
  constructor() {
    super("Cannot commit: injected crash");
    this.name = "CrashError";
  }
}

/** Counts commits once armed and, when `failAt` >= 0, fails commit `failAt` and every later one. */
class Fault {
  armed = false;
  failAt = -1;
  count = 0;
  readonly hook = (): void => {
    if (!this.armed) return;
    const k = this.count++;
    if (this.failAt >= 0 && k >= this.failAt) throw new CrashError();
  };
}

/** What a reopened storage holds. */
interface Durable {
  readonly hard: HardState;
  readonly snapshot: ReceivedSnapshot;
  readonly log: ReadonlyMap<number, Entry>;
  readonly last: number;
}

async function capture(s: KvLogStorage): Promise<Durable> {
  const log = new Map<number, Entry>();
  for (const e of s.entries(s.firstIndex(), s.lastIndex() + 1)) log.set(e.index, e);
  const { meta, data } = s.snapshot();
  const bytes = data instanceof Uint8Array ? data : await data.load(0, data.length);
  return { hard: s.hardState(), snapshot: { meta, data: bytes }, log, last: s.lastIndex() };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Equality without assert.deepEqual: its diff of large byte arrays on a mismatch is slow. */
function sameEntry(a: Entry | undefined, b: Entry | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.index === b.index && a.term === b.term && a.type === b.type &&
    sameBytes(a.data, b.data) && JSON.stringify(a.membership) === JSON.stringify(b.membership);
}

function sameSnapshot(a: ReceivedSnapshot, b: ReceivedSnapshot): boolean {
  return JSON.stringify(a.meta) === JSON.stringify(b.meta) && sameBytes(a.data, b.data);
}

function sameDurable(a: Durable, b: Durable): boolean {
  return JSON.stringify(a.hard) === JSON.stringify(b.hard) &&
    sameSnapshot(a.snapshot, b.snapshot) &&
    a.last === b.last && a.log.size === b.log.size &&
    [...a.log].every(([i, e]) => sameEntry(e, b.log.get(i)));
}

/** Throws unless `x` is a state a crash between `before` and `after` may leave. */
function checkBetween(before: Durable, after: Durable, x: Durable, at: string): void {
  const where = `crash before commit ${at}`;
  const xSnap = x.snapshot.meta.index;
  assert.ok(
    sameSnapshot(x.snapshot, before.snapshot) || sameSnapshot(x.snapshot, after.snapshot),
    `${where}: the snapshot is neither the old nor the new one`,
  );
  const pair = (h: HardState) => `${h.term}/${h.vote}`;
  assert.ok(
    [pair(before.hard), pair(after.hard)].includes(pair(x.hard)),
    `${where}: term/vote ${pair(x.hard)} is neither ${pair(before.hard)} nor ${pair(after.hard)}`,
  );
  // The log: the old one up to some point, then only new entries.
  let fromNew = false;
  for (let i = xSnap + 1; i <= x.last; i++) {
    const e = x.log.get(i)!;
    if (!fromNew && !sameEntry(e, before.log.get(i))) fromNew = true;
    if (fromNew) assert.ok(sameEntry(e, after.log.get(i)), `${where}: entry ${i} is foreign`);
    assert.ok(e.term <= x.hard.term, `${where}: entry ${i} of term ${e.term} > ${x.hard.term}`);
  }
  assert.ok(x.snapshot.meta.term <= x.hard.term, `${where}: snapshot term > hard state term`);
  // An entry both states hold is never lost (unless the snapshot now covers it).
  for (const [i, e] of before.log) {
    if (i > xSnap && sameEntry(e, after.log.get(i))) {
      assert.ok(i <= x.last, `${where}: entry ${i}, in both states, is lost`);
    }
  }
  // The commit index: within the log, never behind, never beyond what was asked.
  const c = x.hard.commit;
  assert.ok(c >= xSnap && c <= x.last, `${where}: commit ${c} outside [${xSnap}, ${x.last}]`);
  assert.ok(c >= before.hard.commit, `${where}: commit ${c} behind ${before.hard.commit}`);
  assert.ok(c <= Math.max(before.hard.commit, after.hard.commit), `${where}: commit ${c} too far`);
  for (let i = xSnap + 1; i <= c; i++) {
    const committed = after.log.get(i) ?? before.log.get(i);
    assert.ok(sameEntry(x.log.get(i), committed), `${where}: committed entry ${i} differs`);
  }
}

/** One write under test: `setup` builds the old state, `write` is the plan that may crash. */
interface Scenario {
  setup(s: KvLogStorage, kv: Deno.Kv): Promise<void>;
  /** The write; "open" tests the garbage collection of open itself. */
  write: ((s: KvLogStorage) => Promise<unknown>) | "open";
}

/** Runs `scenario` with a crash before commit `failAt` (-1: none); returns the commits made. */
async function runOnce(
  path: string,
  scenario: Scenario,
  failAt: number,
): Promise<{ before: Durable; result: Durable; commits: number }> {
  let kv = await Deno.openKv(path);
  try {
    const first = await KvLogStorage.open(kv);
    await scenario.setup(first, kv);
    await first.idle();
    kv.close();
    kv = await Deno.openKv(path);
    const fault = new Fault();
    fault.failAt = failAt;
    let before: Durable;
    if (scenario.write === "open") {
      // "before" is what a clean open would see: read it from a copy of the file.
      before = await peek(path);
      fault.armed = true;
      await KvLogStorage.open(kv, { beforeCommit: fault.hook }).catch((e) => {
        if (!(e instanceof CrashError)) throw e;
      });
    } else {
      const s = await KvLogStorage.open(kv, { beforeCommit: fault.hook });
      before = await capture(s);
      fault.armed = true;
      // A crash in a background job after the write resolved leaves it resolved.
      await scenario.write(s).catch((e) => {
        if (!(e instanceof CrashError)) throw e;
      });
      await s.idle();
    }
    const commits = fault.count;
    kv.close();
    kv = await Deno.openKv(path);
    const reopened = await KvLogStorage.open(kv);
    const result = await capture(reopened);
    kv.close();
    // One clean open removed every leftover: the next one finds nothing to do.
    kv = await Deno.openKv(path);
    const again = await KvLogStorage.open(kv);
    assert.equal(again.stats().openCommits, 0, `garbage left after crash at ${failAt}`);
    assert.ok(sameDurable(await capture(again), result), "a second open reads the same state");
    return { before, result, commits };
  } finally {
    kv.close();
  }
}

/** The state a clean open of `path` would see, without touching `path`. */
async function peek(path: string): Promise<Durable> {
  const dir = await Deno.makeTempDir({ prefix: "koi-peek-" });
  try {
    for (const suffix of ["", "-wal", "-shm"]) {
      await Deno.copyFile(path + suffix, `${dir}/raft.kv${suffix}`).catch(() => {});
    }
    const kv = await Deno.openKv(`${dir}/raft.kv`);
    try {
      return await capture(await KvLogStorage.open(kv));
    } finally {
      kv.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Replays `scenario` with a crash before each of its commits; returns N. */
async function crashAtEveryCommit(scenario: Scenario, commitsMin: number): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "koi-crash-" });
  try {
    const ref = await runOnce(`${dir}/ref.kv`, scenario, -1);
    const n = ref.commits;
    assert.ok(n >= commitsMin, `expected a plan of at least ${commitsMin} commits, got ${n}`);
    let sawBefore = false;
    for (let k = 0; k < n; k++) {
      const run = await runOnce(`${dir}/crash-${k}.kv`, scenario, k);
      assert.ok(sameDurable(run.before, ref.before), "setup is deterministic");
      checkBetween(ref.before, ref.result, run.result, `${k} of ${n}`);
      if (k === 0) sawBefore = true;
    }
    assert.ok(sawBefore);
    return n;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function bytes(n: number, seed: number): Uint8Array {
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = (seed * 131 + i * 7 + (i >> 8)) & 0xff;
  return data;
}

function entry(index: number, term: number, size = 16): Entry {
  return { index, term, type: "normal", data: bytes(size, index * 7 + term) };
}

function entries(from: number, to: number, term: number, big: Record<number, number> = {}) {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, big[i] ?? 16));
  return out;
}

const VOTERS = { voters: ["a", "b", "c"], outgoing: [], learners: [] };

Deno.test("KvLogStorage crash: persist of 2,500 entries with chunked ones, at every commit", async () => {
  await crashAtEveryCommit({
    async setup(s) {
      await s.persist({ entries: entries(1, 5, 1), hardState: { term: 1, vote: "a", commit: 3 } });
    },
    write: (s) =>
      s.persist({
        entries: entries(6, 2505, 2, { 7: 400_000, 700: 500_000, 2500: 150_000 }),
        hardState: { term: 2, vote: "b", commit: 2400 },
      }),
  }, 3);
});

Deno.test("KvLogStorage crash: persist replacing a conflicting suffix, at every commit", async () => {
  await crashAtEveryCommit({
    async setup(s) {
      await s.persist({
        entries: entries(1, 40, 1, { 20: 100_000, 30: 200_000 }),
        hardState: { term: 1, vote: "a", commit: 10 },
      });
    },
    write: (s) =>
      s.persist({
        entries: entries(15, 30, 2, { 16: 300_000, 25: 300_000, 30: 300_000 }),
        hardState: { term: 2, vote: "c", commit: 28 },
      }),
  }, 2);
});

Deno.test("KvLogStorage crash: persist of a 4 MiB snapshot from the leader, at every commit", async () => {
  await crashAtEveryCommit({
    async setup(s) {
      // A long log: deleting it takes more than one commit after the descriptor switched.
      await s.persist({
        entries: entries(1, 1_500, 1, { 20: 100_000, 1_200: 100_000 }),
        hardState: { term: 1, vote: "a", commit: 3 },
      });
      await s.createSnapshot(10, { membership: VOTERS, data: bytes(1 << 20, 1) });
      await s.setHardState({ term: 1, vote: "a", commit: 25 }); // lazily written
    },
    write: (s) =>
      s.persist({
        snapshot: { meta: { index: 100, term: 3, membership: VOTERS }, data: bytes(4 << 20, 2) },
        entries: entries(101, 110, 3, { 105: 100_000 }),
        hardState: { term: 3, vote: "d", commit: 105 },
      }),
  }, 6);
});

Deno.test("KvLogStorage crash: createSnapshot of 5 MiB from chunks and its compaction, at every commit", async () => {
  await crashAtEveryCommit({
    async setup(s) {
      await s.persist({
        entries: entries(1, 50, 1, { 10: 100_000, 20: 100_000, 45: 100_000 }),
        hardState: { term: 1, vote: "a", commit: 5 },
      });
      await s.createSnapshot(5, { membership: VOTERS, data: bytes(200_000, 3) });
    },
    async write(s) {
      await s.setHardState({ term: 1, vote: "a", commit: 48 }); // no commit of its own
      async function* pieces() {
        for (let i = 0; i < 5; i++) yield bytes(1 << 20, 10 + i);
      }
      await s.createSnapshot(40, { membership: VOTERS, data: pieces() });
      await s.idle();
    },
  }, 8);
});

Deno.test("KvLogStorage crash: garbage collection at open, at every commit", async () => {
  await crashAtEveryCommit({
    async setup(s, kv) {
      await s.persist({
        entries: entries(1, 20, 1, { 12: 100_000 }),
        hardState: { term: 1, vote: "a", commit: 15 },
      });
      await s.createSnapshot(8, { membership: VOTERS, data: bytes(300_000, 4) });
      // What crashes leave: chunks of snapshots that never became current, entries after the
      // last index, orphan entry chunks, log keys before the snapshot, no incarnation yet.
      const op = () => kv.atomic();
      for (let i = 0; i < 2_000; i += 500) {
        const a = op();
        for (let j = i; j < i + 500; j++) a.set(["log", 1_000 + j], new Uint8Array(8));
        await a.commit();
      }
      await op().set(["snap", 77, 0], bytes(1000, 5)).set(["snap", 77, 1], bytes(10, 5)).commit();
      await op().set(["logp", 12, 2 ** 40, 0], bytes(1000, 6)).set(["log", 3], bytes(8, 6))
        .delete(["meta", "incarnation"]).commit();
    },
    write: "open",
  }, 3);
});

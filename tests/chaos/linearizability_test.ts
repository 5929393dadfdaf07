/**
 * The linearizability checker accepts every history a linearizable register can produce
 * (hand-written ones, and simulated ones with concurrency, late effects and unknown
 * outcomes), and rejects each kind of anomaly a broken store could show.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkHistory,
  type CheckResult,
  formatViolation,
  type HistoryEntry,
  type Op,
  type OpResult,
} from "./linearizability.ts";
import { Prng } from "../sim/prng.ts";

// --- builders for hand-written histories ---------------------------------------------

const read: Op = { f: "read" };
const del: Op = { f: "delete" };
const write = (value: string): Op => ({ f: "write", value });
const cas = (ifRev: number, value: string): Op => ({ f: "cas", ifRev, value });
const putIfAbsent = (value: string): Op => ({ f: "putIfAbsent", value });
const deleteIf = (ifRev: number): Op => ({ f: "deleteIf", ifRev });
const PRECONDITION = { precondition: true } as const;

function ok(
  process: string,
  op: Op,
  invokeMs: number,
  endMs: number,
  result?: OpResult,
  key = "k",
): HistoryEntry {
  return { process, key, op, invokeMs, endMs, outcome: "ok", result };
}

function unknown(process: string, op: Op, invokeMs: number, key = "k"): HistoryEntry {
  return { process, key, op, invokeMs, endMs: Infinity, outcome: "unknown" };
}

function failed(process: string, op: Op, invokeMs: number, endMs: number): HistoryEntry {
  return { process, key: "k", op, invokeMs, endMs, outcome: "fail" };
}

function assertLinearizable(history: HistoryEntry[]): CheckResult {
  const r = checkHistory(history);
  assert.deepEqual(r.violations.map(formatViolation), [], "no violation");
  assert.deepEqual(r.undecided, [], "nothing undecided");
  assert.ok(r.ok);
  return r;
}

/** Asserts exactly one violation, on `key`, whose reason matches `reason`. */
function assertViolation(history: HistoryEntry[], reason: RegExp, key = "k"): string {
  const r = checkHistory(history);
  assert.equal(r.ok, false);
  assert.deepEqual(r.undecided, []);
  assert.equal(r.violations.length, 1, "exactly one key violates");
  assert.equal(r.violations[0].key, key);
  const text = formatViolation(r.violations[0]);
  assert.match(text, reason);
  return text;
}

// --- valid histories ------------------------------------------------------------------

Deno.test("a sequential history of every op passes", () => {
  const r = assertLinearizable([
    ok("a", read, 0, 1, null),
    ok("a", putIfAbsent("v1"), 2, 3, { rev: 3 }),
    ok("a", read, 4, 5, { value: "v1", rev: 3 }),
    ok("a", write("v2"), 6, 7, { rev: 8 }),
    ok("a", cas(8, "v3"), 8, 9, { rev: 10 }),
    ok("a", cas(8, "v4"), 10, 11, { precondition: true, currentRev: 10 }),
    ok("a", putIfAbsent("v5"), 12, 13, { precondition: true, currentRev: 10 }),
    ok("a", deleteIf(9), 14, 15, PRECONDITION),
    ok("a", deleteIf(10), 16, 17, { rev: 12, existed: true }),
    ok("a", read, 18, 19, null),
    ok("a", del, 20, 21, { rev: 13, existed: false }),
    ok("a", cas(10, "v6"), 22, 23, { precondition: true, currentRev: null }),
    ok("a", write("v7"), 24, 25, { rev: 15 }),
    ok("a", read, 26, 27, { value: "v7", rev: 15 }),
  ]);
  assert.equal(r.keys, 1);
  assert.equal(r.ops, 14);
});

Deno.test("concurrent overlapping writes pass with reads seeing either order", () => {
  // The same two overlapping writes, taking effect b then a, or a then b: either order
  // must be found, with reads during the writes seeing the first and after them the last.
  assertLinearizable([
    ok("a", write("a"), 0, 10, { rev: 6 }),
    ok("b", write("b"), 1, 9, { rev: 5 }),
    ok("c", read, 2, 3, { value: "b", rev: 5 }),
    ok("d", read, 11, 12, { value: "a", rev: 6 }),
  ]);
  assertLinearizable([
    ok("a", write("a"), 0, 10, { rev: 5 }),
    ok("b", write("b"), 1, 9, { rev: 6 }),
    ok("c", read, 2, 3, { value: "a", rev: 5 }),
    ok("c", read, 4, 5, { value: "b", rev: 6 }),
    ok("d", read, 11, 12, { value: "b", rev: 6 }),
  ]);
});

Deno.test("ops that only touch in time count as concurrent", () => {
  assertLinearizable([
    ok("a", write("a"), 0, 5, { rev: 1 }),
    ok("b", read, 5, 6, null), // invoked at the very instant the write returned
  ]);
});

Deno.test("an unknown write that took effect late passes (a read long after sees it)", () => {
  assertLinearizable([
    ok("a", write("a"), 0, 1, { rev: 1 }),
    unknown("b", write("b"), 2),
    ok("c", read, 3, 4, { value: "a", rev: 1 }),
    ok("c", read, 100, 101, { value: "a", rev: 1 }),
    ok("c", read, 1000, 1001, { value: "b", rev: 40 }),
    ok("c", cas(40, "c"), 1002, 1003, { rev: 41 }), // its rev, learnt from the read
    ok("c", read, 1004, 1005, { value: "c", rev: 41 }),
  ]);
});

Deno.test("unknown ops that never took effect pass", () => {
  assertLinearizable([
    ok("a", write("a"), 0, 1, { rev: 1 }),
    unknown("b", write("b"), 2),
    unknown("b", del, 3),
    unknown("b", cas(1, "c"), 4),
    unknown("b", read, 5),
    ok("c", read, 100, 101, { value: "a", rev: 1 }),
    ok("c", cas(1, "d"), 102, 103, { rev: 7 }),
    ok("c", read, 104, 105, { value: "d", rev: 7 }),
  ]);
});

Deno.test("an unknown write's revision is constrained only as far as the history shows", () => {
  // An unknown write explains a cas failure on rev 1 and is then overwritten: fine.
  assertLinearizable([
    ok("a", write("a"), 0, 1, { rev: 1 }),
    unknown("b", write("b"), 2),
    ok("c", cas(1, "c"), 10, 11, PRECONDITION),
    ok("c", write("d"), 12, 13, { rev: 9 }),
    ok("c", read, 14, 15, { value: "d", rev: 9 }),
  ]);
});

Deno.test("cas successes and precondition failures that agree with the state pass", () => {
  assertLinearizable([
    ok("a", write("a"), 0, 1, { rev: 4 }),
    // Two concurrent cas on rev 4: exactly one may win.
    ok("b", cas(4, "b"), 2, 6, { rev: 7 }),
    ok("c", cas(4, "c"), 3, 5, { precondition: true, currentRev: 7 }),
    // Concurrent with the winner: it may have been evaluated before it.
    ok("d", cas(7, "d"), 4, 5.5, PRECONDITION),
    ok("d", read, 8, 9, { value: "b", rev: 7 }),
    ok("d", putIfAbsent("e"), 10, 11, PRECONDITION),
  ]);
});

Deno.test("a delete, then reads of null, pass; a plain fail imposes nothing", () => {
  assertLinearizable([
    ok("a", write("a"), 0, 1, { rev: 2 }),
    ok("a", del, 2, 3, { existed: true }),
    ok("b", read, 4, 5, null),
    failed("b", write("never"), 6, 7),
    ok("b", read, 8, 9, null),
    ok("b", del, 10, 11, { existed: false, rev: 9 }),
    ok("b", putIfAbsent("p"), 12, 13, { rev: 10 }),
    ok("b", read, 14, 15, { value: "p", rev: 10 }),
  ]);
});

Deno.test("keys are checked independently and only the broken key is reported", () => {
  const r = checkHistory([
    ok("a", write("x"), 0, 1, { rev: 1 }, "good"),
    ok("a", write("y"), 0, 1, { rev: 2 }, "bad"),
    ok("b", read, 2, 3, { value: "x", rev: 1 }, "good"),
    ok("b", read, 2, 3, null, "bad"),
  ]);
  assert.equal(r.keys, 2);
  assert.deepEqual(r.violations.map((v) => v.key), ["bad"]);
});

Deno.test("an initial state can be given per key", () => {
  const history = [ok("a", read, 0, 1, { value: "old", rev: 3 }), ok("a", cas(3, "n"), 2, 3)];
  assert.equal(checkHistory(history).ok, false);
  assert.ok(checkHistory(history, { initial: () => ({ value: "old", rev: 3 }) }).ok);
});

// --- histories that must fail ------------------------------------------------------------

Deno.test("a stale read fails: it starts after a newer write completed and sees the old value", () => {
  const text = assertViolation(
    [
      ok("a", write("a"), 0, 1, { rev: 1 }),
      ok("a", write("b"), 2, 3, { rev: 2 }),
      ok("b", read, 4, 5, { value: "a", rev: 1 }),
    ],
    /read → "a" @ rev 1.*cannot be linearized.*another value/,
  );
  assert.match(text, /state after .*"b" @ rev 2/);
});

Deno.test("a lost write fails: an acknowledged write, then a read of null with no delete", () => {
  assertViolation(
    [
      ok("a", write("a"), 0, 1, { rev: 1 }),
      ok("b", read, 2, 3, null),
    ],
    /found the key absent, but it held a value/,
  );
});

Deno.test("a lost write fails: two writes acknowledged in turn, a read after both sees the first", () => {
  assertViolation(
    [
      ok("a", write("a"), 0, 1, { rev: 1 }),
      ok("b", write("b"), 2, 3, { rev: 4 }),
      ok("c", read, 2.5, 10, { value: "b", rev: 4 }),
      ok("c", read, 11, 12, { value: "a", rev: 1 }),
    ],
    /another value/,
  );
});

Deno.test("a revision going backwards fails", () => {
  assertViolation(
    [
      ok("a", write("a"), 0, 1, { rev: 10 }),
      ok("b", write("b"), 2, 3, { rev: 7 }),
    ],
    /not above the key's latest revision/,
  );
});

Deno.test("a revision going backwards across a delete fails", () => {
  assertViolation(
    [
      ok("a", write("a"), 0, 1, { rev: 10 }),
      ok("a", del, 2, 3, { rev: 11 }),
      ok("b", putIfAbsent("b"), 4, 5, { rev: 11 }),
    ],
    /not above the key's latest revision/,
  );
});

Deno.test("a cas that succeeded on the wrong revision fails", () => {
  assertViolation(
    [
      ok("a", write("a"), 0, 1, { rev: 5 }),
      ok("a", write("b"), 2, 3, { rev: 8 }),
      ok("b", cas(5, "c"), 4, 5, { rev: 9 }),
    ],
    /cas\(ifRev 5, "c"\).*revision was not ifRev/,
  );
});

Deno.test("a precondition failure fails when the revision matched and nothing could change it", () => {
  assertViolation(
    [
      ok("a", write("a"), 0, 1, { rev: 5 }),
      ok("b", cas(5, "b"), 2, 3, PRECONDITION),
    ],
    /had exactly the revision asked for/,
  );
  assertViolation(
    [
      ok("a", write("a"), 0, 1, { rev: 5 }),
      ok("b", deleteIf(5), 2, 3, { precondition: true, currentRev: 6 }),
    ],
    /another revision than the key had/,
  );
  assertViolation(
    [ok("b", putIfAbsent("b"), 2, 3, PRECONDITION)],
    /absent, meeting the condition/,
  );
});

Deno.test("a precondition failure on the revision an unknown write turns out to have had fails", () => {
  // The failed putIfAbsent shows that the unknown write took effect before it; the cas on
  // rev 7 then failed, yet the key is later read at rev 7 with no write in between.
  assertViolation(
    [
      unknown("a", write("b"), 0),
      ok("b", putIfAbsent("c"), 5, 6, PRECONDITION),
      ok("b", cas(7, "d"), 7, 8, PRECONDITION),
      ok("b", read, 9, 10, { value: "b", rev: 7 }),
    ],
    /read → "b" @ rev 7.*cannot be linearized/,
  );
  // Without the cas it is fine: the unknown write got rev 7.
  assertLinearizable([
    unknown("a", write("b"), 0),
    ok("b", putIfAbsent("c"), 5, 6, PRECONDITION),
    ok("b", read, 9, 10, { value: "b", rev: 7 }),
  ]);
});

Deno.test("a read of a value never written fails, and says so", () => {
  assertViolation(
    [
      ok("a", write("a"), 0, 1, { rev: 1 }),
      failed("a", write("ghost"), 2, 3), // definitely not applied
      ok("b", read, 4, 5, { value: "ghost", rev: 2 }),
    ],
    /found "ghost", which no write of this key wrote/,
  );
});

Deno.test("a read of a value with another revision than its write got fails", () => {
  assertViolation(
    [
      ok("a", write("a"), 0, 1, { rev: 3 }),
      ok("b", read, 2, 3, { value: "a", rev: 4 }),
    ],
    /another revision than its write got/,
  );
});

Deno.test("delete existed=false while the key was surely present fails", () => {
  assertViolation(
    [
      ok("a", write("a"), 0, 1, { rev: 3 }),
      ok("b", del, 2, 3, { existed: false }),
    ],
    /says the key was absent, but it existed/,
  );
});

Deno.test("an unknown write cannot explain a read that ended before it was invoked", () => {
  assertViolation(
    [
      ok("a", read, 0, 1, { value: "late", rev: 5 }),
      unknown("b", write("late"), 2),
    ],
    /cannot be linearized/,
  );
});

Deno.test("a violation's excerpt shows the stuck op, the ops before it and its concurrent ops", () => {
  const r = checkHistory([
    ok("a", write("a"), 0, 1, { rev: 1 }),
    ok("a", write("b"), 2, 3, { rev: 2 }),
    ok("c", cas(7, "c"), 4, 20, { rev: 9 }), // can never go: no rev 7
    ok("b", read, 5, 6, { value: "a", rev: 1 }),
  ]);
  assert.equal(r.violations.length, 1);
  const v = r.violations[0];
  assert.deepEqual(
    v.ops.map((o) => [o.index, o.role]),
    [[0, "linearized"], [1, "linearized"], [2, "pending"], [3, "stuck"]],
  );
  assert.equal(v.linearized, 2);
  const text = formatViolation(v);
  console.log(text);
  assert.match(text, /^key "k": b read → "a" @ rev 1 \[5\.0 \.\. 6\.0 ms\] cannot be linearized/);
  assert.match(text, /nor in any order with the 1 ops concurrent with it/);
  assert.match(text, /#2 pending .*cas\(ifRev 7, "c"\).*revision was not ifRev/);
  assert.match(text, /state after the longest partial linearization \(2 ops\): "b" @ rev 2/);
});

Deno.test("a key whose search exceeds its budget is undecided, neither passed nor failed", () => {
  const history = simulate({ seed: 7, keys: 1, processes: 8, opsPerProcess: 40 });
  assert.ok(checkHistory(history).ok);
  const r = checkHistory(history, { maxStatesPerKey: 10 });
  assert.equal(r.ok, false);
  assert.deepEqual(r.violations, []);
  assert.equal(r.undecided.length, 1);
  assert.equal(r.undecided[0].key, "k0");
  assert.match(r.undecided[0].reason, /no verdict within 10 explored configurations/);
});

Deno.test("malformed entries are rejected, not judged", () => {
  const bad: unknown[] = [
    { process: "a", key: "k", op: { f: "read" }, invokeMs: 0, endMs: 1, outcome: "ok" },
    { process: "a", key: "k", op: { f: "cas", value: "v" }, invokeMs: 0, endMs: 1, outcome: "ok" },
    {
      process: "a",
      key: "k",
      op: { f: "write", value: "v" },
      invokeMs: 2,
      endMs: 1,
      outcome: "ok",
    },
    { ...ok("a", write("v"), 0, 1), result: PRECONDITION },
    { ...ok("a", write("v"), 0, 1), outcome: "maybe" },
    { ...ok("a", write("v"), 0, 1), result: { rev: 0 } },
  ];
  for (const e of bad) {
    assert.throws(() => checkHistory([e as HistoryEntry]), TypeError, JSON.stringify(e));
  }
});

// --- a simulated linearizable register ---------------------------------------------------

interface SimOptions {
  seed: number;
  keys: number;
  processes: number;
  opsPerProcess: number;
  /** Share of calls whose outcome the client never learns (default 0.03). */
  unknownRate?: number;
  /** Share of those that never take effect (default 0.5). */
  neverRate?: number;
  /** Share of calls that definitely fail (default 0.02). */
  failRate?: number;
}

interface SimEvent {
  time: number;
  run: (time: number) => void;
}

/**
 * Clients of one linearizable register: each call takes effect at one random instant
 * between its invocation and its answer (an unknown one possibly much later, or never),
 * with revisions from one counter shared by all keys, as a koi cluster's log index is.
 */
function simulate(o: SimOptions): HistoryEntry[] {
  const prng = new Prng(o.seed);
  const rnd = () => prng.next();
  const unknownRate = o.unknownRate ?? 0.03;
  const neverRate = o.neverRate ?? 0.5;
  const failRate = o.failRate ?? 0.02;
  const store = new Map<string, { value: string; rev: number }>();
  let rev = 0;
  const history: HistoryEntry[] = [];
  // A time-ordered queue (FIFO at equal times); it stays short: a few events per client.
  const queue: SimEvent[] = [];
  const at = (time: number, run: (time: number) => void) => {
    let i = queue.length;
    while (i > 0 && queue[i - 1].time > time) i--;
    queue.splice(i, 0, { time, run });
  };
  const nextRev = () => (rev += 1 + Math.floor(rnd() * 3));
  const apply = (key: string, op: Op): OpResult => {
    const cur = store.get(key);
    const failure = () => ({
      precondition: true as const,
      ...(rnd() < 0.5 ? { currentRev: cur?.rev ?? null } : {}),
    });
    switch (op.f) {
      case "read":
        return cur === undefined ? null : { ...cur };
      case "write":
      case "putIfAbsent":
      case "cas": {
        if (op.f === "putIfAbsent" && cur !== undefined) return failure();
        if (op.f === "cas" && cur?.rev !== op.ifRev) return failure();
        const r = nextRev();
        store.set(key, { value: op.value, rev: r });
        return { rev: r };
      }
      case "delete":
      case "deleteIf": {
        if (op.f === "deleteIf" && cur?.rev !== op.ifRev) return failure();
        const r = nextRev();
        store.delete(key);
        return rnd() < 0.5 ? { rev: r, existed: cur !== undefined } : {};
      }
    }
  };
  for (let p = 0; p < o.processes; p++) {
    const process = `p${p}`;
    const seen = new Map<string, number>();
    let left = o.opsPerProcess;
    const invoke = (t: number) => {
      const key = `k${Math.floor(rnd() * o.keys)}`;
      const value = `${process}.${left}`;
      const known = seen.get(key) ?? store.get(key)?.rev ?? 1;
      const guess = rnd() < 0.5 ? known : (store.get(key)?.rev ?? known);
      const x = rnd();
      const op: Op = x < 0.4
        ? read
        : x < 0.6
        ? write(value)
        : x < 0.75
        ? cas(guess, value)
        : x < 0.8
        ? putIfAbsent(value)
        : x < 0.9
        ? del
        : deleteIf(guess);
      const latency = rnd() < 0.05 ? 5 + rnd() * 30 : 0.2 + rnd() * 3;
      const end = t + latency;
      const fate = rnd();
      const outcome = fate < unknownRate
        ? "unknown"
        : fate < unknownRate + failRate
        ? "fail"
        : "ok";
      const entry: { -readonly [K in keyof HistoryEntry]: HistoryEntry[K] } = {
        process,
        key,
        op,
        invokeMs: t,
        endMs: end,
        outcome,
      };
      history.push(entry);
      if (outcome === "ok") {
        at(t + rnd() * latency, () => {
          entry.result = apply(key, op);
          const r = entry.result as { rev?: number } | null;
          if (r?.rev !== undefined) seen.set(key, r.rev);
        });
      } else if (outcome === "unknown" && rnd() >= neverRate) {
        // Took effect, maybe long after the client gave up (a retry still in a queue).
        at(t + rnd() * latency * (rnd() < 0.3 ? 20 : 1), () => apply(key, op));
      }
      if (--left > 0) at(end + rnd() * 0.5, invoke);
    };
    at(rnd() * 2, invoke);
  }
  for (let e = queue.shift(); e !== undefined; e = queue.shift()) e.run(e.time);
  return history;
}

// --- randomized and performance tests ---------------------------------------------------

const simOptions = fc.record({
  seed: fc.integer(),
  keys: fc.integer({ min: 1, max: 3 }),
  processes: fc.integer({ min: 1, max: 8 }),
  opsPerProcess: fc.integer({ min: 1, max: 40 }),
  unknownRate: fc.double({ min: 0, max: 0.25, noNaN: true }),
  neverRate: fc.double({ min: 0, max: 1, noNaN: true }),
  failRate: fc.double({ min: 0, max: 0.1, noNaN: true }),
});

Deno.test("property: every history of a simulated linearizable register passes", () => {
  fc.assert(
    fc.property(simOptions, (o) => {
      const r = checkHistory(simulate(o));
      assert.deepEqual(r.violations.map(formatViolation), []);
      assert.deepEqual(r.undecided, []);
    }),
    { numRuns: 300 },
  );
});

Deno.test("property: one read made impossible turns a valid simulated history into a violation", () => {
  fc.assert(
    fc.property(simOptions, fc.nat(), fc.nat(), fc.boolean(), (o, pickRead, pickWrite, ghost) => {
      const history = simulate(o);
      const reads = history.flatMap((e, i) => e.op.f === "read" && e.outcome === "ok" ? [i] : []);
      if (reads.length === 0) return;
      const target = history[reads[pickRead % reads.length]];
      const mutated = [...history];
      let value = "ghost"; // never written at all
      const rev = 1_000_000;
      if (!ghost) {
        // The value of a write invoked strictly after the read completed: the read cannot
        // have seen it. Without one, add one.
        const later = history.filter((e) =>
          e.key === target.key && "value" in e.op && e.invokeMs > target.endMs
        );
        if (later.length > 0) {
          const w = later[pickWrite % later.length];
          value = (w.op as { value: string }).value;
        } else {
          value = "late";
          mutated.push(ok("late", write(value), target.endMs + 1, target.endMs + 2, { rev }));
        }
      }
      mutated[mutated.indexOf(target)] = { ...target, result: { value, rev } };
      const r = checkHistory(mutated);
      assert.equal(r.ok, false);
      assert.deepEqual(r.undecided, []);
      assert.deepEqual(r.violations.map((v) => v.key), [target.key]);
    }),
    { numRuns: 300 },
  );
});

Deno.test("performance: 5 keys x 2,000 ops from 10 clients with unknown outcomes check quickly", () => {
  const history = simulate({ seed: 42, keys: 5, processes: 10, opsPerProcess: 1000 });
  const unknowns = history.filter((e) => e.outcome === "unknown").length;
  const start = performance.now();
  const r = checkHistory(history);
  const ms = performance.now() - start;
  console.log(
    `checked ${r.ops} ops (${unknowns} unknown) on ${r.keys} keys in ${ms.toFixed(0)} ms, ` +
      `${r.explored} configurations explored`,
  );
  assert.ok(r.ok, r.violations.map(formatViolation).join("\n"));
  assert.equal(r.keys, 5);
  assert.equal(r.ops, 10_000);
  assert.ok(ms < 20_000, `took ${ms} ms`);
});

// --- an exhaustive oracle for tiny histories --------------------------------------------

/**
 * Linearizability by brute force, written independently of the checker: every order of
 * the ops (unknown ones included or not) that respects real time, with every concrete
 * revision for mutations whose revision is not known. Exponential: tiny histories only.
 */
function bruteForce(history: HistoryEntry[]): boolean {
  const ops = history.filter((e) =>
    e.outcome === "ok" || (e.outcome === "unknown" && e.op.f !== "read")
  );
  const end = (e: HistoryEntry) => e.outcome === "unknown" ? Infinity : e.endMs;
  let maxRev = 0;
  for (const e of ops) {
    const r = e.result as { rev?: number; currentRev?: number | null } | null | undefined;
    maxRev = Math.max(maxRev, r?.rev ?? 0, r?.currentRev ?? 0, "ifRev" in e.op ? e.op.ifRev : 0);
  }
  const revLimit = maxRev + ops.length + 1;
  type Concrete = { value: string | null; rev: number };
  // The states an op can lead to from `s` (several when its revision is not known).
  const after = (s: Concrete, e: HistoryEntry): Concrete[] => {
    const op = e.op;
    const r = e.outcome === "ok" ? e.result : undefined;
    const present = s.value !== null;
    const mutate = (value: string | null, known: number | undefined, above: number) => {
      const out: Concrete[] = [];
      for (let rev = above + 1; rev <= revLimit; rev++) {
        if (known === undefined || known === rev) out.push({ value, rev });
      }
      return out;
    };
    if (r !== undefined && r !== null && "precondition" in r) {
      const c = r.currentRev;
      if (c === null && present) return [];
      if (typeof c === "number" && (!present || s.rev !== c)) return [];
      if (op.f === "putIfAbsent") return present ? [s] : [];
      const ifRev = (op as { ifRev: number }).ifRev;
      return present && s.rev === ifRev ? [] : [s];
    }
    const res = r as { value?: string; rev?: number; existed?: boolean } | null | undefined;
    switch (op.f) {
      case "read":
        if (res === null) return present ? [] : [s];
        return present && s.value === res!.value && s.rev === res!.rev ? [s] : [];
      case "write":
        return mutate(op.value, res?.rev, s.rev);
      case "putIfAbsent":
        return present ? [] : mutate(op.value, res?.rev, s.rev);
      case "cas":
        return present && s.rev === op.ifRev ? mutate(op.value, res?.rev, s.rev) : [];
      case "delete":
        if (res?.existed !== undefined && res.existed !== present) return [];
        return mutate(null, res?.rev, s.rev);
      case "deleteIf":
        if (!present || s.rev !== op.ifRev || res?.existed === false) return [];
        return mutate(null, res?.rev, s.rev);
    }
  };
  const placed = new Array<boolean>(ops.length).fill(false);
  const search = (s: Concrete): boolean => {
    if (ops.every((e, i) => placed[i] || e.outcome === "unknown")) return true;
    for (let i = 0; i < ops.length; i++) {
      if (placed[i]) continue;
      // Every op that returned before this one was invoked must already be placed.
      if (ops.some((p, j) => !placed[j] && end(p) < ops[i].invokeMs)) continue;
      placed[i] = true;
      for (const next of after(s, ops[i])) {
        if (search(next)) {
          placed[i] = false;
          return true;
        }
      }
      placed[i] = false;
    }
    return false;
  };
  return search({ value: null, rev: 0 });
}

const tinyEntry: fc.Arbitrary<HistoryEntry> = fc.record({
  process: fc.constantFrom("a", "b", "c"),
  key: fc.constant("k"),
  op: fc.oneof(
    fc.constant(read),
    fc.constant(del),
    fc.constantFrom("x", "y").map(write),
    fc.constantFrom("x", "y").map(putIfAbsent),
    fc.tuple(fc.integer({ min: 1, max: 4 }), fc.constantFrom("x", "y")).map(([r, v]) => cas(r, v)),
    fc.integer({ min: 1, max: 4 }).map(deleteIf),
  ),
  invokeMs: fc.integer({ min: 0, max: 8 }),
  endMs: fc.integer({ min: 0, max: 4 }),
  outcome: fc.constantFrom("ok", "ok", "ok", "unknown", "fail"),
  result: fc.oneof(
    fc.constant(null),
    fc.record({ value: fc.constantFrom("x", "y"), rev: fc.integer({ min: 1, max: 4 }) }),
    fc.record({ rev: fc.integer({ min: 1, max: 4 }) }, { requiredKeys: [] }),
    fc.record({ rev: fc.integer({ min: 1, max: 4 }), existed: fc.boolean() }, {
      requiredKeys: [],
    }),
    fc.record({
      precondition: fc.constant(true as const),
      currentRev: fc.oneof(fc.constant(null), fc.integer({ min: 1, max: 4 })),
    }, { requiredKeys: ["precondition"] }),
  ),
}).map((e) => ({ ...e, endMs: e.invokeMs + e.endMs }))
  // Keep only well-formed entries: the checker rejects the others (tested above).
  .filter((e) => {
    try {
      checkHistory([e]);
      return true;
    } catch {
      return false;
    }
  });

Deno.test("property: on tiny histories the checker agrees with an exhaustive search", () => {
  let valid = 0;
  let runs = 0;
  fc.assert(
    fc.property(fc.array(tinyEntry, { minLength: 1, maxLength: 8 }), (history) => {
      const expected = bruteForce(history);
      const r = checkHistory(history);
      assert.deepEqual(r.undecided, []);
      assert.equal(r.ok, expected, r.violations.map(formatViolation).join("\n"));
      runs++;
      if (expected) valid++;
    }),
    { numRuns: 4000 },
  );
  // Both verdicts must be exercised, or the agreement means little.
  console.log(`${valid} valid of ${runs}`);
  assert.ok(valid > runs / 10 && valid < runs - runs / 10, `${valid} valid of ${runs}`);
});

Deno.test("property: on small simulated histories, mutated or not, the checker agrees with an exhaustive search", () => {
  let valid = 0;
  let runs = 0;
  fc.assert(
    fc.property(
      fc.integer(),
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 2, max: 4 }),
      fc.nat(),
      fc.integer({ min: 1, max: 4 }),
      (seed, processes, opsPerProcess, pick, newRev) => {
        const history = simulate({
          seed,
          keys: 1,
          processes,
          opsPerProcess,
          unknownRate: 0.3,
          failRate: 0.1,
        });
        assert.ok(bruteForce(history), "the simulator is linearizable");
        // Perturb one revision in one result: sometimes still valid, often not.
        const i = pick % history.length;
        const e = history[i];
        const r = e.result as { rev?: number; currentRev?: number | null } | null | undefined;
        if (e.outcome === "ok" && r !== null && r !== undefined) {
          const field = "precondition" in r ? "currentRev" : "rev";
          history[i] = { ...e, result: { ...r, [field]: (r[field] ?? 0) + newRev } };
        }
        const expected = bruteForce(history);
        assert.equal(checkHistory(history).ok, expected);
        runs++;
        if (expected) valid++;
      },
    ),
    { numRuns: 1000 },
  );
  console.log(`${valid} valid of ${runs}`);
  assert.ok(valid > runs / 10 && valid < runs - runs / 10, `${valid} valid of ${runs}`);
});

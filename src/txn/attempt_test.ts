import assert from "node:assert/strict";
import { TxnAttempt, TxnResolution, type TxnSend, type TxnShare } from "./_attempt.ts";
import { TxnParticipant } from "./_participant.ts";
import { acct, TEST_SHAPE, type TestMutation, TestStore } from "./_test_store_test_util.ts";
import type { TxnAnswer } from "./_types.ts";

/** Two clusters, each a participant over its own store, with a log clock. */
function world() {
  const stores = new Map([["A", new TestStore()], ["B", new TestStore()]]);
  stores.get("A")!.apply([{ key: acct(1), op: "set", n: 100 }], 1);
  stores.get("B")!.apply([{ key: acct(2), op: "set", n: 100 }], 1);
  const parts = new Map(
    ["A", "B"].map((c) => [c, new TxnParticipant<TestMutation>(c, TEST_SHAPE, (vs) => vs)]),
  );
  let clock = 10;
  const apply = (s: TxnSend<TestMutation>): TxnAnswer =>
    parts.get(s.to)!.apply(s.cmd, ++clock, stores.get(s.to)!);
  return { stores, parts, apply, tick: (to: number) => (clock = to) };
}

function transfer(amount: number): Map<string, TxnShare<TestMutation>> {
  return new Map([
    ["A", {
      checks: [{ key: acct(1), vs: 1, index: 0 }],
      mutations: [{ mutation: { key: acct(1), op: "add", n: -amount }, index: 0 }],
    }],
    ["B", {
      checks: [{ key: acct(2), vs: 1, index: 1 }],
      mutations: [{ mutation: { key: acct(2), op: "add", n: amount }, index: 1 }],
    }],
  ]);
}

/** Delivers every send at once, in order, until the attempt has nothing left to send. */
function runAll(
  attempt: {
    onAnswer(
      from: string,
      cmd: TxnSend<TestMutation>["cmd"],
      a: TxnAnswer,
    ): TxnSend<TestMutation>[];
  },
  first: TxnSend<TestMutation>[],
  apply: (s: TxnSend<TestMutation>) => TxnAnswer,
): TxnSend<TestMutation>[] {
  const log: TxnSend<TestMutation>[] = [];
  let queue = first;
  while (queue.length > 0) {
    const next: TxnSend<TestMutation>[] = [];
    for (const s of queue) {
      log.push(s);
      next.push(...attempt.onAnswer(s.to, s.cmd, apply(s)));
    }
    queue = next;
  }
  return log;
}

Deno.test("attempt: prepare everywhere, decide at the primary above every prepare, apply at the secondary, forget", () => {
  const w = world();
  const attempt = new TxnAttempt("t1", transfer(30), "A", 1000);
  const log = runAll(attempt, attempt.start(), w.apply);
  assert.deepStrictEqual(
    log.map((s) => `${s.cmd.type}@${s.to}`),
    ["prepare@A", "prepare@B", "commit@A", "commit@B", "forget@A"],
  );
  assert.equal(attempt.result?.kind, "committed");
  assert.ok(attempt.finished);
  const vs = attempt.vs;
  assert.ok(vs > 12, "above both prepares");
  assert.equal(w.stores.get("A")!.value(acct(1)), 70);
  assert.equal(w.stores.get("B")!.value(acct(2)), 130);
  assert.equal(w.stores.get("A")!.vsOf(acct(1)), vs);
  assert.equal(w.stores.get("B")!.vsOf(acct(2)), vs, "one versionstamp for the whole commit");
  assert.equal(w.parts.get("A")!.lockedKeys + w.parts.get("B")!.lockedKeys, 0);
});

Deno.test("attempt: a failed check aborts everywhere and names the transaction's check", () => {
  const w = world();
  const shares = transfer(10);
  const b = shares.get("B")!;
  shares.set("B", { ...b, checks: [{ key: acct(2), vs: 99, index: 1 }] });
  const attempt = new TxnAttempt("t1", shares, "A", 1000);
  runAll(attempt, attempt.start(), w.apply);
  assert.deepStrictEqual(attempt.result, { kind: "check_failed", check: 1 });
  assert.ok(attempt.finished);
  assert.equal(w.stores.get("A")!.value(acct(1)), 100);
  assert.equal(w.parts.get("A")!.lockedKeys, 0, "A's prepare was released");
});

Deno.test("attempt: a lock held by another attempt ends it as locked, with the holder", () => {
  const w = world();
  const other = new TxnAttempt("t0", transfer(1), "B", 500);
  for (const s of other.start()) w.apply(s); // prepared everywhere, never decided
  const attempt = new TxnAttempt("t1", transfer(10), "A", 1000);
  runAll(attempt, attempt.start(), w.apply);
  const r = attempt.result;
  assert.ok(r?.kind === "locked");
  assert.equal(r.lock.txn, "t0");
  assert.equal(r.lock.primary, "B");
  // Past t0's deadline, a resolution aborts it at its primary, then where the lock was met.
  w.tick(600);
  const res = new TxnResolution<TestMutation>(r.lock, r.cluster);
  runAll(res, res.start(), w.apply);
  assert.equal(res.outcome, "aborted");
  assert.ok(res.finished);
  assert.equal(w.parts.get("A")!.lockedKeys, 0);
  assert.equal(w.parts.get("B")!.outcome("t0")?.outcome.state, "aborted");
});

Deno.test("attempt: a resolution rolls a decided commit forward at the secondary", () => {
  const w = world();
  const attempt = new TxnAttempt("t1", transfer(5), "A", 1000);
  const sends = attempt.start();
  let decide: TxnSend<TestMutation>[] = [];
  for (const s of sends) decide = decide.concat(attempt.onAnswer(s.to, s.cmd, w.apply(s)));
  const toSecondary = attempt.onAnswer("A", decide[0].cmd, w.apply(decide[0]));
  assert.equal(attempt.result?.kind, "committed");
  // The coordinator dies before the secondary heard: B stays locked.
  assert.equal(toSecondary[0].to, "B");
  const lock = w.parts.get("B")!.blocker([acct(2)])!;
  const res = new TxnResolution<TestMutation>(lock, "B");
  runAll(res, res.start(), w.apply);
  assert.equal(res.outcome, "committed");
  assert.equal(w.stores.get("B")!.value(acct(2)), 105);
  assert.equal(w.stores.get("B")!.vsOf(acct(2)), attempt.vs);
});

Deno.test("attempt: a resolver that aborts first makes the decision an abort (retry)", () => {
  const w = world();
  const attempt = new TxnAttempt("t1", transfer(5), "A", 1000);
  let decide: TxnSend<TestMutation>[] = [];
  for (const s of attempt.start()) {
    decide = decide.concat(attempt.onAnswer(s.to, s.cmd, w.apply(s)));
  }
  w.apply({ to: "A", cmd: { type: "abort", txn: "t1", deadline: 1000 } }); // a resolver
  runAll(attempt, decide, w.apply);
  assert.deepStrictEqual(attempt.result, { kind: "retry", reason: "aborted" });
  assert.equal(w.parts.get("B")!.lockedKeys, 0);
  assert.equal(w.stores.get("B")!.value(acct(2)), 100);
});

Deno.test("attempt: no forget unless every secondary confirmed (a resolver needs the record)", () => {
  // Regression: the coordinator forgot the record after giving up on an unreachable
  // secondary; past the deadline the record went, and a resolver then aborted the secondary
  // of a committed transaction (found by the multi-cluster simulation).
  const w = world();
  const attempt = new TxnAttempt("t1", transfer(5), "A", 1000);
  let decide: TxnSend<TestMutation>[] = [];
  for (const s of attempt.start()) {
    decide = decide.concat(attempt.onAnswer(s.to, s.cmd, w.apply(s)));
  }
  const toB = attempt.onAnswer("A", decide[0].cmd, w.apply(decide[0]));
  assert.deepStrictEqual(attempt.onFailure("B", toB[0].cmd, false), toB, "resent while it may");
  assert.deepStrictEqual(attempt.onFailure("B", toB[0].cmd, true), [], "no forget");
  assert.ok(attempt.finished);
  w.tick(5000); // far past the deadline: the record must still be there
  w.apply({ to: "A", cmd: { type: "forget", txn: "other" } });
  const lock = w.parts.get("B")!.blocker([acct(2)])!;
  const res = new TxnResolution<TestMutation>(lock, "B");
  runAll(res, res.start(), w.apply);
  assert.equal(res.outcome, "committed");
  assert.equal(w.stores.get("B")!.value(acct(2)), 105);
});

Deno.test("attempt: without an answer from the primary past the deadline, the outcome is unknown", () => {
  const w = world();
  const attempt = new TxnAttempt("t1", transfer(5), "A", 1000);
  let decide: TxnSend<TestMutation>[] = [];
  for (const s of attempt.start()) {
    decide = decide.concat(attempt.onAnswer(s.to, s.cmd, w.apply(s)));
  }
  assert.deepStrictEqual(attempt.onFailure("A", decide[0].cmd, true), []);
  assert.deepStrictEqual(attempt.result, { kind: "unknown" });
  // Late and foreign answers change nothing.
  assert.deepStrictEqual(attempt.onAnswer("A", decide[0].cmd, { state: "committed", vs: 5 }), []);
  assert.deepStrictEqual(attempt.result, { kind: "unknown" });
});

Deno.test("attempt: the primary must be a participant", () => {
  assert.throws(() => new TxnAttempt("t1", transfer(1), "C", 1), RangeError);
});

Deno.test("attempt: a prepare refused as malformed ends the attempt as invalid, aborting everywhere", () => {
  const w = world();
  const attempt = new TxnAttempt("t1", transfer(5), "A", 1000);
  const [toA, toB] = attempt.start();
  w.apply(toA);
  const aborts = attempt.onRejected("B", toB.cmd, "Mutation 0's key is empty");
  assert.deepStrictEqual(aborts.map((s) => `${s.cmd.type}@${s.to}`), ["abort@A", "abort@B"]);
  runAll(attempt, aborts, w.apply);
  assert.deepStrictEqual(attempt.result, {
    kind: "invalid",
    mutation: -1,
    message: "Mutation 0's key is empty",
    cluster: "B",
  });
  assert.equal(w.parts.get("A")!.lockedKeys, 0);
});

import assert from "node:assert/strict";
import { TxnParticipant } from "./_participant.ts";
import { acct, TEST_SHAPE, type TestMutation, TestStore } from "./_test_store_test_util.ts";
import type { TxnLimits, TxnPrepare } from "./_types.ts";
import { DEFAULT_TXN_LIMITS } from "./_types.ts";

/** Log time of a versionstamp in these tests: the versionstamp itself. */
const timeOf = (vs: number) => vs;

function setup(self = "A", limits: TxnLimits = DEFAULT_TXN_LIMITS) {
  const store = new TestStore();
  store.apply([{ key: acct(1), op: "set", n: 100 }, { key: acct(2), op: "set", n: 100 }], 1);
  return { store, p: new TxnParticipant<TestMutation>(self, TEST_SHAPE, timeOf, limits) };
}

function prepare(
  txn: string,
  mutations: TestMutation[],
  opts: { primary?: string; checks?: TxnPrepare<TestMutation>["checks"]; deadline?: number } = {},
): TxnPrepare<TestMutation> {
  return {
    type: "prepare",
    txn,
    primary: opts.primary ?? "A",
    participants: ["A", "B"],
    checks: opts.checks ?? [],
    mutations,
    deadline: opts.deadline ?? 1000,
  };
}

Deno.test("participant: a prepare locks its keys; the primary's commit applies at its own versionstamp and releases them", () => {
  const { store, p } = setup();
  const vote = p.apply(prepare("t1", [{ key: acct(1), op: "add", n: -10 }]), 10, store);
  assert.deepStrictEqual(vote, { vote: "yes", vs: 10 });
  assert.deepStrictEqual(p.blocker([acct(1)])?.txn, "t1");
  assert.deepStrictEqual(p.blocker([], [acct(1)])?.write, true, "a write lock blocks readers too");
  assert.deepStrictEqual(p.blocker([acct(2)]), undefined);
  assert.deepStrictEqual(store.value(acct(1)), 100, "nothing applies before the decision");
  assert.deepStrictEqual(p.apply({ type: "commit", txn: "t1", after: 10 }, 12, store), {
    state: "committed",
    vs: 12,
  });
  assert.deepStrictEqual(store.value(acct(1)), 90);
  assert.deepStrictEqual(store.vsOf(acct(1)), 12);
  assert.deepStrictEqual(p.lockedKeys, 0);
  assert.deepStrictEqual(p.intents, 0);
  // The decision is idempotent and final.
  assert.deepStrictEqual(p.apply({ type: "commit", txn: "t1", after: 10 }, 13, store), {
    state: "committed",
    vs: 12,
  });
  assert.deepStrictEqual(p.apply({ type: "abort", txn: "t1", deadline: 1000 }, 14, store), {
    state: "committed",
    vs: 12,
  });
  assert.deepStrictEqual(store.value(acct(1)), 90, "applied once");
});

Deno.test("participant: a secondary applies the decided versionstamp, not its own", () => {
  const { store, p } = setup("B");
  p.apply(prepare("t1", [{ key: acct(2), op: "add", n: 10 }]), 10, store);
  // A decision (`after`) sent to a secondary is not this protocol's: nothing applies.
  assert.deepStrictEqual(p.apply({ type: "commit", txn: "t1", after: 10 }, 11, store), {
    state: "unknown",
  });
  assert.deepStrictEqual(store.value(acct(2)), 100);
  assert.deepStrictEqual(p.apply({ type: "commit", txn: "t1", vs: 50 }, 20, store), {
    state: "committed",
    vs: 50,
  });
  assert.deepStrictEqual(store.value(acct(2)), 110);
  assert.deepStrictEqual(store.vsOf(acct(2)), 50);
  assert.deepStrictEqual(p.apply({ type: "commit", txn: "t1", vs: 50 }, 21, store), {
    state: "committed",
    vs: 50,
  });
  assert.deepStrictEqual(store.value(acct(2)), 110, "a repeated commit applies nothing");
});

Deno.test("participant: conflicting prepares are refused with the holder; read locks share", () => {
  const { store, p } = setup();
  p.apply(prepare("t1", [], { checks: [{ key: acct(1), vs: 1 }] }), 10, store);
  assert.deepStrictEqual(p.blocker([], [acct(1)]), undefined, "a read lock does not block readers");
  assert.deepStrictEqual(p.blocker([acct(1)])?.write, false, "it blocks writers");
  assert.deepStrictEqual(
    p.apply(prepare("t2", [], { checks: [{ key: acct(1), vs: 1 }] }), 11, store),
    { vote: "yes", vs: 11 },
  );
  const v = p.apply(prepare("t3", [{ key: acct(1), op: "add", n: 1 }]), 12, store);
  assert.ok(v.vote === "no" && v.reason === "locked");
  assert.deepStrictEqual(v.lock.primary, "A");
  assert.deepStrictEqual(v.lock.deadline, 1000);
  assert.deepStrictEqual(p.intents, 2);
  p.apply({ type: "abort", txn: "t1", deadline: 1000 }, 13, store);
  assert.deepStrictEqual(p.blocker([acct(1)])?.txn, "t2");
  p.apply({ type: "abort", txn: "t2", deadline: 1000 }, 14, store);
  assert.deepStrictEqual(p.lockedKeys, 0);
});

Deno.test("participant: a failed check or an invalid mutation locks nothing", () => {
  const { store, p } = setup();
  assert.deepStrictEqual(
    p.apply(prepare("t1", [], { checks: [{ key: acct(1), vs: 7 }] }), 10, store),
    { vote: "no", reason: "refused", refusal: { code: "check_failed", check: 0 } },
  );
  const v = p.apply(prepare("t2", [{ key: acct(9), op: "add", n: 1 }]), 11, store);
  assert.ok(v.vote === "no" && v.reason === "refused" && v.refusal.code === "invalid");
  assert.deepStrictEqual(p.lockedKeys, 0);
  assert.deepStrictEqual(p.intents, 0);
});

Deno.test("participant: a prepare again answers the same vote; after an abort or past the deadline it is refused", () => {
  const { store, p } = setup();
  const cmd = prepare("t1", [{ key: acct(1), op: "add", n: 1 }], { deadline: 100 });
  assert.deepStrictEqual(p.apply(cmd, 10, store), { vote: "yes", vs: 10 });
  assert.deepStrictEqual(p.apply(cmd, 11, store), { vote: "yes", vs: 10 });
  assert.deepStrictEqual(p.lockedKeys, 1);
  p.apply({ type: "abort", txn: "t1", deadline: 100 }, 12, store);
  assert.deepStrictEqual(p.apply(cmd, 13, store), { vote: "no", reason: "finished" });
  assert.deepStrictEqual(p.apply(prepare("t2", [], { deadline: 100 }), 101, store), {
    vote: "no",
    reason: "expired",
  });
  // An abort that comes first (a resolver) makes the late prepare fail too.
  assert.deepStrictEqual(p.apply({ type: "abort", txn: "t3", deadline: 500 }, 102, store), {
    state: "aborted",
  });
  assert.deepStrictEqual(p.apply(prepare("t3", [], { deadline: 500 }), 103, store), {
    vote: "no",
    reason: "finished",
  });
});

Deno.test("participant: the primary decides only an abort past the deadline or at a versionstamp not above every prepare's", () => {
  const { store, p } = setup();
  p.apply(prepare("t1", [{ key: acct(1), op: "add", n: 1 }], { deadline: 100 }), 10, store);
  assert.deepStrictEqual(p.apply({ type: "commit", txn: "t1", after: 10 }, 101, store), {
    state: "aborted",
  });
  assert.deepStrictEqual(store.value(acct(1)), 100);
  p.apply(prepare("t2", [{ key: acct(1), op: "add", n: 1 }], { deadline: 1000 }), 110, store);
  assert.deepStrictEqual(p.apply({ type: "commit", txn: "t2", after: 120 }, 111, store), {
    state: "aborted",
  });
  assert.deepStrictEqual(p.lockedKeys, 0);
});

Deno.test("participant: outcomes go once their deadline passed, a primary's commit only once forgotten", () => {
  const { store, p } = setup();
  p.apply(prepare("t1", [{ key: acct(1), op: "add", n: 1 }], { deadline: 100 }), 10, store);
  p.apply({ type: "commit", txn: "t1", after: 10 }, 11, store);
  p.apply({ type: "abort", txn: "t2", deadline: 100 }, 12, store);
  assert.deepStrictEqual(p.outcomes, 2);
  p.apply({ type: "forget", txn: "nothing" }, 200, store);
  assert.deepStrictEqual(
    p.outcomes,
    1,
    "the abort went; the undisputed commit stays until forgotten",
  );
  assert.deepStrictEqual(p.outcome("t1")?.outcome, { state: "committed", vs: 11 });
  assert.deepStrictEqual(p.apply({ type: "forget", txn: "t1" }, 201, store), {
    state: "committed",
    vs: 11,
  });
  p.apply({ type: "forget", txn: "nothing" }, 202, store);
  assert.deepStrictEqual(p.outcomes, 0);
  assert.deepStrictEqual(p.apply({ type: "commit", txn: "t1", after: 10 }, 203, store), {
    state: "unknown",
  });
});

Deno.test("participant: beyond its limits a prepare answers busy", () => {
  const limits = { ...DEFAULT_TXN_LIMITS, intentsMax: 1, lockedKeysMax: 2 };
  const { store, p } = setup("A", limits);
  assert.deepStrictEqual(
    p.apply(prepare("t1", [{ key: acct(1), op: "add", n: 1 }]), 10, store).vote,
    "yes",
  );
  assert.deepStrictEqual(p.apply(prepare("t2", [{ key: acct(2), op: "add", n: 1 }]), 11, store), {
    vote: "no",
    reason: "busy",
  });
  const q = setup("A", { ...DEFAULT_TXN_LIMITS, lockedKeysMax: 1 });
  const two = [{ key: acct(1), op: "add", n: 1 }, { key: acct(2), op: "add", n: 1 }] as const;
  assert.deepStrictEqual(q.p.apply(prepare("t1", [...two]), 10, q.store), {
    vote: "no",
    reason: "busy",
  });
  const r = setup("A", { ...DEFAULT_TXN_LIMITS, intentBytesMax: 10 });
  assert.deepStrictEqual(r.p.apply(prepare("t1", [...two]), 10, r.store), {
    vote: "no",
    reason: "busy",
  });
});

Deno.test("participant: the exported state restores the locks, intents and outcomes", () => {
  const { store, p } = setup();
  p.apply(
    prepare("t1", [{ key: acct(1), op: "add", n: 1 }], { checks: [{ key: acct(2), vs: 1 }] }),
    10,
    store,
  );
  p.apply({ type: "abort", txn: "t2", deadline: 1000 }, 11, store);
  const copy = new TxnParticipant<TestMutation>("A", TEST_SHAPE, timeOf);
  copy.importState(structuredClone(p.exportState()));
  assert.deepStrictEqual(copy.blocker([acct(1)])?.txn, "t1");
  assert.deepStrictEqual(copy.blocker([acct(2)])?.write, false);
  assert.deepStrictEqual(copy.outcome("t2")?.outcome, { state: "aborted" });
  assert.deepStrictEqual(copy.apply({ type: "commit", txn: "t1", after: 10 }, 12, store), {
    state: "committed",
    vs: 12,
  });
  assert.deepStrictEqual(store.value(acct(1)), 101);
  assert.deepStrictEqual(copy.lockedKeys, 0);
});

Deno.test("participant: a primary's decisions not forgotten, past their deadline, for a janitor", () => {
  const { store, p } = setup();
  p.apply(prepare("t1", [{ key: acct(1), op: "add", n: 1 }], { deadline: 100 }), 10, store);
  p.apply({ type: "commit", txn: "t1", after: 10 }, 11, store);
  assert.deepStrictEqual(p.unforgotten(100, 10), [], "not before its deadline");
  assert.deepStrictEqual(p.unforgotten(101, 10), [{ txn: "t1", vs: 11, secondaries: ["B"] }]);
  // A drain of B waits while a decision names it (its intent is asked of it before forgetting).
  assert.deepStrictEqual(p.pending(), { decisions: 1, primaries: [], secondaries: ["B"] });
  p.apply({ type: "forget", txn: "t1" }, 12, store);
  assert.deepStrictEqual(p.unforgotten(101, 10), [], "forgotten");
  assert.deepStrictEqual(p.pending(), { decisions: 0, primaries: [], secondaries: [] });
  // A secondary's commits and aborts are never a janitor's.
  const q = setup("B");
  q.p.apply(prepare("t2", [{ key: acct(2), op: "add", n: 1 }], { deadline: 100 }), 10, q.store);
  q.p.apply({ type: "commit", txn: "t2", vs: 20 }, 21, q.store);
  assert.deepStrictEqual(q.p.unforgotten(1_000, 10), []);
});

Deno.test("participant: full of outcomes, the oldest abort marker goes; decisions it must keep never do", () => {
  const limits = { ...DEFAULT_TXN_LIMITS, outcomesMax: 3 };
  const { store, p } = setup("A", limits);
  p.apply(prepare("t1", [{ key: acct(1), op: "add", n: 1 }], { deadline: 100 }), 10, store);
  p.apply({ type: "commit", txn: "t1", after: 10 }, 11, store); // kept until forgotten
  for (let i = 0; i < 10; i++) {
    p.apply({ type: "abort", txn: `x${i}`, deadline: 100 }, 12 + i, store);
  }
  assert.equal(p.outcomes, 3);
  assert.equal(p.outcome("t1")?.outcome.state, "committed", "the decision stays");
  assert.equal(p.outcome("x9")?.outcome.state, "aborted", "the newest markers stay");
  assert.equal(p.dropped, 8);
  // Markers do not make prepares busy; decisions at the bound do.
  assert.equal(p.apply(prepare("t2", [{ key: acct(2), op: "add", n: 1 }]), 30, store).vote, "yes");
});

/** A read fence of `acct/1` alone, at its own primary A. */
function fencePrepare(txn: string): TxnPrepare<TestMutation> {
  return {
    type: "prepare",
    txn,
    primary: "A",
    participants: ["A"],
    checks: [],
    mutations: [],
    deadline: 1000,
    spans: [{ start: acct(1), end: acct(2) }],
  };
}

Deno.test("participant: a read fence keeps writers of its spans out until it is aborted, and survives a snapshot", () => {
  const { store, p } = setup();
  assert.deepStrictEqual(p.apply(fencePrepare("f1"), 10, store), { vote: "yes", vs: 10 });
  assert.equal(p.fences, 1);
  // A plain write into the span waits; one outside does not; reads are not held back.
  assert.deepStrictEqual(p.blocker([acct(1)]), {
    key: acct(1),
    txn: "f1",
    primary: "A",
    deadline: 1000,
    write: false,
  });
  assert.equal(p.blocker([acct(2)]), undefined);
  assert.equal(p.blocker([], [acct(1)]), undefined);
  assert.equal(p.writeLockIn(acct(0), acct(9)), undefined);
  // An attempt writing into it is refused (locked); one outside prepares.
  const into = p.apply(prepare("t1", [{ key: acct(1), op: "add", n: 1 }]), 11, store);
  assert.equal("vote" in into && into.vote === "no" && into.reason, "locked");
  assert.deepStrictEqual(p.apply(prepare("t2", [{ key: acct(2), op: "add", n: 1 }]), 12, store), {
    vote: "yes",
    vs: 12,
  });
  // A snapshot keeps it.
  const copy = new TxnParticipant<TestMutation>("A", TEST_SHAPE, timeOf);
  copy.importState(p.exportState());
  assert.equal(copy.blocker([acct(1)])?.txn, "f1");
  // Released by its abort (at itself: its own primary).
  assert.deepStrictEqual(p.apply({ type: "abort", txn: "f1", deadline: 1000 }, 13, store), {
    state: "aborted",
  });
  assert.equal(p.fences, 0);
  assert.equal(p.blocker([acct(1)]), undefined);
  assert.equal(store.value(acct(1)), 100, "a fence never changes anything");
});

Deno.test("participant: a fence that is not its own primary, or carries checks or mutations, is refused whole", () => {
  const { store, p } = setup();
  const base = fencePrepare("f");
  for (
    const bad of [
      { ...base, primary: "B" },
      { ...base, checks: [{ key: acct(1), vs: 0 }] },
      { ...base, mutations: [{ key: acct(1), op: "add" as const, n: 1 }] },
    ]
  ) {
    const vote = p.apply(bad, 10, store);
    assert.equal("vote" in vote && vote.vote, "no");
    assert.equal(p.fences, 0);
    assert.equal(p.intents, 0);
  }
});

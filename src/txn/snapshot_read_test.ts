import assert from "node:assert/strict";
import { keyString } from "./_keys.ts";
import { TxnParticipant } from "./_participant.ts";
import {
  type MergeRange,
  serveSnapshotCheck,
  serveSnapshotRead,
  SnapshotRead,
  type SnapshotStep,
} from "./_snapshot_read.ts";
import { acct, TEST_SHAPE, type TestMutation, TestStore } from "./_test_store_test_util.ts";
import { TouchLog } from "./_touch_log.ts";

interface E {
  readonly key: Uint8Array;
  readonly n: number;
}

const merge: MergeRange<E> = (range, parts) =>
  parts.flatMap((p) => [...p.entries]).sort((a, b) =>
    (keyString(a.key) < keyString(b.key) ? -1 : 1) * (range.reverse ? -1 : 1)
  ).slice(0, range.limit);

const ALL = {
  start: new TextEncoder().encode("acct/"),
  end: new TextEncoder().encode("acct0"),
  limit: 10,
  reverse: false,
};

Deno.test("touch log: changes after an index in a range; unknown before its floor; bounded", () => {
  const t = new TouchLog(5, 3);
  t.record(6, [acct(1)]);
  t.record(7, [acct(2)]);
  assert.equal(t.changedSince(6, acct(2), acct(3)), true);
  assert.equal(t.changedSince(7, acct(2), acct(3)), false);
  assert.equal(t.changedSince(6, acct(1), acct(2)), false, "acct/1 changed at 6, not after");
  assert.equal(t.changedSince(4, acct(1), acct(2)), "unknown");
  t.record(8, [acct(3)]);
  t.record(9, [acct(4)]);
  assert.equal(t.floor, 6, "the oldest entry went");
  assert.equal(t.changedSince(5, acct(1), acct(9)), "unknown");
  t.reset(20);
  assert.equal(t.changedSince(19, acct(1), acct(9)), "unknown");
  assert.equal(t.changedSince(20, acct(1), acct(9)), false);
});

Deno.test("snapshot read: one cluster answers in one round", () => {
  const read = new SnapshotRead<E>([{ range: ALL, clusters: ["A"] }], merge);
  const steps = read.start();
  assert.deepStrictEqual(steps.map((s) => s.kind), ["read"]);
  assert.deepStrictEqual(read.onRead("A", { index: 3, entries: [[{ key: acct(1), n: 1 }]] }), []);
  assert.ok(read.finished);
  assert.deepStrictEqual(read.result, [[{ key: acct(1), n: 1 }]]);
});

Deno.test("snapshot read: several clusters are read, merged, then checked up to the answer's last key", () => {
  const limited = { ...ALL, limit: 2 };
  const read = new SnapshotRead<E>([{ range: limited, clusters: ["A", "B"] }], merge);
  read.start();
  read.onRead("A", { index: 3, entries: [[{ key: acct(1), n: 1 }, { key: acct(3), n: 3 }]] });
  const checks = read.onRead("B", { index: 7, entries: [[{ key: acct(2), n: 2 }]] });
  assert.deepStrictEqual(checks.map((s) => s.kind), ["check", "check"]);
  const a = checks.find((s) => s.kind === "check" && s.to === "A") as Extract<
    SnapshotStep,
    { kind: "check" }
  >;
  assert.equal(a.since, 3);
  assert.equal(keyString(a.spans[0].end), keyString(acct(2)) + "\0", "just past the last answer");
  assert.equal(read.result, undefined, "not before every check held");
  read.onCheck("A", { valid: true });
  read.onCheck("B", { valid: true });
  assert.deepStrictEqual(read.result, [[{ key: acct(1), n: 1 }, { key: acct(2), n: 2 }]]);
});

Deno.test("snapshot read: a change reads again; a lock asks to wait; rounds are bounded", () => {
  const read = new SnapshotRead<E>([{ range: ALL, clusters: ["A", "B"] }], merge, 2);
  read.start();
  read.onRead("A", { index: 1, entries: [[]] });
  read.onRead("B", { index: 1, entries: [[]] });
  const lock = { key: acct(1), txn: "t", primary: "A", deadline: 9, write: true };
  const again = read.onCheck("A", { valid: false, lock });
  assert.deepStrictEqual(again.map((s) => s.kind), ["lock", "read"]);
  assert.equal(read.rounds, 2);
  assert.deepStrictEqual(read.retry("A").map((s) => s.kind), ["read"]);
  read.onRead("A", { index: 2, entries: [[]] });
  read.onRead("B", { index: 2, entries: [[]] });
  assert.deepStrictEqual(read.onCheck("B", { valid: false }), []);
  assert.ok(read.finished && read.contended);
  assert.equal(read.result, undefined);
});

Deno.test("snapshot read: the serving side reports write locks and changes since the index read", () => {
  const store = new TestStore();
  const txns = new TxnParticipant<TestMutation>("A", TEST_SHAPE, (vs) => vs);
  const touched = new TouchLog(0);
  const read = (i: number) => serveSnapshotRead([ALL], i, txns, () => [{ key: acct(1), n: 1 }]);
  assert.deepStrictEqual(read(4), { index: 4, entries: [[{ key: acct(1), n: 1 }]] });
  assert.deepStrictEqual(serveSnapshotCheck([ALL], 4, txns, touched), { valid: true });
  touched.record(5, [acct(1)]);
  assert.deepStrictEqual(serveSnapshotCheck([ALL], 4, txns, touched), { valid: false });
  assert.deepStrictEqual(serveSnapshotCheck([ALL], 5, txns, touched), { valid: true });
  txns.apply(
    {
      type: "prepare",
      txn: "t",
      primary: "A",
      participants: ["A"],
      checks: [{ key: acct(2), vs: 0 }],
      mutations: [{ key: acct(3), op: "set", n: 1 }],
      deadline: 100,
    },
    6,
    store,
  );
  const part = read(6);
  assert.ok("lock" in part && keyString(part.lock.key) === keyString(acct(3)));
  const check = serveSnapshotCheck([ALL], 5, txns, touched);
  assert.ok(!check.valid && check.lock?.txn === "t");
  // A read lock (a checked key) blocks no reader.
  const narrow = { start: acct(2), end: acct(3) };
  assert.deepStrictEqual(serveSnapshotCheck([narrow], 5, txns, touched), { valid: true });
});

Deno.test("snapshot read: after rounds that each saw a change it fences every cluster and reads once more", () => {
  const read = new SnapshotRead<E>([{ range: ALL, clusters: ["A", "B"] }], merge, 16, 2);
  const round = (index: number) => {
    read.start();
    read.onRead("A", { index, entries: [[{ key: acct(1), n: index }]] });
    return read.onRead("B", { index, entries: [[{ key: acct(2), n: index }]] });
  };
  round(1);
  assert.deepStrictEqual(read.onCheck("A", { valid: false }).map((s) => s.kind), ["read", "read"]);
  read.onRead("A", { index: 2, entries: [[]] });
  read.onRead("B", { index: 2, entries: [[]] });
  const fences = read.onCheck("B", { valid: false });
  assert.deepStrictEqual(fences.map((s) => s.kind), ["fence", "fence"]);
  const spans = fences.map((s) => s.kind === "fence" && s.spans);
  assert.deepStrictEqual(spans, [[{ start: ALL.start, end: ALL.end }], [{
    start: ALL.start,
    end: ALL.end,
  }]]);
  assert.deepStrictEqual(read.retry("A"), [], "no read before every fence stands");
  assert.deepStrictEqual(read.onFenced("A", true), []);
  const reads = read.onFenced("B", true);
  assert.deepStrictEqual(reads.map((s) => s.kind), ["read", "read"]);
  read.onRead("A", { index: 5, entries: [[{ key: acct(1), n: 5 }]] });
  const checks = read.onRead("B", { index: 5, entries: [[{ key: acct(2), n: 5 }]] });
  // Still checked: a fence past its deadline may have been aborted by a writer meanwhile.
  assert.deepStrictEqual(checks.map((s) => s.kind), ["check", "check"]);
  read.onCheck("A", { valid: true });
  read.onCheck("B", { valid: true });
  assert.ok(read.finished && read.fenced);
  assert.deepStrictEqual(read.result, [[{ key: acct(1), n: 5 }, { key: acct(2), n: 5 }]]);
});

Deno.test("snapshot read: a fence refused anywhere goes back to checked rounds", () => {
  const read = new SnapshotRead<E>([{ range: ALL, clusters: ["A", "B"] }], merge, 16, 1);
  read.start();
  read.onRead("A", { index: 1, entries: [[]] });
  read.onRead("B", { index: 1, entries: [[]] });
  assert.deepStrictEqual(read.onCheck("A", { valid: false }).map((s) => s.kind), [
    "fence",
    "fence",
  ]);
  read.onFenced("A", true);
  assert.deepStrictEqual(read.onFenced("B", false).map((s) => s.kind), ["read", "read"]);
  read.onRead("A", { index: 2, entries: [[]] });
  const checks = read.onRead("B", { index: 2, entries: [[]] });
  assert.deepStrictEqual(checks.map((s) => s.kind), ["check", "check"], "checked again");
  assert.ok(!read.fenced);
});

Deno.test("snapshot read: a fenced round whose check fails fences again, a bounded number of times", () => {
  const read = new SnapshotRead<E>([{ range: ALL, clusters: ["A", "B"] }], merge, 16, 1);
  const fail = () => {
    read.onRead("A", { index: 1, entries: [[]] });
    read.onRead("B", { index: 1, entries: [[]] });
    return read.onCheck("A", { valid: false });
  };
  read.start();
  const attempts: number[] = [];
  let steps = fail();
  while (steps.length > 0 && steps[0].kind === "fence") {
    attempts.push(...steps.map((s) => (s.kind === "fence" ? s.attempt : 0)));
    read.onFenced("A", true);
    read.onFenced("B", true);
    steps = fail();
  }
  assert.deepStrictEqual(attempts, [1, 1, 2, 2, 3, 3], "each fencing is its own attempt");
  assert.deepStrictEqual(steps.map((s) => s.kind), ["read", "read"], "then plain rounds");
});

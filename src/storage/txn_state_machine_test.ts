import assert from "node:assert/strict";
import type { Entry } from "../raft/mod.ts";
import type { TxnCommand } from "../txn/mod.ts";
import { encodeCommand, type KvCommand, type KvMutation } from "./kv_command.ts";
import { KvStateMachine } from "./kv_state_machine.ts";
import { decodeTxnEntry, encodeTxnEntry, isTxnCommand } from "./txn_command.ts";
import { encode } from "./_msgpack.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const le64 = (n: bigint) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n, true);
  return b;
};

function entry(sm: KvStateMachine, data: Uint8Array): Entry {
  return { index: sm.applied + 1, term: 1, type: "normal", data };
}

function txn(sm: KvStateMachine, at: number, cmd: TxnCommand<KvMutation>) {
  return sm.apply(entry(sm, encodeTxnEntry({ at, cmd }))) as unknown;
}

function plain(sm: KvStateMachine, cmd: KvCommand) {
  return sm.apply(entry(sm, encodeCommand(cmd)));
}

const set = (k: string, v: string): KvMutation => ({ type: "set", key: enc(k), value: enc(v) });

function prepare(
  id: string,
  mutations: KvMutation[],
  checks: { key: Uint8Array; vs: number }[] = [],
): TxnCommand<KvMutation> {
  return {
    type: "prepare",
    txn: id,
    primary: "a",
    participants: ["a", "b"],
    checks,
    mutations,
    deadline: 10_000_000,
  };
}

Deno.test("txn command: every kind round-trips; garbage does not decode", () => {
  const cmds: TxnCommand<KvMutation>[] = [
    prepare("t1", [set("k", "v"), { type: "sum", key: enc("n"), operand: le64(1n) }], [{
      key: enc("k"),
      vs: 3,
    }]),
    { type: "commit", txn: "t1", after: 5 },
    { type: "commit", txn: "t1", vs: 9 },
    { type: "abort", txn: "t1", deadline: 7 },
    { type: "forget", txn: "t1" },
    {
      type: "prepare",
      txn: "fence-1",
      primary: "a",
      participants: ["a"],
      checks: [],
      mutations: [],
      deadline: 7,
      spans: [{ start: enc("a"), end: new Uint8Array([0xff]) }],
    },
  ];
  for (const cmd of cmds) {
    const data = encodeTxnEntry({ at: 42, cmd });
    assert.ok(isTxnCommand(data));
    assert.deepEqual(decodeTxnEntry(data), { at: 42, cmd });
  }
  for (
    const bad of [
      [4, 0, "t", 1],
      [4, 1, "t", 1, 5, 6],
      [4, 1, "t", 1, null, null],
      [4, 2, "", 1, 5],
      [4, 3, "x".repeat(65), 1],
      [4, 9, "t", 1],
      [4, 0, "t", 1, "a", ["b"], [], [], 5], // the primary is no participant
      [4, 0, "t", 1, "a", ["a"], [], [], 5, []], // a fence of no span
      [4, 0, "t", 1, "a", ["a"], [], [], 5, [[enc("a")]]], // a span without its end
    ]
  ) {
    assert.throws(() => decodeTxnEntry(encode(bad)), /Cannot decode a transaction command/);
  }
});

Deno.test("KvStateMachine: a prepared key refuses plain writes (not remembered) until the decision applies it at its versionstamp", () => {
  const sm = new KvStateMachine({ clusterId: "a" });
  plain(sm, { checks: [], mutations: [set("k", "old")], vs: 100 });
  assert.deepEqual(txn(sm, 200, prepare("t1", [set("k", "new")], [{ key: enc("k"), vs: 100 }])), {
    vote: "yes",
    vs: 200,
  });
  const refused = plain(sm, { requestId: "c:1", checks: [], mutations: [set("k", "x")], vs: 201 })!;
  assert.ok(!refused.ok && refused.code === "locked");
  assert.equal(refused.lock.txn, "t1");
  assert.equal(sm.answered("c:1"), undefined, "a locked write is not remembered");
  assert.ok(plain(sm, { checks: [], mutations: [set("other", "x")], vs: 202 })!.ok);
  assert.deepEqual(txn(sm, 300, { type: "commit", txn: "t1", after: 200 }), {
    state: "committed",
    vs: 300,
  });
  const [k] = sm.range({ start: enc("k"), end: enc("l"), limit: 1, reverse: false });
  assert.equal(dec(k.entry.value), "new");
  assert.equal(k.entry.vs, 300);
  assert.equal(sm.lastVs, 300);
  assert.ok(plain(sm, { requestId: "c:1", checks: [], mutations: [set("k", "x")], vs: 301 })!.ok);
});

Deno.test("KvStateMachine: a secondary applies the decided versionstamp, which may be below its last", () => {
  const sm = new KvStateMachine({ clusterId: "b" });
  txn(sm, 200, prepare("t1", [set("k", "v")]));
  plain(sm, { checks: [], mutations: [set("other", "x")], vs: 900 });
  assert.deepEqual(txn(sm, 901, { type: "commit", txn: "t1", vs: 500 }), {
    state: "committed",
    vs: 500,
  });
  const [k] = sm.range({ start: enc("k"), end: enc("l"), limit: 1, reverse: false });
  assert.equal(k.entry.vs, 500);
  assert.equal(sm.lastVs, 901, "the last versionstamp never goes back");
  assert.equal(sm.touched.changedSince(sm.applied - 1, enc("k"), enc("l")), true);
});

Deno.test("KvStateMachine: a prepare answers the store's refusals: a failed check, a sum on a non-u64, a full store", () => {
  const sm = new KvStateMachine({ clusterId: "a", bytesMax: 64 });
  plain(sm, { checks: [], mutations: [set("s", "text")], vs: 10 });
  assert.deepEqual(txn(sm, 20, prepare("t1", [], [{ key: enc("s"), vs: 9 }])), {
    vote: "no",
    reason: "refused",
    refusal: { code: "check_failed", check: 0 },
  });
  const v = txn(sm, 21, prepare("t2", [{ type: "sum", key: enc("s"), operand: le64(1n) }])) as {
    refusal: { code: string; mutation: number };
  };
  assert.equal(v.refusal.code, "invalid");
  assert.equal(v.refusal.mutation, 0);
  assert.deepEqual(txn(sm, 22, prepare("t3", [set("big", "x".repeat(100))])), {
    vote: "no",
    reason: "refused",
    refusal: { code: "storage_full", bytesMax: 64 },
  });
  assert.equal(sm.txn!.lockedKeys, 0);
});

Deno.test("KvStateMachine: a transaction entry whose versionstamp is not above the last is not applied", () => {
  const sm = new KvStateMachine({ clusterId: "a" });
  plain(sm, { checks: [], mutations: [set("k", "v")], vs: 100 });
  assert.deepEqual(txn(sm, 100, prepare("t1", [set("k", "x")])), {
    ok: false,
    code: "stale_versionstamp",
    vs: 100,
  });
  assert.equal(sm.txn!.intents, 0);
  // Without a cluster id, transactions are refused; garbage is counted and skipped.
  const anon = new KvStateMachine();
  assert.ok(!(txn(anon, 5, prepare("t1", [])) as { ok: boolean }).ok);
  const before = anon.commandsRejected;
  anon.apply(entry(anon, encode([4, 0, "t", 1])));
  assert.equal(anon.commandsRejected, before + 1);
});

Deno.test("KvStateMachine: a snapshot keeps the locks, intents and outcomes", () => {
  const sm = new KvStateMachine({ clusterId: "a" });
  txn(sm, 200, prepare("t1", [set("k", "v")]));
  txn(sm, 201, { type: "abort", txn: "t2", deadline: 10_000_000 });
  txn(sm, 202, prepare("t3", [set("j", "w")]));
  txn(sm, 203, { type: "commit", txn: "t3", after: 202 });
  txn(sm, 204, {
    type: "prepare",
    txn: "f1",
    primary: "a",
    participants: ["a"],
    checks: [],
    mutations: [],
    deadline: 10_000_000,
    spans: [{ start: enc("m"), end: enc("n") }],
  });
  const copy = KvStateMachine.decodeSnapshot(sm.encodeSnapshot(), { clusterId: "a" });
  assert.equal(copy.txn!.blocker([enc("mm")])?.txn, "f1", "a read fence is kept too");
  assert.deepEqual(copy.txn!.unforgotten(Infinity, 10), [{
    txn: "t3",
    vs: 203,
    secondaries: ["b"],
  }]);
  assert.equal(copy.txn!.blocker([enc("k")])?.txn, "t1");
  assert.equal(copy.txn!.outcome("t2")?.outcome.state, "aborted");
  assert.equal(copy.touched.floor, sm.applied, "a restored replica knows no changes before it");
  assert.deepEqual(txn(copy, 300, { type: "commit", txn: "t1", after: 200 }), {
    state: "committed",
    vs: 300,
  });
  assert.equal(dec(copy.get(enc("k"))!.value), "v");
  // An empty participant adds nothing to the snapshot.
  const empty = new KvStateMachine({ clusterId: "a" });
  assert.ok(!new TextDecoder().decode(empty.encodeSnapshot()).includes("txn"));
});

Deno.test("KvStateMachine: a versionstamped key of the primary's share is made with the decision's versionstamp, unlocked before", async () => {
  const { suffixedKey } = await import("./_versionstamp.ts");
  const sm = new KvStateMachine({ clusterId: "a" });
  const prefix = enc("log");
  txn(
    sm,
    200,
    prepare("t1", [{ type: "set_vs", key: prefix, value: enc("x"), encoding: 3, expireAt: 0 }]),
  );
  assert.equal(sm.txn!.lockedKeys, 0, "its key is not known before the decision");
  assert.deepEqual(txn(sm, 345, { type: "commit", txn: "t1", after: 200 }), {
    state: "committed",
    vs: 345,
  });
  const [e] = sm.range({ start: prefix, end: enc("loh"), limit: 5, reverse: false });
  assert.deepEqual(e.key, suffixedKey(prefix, 345));
  assert.equal(e.entry.vs, 345);
});

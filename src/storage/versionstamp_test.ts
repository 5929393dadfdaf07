import assert from "node:assert/strict";
import type { Entry } from "../raft/mod.ts";
import {
  CommandDecodeError,
  decodeCommand,
  encodeCommand,
  type KvCommand,
  ValueEncoding,
} from "./kv_command.ts";
import { KvStateMachine } from "./kv_state_machine.ts";
import {
  numericResult,
  timeOfVersionstamp,
  versionstampAt,
  versionstampBytes,
  versionstampFromBytes,
  versionstampHex,
} from "./_versionstamp.ts";
import { encode } from "./_msgpack.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function run(sm: KvStateMachine, ...cmds: KvCommand[]) {
  return cmds.map((c) => {
    const e: Entry = { index: sm.applied + 1, term: 1, type: "normal", data: encodeCommand(c) };
    return sm.apply(e);
  });
}

function u64(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n, true);
  return b;
}

function readU64(b: Uint8Array): bigint {
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
}

function valueOf(sm: KvStateMachine, key: string) {
  const k = enc(key);
  const end = new Uint8Array([...k, 0]);
  return sm.range({ start: k, end, limit: 1, reverse: false })[0]?.entry;
}

Deno.test("versionstamp: bytes, hex and clock round trip", () => {
  const vs = versionstampAt(Date.UTC(2026, 11, 3)) + 5;
  const bytes = versionstampBytes(vs);
  assert.equal(bytes.length, 10);
  assert.deepEqual([...bytes.subarray(8)], [0, 0]);
  assert.equal(versionstampFromBytes(bytes), vs);
  assert.equal(timeOfVersionstamp(vs), Date.UTC(2026, 11, 3));
  assert.equal(versionstampHex(vs).length, 20);
  assert.equal(BigInt("0x" + versionstampHex(vs)), BigInt(vs) << 16n);
  assert.equal(versionstampFromBytes(new Uint8Array(9)), undefined);
  const foreign = versionstampBytes(vs);
  foreign[9] = 1;
  assert.equal(versionstampFromBytes(foreign), undefined, "a stamp koi never makes");
});

Deno.test("versionstamp: sum wraps at 2^64, min and max, a missing key takes the operand", () => {
  const le = (n: bigint) => ({ value: u64(n), encoding: ValueEncoding.LE64 });
  assert.equal(readU64(numericResult("sum", le(2n ** 64n - 1n), u64(2n)) as Uint8Array), 1n);
  assert.equal(readU64(numericResult("min", le(5n), u64(3n)) as Uint8Array), 3n);
  assert.equal(readU64(numericResult("max", le(5n), u64(3n)) as Uint8Array), 5n);
  assert.equal(readU64(numericResult("sum", undefined, u64(7n)) as Uint8Array), 7n);
  const notU64 = numericResult("sum", { value: u64(1n), encoding: ValueEncoding.V8 }, u64(1n));
  assert.match(notU64 as string, /non-U64/);
  assert.equal(typeof numericResult("max", le(1n), new Uint8Array(4)), "string");
});

Deno.test("KvCommand: the extended format round-trips and plain commands keep version 1", () => {
  const cmd: KvCommand = {
    requestId: "c:1",
    checks: [{ key: enc("a"), rev: 0, vs: 42 }, { key: enc("b"), rev: 3 }],
    mutations: [
      { type: "set", key: enc("a"), value: enc("x"), encoding: 1, expireAt: 99 },
      { type: "sum", key: enc("n"), operand: u64(1n) },
      { type: "min", key: enc("n"), operand: u64(1n) },
      { type: "max", key: enc("n"), operand: u64(1n) },
      { type: "expire", key: enc("e") },
      { type: "delete", key: enc("d") },
    ],
    vs: 1234,
  };
  assert.deepEqual(decodeCommand(encodeCommand(cmd)), cmd);
  const plain: KvCommand = {
    checks: [],
    mutations: [{ type: "set", key: enc("a"), value: enc("x") }],
  };
  assert.equal(encodeCommand(plain)[1], 1, "version 1 when nothing new is used");
  assert.deepEqual(decodeCommand(encodeCommand(plain)), plain);
  // A version 1 command cannot carry the new mutation types, nor a bad operand.
  for (
    const bad of [[1, null, [], [[2, enc("n"), u64(1n)]]], [3, null, [], [[
      2,
      enc("n"),
      enc("short"),
    ]], null], [3, null, [], [[0, enc("a"), enc("x"), 9, 0]], null]]
  ) {
    assert.throws(() => decodeCommand(encode(bad)), CommandDecodeError);
  }
});

Deno.test("KvStateMachine: versionstamps increase, are shared by a commit, and a stale one is refused unremembered", () => {
  const sm = new KvStateMachine();
  const [first] = run(sm, {
    checks: [],
    mutations: [
      { type: "set", key: enc("a"), value: enc("1") },
      { type: "set", key: enc("b"), value: enc("2") },
    ],
    vs: 5000,
  });
  assert.ok(first?.ok && first.vs === 5000);
  assert.equal(valueOf(sm, "a")!.vs, 5000);
  assert.equal(valueOf(sm, "b")!.vs, 5000, "one commit, one versionstamp");
  const [stale] = run(sm, {
    requestId: "c:1",
    checks: [],
    mutations: [{ type: "set", key: enc("a"), value: enc("x") }],
    vs: 5000,
  });
  assert.deepEqual(stale, { ok: false, code: "stale_versionstamp", vs: 5000 });
  assert.equal(sm.answered("c:1"), undefined, "a stale versionstamp is not remembered");
  const [again] = run(sm, {
    requestId: "c:1",
    checks: [],
    mutations: [{ type: "set", key: enc("a"), value: enc("x") }],
    vs: 5001,
  });
  assert.ok(again?.ok && again.vs === 5001, "the retry with a greater one applies");
  const [noStamp] = run(sm, { checks: [], mutations: [{ type: "delete", key: enc("b") }] });
  assert.ok(noStamp?.ok && noStamp.vs === 5002, "without one: the last plus 1");
});

Deno.test("KvStateMachine: checks by versionstamp, all or nothing", () => {
  const sm = new KvStateMachine();
  run(sm, { checks: [], mutations: [{ type: "set", key: enc("a"), value: enc("1") }], vs: 10 });
  const write = (vs: number): KvCommand => ({
    checks: [{ key: enc("a"), rev: 0, vs }, { key: enc("new"), rev: 0, vs: 0 }],
    mutations: [{ type: "set", key: enc("new"), value: enc("n") }],
    vs: 20,
  });
  const [wrong] = run(sm, write(9));
  assert.deepEqual(wrong, { ok: false, code: "precondition_failed", check: 0, rev: 1 });
  assert.equal(valueOf(sm, "new"), undefined);
  const [right] = run(sm, write(10));
  assert.ok(right?.ok);
  const [exists] = run(sm, { ...write(20), vs: 30 });
  assert.ok(!exists?.ok, "vs 0 means absent: the key now exists");
});

Deno.test("KvStateMachine: sum, min, max store LE64 values; a non-u64 value refuses the whole command", () => {
  const sm = new KvStateMachine();
  const [r] = run(sm, {
    checks: [],
    mutations: [
      { type: "sum", key: enc("n"), operand: u64(2n ** 64n - 2n) },
      { type: "sum", key: enc("n"), operand: u64(3n) },
      { type: "max", key: enc("m"), operand: u64(4n) },
      { type: "min", key: enc("m"), operand: u64(2n) },
    ],
    vs: 100,
  });
  assert.ok(r?.ok);
  const n = valueOf(sm, "n")!;
  assert.equal(readU64(n.value), 1n, "wrapped");
  assert.equal(n.encoding, ValueEncoding.LE64);
  assert.equal(readU64(valueOf(sm, "m")!.value), 2n);
  run(sm, {
    checks: [],
    mutations: [{ type: "set", key: enc("s"), value: enc("v8"), encoding: ValueEncoding.V8 }],
    vs: 101,
  });
  const [bad] = run(sm, {
    checks: [],
    mutations: [
      { type: "set", key: enc("other"), value: enc("x") },
      { type: "sum", key: enc("s"), operand: u64(1n) },
    ],
    vs: 102,
  });
  assert.equal(bad?.ok, false);
  assert.equal(bad && !bad.ok && bad.code, "type_mismatch");
  assert.equal(valueOf(sm, "other"), undefined, "nothing of it applied");
  assert.equal(sm.lastVs, 101);
});

Deno.test("KvStateMachine: expiry is decided by the command's versionstamp time, and a rewrite survives", () => {
  const sm = new KvStateMachine();
  const t0 = Date.UTC(2026, 0, 1);
  run(sm, {
    checks: [],
    mutations: [
      { type: "set", key: enc("a"), value: enc("1"), expireAt: t0 + 1000 },
      { type: "set", key: enc("b"), value: enc("2"), expireAt: t0 + 1000 },
      { type: "set", key: enc("c"), value: enc("3"), expireAt: t0 + 5000 },
    ],
    vs: versionstampAt(t0),
  });
  assert.equal(sm.expiringKeys, 3);
  assert.deepEqual(sm.expiredKeys(t0 + 1000, 10).map((k) => new TextDecoder().decode(k)), [
    "a",
    "b",
  ]);
  assert.equal(sm.expiredKeys(t0 + 1000, 1).length, 1, "bounded");
  // b is rewritten without expiry before the deletion is proposed: it must survive.
  run(sm, {
    checks: [],
    mutations: [{ type: "set", key: enc("b"), value: enc("kept") }],
    vs: versionstampAt(t0 + 500),
  });
  const early = run(sm, {
    checks: [],
    mutations: [{ type: "expire", key: enc("a") }],
    vs: versionstampAt(t0 + 999),
  });
  assert.ok(early[0]?.ok);
  assert.ok(valueOf(sm, "a") !== undefined, "not yet expired at the command's time");
  run(sm, {
    checks: [],
    mutations: [
      { type: "expire", key: enc("a") },
      { type: "expire", key: enc("b") },
      { type: "expire", key: enc("c") },
    ],
    vs: versionstampAt(t0 + 1000),
  });
  assert.equal(valueOf(sm, "a"), undefined);
  assert.equal(new TextDecoder().decode(valueOf(sm, "b")!.value), "kept");
  assert.ok(valueOf(sm, "c") !== undefined);
  assert.equal(sm.expiringKeys, 1);
  assert.deepEqual(sm.expiredKeys(t0 + 10_000, 10).map((k) => new TextDecoder().decode(k)), [
    "c",
  ]);
});

Deno.test("KvStateMachine: a snapshot keeps versionstamps, encodings, expiry and the last versionstamp", () => {
  const sm = new KvStateMachine();
  run(sm, {
    checks: [],
    mutations: [
      { type: "set", key: enc("a"), value: enc("1"), encoding: 1, expireAt: 777 },
      { type: "set", key: enc("p"), value: enc("plain") },
    ],
    vs: 4096,
  });
  const back = KvStateMachine.decodeSnapshot(sm.encodeSnapshot());
  assert.equal(back.lastVs, 4096);
  assert.deepEqual(valueOf(back, "a"), {
    value: enc("1"),
    rev: 1,
    vs: 4096,
    encoding: 1,
    expireAt: 777,
  });
  assert.equal(back.expiringKeys, 1);
  assert.equal(back.bytes, sm.bytes);
});

Deno.test("KvStateMachine: range reads forward and reversed, end exclusive, limited and filtered", () => {
  const sm = new KvStateMachine();
  const keys = ["a", "b", "c", "d", "e"];
  run(sm, {
    checks: [],
    mutations: keys.map((k) => ({ type: "set", key: enc(k), value: enc(k) })),
  });
  const names = (r: { key: Uint8Array }[]) => r.map((x) => new TextDecoder().decode(x.key));
  const range = { start: enc("b"), end: enc("e"), limit: 10, reverse: false };
  assert.deepEqual(names(sm.range(range)), ["b", "c", "d"]);
  assert.deepEqual(names(sm.range({ ...range, reverse: true })), ["d", "c", "b"]);
  assert.deepEqual(names(sm.range({ ...range, reverse: true, limit: 2 })), ["d", "c"]);
  assert.deepEqual(names(sm.range({ ...range, keep: (k) => k[0] !== 0x63 })), ["b", "d"]);
  assert.deepEqual(names(sm.range({ ...range, start: enc("e"), end: enc("b") })), []);
  assert.deepEqual(names(sm.range({ ...range, limit: 0 })), []);
});

Deno.test("a moved key keeps its metadata on the wire, and malformed metadata is refused", async () => {
  const { stagedKeyFromWire, stagedKeyToWire } = await import("./route_command.ts");
  const withMeta = { key: enc("k"), value: enc("v"), rev: 3, meta: [77, 1, 9] as const };
  assert.deepEqual(stagedKeyFromWire(stagedKeyToWire(withMeta)), withMeta);
  const plain = { key: enc("k"), value: enc("v"), rev: 3 };
  assert.deepEqual(stagedKeyFromWire(stagedKeyToWire(plain)), plain);
  assert.equal(stagedKeyFromWire([enc("k"), enc("v"), 3, [1, 7, 0]]), undefined, "encoding 7");
  assert.equal(stagedKeyFromWire([enc("k"), enc("v"), 3, [1, 1]]), undefined);
});

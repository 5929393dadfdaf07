import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import type { Entry } from "../raft/mod.ts";
import { StorageCorruptError } from "./_codec.ts";
import { encodeCommand, type KvCommand } from "./kv_command.ts";
import { encodeMemberContext, KvStateMachine } from "./kv_state_machine.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function applyAll(sm: KvStateMachine, ...cmds: KvCommand[]): void {
  for (const c of cmds) {
    const e: Entry = { index: sm.applied + 1, term: 1, type: "normal", data: encodeCommand(c) };
    sm.apply(e);
  }
}

const put = (key: string, value: string | Uint8Array, requestId?: string): KvCommand => ({
  ...(requestId === undefined ? {} : { requestId }),
  checks: [],
  mutations: [{
    type: "set",
    key: enc(key),
    value: typeof value === "string" ? enc(value) : value,
  }],
});

const del = (key: string): KvCommand => ({
  checks: [],
  mutations: [{ type: "delete", key: enc(key) }],
});

function config(sm: KvStateMachine, voters: string[], addresses: Record<string, number>): void {
  const ctx = Object.fromEntries(
    Object.entries(addresses).map(([id, p]) => [id, { raft: `h:${p}`, http: `h:${p + 1}` }]),
  );
  sm.apply({
    index: sm.applied + 1,
    term: 1,
    type: "config",
    data: encodeMemberContext(ctx),
    membership: { voters, outgoing: [], learners: [] },
  });
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of chunks) out.push(c);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

Deno.test("KvSnapshotView: stays exact while the store changes after it", async () => {
  const sm = new KvStateMachine({ requestIdsMax: 3 });
  config(sm, ["a"], { a: 1000 });
  for (let i = 0; i < 500; i++) applyAll(sm, put(`k${i}`, `v${i}`, `c${i % 5}:${i}`));
  const expected = sm.encodeSnapshot();
  const view = sm.snapshotView();
  const answeredAtView = ["c0:495", "c4:499", "c2:497"].map((id) => sm.answered(id));
  // Change everything the view holds: values, deletes, new keys, request ids (with evictions),
  // membership and addresses.
  for (let i = 0; i < 500; i += 2) applyAll(sm, put(`k${i}`, "changed", `c${i % 7}:${1000 + i}`));
  for (let i = 1; i < 500; i += 4) applyAll(sm, del(`k${i}`));
  for (let i = 0; i < 300; i++) applyAll(sm, put(`new${i}`, "n"));
  config(sm, ["a", "b"], { b: 2000 });
  assert.equal(view.applied, 501);
  assert.equal(view.size, 500);
  assert.deepEqual(view.get(enc("k0")), { value: enc("v0"), rev: 2 });
  assert.equal(view.get(enc("new1")), undefined);
  assert.deepEqual(view.membership.voters, ["a"]);
  assert.deepEqual([...view.addresses().keys()], ["a"]);
  const chunks = await collect(view.encodeChunks(1_000));
  assert.ok(chunks.length > 5, "several chunks");
  assert.ok(sameBytes(concat(chunks), expected), "the view encodes the state it was taken at");
  assert.ok(sameBytes(view.encode(), expected));
  const copy = KvStateMachine.decodeSnapshot(concat(chunks), { requestIdsMax: 3 });
  assert.deepEqual(["c0:495", "c4:499", "c2:497"].map((id) => copy.answered(id)), answeredAtView);
  assert.notEqual(sm.encodeSnapshot().length, expected.length, "the store did move on");
});

Deno.test("KvSnapshotView: a large store round trips through chunks, yielding to the event loop", async () => {
  const sm = new KvStateMachine();
  const value = new Uint8Array(200).map((_, i) => i);
  for (let i = 0; i < 60_000; i++) applyAll(sm, put(`key/${i}`, value, `c${i % 1_000}:${i}`));
  config(sm, ["a", "b", "c"], { a: 1, b: 3, c: 5 });
  const view = sm.snapshotView();
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  let chunks: Uint8Array[];
  try {
    chunks = await collect(view.encodeChunks(256 * 1024));
  } finally {
    clearInterval(timer);
  }
  assert.ok(ticks > 0, "timers ran while encoding");
  const whole = concat(chunks);
  assert.ok(whole.length > 12_000_000);
  // Received in pieces that cut records anywhere.
  async function* pieces() {
    for (let i = 0; i < whole.length; i += 100_003) yield whole.subarray(i, i + 100_003);
  }
  const copy = await KvStateMachine.decodeSnapshotAsync(pieces());
  assert.equal(copy.size, sm.size);
  assert.equal(copy.bytes, sm.bytes);
  assert.equal(copy.applied, sm.applied);
  assert.deepEqual(copy.get(enc("key/12345")), sm.get(enc("key/12345")));
  assert.deepEqual(copy.answered("c345:59345"), sm.answered("c345:59345"));
  assert.ok(sameBytes(copy.encodeSnapshot(), whole), "decode then encode is the identity");
  const sync = KvStateMachine.decodeSnapshot(whole);
  assert.ok(sameBytes(sync.encodeSnapshot(), whole));
});

Deno.test("KvStateMachine: request-id eviction order survives a snapshot", () => {
  const sm = new KvStateMachine({ requestIdsMax: 2 });
  applyAll(sm, put("a", "1", "c1:1"), put("a", "2", "c2:1"), put("a", "3", "c1:2"));
  const copy = KvStateMachine.decodeSnapshot(sm.encodeSnapshot(), { requestIdsMax: 2 });
  for (const s of [sm, copy]) applyAll(s, put("a", "4", "c3:1"));
  for (const s of [sm, copy]) {
    assert.equal(s.answered("c2:1"), undefined, "c2, the least recently written, was evicted");
    assert.ok(s.answered("c1:2") !== undefined);
  }
  assert.ok(sameBytes(sm.encodeSnapshot(), copy.encodeSnapshot()));
});

Deno.test("KvStateMachine: a version 1 snapshot still decodes", async () => {
  const v1 = encode({
    v: 1,
    applied: 7,
    membership: { voters: ["a"], outgoing: [], learners: [] },
    addresses: { a: { raft: "h:1", http: "h:2" } },
    kv: [[enc("x"), enc("1"), 3], [enc("y"), enc("22"), 7]],
    requests: [["c1", 4, { ok: true, rev: 4, existed: [false] }]],
  });
  for (
    const sm of [KvStateMachine.decodeSnapshot(v1), await KvStateMachine.decodeSnapshotAsync([v1])]
  ) {
    assert.equal(sm.applied, 7);
    assert.equal(sm.size, 2);
    assert.equal(sm.bytes, 1 + 1 + 1 + 2);
    assert.deepEqual(sm.get(enc("y")), { value: enc("22"), rev: 7 });
    assert.deepEqual(sm.answered("c1:4"), { ok: true, rev: 4, existed: [false] });
  }
});

Deno.test("KvStateMachine: decoding garbage or a truncated snapshot throws StorageCorruptError", async () => {
  const sm = new KvStateMachine();
  for (let i = 0; i < 100; i++) applyAll(sm, put(`k${i}`, "value"));
  const good = sm.encodeSnapshot();
  const bad = [
    new Uint8Array([0xc1]), // never used in msgpack
    new Uint8Array([2, 0xc1, 0xff]),
    enc("not a snapshot at all"),
    good.subarray(0, good.length - 3),
    good.subarray(0, 40),
    concat([good, new Uint8Array([1])]),
    encode({ v: 9 }),
  ];
  for (const data of bad) {
    assert.throws(() => KvStateMachine.decodeSnapshot(data), StorageCorruptError);
    await assert.rejects(KvStateMachine.decodeSnapshotAsync([data]), StorageCorruptError);
  }
  assert.equal(KvStateMachine.decodeSnapshot(new Uint8Array(0)).size, 0, "empty is empty");
  assert.equal((await KvStateMachine.decodeSnapshotAsync([])).size, 0);
});

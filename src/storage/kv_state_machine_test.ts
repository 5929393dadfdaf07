import assert from "node:assert/strict";
import fc from "fast-check";
import type { Entry } from "../raft/mod.ts";
import { encodeCommand, type KvCommand } from "./kv_command.ts";
import { encodeMemberContext, KvStateMachine } from "./kv_state_machine.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** Applies commands as consecutive entries from the store's next index. */
function run(sm: KvStateMachine, ...cmds: KvCommand[]) {
  return cmds.map((c) => {
    const e: Entry = { index: sm.applied + 1, term: 1, type: "normal", data: encodeCommand(c) };
    return sm.apply(e);
  });
}

const put = (key: string, value: string, requestId?: string): KvCommand => ({
  ...(requestId === undefined ? {} : { requestId }),
  checks: [],
  mutations: [{ type: "set", key: enc(key), value: enc(value) }],
});

Deno.test("KvStateMachine: a set stores the value with the entry's index as rev", () => {
  const sm = new KvStateMachine();
  assert.deepEqual(run(sm, put("a", "1"), put("a", "2")), [
    { ok: true, rev: 1, existed: [false], vs: 1 },
    { ok: true, rev: 2, existed: [true], vs: 2 },
  ]);
  assert.equal(dec(sm.get(enc("a"))!.value), "2");
  assert.equal(sm.get(enc("a"))!.rev, 2);
});

Deno.test("KvStateMachine: checks on rev and absence gate the whole command", () => {
  const sm = new KvStateMachine();
  run(sm, put("a", "1"));
  const [stale, fresh, absent] = run(
    sm,
    { checks: [{ key: enc("a"), rev: 7 }], mutations: [{ type: "delete", key: enc("a") }] },
    {
      checks: [{ key: enc("a"), rev: 1 }],
      mutations: [{ type: "set", key: enc("a"), value: enc("x") }],
    },
    {
      checks: [{ key: enc("a"), rev: 0 }],
      mutations: [{ type: "set", key: enc("b"), value: enc("y") }],
    },
  );
  assert.deepEqual(stale, { ok: false, code: "precondition_failed", check: 0, rev: 1 });
  assert.deepEqual(fresh, { ok: true, rev: 3, existed: [true], vs: 2 }, "a failed one takes no vs");
  assert.deepEqual(absent, { ok: false, code: "precondition_failed", check: 0, rev: 3 });
  assert.equal(sm.get(enc("b")), undefined, "a failed command changes nothing");
});

Deno.test("KvStateMachine: delete reports whether the key existed", () => {
  const sm = new KvStateMachine();
  run(sm, put("a", "1"));
  const del = (k: string): KvCommand => ({
    checks: [],
    mutations: [{ type: "delete", key: enc(k) }],
  });
  assert.deepEqual(run(sm, del("a"), del("a")), [
    { ok: true, rev: 2, existed: [true], vs: 2 },
    { ok: true, rev: 3, existed: [false], vs: 3 },
  ]);
  assert.equal(sm.size, 0);
  assert.equal(sm.bytes, 0);
});

Deno.test("KvStateMachine: a retried request id applies once and answers the first answer", () => {
  const sm = new KvStateMachine();
  const [first, retry] = run(sm, put("a", "1", "c1:5"), put("a", "2", "c1:5"));
  assert.deepEqual(retry, first);
  assert.equal(dec(sm.get(enc("a"))!.value), "1");
  assert.deepEqual(sm.answered("c1:5"), first);
  const [older] = run(sm, put("a", "3", "c1:4"));
  assert.deepEqual(older, { ok: false, code: "stale_request", seq: 5 });
});

Deno.test("KvStateMachine: request ids are bounded; the least recently written client goes", () => {
  const sm = new KvStateMachine({ requestIdsMax: 2 });
  run(
    sm,
    put("a", "1", "c1:1"),
    put("a", "2", "c2:1"),
    put("a", "3", "c1:2"),
    put("a", "4", "c3:1"),
  );
  assert.equal(sm.answered("c2:1"), undefined, "c2 was evicted");
  assert.ok(sm.answered("c1:2") !== undefined);
  assert.ok(sm.answered("c3:1") !== undefined);
});

Deno.test("KvStateMachine: the byte limit refuses growth deterministically but allows shrinking", () => {
  const sm = new KvStateMachine({ bytesMax: 10 });
  assert.deepEqual(run(sm, put("k", "123456789"), put("j", "x")), [
    { ok: true, rev: 1, existed: [false], vs: 1 },
    { ok: false, code: "storage_full", bytesMax: 10 },
  ]);
  assert.deepEqual(run(sm, put("k", "1")), [{ ok: true, rev: 3, existed: [true], vs: 2 }]);
  assert.equal(sm.bytes, 2);
});

Deno.test("KvStateMachine: listing is bytewise ordered, by prefix, after a key, limited", () => {
  const sm = new KvStateMachine();
  const keys = [new Uint8Array([0x61, 0xff]), new Uint8Array([0x61, 0x00]), enc("a/b"), enc("b")];
  run(
    sm,
    ...keys.map((key) => ({
      checks: [],
      mutations: [{ type: "set" as const, key, value: enc("v") }],
    })),
  );
  const all = sm.list({ prefix: enc("a"), limit: 10 });
  assert.deepEqual(all.items.map((i) => [...i.key]), [[0x61, 0x00], [0x61, 0x2f, 0x62], [
    0x61,
    0xff,
  ]]);
  assert.equal(all.more, false);
  const page = sm.list({ prefix: enc("a"), after: new Uint8Array([0x61, 0x00]), limit: 1 });
  assert.deepEqual(page.items.map((i) => dec(i.key)), ["a/b"]);
  assert.equal(page.more, true);
});

Deno.test("KvStateMachine: a snapshot round trips data, revs, request ids and addresses", () => {
  const sm = new KvStateMachine();
  run(sm, put("a", "1", "c1:1"), put("b", "2"));
  sm.apply({
    index: 3,
    term: 1,
    type: "config",
    data: encodeMemberContext({ d: { raft: "127.0.0.1:1", http: "127.0.0.1:2" } }),
    membership: { voters: ["a1"], outgoing: [], learners: ["d"] },
  });
  const copy = KvStateMachine.decodeSnapshot(sm.encodeSnapshot());
  assert.equal(copy.applied, 3);
  assert.deepEqual(copy.get(enc("a")), sm.get(enc("a")));
  assert.deepEqual(copy.answered("c1:1"), sm.answered("c1:1"));
  assert.deepEqual([...copy.addresses()], [["d", { raft: "127.0.0.1:1", http: "127.0.0.1:2" }]]);
  assert.deepEqual(copy.membership, sm.membership);
  assert.equal(copy.bytes, sm.bytes);
});

Deno.test("KvStateMachine: applying out of order is an invariant violation", () => {
  const sm = new KvStateMachine();
  assert.throws(
    () => sm.apply({ index: 2, term: 1, type: "normal", data: new Uint8Array(0) }),
    /apply 2 after 0/,
  );
});

Deno.test("KvStateMachine: replicas applying the same commands agree (property)", () => {
  const command = fc.record({
    key: fc.constantFrom("a", "b", "c"),
    value: fc.string({ maxLength: 4 }),
    del: fc.boolean(),
    checkRev: fc.option(fc.nat({ max: 5 }), { nil: undefined }),
  });
  fc.assert(fc.property(fc.array(command, { maxLength: 40 }), (cmds) => {
    const a = new KvStateMachine({ bytesMax: 20 });
    const toCmd = (c: typeof cmds[number]): KvCommand => ({
      checks: c.checkRev === undefined ? [] : [{ key: enc(c.key), rev: c.checkRev }],
      mutations: [
        c.del
          ? { type: "delete", key: enc(c.key) }
          : { type: "set", key: enc(c.key), value: enc(c.value) },
      ],
    });
    const half = Math.floor(cmds.length / 2);
    run(a, ...cmds.slice(0, half).map(toCmd));
    const b = KvStateMachine.decodeSnapshot(a.encodeSnapshot(), { bytesMax: 20 });
    const ra = run(a, ...cmds.slice(half).map(toCmd));
    const rb = run(b, ...cmds.slice(half).map(toCmd));
    assert.deepEqual(ra, rb);
    assert.deepEqual(a.encodeSnapshot(), b.encodeSnapshot());
    assert.ok(a.bytes <= 20 || ra.every((r) => r?.ok !== true));
  }));
});

Deno.test("KvStateMachine: a committed entry that is not a command is skipped, never thrown", () => {
  const sm = new KvStateMachine();
  run(sm, put("a", "1"));
  const garbage: Uint8Array[] = [enc("evil"), new Uint8Array([0xc1]), new Uint8Array([0x93, 1, 2])];
  for (const data of garbage) {
    const index = sm.applied + 1;
    assert.equal(sm.apply({ index, term: 1, type: "normal", data }), undefined);
    assert.equal(sm.applied, index);
  }
  assert.equal(sm.commandsRejected, garbage.length);
  assert.equal(sm.size, 1);
  assert.equal(dec(sm.get(enc("a"))!.value), "1");
  // A config entry whose context is not msgpack names no address and still applies.
  const index = sm.applied + 1;
  const membership = { voters: ["n1"], outgoing: [], learners: [] };
  sm.apply({ index, term: 1, type: "config", data: new Uint8Array([0xc1]), membership });
  assert.deepEqual(sm.membership, membership);
});

Deno.test("KvStateMachine: onApplied sees each applied command's rev, mutations and existed", () => {
  const seen: { rev: number; keys: string[]; existed: readonly boolean[] }[] = [];
  const sm = new KvStateMachine({
    bytesMax: 64,
    onApplied: (a) =>
      seen.push({ rev: a.rev, keys: a.mutations.map((m) => dec(m.key)), existed: a.existed }),
  });
  run(
    sm,
    put("a", "1", "c:1"),
    put("a", "1", "c:1"), // a retry: answered from the request id, not applied again
    put("b", "2", "c:0"), // stale request id: refused
    { checks: [{ key: enc("a"), rev: 9 }], mutations: [{ type: "delete", key: enc("a") }] },
    put("big", "x".repeat(100)), // storage_full
    {
      checks: [],
      mutations: [{ type: "delete", key: enc("a") }, { type: "delete", key: enc("gone") }],
    },
  );
  // Only the first and the last commands applied; revs are their entries' indexes.
  assert.deepEqual(seen, [
    { rev: 1, keys: ["a"], existed: [false] },
    { rev: 6, keys: ["a", "gone"], existed: [true, false] },
  ]);
  assert.equal(sm.rev, 6, "rev follows the applied entries");
});

Deno.test("KvStateMachine: onApplied also sees entries applied after a snapshot was decoded", () => {
  const first = new KvStateMachine();
  run(first, put("a", "1"), put("b", "2"));
  const revs: number[] = [];
  const sm = KvStateMachine.decodeSnapshot(first.encodeSnapshot(), {
    onApplied: (a) => revs.push(a.rev),
  });
  assert.equal(sm.rev, 2, "the decoded state is at the snapshot's rev; decoding calls nothing");
  assert.deepEqual(revs, []);
  run(sm, put("c", "3"));
  assert.deepEqual(revs, [3]);
});

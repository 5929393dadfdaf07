/**
 * Nothing a peer sends makes the core throw or half-apply a message: what no correct peer
 * sends is dropped, counted, and changes neither `status()` nor the next Ready.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type DropReason,
  type Entry,
  type Message,
  MESSAGE_TYPES,
  type Raft,
  type Ready,
} from "../../src/raft/mod.ts";
import { append, TestCluster, type TestNode } from "./harness.ts";

function dropsOf(raft: Raft): number {
  return Object.values(raft.droppedMessages()).reduce((a, b) => a + b, 0);
}

function normal(index: number, term: number): Entry {
  return { index, term, type: "normal", data: new Uint8Array([index]) };
}

Deno.test("a follower restarted with an empty data dir drops the leader's heartbeat beyond its log instead of throwing", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  for (let i = 0; i < 5; i++) c.propose("a", `w${i}`);
  const b = c.addEmptyNode("b"); // same id, wiped disk: it knows nothing, not even its term
  const before = b.raft.status();
  c.tick("a"); // heartbeat commit = min(b's match, commit) = 7 > b's last index 0
  assert.ok(b.raft.droppedMessages().commitBeyondLog >= 1);
  assert.equal(b.raft.status().commit, 0, "never committed beyond its log");
  assert.deepEqual(b.raft.status().term, before.term, "not even the term was taken");
});

Deno.test("a follower drops an append that contradicts its committed entries instead of acknowledging it", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  for (let i = 0; i < 3; i++) c.propose("a", `w${i}`);
  const b = c.node("b").raft;
  const before = b.status();
  assert.ok(before.commit >= 3);
  const index = before.commit - 1; // committed here with the current term
  // What a leader whose log diverged from ours (or a forger) would send: our committed entry
  // with another term. Answering "I hold up to my commit" would make it think we match.
  c.inflight = [];
  b.step(append("a", "b", b.term, index, b.term - 1, [], before.commit));
  assert.equal(b.droppedMessages().divergedCommit, 1);
  assert.deepEqual(b.status(), before);
  assert.equal(b.ready().messagesAfterPersist.length, 0, "no acknowledgement");
  b.advance();
});

Deno.test("a leader drops AppendEntries, heartbeats and snapshots from a second leader of its term", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  const a = c.node("a").raft;
  const before = a.status();
  a.step(append("c", "a", a.term, 0, 0, [], 0));
  a.step({ type: "heartbeat", from: "c", to: "a", term: a.term, commit: 0, readSeq: 0 });
  assert.equal(a.droppedMessages().secondLeader, 2);
  assert.deepEqual(a.status(), before);
  // A follower of a drops them too, and keeps following a.
  const b = c.node("b").raft;
  b.step(append("c", "b", b.term, 0, 0, [], 0));
  assert.equal(b.droppedMessages().secondLeader, 1);
  assert.equal(b.leader, "a");
});

Deno.test("each kind of impossible message is dropped with its reason and changes nothing", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.propose("a", "x");
  const b = c.node("b").raft;
  const t = b.term;
  const last = b.status().lastIndex;
  const cases: [unknown, DropReason][] = [
    [null, "malformed"],
    [{ type: "gossip", from: "a", to: "b", term: t }, "unknownType"],
    [{ type: "heartbeat", from: "a", to: "b", term: -1, commit: 0, readSeq: 0 }, "malformed"],
    [{ type: "heartbeat", from: "a", to: "b", term: t, commit: NaN, readSeq: 0 }, "malformed"],
    [{ type: "heartbeat", from: "a", to: "b", term: t, commit: 1.5, readSeq: 0 }, "malformed"],
    [{ type: "heartbeat", from: "a", to: "c", term: t, commit: 0, readSeq: 0 }, "wrongRecipient"],
    [{ type: "heartbeat", from: "b", to: "b", term: t, commit: 0, readSeq: 0 }, "fromSelf"],
    [
      { type: "heartbeat", from: "a", to: "b", term: t, commit: last + 1, readSeq: 0 },
      "commitBeyondLog",
    ],
    [append("a", "b", t, last, t, [normal(last + 2, t)]), "inconsistent"], // a gap
    [append("a", "b", t, last, t, [normal(last + 1, t + 1)]), "inconsistent"], // term > message's
    [append("a", "b", t, 1, 1, [normal(2, t), normal(3, t - 1)]), "inconsistent"], // decreasing
    [append("a", "b", t, 1, t + 1, []), "inconsistent"], // previous term above the message's
    [{
      type: "snap",
      from: "a",
      to: "b",
      term: t,
      meta: { index: 99, term: t, membership: { voters: [], outgoing: [], learners: [] } },
      offset: 0,
      total: 1,
      chunk: new Uint8Array(1),
    }, "inconsistent"],
    [{
      type: "snap",
      from: "a",
      to: "b",
      term: t,
      meta: { index: 99, term: t + 1, membership: { voters: ["a"], outgoing: [], learners: [] } },
      offset: 0,
      total: 1,
      chunk: new Uint8Array(1),
    }, "inconsistent"],
    [{
      type: "snap",
      from: "a",
      to: "b",
      term: t,
      meta: { index: 99, term: t, membership: { voters: ["a"], outgoing: [], learners: [] } },
      offset: 1,
      total: 1,
      chunk: new Uint8Array(1),
    }, "inconsistent"],
    [{ type: "timeoutNow", from: "c", to: "b", term: t }, "secondLeader"],
    [
      { type: "readIndexResp", from: "a", to: "b", term: t, context: "never asked", index: 1 },
      "unrequestedRead",
    ],
  ];
  for (const [m, reason] of cases) {
    const before = b.status();
    const count = b.droppedMessages()[reason];
    b.step(m as Message);
    assert.equal(b.droppedMessages()[reason], count + 1, `${JSON.stringify(m)}: ${reason}`);
    assert.deepEqual(b.status(), before, JSON.stringify(m));
  }
  const a = c.node("a").raft;
  const before = a.status();
  a.step({
    type: "appResp",
    from: "b",
    to: "a",
    term: t,
    index: last + 5,
    reject: false,
    rejectHint: 0,
    logTerm: 0,
  });
  a.step({ type: "heartbeatResp", from: "b", to: "a", term: t, readSeq: 1e9 });
  a.step({ type: "heartbeatResp", from: "zz", to: "a", term: t, readSeq: 0 });
  assert.equal(a.droppedMessages().inconsistent, 2);
  assert.equal(a.droppedMessages().notMember, 1);
  assert.deepEqual(a.status(), before);
});

// ---------------------------------------------------------------------------------------------
// Property: random and mutated messages, in every role

type Role = "leader" | "follower" | "candidate" | "preCandidate" | "joiner";
const ROLES: Role[] = ["leader", "follower", "candidate", "preCandidate", "joiner"];

/** Builds a cluster deterministically and returns the node under test in `role`. */
async function build(role: Role): Promise<{ c: TestCluster; node: TestNode }> {
  const c = await TestCluster.create(["a", "b", "c"], { preVote: role !== "candidate" });
  c.elect("a");
  c.propose("a", "one");
  c.propose("a", "two");
  switch (role) {
    case "leader":
      return { c, node: c.node("a") };
    case "follower":
      return { c, node: c.node("b") };
    case "joiner":
      return { c, node: c.addEmptyNode("d") };
    default: {
      c.isolate("b");
      const b = c.node("b");
      for (let i = 0; i < 100 && b.raft.role !== role; i++) c.tick("b");
      assert.equal(b.raft.role, role);
      return { c, node: b };
    }
  }
}

const FIELDS = [
  "type",
  "from",
  "to",
  "term",
  "index",
  "logTerm",
  "commit",
  "entries",
  "reject",
  "rejectHint",
  "readSeq",
  "offset",
  "total",
  "chunk",
  "meta",
  "snapIndex",
  "context",
  "transfer",
];
const WEIRD: unknown[] = [
  -1,
  0,
  1,
  2,
  3,
  4,
  5,
  100,
  1.5,
  NaN,
  Infinity,
  2 ** 53,
  "x",
  "",
  "a",
  "zz",
  null,
  undefined,
  true,
  false,
  [],
  {},
  new Uint8Array(3),
];

const weird = fc.oneof(fc.constantFrom(...WEIRD), fc.integer({ min: -2, max: 12 }));

/** Templates: every message type, aimed at `to`, plus the traffic the cluster really sent. */
function templates(c: TestCluster, to: string, term: number): Message[] {
  const membership = { voters: ["a", "b", "c"], outgoing: [], learners: [] };
  const own: Message[] = [
    append("a", to, term, 2, 2, [normal(3, term), normal(4, term)], 4),
    { type: "appResp", from: "b", to, term, index: 3, reject: false, rejectHint: 0, logTerm: 0 },
    { type: "appResp", from: "c", to, term, index: 3, reject: true, rejectHint: 2, logTerm: 1 },
    { type: "vote", from: "c", to, term: term + 1, index: 9, logTerm: term, transfer: false },
    { type: "preVote", from: "c", to, term: term + 1, index: 1, logTerm: 1, transfer: false },
    { type: "voteResp", from: "c", to, term, reject: false },
    { type: "preVoteResp", from: "c", to, term: term + 1, reject: false },
    { type: "heartbeat", from: "a", to, term, commit: 2, readSeq: 1 },
    { type: "heartbeatResp", from: "b", to, term, readSeq: 1 },
    {
      type: "snap",
      from: "a",
      to,
      term,
      meta: { index: 9, term, membership },
      offset: 0,
      total: 4,
      chunk: new Uint8Array(2),
    },
    { type: "snapResp", from: "b", to, term, snapIndex: 9, offset: 2 },
    { type: "timeoutNow", from: "a", to, term },
    { type: "readIndex", from: "b", to, term, context: "r" },
    { type: "readIndexResp", from: "a", to, term, context: "r", index: 2 },
  ];
  const seen = c.delivered.slice(-40).map((m) => ({ ...m, to }) as Message);
  return [...own, ...seen];
}

function mutate(m: Message, edits: [string, unknown][]): unknown {
  const out: Record<string, unknown> = { ...m };
  for (const [path, value] of edits) {
    const [field, sub] = path.split(".");
    if (sub === undefined) {
      out[field] = value;
    } else if (field === "entries" && Array.isArray(out.entries)) {
      const entries = [...out.entries] as Record<string, unknown>[];
      if (entries.length > 0) entries[0] = { ...entries[0], [sub]: value };
      out.entries = entries;
    } else if (field === "meta" && typeof out.meta === "object" && out.meta !== null) {
      out.meta = { ...out.meta, [sub]: value };
    }
  }
  return out;
}

type Action = { kind: "msg"; m: unknown } | { kind: "tick" } | { kind: "ready" };

function actions(msgs: Message[], term: number): fc.Arbitrary<Action[]> {
  const path = fc.oneof(
    fc.constantFrom(...FIELDS),
    fc.constantFrom("entries.index", "entries.term", "entries.type", "entries.data"),
    fc.constantFrom("meta.index", "meta.term", "meta.membership"),
  );
  const edit = fc.oneof(
    fc.tuple(path, weird),
    fc.tuple(fc.constant("term"), fc.integer({ min: Math.max(0, term - 1), max: term + 2 })),
    fc.tuple(fc.constant("from"), fc.constantFrom("a", "b", "c", "d", "zz")),
  );
  const message = fc.oneof(
    { weight: 1, arbitrary: fc.constantFrom<unknown>(null, 7, "app", []) },
    { weight: 3, arbitrary: fc.constantFrom(...msgs) },
    {
      weight: 12,
      arbitrary: fc.tuple(fc.constantFrom(...msgs), fc.array(edit, { minLength: 1, maxLength: 3 }))
        .map(([m, edits]) => mutate(m, edits)),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        type: fc.constantFrom(...MESSAGE_TYPES),
        from: fc.constantFrom("a", "b", "c", "zz"),
        to: fc.constantFrom(msgs[0].to),
        term: fc.integer({ min: 0, max: term + 2 }),
        index: fc.integer({ min: 0, max: 8 }),
        logTerm: fc.integer({ min: 0, max: term + 1 }),
        commit: fc.integer({ min: 0, max: 8 }),
        entries: fc.constant([]),
        reject: fc.boolean(),
        rejectHint: fc.integer({ min: 0, max: 8 }),
        readSeq: fc.integer({ min: 0, max: 3 }),
        snapIndex: fc.integer({ min: 0, max: 9 }),
        offset: fc.integer({ min: 0, max: 4 }),
        context: fc.constantFrom("r", "s"),
        transfer: fc.boolean(),
      }),
    },
  );
  const action: fc.Arbitrary<Action> = fc.oneof(
    { weight: 8, arbitrary: message.map((m): Action => ({ kind: "msg", m })) },
    { weight: 1, arbitrary: fc.constant<Action>({ kind: "tick" }) },
    { weight: 2, arbitrary: fc.constant<Action>({ kind: "ready" }) },
  );
  return fc.array(action, { minLength: 1, maxLength: 25 });
}

/** Persists and advances one Ready of a node; returns it for comparison. */
function runReady(node: TestNode): Ready | undefined {
  if (!node.raft.hasReady()) return undefined;
  const rd = node.raft.ready();
  node.storage.persist({ snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState });
  node.raft.advance();
  return rd;
}

for (const role of ROLES) {
  Deno.test(`a ${role} never throws on random and mutated messages, and a dropped one changes neither status() nor the next Ready`, async () => {
    const probe = await build(role);
    const msgs = templates(probe.c, probe.node.raft.id, probe.node.raft.term);
    let dropped = 0;
    await fc.assert(
      fc.asyncProperty(actions(msgs, probe.node.raft.term), async (script) => {
        // Twins: the same deterministic history. `a` gets every message, `b` only those `a`
        // did not drop; a dropped message changed nothing iff they stay equal.
        const a = (await build(role)).node;
        const b = (await build(role)).node;
        for (const act of script) {
          if (act.kind === "tick") {
            a.raft.tick();
            b.raft.tick();
          } else if (act.kind === "ready") {
            assert.deepEqual(runReady(a), runReady(b));
          } else {
            const count = dropsOf(a.raft);
            a.raft.step(act.m as Message);
            if (dropsOf(a.raft) > count) dropped++;
            else b.raft.step(act.m as Message);
          }
          assert.deepEqual(a.raft.status(), b.raft.status());
        }
        assert.deepEqual(runReady(a), runReady(b));
      }),
      { numRuns: 150 },
    );
    assert.ok(dropped > 100, `only ${dropped} messages were dropped: the generator is too tame`);
  });
}

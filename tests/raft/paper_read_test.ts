/**
 * Linearizable reads with ReadIndex, one test per rule of the Raft dissertation (§6.4): the
 * leader records its commit index, confirms with a heartbeat round that it still leads, and only
 * then answers; a leader that has not committed an entry of its term waits; a leader cut off
 * from a majority never answers.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Message, NotLeaderError } from "../../src/raft/mod.ts";
import { partition, TestCluster, tickUntil } from "./harness.ts";

const ELECTION = 10;

Deno.test("§6.4 ReadIndex: the leader answers with its commit index only after a heartbeat round confirms it still leads", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  const written = c.propose("a", "x=1");
  const a = c.node("a");
  const commit = a.raft.status().commit;
  assert.equal(commit, written);
  a.raft.readIndex("r1");
  c.processReady();
  assert.deepEqual(a.readStates, [], "not before the round");
  const round = c.inflight.filter((m) => m.type === "heartbeat");
  assert.deepEqual(round.map((m) => m.to).sort(), ["b", "c"]);
  assert.ok(round.every((m) => m.type === "heartbeat" && m.readSeq >= 1));
  // One acknowledgement (a and b: a majority of three) is enough.
  c.cut.add("c->a");
  c.deliverAll();
  assert.deepEqual(a.readStates, [{ context: "r1", index: commit }]);
  assert.ok(a.raft.status().applied >= commit, "the read can be served right away");
});

Deno.test("§6.4 ReadIndex: a read index covers every write committed before the read was requested", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  const a = c.node("a");
  for (let i = 0; i < 5; i++) {
    const written = c.propose("a", `x=${i}`);
    a.raft.readIndex(`after-${i}`);
    c.deliverAll();
    const rs = a.readStates.find((r) => r.context === `after-${i}`);
    assert.ok(rs !== undefined);
    assert.ok(rs.index >= written, `read ${rs.index} must see write ${written}`);
  }
});

Deno.test("§6.4 ReadIndex: a read at a follower is forwarded to the leader and answered with the leader's commit index", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.propose("a", "x=1");
  const b = c.node("b");
  const from = c.delivered.length;
  b.raft.readIndex("r2");
  c.deliverAll();
  assert.deepEqual(b.readStates, [{ context: "r2", index: c.node("a").raft.status().commit }]);
  const types = c.delivered.slice(from).map((m) => `${m.type} ${m.from}->${m.to}`);
  const ask = types.indexOf("readIndex b->a");
  const answer = types.indexOf("readIndexResp a->b");
  assert.ok(ask >= 0 && answer > ask, types.join(", "));
  assert.ok(
    types.slice(ask, answer).some((t) => t.startsWith("heartbeatResp")),
    "the leader confirmed its leadership in between",
  );
  assert.deepEqual(c.node("a").readStates, [], "the answer goes to the follower only");
});

Deno.test("§6.4 ReadIndex: a follower that knows no leader cannot take a read", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  assert.throws(() => c.node("b").raft.readIndex("r"), NotLeaderError);
});

Deno.test("§6.4 ReadIndex: a new leader serves no read before it commits an entry of its term", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  const a = c.node("a");
  const noAppAcks = (m: Message) => m.type !== "appResp";
  tickUntil(c, "a", () => a.raft.role === "leader", noAppAcks);
  a.raft.readIndex("early");
  for (let i = 0; i < 3; i++) tickUntil(c, "a", () => true, noAppAcks);
  assert.ok(c.delivered.some((m) => m.type === "heartbeatResp"), "heartbeats were answered");
  assert.deepEqual(a.readStates, [], "its commit index may still lag the true one");
  c.tick("a");
  const noop = 2;
  assert.equal(a.raft.status().commit, noop);
  assert.deepEqual(a.readStates, [{ context: "early", index: noop }]);
});

Deno.test("§6.4 ReadIndex: a leader cut off from the majority never answers a read, so no stale read is served", async () => {
  // Without check-quorum the old leader keeps believing it leads for as long as we like.
  const c = await TestCluster.create(["a", "b", "c", "d", "e"], { checkQuorum: false });
  c.elect("a");
  c.propose("a", "x=1");
  partition(c, ["a", "b"], ["c", "d", "e"]);
  const a = c.node("a");
  a.raft.readIndex("stale?");
  for (let i = 0; i < 10 * ELECTION; i++) {
    c.tick("a");
    c.tick("b");
  }
  assert.equal(a.raft.role, "leader");
  assert.ok(
    c.delivered.some((m) => m.type === "heartbeatResp" && m.from === "b" && m.readSeq >= 1),
  );
  assert.deepEqual(a.readStates, [], "b's acknowledgement makes 2 of 5: no quorum");
  // Meanwhile the majority elects a leader and commits a write the old leader never saw.
  assert.equal(c.elect("c"), "c");
  const write = c.propose("c", "x=2");
  c.node("c").raft.readIndex("fresh");
  c.deliverAll();
  assert.ok(c.node("c").readStates[0].index >= write);
  // After healing the old leader steps down; the pending read is dropped, never answered.
  c.heal();
  c.tickAll(3);
  assert.equal(a.raft.role, "follower");
  assert.deepEqual(a.readStates, []);
  // A retried read goes through the new leader and sees the write.
  a.raft.readIndex("retry");
  c.deliverAll();
  const retried = c.node("a").readStates; // (a.readStates was narrowed to [] above)
  assert.equal(retried.length, 1);
  assert.ok(retried[0].index >= write);
});

Deno.test("§6.4 ReadIndex: with check-quorum an isolated leader steps down and its pending read is dropped", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.isolate("a");
  const a = c.node("a");
  a.raft.readIndex("r");
  tickUntil(c, "a", () => a.raft.role !== "leader", () => true, 3 * ELECTION);
  c.heal();
  c.tickAll(3 * ELECTION);
  assert.deepEqual(a.readStates, []);
});

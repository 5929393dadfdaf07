/**
 * Leadership transfer, one test per rule of the Raft dissertation (§3.10): the leader stops
 * taking proposals, brings the target up to date, sends it TimeoutNow, and the target wins the
 * next term at once; a transfer that does not finish within an election timeout is abandoned.
 *
 * @module
 */
import assert from "node:assert/strict";
import { NotLeaderError, ProposalDroppedError, TransferLeaderError } from "../../src/raft/mod.ts";
import { appliedTexts, TestCluster } from "./harness.ts";

const ELECTION = 10;
const encoder = new TextEncoder();

Deno.test("§3.10: transferLeader(to) makes an up-to-date target leader of the next term without waiting for a timeout", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.propose("a", "x=1");
  const from = c.delivered.length;
  c.node("a").raft.transferLeader("b");
  c.deliverAll(); // no tick at all
  assert.equal(c.leader(), "b");
  assert.equal(c.node("b").raft.term, 3);
  assert.equal(c.node("a").raft.role, "follower");
  assert.equal(c.node("a").raft.leader, "b");
  const sent = c.delivered.slice(from);
  assert.ok(sent.some((m) => m.type === "timeoutNow" && m.from === "a" && m.to === "b"));
  c.propose("b", "x=2");
  for (const id of ["a", "b", "c"]) assert.deepEqual(appliedTexts(c.node(id)), ["x=1", "x=2"]);
});

Deno.test("§3.10: the leader refuses proposals while a transfer is in progress", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.isolate("c");
  const a = c.node("a").raft;
  a.transferLeader("c");
  assert.equal(a.status().leadTransferee, "c");
  assert.throws(() => a.propose(encoder.encode("x")), ProposalDroppedError);
  assert.throws(
    () => a.proposeMembership([{ type: "addLearner", id: "d" }]),
    ProposalDroppedError,
  );
});

Deno.test("§3.10: a lagging target is first brought up to date, then told to time out", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.isolate("c");
  for (let i = 0; i < 5; i++) c.propose("a", `x=${i}`);
  c.heal();
  const last = c.node("a").storage.lastIndex();
  assert.equal(c.node("c").storage.lastIndex(), 2, "c lags 5 entries");
  const from = c.delivered.length;
  c.node("a").raft.transferLeader("c");
  c.deliverAll();
  assert.equal(c.leader(), "c");
  const sent = c.delivered.slice(from);
  const caughtUp = sent.findIndex((m) =>
    m.type === "appResp" && m.from === "c" && !m.reject && m.index === last
  );
  const timeoutNow = sent.findIndex((m) => m.type === "timeoutNow");
  assert.ok(caughtUp >= 0, "c acknowledged the leader's last entry");
  assert.ok(timeoutNow > caughtUp, "and only then was told to campaign");
  assert.deepEqual(appliedTexts(c.node("c")), ["x=0", "x=1", "x=2", "x=3", "x=4"]);
});

Deno.test("§3.10: a transfer to an unreachable target is abandoned after an election timeout", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.isolate("c");
  const a = c.node("a").raft;
  a.transferLeader("c");
  for (let i = 0; i < ELECTION - 1; i++) {
    c.tick("a");
    c.tick("b");
  }
  assert.equal(a.status().leadTransferee, "c", "still trying");
  c.tick("a");
  assert.equal(a.status().leadTransferee, "", "abandoned");
  assert.equal(a.role, "leader");
  assert.equal(a.term, 2);
  c.propose("a", "x=1"); // proposals are taken again
  assert.deepEqual(appliedTexts(c.node("b")), ["x=1"]);
});

Deno.test("§3.10: only the leader transfers, and only to a voter", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  assert.throws(() => c.node("b").raft.transferLeader("c"), NotLeaderError);
  c.addEmptyNode("d");
  c.node("a").raft.proposeMembership([{ type: "addLearner", id: "d" }]);
  c.deliverAll();
  assert.throws(() => c.node("a").raft.transferLeader("d"), TransferLeaderError);
  assert.throws(() => c.node("a").raft.transferLeader("zz"), TransferLeaderError);
  assert.equal(c.node("a").raft.status().leadTransferee, "");
});

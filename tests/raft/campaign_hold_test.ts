/**
 * Held campaigns (`Raft.holdCampaigns`): what a driver whose disk fails relies on. Such a node
 * cannot make a term or a vote durable, so it must neither win an election nor raise a term
 * that would, once its disk returns, unseat the leader the others elected meanwhile.
 *
 * @module
 */
import assert from "node:assert/strict";
import { NONE } from "../../src/raft/mod.ts";
import { TestCluster } from "./harness.ts";

const ELECTION = 10;

Deno.test("held campaigns: a follower whose election timeout passes does not campaign", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  const term = c.node("a").raft.term;
  c.isolate("a"); // the leader is gone: b would campaign after its timeout
  const b = c.node("b").raft;
  b.holdCampaigns(true);
  const from = c.delivered.length;
  c.tick("b", 4 * ELECTION);
  assert.equal(b.role, "follower");
  assert.equal(b.term, term, "no term raised in memory either");
  assert.ok(
    !c.delivered.slice(from).some((m) =>
      m.from === "b" && (m.type === "preVote" || m.type === "vote")
    ),
    "no pre-vote or vote request left b",
  );
  // c, whose campaigns are not held, is elected with b's vote: b still answers votes.
  c.tick("c", 4 * ELECTION);
  assert.equal(c.leader(), "c");
  assert.equal(b.leader, "c");
});

Deno.test("held campaigns: TimeoutNow is ignored, so a leader cannot hand leadership to such a node", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.node("b").raft.holdCampaigns(true);
  const term = c.node("a").raft.term;
  c.node("a").raft.transferLeader("b");
  c.deliverAll();
  assert.ok(c.delivered.some((m) => m.type === "timeoutNow" && m.to === "b"));
  assert.equal(c.leader(), "a");
  assert.equal(c.node("b").raft.term, term);
});

Deno.test("held campaigns: a candidate goes back to following in its term when they are held", async () => {
  const c = await TestCluster.create(["a", "b", "c"], { preVote: false });
  c.elect("a");
  c.isolate("b");
  const b = c.node("b").raft;
  for (let i = 0; i < 4 * ELECTION && b.role !== "candidate"; i++) c.tick("b");
  assert.equal(b.role, "candidate");
  const term = b.term;
  b.holdCampaigns(true);
  assert.equal(b.role, "follower");
  assert.equal(b.term, term, "the term stays (terms never go back)");
  assert.equal(b.leader, NONE);
  c.heal();
  c.tick("b", 4 * ELECTION);
  assert.notEqual(b.role, "candidate");
  assert.notEqual(b.role, "leader");
});

Deno.test("held campaigns: released, the node campaigns again and can win", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.isolate("a");
  const b = c.node("b").raft;
  b.holdCampaigns(true);
  c.tick("b", 4 * ELECTION);
  assert.equal(b.role, "follower");
  b.holdCampaigns(false);
  assert.equal(b.campaignsHeld, false);
  c.node("c").raft.holdCampaigns(true); // so that the winner can only be b
  const role = () => b.role as string; // narrowed to "follower" above, changed by ticks
  for (let i = 0; i < 4 * ELECTION && role() !== "leader"; i++) c.tickAll();
  assert.equal(role(), "leader");
});

Deno.test("held campaigns: a leader keeps leading (stepping aside is a transfer)", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  const a = c.node("a").raft;
  a.holdCampaigns(true);
  c.tickAll(2 * ELECTION);
  assert.equal(c.leader(), "a");
  a.transferLeader("b");
  c.deliverAll();
  assert.equal(c.leader(), "b");
  c.tickAll(4 * ELECTION);
  assert.equal(c.leader(), "b", "a does not take leadership back");
});

/**
 * §5.2: a follower restarts its election timeout only when it hears from the current leader or
 * grants a vote (and a node when it campaigns or leads). Stepping down to a higher term does
 * not restart it.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Message } from "../../src/raft/mod.ts";
import { outbox, TestCluster } from "./harness.ts";

Deno.test("§5.2: a fast-ticking node with a stale log cannot keep the cluster leaderless by refused vote requests", async () => {
  // Without pre-vote and check-quorum nothing else shields b from c's campaigns.
  const c = await TestCluster.create(["a", "b", "c"], { preVote: false, checkQuorum: false });
  c.elect("a");
  c.isolate("c");
  c.propose("a", "c misses this"); // committed on a and b: c's log is stale
  c.heal();
  c.isolate("a"); // the leader dies
  const a = c.node("a").raft;
  // c ticks three times as fast as b: it times out first, again and again, and b refuses it
  // every time (c's log is behind). b must still reach its own timeout and win.
  for (let round = 0; round < 2_000; round++) {
    c.tickRounds(1, { a: 0, b: 1, c: 3 });
    const leader = c.leader();
    if (leader !== "" && leader !== "a" && c.node(leader).raft.term > a.term) break;
  }
  assert.equal(c.leader(), "b");
  assert.ok(c.node("b").raft.term > a.term);
});

Deno.test("§5.2: stepping down to a higher term for a refused vote does not restart the election timer", async () => {
  const c = await TestCluster.create(["a", "b", "c"], { preVote: false, checkQuorum: false });
  c.elect("a");
  c.isolate("a");
  const b = c.node("b").raft;
  const lastIndex = b.status().lastIndex;
  for (let i = 0; i < 9; i++) b.tick(); // 9 of at least 10 ticks
  outbox(c);
  const stale: Message = {
    type: "vote",
    from: "c",
    to: "b",
    term: b.term + 5,
    index: lastIndex - 1,
    logTerm: 1,
    transfer: false,
  };
  b.step(stale);
  assert.equal(b.role, "follower");
  assert.ok(
    outbox(c).some((m) => m.type === "voteResp" && m.reject),
    "the vote is refused",
  );
  // b keeps counting from 9: it campaigns within its randomized timeout [10, 20) ticks.
  let ticks = 9;
  while (b.role === "follower") {
    b.tick();
    ticks++;
    assert.ok(ticks < 20, "the refused request restarted b's timer");
  }
  assert.equal(b.role, "candidate");
});

Deno.test("§5.2: granting a vote restarts the election timer", async () => {
  const c = await TestCluster.create(["a", "b", "c"], { preVote: false, checkQuorum: false });
  c.elect("a");
  c.isolate("a");
  const b = c.node("b").raft;
  for (let i = 0; i < 9; i++) b.tick();
  outbox(c);
  const st = b.status();
  b.step({
    type: "vote",
    from: "c",
    to: "b",
    term: b.term + 1,
    index: st.lastIndex,
    logTerm: c.node("b").storage.term(st.lastIndex),
    transfer: false,
  });
  assert.ok(outbox(c).some((m) => m.type === "voteResp" && !m.reject), "the vote is granted");
  for (let i = 0; i < 9; i++) b.tick();
  assert.equal(b.role, "follower", "the timer started over at the grant");
});

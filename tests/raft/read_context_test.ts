/**
 * §6.4 ReadIndex at a follower: an answer is taken only for a read this very process forwarded,
 * from the leader and in the term it was forwarded to. Anything else is a late answer to an
 * earlier request (of an earlier process, say) and serving it could be a stale read.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Message } from "../../src/raft/mod.ts";
import { TestCluster } from "./harness.ts";

function isReadAnswerTo(to: string) {
  return (m: Message) => m.type === "readIndexResp" && m.to === to;
}

Deno.test("§6.4: a restarted follower drops the leader's late answer to a read of its previous process", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.propose("a", "w1");
  // b's first process forwards read "b:1"; the answer is delayed in the network.
  c.node("b").raft.readIndex("b:1");
  const held: Message[] = [];
  c.deliverAll((m) => {
    if (!isReadAnswerTo("b")(m)) return true;
    held.push(m);
    return false;
  });
  assert.equal(held.length, 1);
  // b restarts (a new Raft over the same disk) and its read counter starts over.
  const b = c.restart("b");
  assert.equal(b.readStates.length, 0);
  // A write is acknowledged; then the new process starts its own read "b:1".
  const w2 = c.propose("a", "w2");
  assert.equal(b.raft.leader, "a");
  // The old answer arrives first: taken, it would serve the new read at the old index.
  c.inflight.push(...held);
  c.deliverAll();
  assert.equal(b.readStates.length, 0, "the late answer is not handed to the application");
  assert.equal(b.raft.droppedMessages().unrequestedRead, 1);
  b.raft.readIndex("b:1");
  c.deliverAll();
  assert.equal(b.readStates.length, 1);
  assert.equal(b.readStates[0].context, "b:1");
  assert.ok(b.readStates[0].index >= w2, "the read sees the write acknowledged before it");
});

Deno.test("§6.4: a follower drops a read answer from a node it did not forward the read to", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  const b = c.node("b");
  b.raft.readIndex("r1");
  assert.equal(b.raft.status().readsPending, 1);
  // c is not the leader b asked: an answer from it is impossible in this term.
  b.raft.step({
    type: "readIndexResp",
    from: "c",
    to: "b",
    term: b.raft.term,
    context: "r1",
    index: 1,
  });
  c.processReady();
  assert.equal(b.readStates.length, 0);
  assert.equal(b.raft.droppedMessages().unrequestedRead, 1);
  c.deliverAll();
  assert.equal(b.readStates.length, 1, "the real answer is still taken");
  assert.equal(b.raft.status().readsPending, 0);
});

Deno.test("§6.4: forwarded reads are forgotten when the term changes; their late answers are not served", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.node("b").raft.readIndex("r1");
  const held: Message[] = [];
  c.deliverAll((m) => {
    if (!isReadAnswerTo("b")(m)) return true;
    held.push(m);
    return false;
  });
  c.isolate("a");
  const b = c.node("b");
  const term = b.raft.term;
  for (let i = 0; i < 100 && b.raft.term === term; i++) c.tickRounds(1, { a: 0 });
  assert.ok(b.raft.term > term, "a new term: b forgets r1");
  assert.equal(b.raft.status().readsPending, 0);
  c.heal();
  c.inflight.push(...held);
  c.deliverAll();
  assert.equal(b.readStates.length, 0);
});

Deno.test("§6.4: a follower keeps at most readsPendingMax forwarded reads and refuses a context that is outstanding", async () => {
  const c = await TestCluster.create(["a", "b", "c"], { limits: { readsPendingMax: 2 } });
  c.elect("a");
  const b = c.node("b");
  b.raft.readIndex("r1");
  assert.throws(() => b.raft.readIndex("r1"), /already outstanding/);
  c.deliverAll((m) => m.type !== "readIndex"); // the request is lost on the way
  b.raft.readIndex("r2");
  c.deliverAll();
  assert.equal(b.raft.status().readsPending, 1, "r1 still waits for its answer");
  b.raft.readIndex("r3");
  b.raft.readIndex("r4"); // r1, the oldest, is forgotten
  assert.equal(b.raft.status().readsPending, 2);
  c.deliverAll();
  assert.deepEqual(b.readStates.map((r) => r.context), ["r2", "r3", "r4"]);
  assert.equal(b.raft.status().readsPending, 0);
  const late: Message = {
    type: "readIndexResp",
    from: "a",
    to: "b",
    term: b.raft.term,
    context: "r1",
    index: 1,
  };
  b.raft.step(late);
  assert.equal(b.raft.droppedMessages().unrequestedRead, 1, "a late answer to r1 is dropped");
});

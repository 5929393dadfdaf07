/**
 * Leader election, one test per rule of the Raft paper (§5.1, §5.2, §5.4.1) and of the
 * dissertation's extensions that guard elections (§4.2.3 leases, §6.2 check-quorum, §9.6
 * pre-vote), in the style of etcd's raft_paper_test.go.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Entry, Message, NodeId } from "../../src/raft/mod.ts";
import { append, outbox, partition, TestCluster, tickUntil } from "./harness.ts";

const ELECTION = 10; // the harness default electionTicks

// ---------------------------------------------------------------------------------------------
// Helpers

function heartbeat(from: NodeId, to: NodeId, term: number): Message {
  return { type: "heartbeat", from, to, term, commit: 0, readSeq: 0 };
}

function voteRequest(
  from: NodeId,
  to: NodeId,
  term: number,
  index: number,
  logTerm: number,
  transfer = false,
): Message {
  return { type: "vote", from, to, term, index, logTerm, transfer };
}

function normal(index: number, term: number, text = ""): Entry {
  return { index, term, type: "normal", data: new TextEncoder().encode(text) };
}

// ---------------------------------------------------------------------------------------------
// §5.1 Terms

Deno.test("§5.1: a follower that sees a higher term adopts it and follows the sender", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  const b = c.node("b").raft;
  assert.equal(b.term, 1);
  b.step(heartbeat("a", "b", 5));
  outbox(c);
  assert.equal(b.role, "follower");
  assert.equal(b.term, 5);
  assert.equal(b.leader, "a");
  assert.equal(c.node("b").storage.hardState().term, 5, "the new term is persisted");
});

Deno.test("§5.1: a candidate that sees a higher term becomes a follower", async () => {
  const c = await TestCluster.create(["a", "b", "c"], { preVote: false });
  c.isolate("a");
  const a = c.node("a").raft;
  tickUntil(c, "a", () => a.role === "candidate");
  assert.equal(a.term, 2);
  a.step(append("b", "a", 3, 1, 1));
  outbox(c);
  assert.equal(a.role, "follower");
  assert.equal(a.term, 3);
  assert.equal(a.leader, "b");
});

Deno.test("§5.1: a pre-candidate that sees a higher term becomes a follower", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.isolate("a");
  const a = c.node("a").raft;
  tickUntil(c, "a", () => a.role === "preCandidate");
  assert.equal(a.term, 1, "a pre-candidate does not increment its term");
  a.step(heartbeat("b", "a", 2));
  outbox(c);
  assert.equal(a.role, "follower");
  assert.equal(a.term, 2);
  assert.equal(a.leader, "b");
});

Deno.test("§5.1: a leader that sees a higher term becomes a follower", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  assert.equal(c.elect("a"), "a");
  const a = c.node("a").raft;
  assert.equal(a.term, 2);
  a.step(heartbeat("b", "a", 3));
  outbox(c);
  assert.equal(a.role, "follower");
  assert.equal(a.term, 3);
  assert.equal(a.leader, "b");
  assert.equal(c.node("a").storage.hardState().term, 3);
});

Deno.test("§5.1: a request with a stale term is rejected and tells the sender the current term", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  const b = c.node("b").raft;
  const before = c.node("b").storage.lastIndex();
  // A stale leader of term 1 tries to append an entry.
  b.step(append("c", "b", 1, 2, 1, [normal(3, 1, "stale")]));
  const out = outbox(c);
  assert.equal(b.term, 2);
  assert.equal(b.leader, "a");
  assert.equal(c.node("b").storage.lastIndex(), before, "nothing appended");
  const resp = out.filter((m) => m.to === "c");
  assert.equal(resp.length, 1);
  assert.equal(resp[0].type, "appResp");
  assert.equal(resp[0].term, 2, "the answer carries the newer term");
  // A stale vote request is not granted.
  b.step(voteRequest("c", "b", 1, 10, 1));
  const out2 = outbox(c);
  assert.ok(!out2.some((m) => m.type === "voteResp" && !m.reject), "no vote granted");
  assert.equal(b.status().vote, "a", "its vote of term 2 stands");
});

// ---------------------------------------------------------------------------------------------
// §5.2 Leader election

Deno.test("§5.2: a follower that hears nothing for an election timeout starts an election", async () => {
  const c = await TestCluster.create(["a", "b", "c"], { preVote: false });
  const a = c.node("a").raft;
  let ticks = 0;
  let sent: Message[] = [];
  while (a.role === "follower") {
    a.tick();
    ticks++;
    sent = outbox(c);
  }
  assert.ok(ticks >= ELECTION && ticks < 2 * ELECTION, `campaigned after ${ticks} ticks`);
  assert.equal(a.role, "candidate");
  assert.equal(a.term, 2, "it increments its term");
  assert.equal(a.status().vote, "a", "it votes for itself");
  assert.deepEqual(c.node("a").storage.hardState(), { term: 2, vote: "a", commit: 1 });
  const votes = sent.filter((m) => m.type === "vote");
  assert.deepEqual(votes.map((m) => m.to).sort(), ["b", "c"], "it asks every other voter");
  for (const m of votes) {
    assert.equal(m.term, 2);
    if (m.type === "vote") {
      assert.equal(m.index, 1, "last log index");
      assert.equal(m.logTerm, 1, "last log term");
    }
  }
});

Deno.test("§5.2: election timeouts are randomized in [electionTicks, 2 * electionTicks)", async () => {
  const seen: number[] = [];
  for (let seed = 1; seed <= 40; seed++) {
    const c = await TestCluster.create(["a", "b", "c"], { preVote: false, seed });
    for (const id of ["a", "b", "c"]) c.isolate(id);
    for (const id of ["a", "b", "c"]) {
      const r = c.node(id).raft;
      // The first timeout, then the one after the failed campaign (a fresh draw).
      seen.push(tickUntil(c, id, () => r.role === "candidate"));
      const term = r.term;
      seen.push(tickUntil(c, id, () => r.term > term));
    }
  }
  for (const t of seen) {
    assert.ok(t >= ELECTION && t < 2 * ELECTION, `timeout ${t} outside [10, 20)`);
  }
  const distinct = new Set(seen);
  assert.ok(distinct.size >= ELECTION - 2, `only ${distinct.size} distinct timeouts`);
  assert.ok(Math.min(...seen) <= ELECTION + 1 && Math.max(...seen) >= 2 * ELECTION - 2);
});

Deno.test("§5.2: a candidate that receives votes from a majority becomes leader", async () => {
  const c = await TestCluster.create(["a", "b", "c", "d", "e"], { preVote: false });
  partition(c, ["a", "b", "c"], ["d", "e"]);
  assert.equal(c.elect("a"), "a");
  const a = c.node("a").raft;
  assert.equal(a.role, "leader");
  assert.equal(a.term, 2);
  const granted = c.delivered.filter((m) => m.type === "voteResp" && !m.reject && m.to === "a");
  assert.deepEqual(granted.map((m) => m.from).sort(), ["b", "c"]);
  assert.equal(c.node("d").raft.term, 1, "d never heard of the election");
  for (const id of ["b", "c"]) {
    assert.equal(c.node(id).raft.leader, "a");
    assert.equal(c.node(id).raft.status().vote, "a");
  }
});

Deno.test("§5.2: a candidate without a majority stays candidate, then retries in a new term", async () => {
  const c = await TestCluster.create(["a", "b", "c", "d", "e"], { preVote: false });
  partition(c, ["a", "b"], ["c", "d", "e"]);
  const a = c.node("a").raft;
  tickUntil(c, "a", () => a.role === "candidate");
  assert.equal(a.term, 2);
  assert.equal(c.node("b").raft.status().vote, "a", "b voted, but 2 of 5 is no majority");
  // It stays a candidate until its election timeout elapses again (a split vote).
  const ticks = tickUntil(c, "a", () => a.term === 3);
  assert.ok(ticks >= ELECTION && ticks < 2 * ELECTION);
  assert.equal(a.role, "candidate");
  assert.equal(c.leader(), "");
});

Deno.test("§5.2: a candidate that hears from a leader of its own term returns to follower", async () => {
  const c = await TestCluster.create(["a", "b", "c"], { preVote: false });
  c.isolate("a");
  const a = c.node("a").raft;
  tickUntil(c, "a", () => a.role === "candidate");
  assert.equal(a.term, 2);
  a.step(append("b", "a", 2, 1, 1, [normal(2, 2)], 1));
  outbox(c);
  assert.equal(a.role, "follower");
  assert.equal(a.term, 2);
  assert.equal(a.leader, "b");
  assert.equal(c.node("a").storage.lastIndex(), 2, "and accepts its entries");
});

Deno.test("§5.2: a follower votes for at most one candidate per term, first come first served", async () => {
  const c = await TestCluster.create(["a", "b", "c"], { preVote: false });
  const node = c.node("c");
  node.raft.step(voteRequest("a", "c", 2, 1, 1));
  node.raft.step(voteRequest("b", "c", 2, 1, 1));
  let out = outbox(c);
  const answer = (to: NodeId) => {
    const m = out.find((m) => m.type === "voteResp" && m.to === to);
    return m?.type === "voteResp" ? (m.reject ? "refused" : "granted") : "none";
  };
  assert.equal(answer("a"), "granted", "a granted");
  assert.equal(answer("b"), "refused", "b refused");
  assert.deepEqual(node.storage.hardState(), { term: 2, vote: "a", commit: 1 });
  // A repeated request of the candidate it voted for is granted again (RPCs are idempotent).
  node.raft.step(voteRequest("a", "c", 2, 1, 1));
  node.raft.step(voteRequest("b", "c", 2, 1, 1));
  out = outbox(c);
  assert.equal(answer("a"), "granted");
  assert.equal(answer("b"), "refused");
  // The vote survives a restart: it was persisted before the answer was sent.
  c.restart("c");
  c.node("c").raft.step(voteRequest("b", "c", 2, 1, 1));
  out = outbox(c);
  assert.equal(answer("b"), "refused");
  // In a new term the node may vote again.
  c.node("c").raft.step(voteRequest("b", "c", 3, 1, 1));
  out = outbox(c);
  assert.equal(answer("b"), "granted");
});

Deno.test("§5.4.1: a voter refuses a candidate whose log is less up to date (last term, then index)", async () => {
  // The voter's log: [1:t1, 2:t2, 3:t2] (last term 2, last index 3).
  const cases: { index: number; logTerm: number; grant: boolean; why: string }[] = [
    { index: 1, logTerm: 1, grant: false, why: "lower last term, shorter" },
    { index: 5, logTerm: 1, grant: false, why: "lower last term, longer" },
    { index: 2, logTerm: 2, grant: false, why: "same last term, shorter" },
    { index: 3, logTerm: 2, grant: true, why: "same last term, same length" },
    { index: 4, logTerm: 2, grant: true, why: "same last term, longer" },
    { index: 2, logTerm: 3, grant: true, why: "higher last term, shorter" },
  ];
  for (const tc of cases) {
    const c = await TestCluster.create(["a", "b", "c"], { preVote: false, checkQuorum: false });
    const voter = c.node("c").raft;
    voter.step(append("a", "c", 2, 1, 1, [normal(2, 2), normal(3, 2)], 1));
    outbox(c);
    assert.equal(c.node("c").storage.lastIndex(), 3);
    voter.step(voteRequest("b", "c", 4, tc.index, tc.logTerm));
    const resp = outbox(c).find((m) => m.type === "voteResp");
    assert.ok(resp !== undefined && resp.type === "voteResp", tc.why);
    assert.equal(!resp.reject, tc.grant, tc.why);
    assert.equal(voter.status().vote, tc.grant ? "b" : "", tc.why);
    assert.equal(voter.term, 4, `${tc.why}: the term is adopted either way`);
  }
});

Deno.test("§5.2: a new leader appends a no-op entry of its term, which commits and is applied", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  const a = c.node("a");
  const last = a.storage.entries(a.storage.lastIndex(), a.storage.lastIndex() + 1)[0];
  assert.equal(last.index, 2);
  assert.equal(last.term, a.raft.term);
  assert.equal(last.type, "normal");
  assert.equal(last.data.length, 0);
  for (const id of ["a", "b", "c"]) {
    assert.equal(c.node(id).raft.status().commit, 2, id);
    assert.deepEqual(c.node(id).applied.map((e) => [e.index, e.term]), [[1, 1], [2, 2]], id);
  }
});

Deno.test("§5.2: a leader sends a heartbeat every heartbeat interval, which keeps followers from campaigning", async () => {
  const c = await TestCluster.create(["a", "b", "c"], { heartbeatTicks: 3 });
  c.elect("a");
  const a = c.node("a").raft;
  const perTick: number[] = [];
  for (let i = 0; i < 9; i++) {
    a.tick();
    perTick.push(outbox(c).filter((m) => m.type === "heartbeat").length);
  }
  assert.deepEqual(perTick, [0, 0, 2, 0, 0, 2, 0, 0, 2]);
  // With heartbeats delivered, nobody campaigns for many election timeouts.
  const from = c.delivered.length;
  c.tickAll(20 * ELECTION);
  for (const id of ["a", "b", "c"]) {
    assert.equal(c.node(id).raft.term, 2, id);
    assert.equal(c.node(id).raft.leader, "a", id);
  }
  const campaigns = c.delivered.slice(from).filter((m) =>
    m.type === "preVote" || m.type === "vote"
  );
  assert.deepEqual(campaigns, []);
});

Deno.test("§4.2.3: a follower that heard from its leader ignores vote requests unless a transfer sent them", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  const b = c.node("b").raft;
  // A disruptive server (e.g. one that was partitioned or removed) asks for votes.
  b.step(voteRequest("c", "b", 9, 100, 9));
  b.step({ type: "preVote", from: "c", to: "b", term: 9, index: 100, logTerm: 9, transfer: false });
  assert.equal(outbox(c).filter((m) => m.to === "c").length, 0, "no answer at all");
  assert.equal(b.term, 2);
  assert.equal(b.leader, "a");
  // The same request sent by a leadership transfer is honoured.
  b.step(voteRequest("c", "b", 9, 100, 9, true));
  const out = outbox(c);
  assert.equal(b.term, 9);
  assert.ok(out.some((m) => m.type === "voteResp" && m.to === "c" && !m.reject));
  // After an election timeout without the leader, ordinary requests count again.
  const c2 = await TestCluster.create(["a", "b", "c"]);
  c2.elect("a");
  c2.isolate("a");
  const b2 = c2.node("b").raft;
  for (let i = 0; i < ELECTION - 1; i++) b2.tick(); // below any randomized timeout
  b2.step(voteRequest("c", "b", 9, 100, 9));
  assert.equal(outbox(c2).filter((m) => m.to === "c").length, 0, "still within the lease");
  b2.tick();
  outbox(c2);
  b2.step(voteRequest("c", "b", 9, 100, 9));
  assert.ok(outbox(c2).some((m) => m.type === "voteResp" && m.to === "c" && !m.reject));
});

// ---------------------------------------------------------------------------------------------
// Stale leaders (§5.1, §6.2 check-quorum)

Deno.test("§5.1: a partitioned stale leader steps down on seeing a higher term and its uncommitted entries are replaced", async () => {
  // Without check-quorum the minority leader keeps believing it leads.
  const ids = ["a", "b", "c", "d", "e"];
  const c = await TestCluster.create(ids, { checkQuorum: false });
  c.elect("a");
  c.propose("a", "committed");
  partition(c, ["a", "b"], ["c", "d", "e"]);
  const a = c.node("a").raft;
  const stale1 = a.propose(new TextEncoder().encode("stale-1"));
  const stale2 = a.propose(new TextEncoder().encode("stale-2"));
  c.deliverAll();
  for (let i = 0; i < 5 * ELECTION; i++) {
    c.tick("a");
    c.tick("b");
  }
  assert.equal(a.role, "leader", "the stale leader does not notice by itself");
  assert.equal(a.term, 2);
  assert.equal(a.status().commit, 3, "its new entries cannot commit with 2 of 5");
  assert.equal(c.node("b").storage.lastIndex(), 5, "b stored them");

  assert.equal(c.elect("c"), "c");
  const fresh = c.propose("c", "fresh-1");
  assert.equal(c.node("c").raft.term, 3);
  assert.equal(c.node("c").raft.status().commit, fresh);
  assert.equal(a.role, "leader", "two leaders, in different terms");

  c.heal();
  // The stale leader speaks first: the answers carry term 3 and it reverts to follower at once.
  c.tick("a");
  assert.equal(a.role, "follower");
  assert.equal(a.term, 3);
  assert.equal(c.leader(), "c");
  c.tick("c"); // one heartbeat round of the real leader
  assert.equal(a.leader, "c");
  const aLog = c.node("a").storage;
  const cLog = c.node("c").storage;
  assert.deepEqual(aLog.entries(1, aLog.lastIndex() + 1), cLog.entries(1, cLog.lastIndex() + 1));
  for (const p of [stale1, stale2]) {
    const t = aLog.lastIndex() >= p.index ? aLog.term(p.index) : undefined;
    assert.notEqual(t, p.term, `the stale proposal at ${p.index} was replaced`);
  }
  const texts = (id: string) =>
    c.node(id).applied.filter((e) => e.data.length > 0).map((e) =>
      new TextDecoder().decode(e.data)
    );
  for (const id of ids) assert.deepEqual(texts(id), ["committed", "fresh-1"], id);
});

Deno.test("§6.2 check-quorum: an isolated leader steps down by itself within two election timeouts", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.tickAll(3 * ELECTION + 3);
  const a = c.node("a").raft;
  assert.equal(a.role, "leader");
  c.isolate("a");
  const ticks = tickUntil(c, "a", () => a.role !== "leader", () => true, 10 * ELECTION);
  assert.ok(
    ticks >= ELECTION && ticks <= 2 * ELECTION,
    `stepped down after ${ticks} ticks, expected within [${ELECTION}, ${2 * ELECTION}]`,
  );
  assert.equal(a.role, "follower");
  assert.equal(a.term, 2, "stepping down for lack of a quorum does not start a term");
  assert.equal(a.leader, "");
  // The majority elects a new leader; after healing the old one follows it.
  for (let i = 0; i < 10 * ELECTION && !["b", "c"].includes(c.leader()); i++) {
    c.tick("b");
    c.tick("c");
  }
  const leader = c.leader();
  assert.ok(leader === "b" || leader === "c");
  c.heal();
  c.tickAll(2);
  assert.equal(a.leader, leader);
  assert.equal(a.term, c.node(leader).raft.term);
});

// ---------------------------------------------------------------------------------------------
// Pre-vote (dissertation §9.6)

Deno.test("§9.6 pre-vote: a partitioned follower does not inflate its term and does not disrupt the cluster on return", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.propose("a", "x");
  c.isolate("c");
  const from = c.delivered.length;
  c.tickAll(20 * ELECTION);
  const isolated = c.node("c").raft;
  assert.ok(isolated.role === "follower" || isolated.role === "preCandidate");
  assert.equal(isolated.term, 2, "pre-votes fail, so the term never grows");
  c.heal();
  c.tickAll(3 * ELECTION);
  assert.equal(c.leader(), "a");
  for (const id of ["a", "b", "c"]) {
    assert.equal(c.node(id).raft.term, 2, id);
    assert.equal(c.node(id).raft.leader, "a", id);
  }
  const votes = c.delivered.slice(from).filter((m) => m.type === "vote");
  assert.deepEqual(votes, [], "no real election happened");
  c.propose("a", "y");
  assert.equal(isolated.status().commit, c.node("a").raft.status().commit);
});

Deno.test("§9.6 contrast: without pre-vote a partitioned follower's term grows and it disrupts the leader on return", async () => {
  const c = await TestCluster.create(["a", "b", "c"], { preVote: false });
  c.elect("a");
  c.isolate("c");
  c.tickAll(20 * ELECTION);
  const isolated = c.node("c").raft;
  assert.ok(isolated.term >= 10, `term grew to ${isolated.term}`);
  const inflated = isolated.term;
  c.heal();
  c.tickAll(5 * ELECTION);
  const leader = c.leader();
  assert.notEqual(leader, "");
  assert.ok(
    c.node(leader).raft.term >= inflated,
    "the cluster had to move past the isolated node's term: leader a was deposed",
  );
});

Deno.test("§5.2: a single voter elects itself after its election timeout and commits alone", async () => {
  const c = await TestCluster.create(["a"]);
  const a = c.node("a").raft;
  const ticks = tickUntil(c, "a", () => a.role === "leader");
  assert.ok(ticks >= ELECTION && ticks < 2 * ELECTION);
  assert.equal(a.term, 2);
  const { index } = a.propose(new TextEncoder().encode("x"));
  c.deliverAll();
  assert.equal(a.status().commit, index);
  a.readIndex("r");
  c.deliverAll();
  assert.deepEqual(c.node("a").readStates, [{ context: "r", index }]);
});

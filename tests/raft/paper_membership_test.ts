/**
 * Membership changes, one test per rule of the Raft dissertation (chapter 4): a configuration
 * takes effect when its entry is appended, one change at a time, joint consensus for voter
 * changes, learners (non-voting members, §4.2.1), removal of the leader (§4.2.2) and removed
 * servers that must not disrupt the cluster (§4.2.3).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type Entry,
  type Membership,
  MembershipChangeError,
  membersOf,
  type Message,
  type NodeId,
} from "../../src/raft/mod.ts";
import { appliedTexts, TestCluster, tickUntil } from "./harness.ts";

const ELECTION = 10;

// ---------------------------------------------------------------------------------------------
// Helpers

/** The whole log a node persisted (from its first index). */
function logOf(c: TestCluster, id: NodeId): Entry[] {
  const s = c.node(id).storage;
  return s.entries(s.firstIndex(), s.lastIndex() + 1);
}

/** The memberships of the config entries in a node's log, in order. */
function configsOf(c: TestCluster, id: NodeId): Membership[] {
  return logOf(c, id).filter((e) => e.type === "config").map((e) => e.membership!);
}

function m(voters: NodeId[], outgoing: NodeId[] = [], learners: NodeId[] = []): Membership {
  return { voters, outgoing, learners };
}

function isCampaign(msg: Message): boolean {
  return msg.type === "vote" || msg.type === "preVote";
}

// ---------------------------------------------------------------------------------------------
// Taking effect, one at a time

Deno.test("§4.1: a membership takes effect on each server as soon as its entry is appended, before it commits", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.addEmptyNode("d");
  const a = c.node("a").raft;
  const noAcks = (msg: Message) => msg.type !== "appResp" && msg.type !== "heartbeatResp";
  const { index } = a.proposeMembership([{ type: "addLearner", id: "d" }]);
  c.deliverAll(noAcks);
  assert.equal(a.status().commit, index - 1, "not committed");
  for (const id of ["a", "b", "c"]) {
    assert.deepEqual(c.node(id).raft.membership, m(["a", "b", "c"], [], ["d"]), id);
  }
  assert.ok(
    a.status().progress.some((p) => p.id === "d" && !p.voter),
    "the leader tracks the learner at once",
  );
});

Deno.test("§4.1: a configuration entry that is truncated away takes its membership with it", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.addEmptyNode("d");
  c.isolate("a");
  const a = c.node("a").raft;
  a.proposeMembership([{ type: "addLearner", id: "d" }]);
  c.deliverAll();
  assert.deepEqual(a.membership, m(["a", "b", "c"], [], ["d"]));
  // b and c move on without a; when a rejoins its uncommitted config entry is replaced.
  for (let i = 0; i < 20 * ELECTION && !["b", "c"].includes(c.leader()); i++) {
    c.tick("b");
    c.tick("c");
  }
  const leader = c.leader();
  assert.ok(leader === "b" || leader === "c");
  c.heal();
  c.tick(leader, 2);
  assert.equal(a.role, "follower");
  assert.deepEqual(a.membership, m(["a", "b", "c"]), "back to the previous membership");
  assert.deepEqual(configsOf(c, "a"), [m(["a", "b", "c"])]);
});

Deno.test("§4.1: only one membership change at a time: a second one is refused until the first commits", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.addEmptyNode("d");
  c.addEmptyNode("e");
  const a = c.node("a").raft;
  const noAcks = (msg: Message) => msg.type !== "appResp" && msg.type !== "heartbeatResp";
  a.proposeMembership([{ type: "addLearner", id: "d" }]);
  c.deliverAll(noAcks);
  assert.throws(
    () => a.proposeMembership([{ type: "addLearner", id: "e" }]),
    MembershipChangeError,
  );
  c.tick("a");
  a.proposeMembership([{ type: "addLearner", id: "e" }]); // the first one committed
  c.deliverAll();
  // A voter change: once C_old,new commits the leader appends C_new; until C_new commits, no
  // further change is accepted either.
  const joint = a.proposeMembership([{ type: "addVoter", id: "d" }]);
  assert.throws(() => a.proposeMembership([{ type: "remove", id: "e" }]), MembershipChangeError);
  c.deliverAll(() => a.status().commit < joint.index);
  assert.equal(a.status().commit, joint.index, "C_old,new committed");
  assert.equal(c.node("a").storage.lastIndex(), joint.index + 1, "C_new appended");
  assert.deepEqual(a.membership, m(["a", "b", "c", "d"], [], ["e"]));
  assert.throws(() => a.proposeMembership([{ type: "remove", id: "e" }]), MembershipChangeError);
  c.tick("a");
  assert.equal(a.status().commit, joint.index + 1);
  a.proposeMembership([{ type: "remove", id: "e" }]);
  c.deliverAll();
  assert.deepEqual(a.membership, m(["a", "b", "c", "d"]));
});

Deno.test("§4.1: a new leader changes the membership only after it committed an entry of its term", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.addEmptyNode("d");
  const a = c.node("a").raft;
  tickUntil(c, "a", () => a.role === "leader", (msg) => msg.type !== "appResp");
  assert.equal(a.status().commit, 1, "its no-op is not committed yet");
  assert.throws(
    () => a.proposeMembership([{ type: "addLearner", id: "d" }]),
    (e: unknown) => e instanceof MembershipChangeError && /has not committed/.test(e.message),
  );
  c.tick("a");
  assert.equal(a.status().commit, 2);
  const { index } = a.proposeMembership([{ type: "addLearner", id: "d" }]);
  c.deliverAll();
  assert.equal(a.status().commit, index);
});

// ---------------------------------------------------------------------------------------------
// Joint consensus

Deno.test("§4.3 joint consensus: C_old,new commits only with a majority of C_old and a majority of C_new", async () => {
  // Replace c by d: C_old = {a, b, c}, C_new = {a, b, d}.
  for (const reachable of [["c"], ["d"], ["c", "d"]]) {
    const c = await TestCluster.create(["a", "b", "c"]);
    c.elect("a");
    c.addEmptyNode("d");
    const a = c.node("a").raft;
    c.isolate("a", ["b", "c", "d"].filter((id) => !reachable.includes(id)));
    const joint = a.proposeMembership([{ type: "addVoter", id: "d" }, { type: "remove", id: "c" }]);
    c.deliverAll();
    c.tick("a", 3);
    assert.deepEqual(configsOf(c, "a")[1], m(["a", "b", "d"], ["a", "b", "c"]));
    if (reachable.length === 1) {
      // {a, c} is a majority of C_old only; {a, d} of C_new only.
      assert.equal(a.status().commit, joint.index - 1, `reaching ${reachable}: not committed`);
      assert.equal(c.node("a").storage.lastIndex(), joint.index, "C_new not appended");
    } else {
      assert.ok(a.status().commit >= joint.index + 1, "both majorities: C_old,new and C_new");
      assert.deepEqual(configsOf(c, "a").slice(1), [
        m(["a", "b", "d"], ["a", "b", "c"]),
        m(["a", "b", "d"]),
      ]);
      assert.equal(logOf(c, "a")[joint.index].type, "config", "C_new follows C_old,new");
    }
  }
});

Deno.test("§4.3 joint consensus: the leader appends C_new by itself once C_old,new commits; C_new needs only its own majority", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.addEmptyNode("d");
  const a = c.node("a").raft;
  const joint = a.proposeMembership([{ type: "addVoter", id: "d" }, { type: "remove", id: "c" }]);
  // C_old,new commits; then c, which is not in C_new, is cut off: C_new still commits.
  c.deliverAll(() => a.status().commit < joint.index);
  assert.equal(a.status().commit, joint.index);
  c.isolate("c");
  c.tick("a", 2);
  assert.equal(a.status().commit, joint.index + 1);
  assert.deepEqual(a.membership, m(["a", "b", "d"]));
  assert.ok(!a.status().progress.some((p) => p.id === "c"), "the leader forgot c");
  const x = c.propose("a", "after");
  assert.equal(a.status().commit, x, "commits with a majority of {a, b, d}");
  assert.deepEqual(appliedTexts(c.node("d")), ["after"]);
});

// ---------------------------------------------------------------------------------------------
// Learners (§4.2.1)

async function withLearners(): Promise<TestCluster> {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.propose("a", "x=0");
  c.addEmptyNode("d");
  c.addEmptyNode("e");
  c.node("a").raft.proposeMembership([
    { type: "addLearner", id: "d" },
    { type: "addLearner", id: "e" },
  ]);
  c.deliverAll();
  c.tick("a");
  return c;
}

Deno.test("§4.2.1: a new server joins as a learner and receives the whole log", async () => {
  const c = await withLearners();
  const want = m(["a", "b", "c"], [], ["d", "e"]);
  assert.deepEqual(c.node("a").raft.membership, want, "a learner-only change is not joint");
  for (const id of ["d", "e"]) {
    assert.deepEqual(logOf(c, id), logOf(c, "a"), id);
    assert.deepEqual(appliedTexts(c.node(id)), ["x=0"], id);
    assert.deepEqual(c.node(id).raft.membership, want, id);
  }
});

Deno.test("§4.2.1: a learner is not counted in the commit quorum", async () => {
  const c = await withLearners();
  const a = c.node("a").raft;
  // Two of three voters cut: a, d and e (3 of 5 members) store the entry, which is no majority
  // of the voters.
  c.isolate("a", ["b", "c"]);
  const x = c.propose("a", "x=1");
  c.tick("a", 3);
  for (const id of ["d", "e"]) assert.equal(c.node(id).storage.lastIndex(), x, id);
  assert.equal(a.status().commit, x - 1, "not committed");
  assert.deepEqual(appliedTexts(c.node("d")), ["x=0"]);
  c.heal();
  c.tick("a");
  assert.equal(a.status().commit, x);
  // The learners cut: the voters commit without them.
  c.isolate("d");
  c.isolate("e");
  const y = c.propose("a", "x=2");
  assert.equal(a.status().commit, y);
  for (const id of ["b", "c"]) assert.deepEqual(appliedTexts(c.node(id)), ["x=0", "x=1", "x=2"]);
  assert.equal(c.node("d").storage.lastIndex(), x);
  c.heal();
  c.tick("a", 2);
  assert.deepEqual(appliedTexts(c.node("d")), ["x=0", "x=1", "x=2"]);
});

Deno.test("§4.2.1: a learner never campaigns and is never asked to vote", async () => {
  const c = await withLearners();
  const from = c.delivered.length;
  // Alone, a learner waits forever.
  c.isolate("d");
  const d = c.node("d").raft;
  const term = d.term;
  for (let i = 0; i < 20 * ELECTION; i++) {
    c.tick("d");
    assert.equal(d.role, "follower");
  }
  assert.equal(d.term, term);
  // The leader fails: the voters elect a new one without asking the learners.
  c.heal();
  c.isolate("a");
  for (let i = 0; i < 50 * ELECTION && !["b", "c"].includes(c.leader()); i++) {
    for (const id of ["b", "c", "d", "e"]) {
      c.tick(id);
      assert.ok(["d", "e"].every((l) => c.node(l).raft.role === "follower"), "learners follow");
    }
  }
  const leader = c.leader();
  assert.ok(leader === "b" || leader === "c", `new leader ${leader}`);
  const sent = c.delivered.slice(from);
  assert.ok(sent.some(isCampaign), "there was an election");
  assert.deepEqual(sent.filter((msg) => isCampaign(msg) && ["d", "e"].includes(msg.to)), []);
  assert.deepEqual(sent.filter((msg) => isCampaign(msg) && ["d", "e"].includes(msg.from)), []);
  c.propose(leader, "x=1");
  assert.deepEqual(appliedTexts(c.node("e")), ["x=0", "x=1"], "and keep replicating");
  assert.equal(c.node("e").raft.leader, leader);
});

Deno.test("§4.2.1: a caught-up learner is promoted to voter through joint consensus", async () => {
  const c = await withLearners();
  const a = c.node("a").raft;
  const before = configsOf(c, "a").length;
  const { index } = a.proposeMembership([{ type: "addVoter", id: "d" }]);
  c.deliverAll();
  c.tick("a");
  assert.deepEqual(configsOf(c, "a").slice(before), [
    m(["a", "b", "c", "d"], ["a", "b", "c"], ["e"]),
    m(["a", "b", "c", "d"], [], ["e"]),
  ]);
  assert.ok(a.status().commit >= index + 1);
  assert.ok(a.status().progress.some((p) => p.id === "d" && p.voter));
  for (const id of ["a", "b", "c", "d", "e"]) {
    assert.deepEqual(c.node(id).raft.membership, m(["a", "b", "c", "d"], [], ["e"]), id);
  }
  // Now d campaigns when it stops hearing from a leader; e still does not.
  c.isolate("d");
  c.isolate("e");
  const d = c.node("d").raft;
  tickUntil(c, "d", () => d.role !== "follower");
  assert.equal(d.role, "preCandidate");
  for (let i = 0; i < 4 * ELECTION; i++) c.tick("e");
  assert.equal(c.node("e").raft.role, "follower");
});

// ---------------------------------------------------------------------------------------------
// Removal (§4.2.2, §4.2.3)

Deno.test("§4.2.2: removing the leader: it steps down once C_new commits and the remaining voters go on", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.propose("a", "before");
  const a = c.node("a").raft;
  const term = a.term;
  const from = c.delivered.length;
  a.proposeMembership([{ type: "remove", id: "a" }]);
  c.deliverAll();
  // C_old,new = {b, c} + {a, b, c}, then C_new = {b, c}.
  assert.deepEqual(configsOf(c, "a").slice(1), [m(["b", "c"], ["a", "b", "c"]), m(["b", "c"])]);
  assert.equal(a.status().commit, c.node("a").storage.lastIndex(), "C_new committed");
  assert.equal(a.role, "follower", "the removed leader stepped down");
  const handOver = c.delivered.slice(from).filter((msg) => msg.type === "timeoutNow");
  assert.equal(handOver.length, 1, "it handed over to a caught-up voter");
  assert.equal(handOver[0].from, "a");
  const leader = c.leader();
  assert.ok(leader === "b" || leader === "c", `new leader ${leader}`);
  assert.equal(leader, handOver[0].to);
  assert.equal(c.node(leader).raft.term, term + 1);
  for (const id of ["a", "b", "c"]) {
    assert.deepEqual(c.node(id).raft.membership, m(["b", "c"]), id);
    assert.ok(!membersOf(c.node(id).raft.membership).includes("a"), id);
  }
  // The remaining cluster commits new proposals without a.
  const x = c.propose(leader, "after");
  c.tick(leader);
  for (const id of ["b", "c"]) {
    assert.equal(c.node(id).raft.status().commit, x, id);
    assert.deepEqual(appliedTexts(c.node(id)), ["before", "after"], id);
  }
  assert.ok(c.node("a").storage.lastIndex() < x, "a receives nothing any more");
  // a is no voter: it never campaigns, so it cannot disrupt b and c.
  const termA = a.term;
  const mark = c.delivered.length;
  for (let i = 0; i < 20 * ELECTION; i++) c.tickAll();
  assert.equal(a.term, termA);
  assert.deepEqual(c.delivered.slice(mark).filter((msg) => msg.from === "a"), []);
  assert.equal(c.leader(), leader);
  assert.equal(c.node(leader).raft.term, term + 1);
});

Deno.test("§4.2.3: a removed server that missed its removal cannot disrupt the cluster", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  const a = c.node("a").raft;
  a.proposeMembership([{ type: "remove", id: "c" }]);
  // c gets C_old,new but never C_new (nor anything after it).
  const cNew = (msg: Message) =>
    msg.type === "app" && msg.to === "c" &&
    msg.entries.some((e) => e.type === "config" && e.membership!.outgoing.length === 0);
  c.deliverAll((msg) => !cNew(msg));
  c.tick("a", 2);
  assert.deepEqual(a.membership, m(["a", "b"]));
  assert.equal(a.status().commit, c.node("a").storage.lastIndex());
  assert.deepEqual(c.node("c").raft.membership, m(["a", "b"], ["a", "b", "c"]));
  // c still believes it votes; it times out again and again, and asks a and b.
  const from = c.delivered.length;
  for (let i = 0; i < 20 * ELECTION; i++) c.tickAll();
  const asks = c.delivered.slice(from).filter((msg) => msg.from === "c" && isCampaign(msg));
  assert.ok(asks.length > 0, "c did campaign");
  assert.equal(c.leader(), "a");
  assert.equal(a.term, 2);
  assert.equal(c.node("b").raft.term, 2);
  assert.equal(c.node("b").raft.leader, "a");
  const x = c.propose("a", "still fine");
  assert.equal(a.status().commit, x);
});

Deno.test("§4.2.2: a leader being removed manages the change but does not count itself in C_new's majority", async () => {
  const ids = ["a", "b", "c", "d", "e"];
  const c = await TestCluster.create(ids);
  c.elect("a");
  const a = c.node("a").raft;
  // a, b and c are a majority of C_old but only b and c vote in C_new = {b, c, d, e}.
  c.isolate("a", ["d", "e"]);
  const joint = a.proposeMembership([{ type: "remove", id: "a" }]);
  c.deliverAll();
  c.tick("a", 3);
  assert.equal(a.role, "leader");
  assert.equal(a.status().commit, joint.index - 1, "2 of 4 in C_new: not committed");
  c.cut.delete("a->d");
  c.cut.delete("d->a");
  c.tick("a");
  assert.equal(a.role, "follower", "C_old,new and C_new committed with b, c, d");
  assert.deepEqual(c.node("b").raft.membership, m(["b", "c", "d", "e"]));
  c.heal();
  for (let i = 0; i < 3 && c.leader() === ""; i++) c.tickAll();
  assert.ok(["b", "c", "d"].includes(c.leader()));
});

Deno.test("§4.2.2: a removed leader with no caught-up successor just steps down, and the others elect a leader by timeout", async () => {
  const c = await TestCluster.create(["a", "b", "c"], { limits: { appendEntriesMax: 1 } });
  c.elect("a");
  const a = c.node("a").raft;
  const joint = a.proposeMembership([{ type: "remove", id: "a" }]);
  c.deliverAll(() => a.status().commit < joint.index); // C_old,new commits, C_new appended
  const late = a.propose(new TextEncoder().encode("late")); // after C_new, never replicated
  const from = c.delivered.length;
  // The deliveries of "late" are lost; C_new still reaches b and c.
  const lossy = (msg: Message) =>
    !(msg.type === "app" && msg.entries.some((e) => e.index === late.index));
  for (let i = 0; i < 3 && a.role === "leader"; i++) {
    a.tick();
    c.deliverAll(lossy);
  }
  assert.equal(a.role, "follower");
  assert.deepEqual(
    c.delivered.slice(from).filter((msg) => msg.type === "timeoutNow"),
    [],
    "nobody holds the leader's last entry",
  );
  c.isolate("a");
  for (let i = 0; i < 10 * ELECTION && !["b", "c"].includes(c.leader()); i++) {
    c.tick("b");
    c.tick("c");
  }
  const leader = c.leader();
  assert.ok(leader === "b" || leader === "c");
  assert.ok(!c.node(leader).applied.some((e) => e.index === late.index && e.term === late.term));
});

Deno.test("§4.3: while the configuration is joint, an election needs a majority of C_old and of C_new", async () => {
  // C_old = {a, b, c}, C_new = {a, b, d}; the leader a crashes right after C_old,new commits.
  for (
    const [alive, electable] of [
      [["b", "d"], false], // majority of C_new only
      [["b", "c"], false], // majority of C_old only
      [["b", "c", "d"], true],
    ] as const
  ) {
    const c = await TestCluster.create(["a", "b", "c"]);
    c.elect("a");
    c.addEmptyNode("d");
    const a = c.node("a").raft;
    a.proposeMembership([{ type: "addLearner", id: "d" }]); // d catches up first
    c.deliverAll();
    c.tick("a");
    const joint = a.proposeMembership([{ type: "addVoter", id: "d" }, { type: "remove", id: "c" }]);
    c.deliverAll(() => a.status().commit < joint.index);
    for (const id of ["b", "c", "d"]) {
      assert.deepEqual(c.node(id).raft.membership, m(["a", "b", "d"], ["a", "b", "c"]), id);
    }
    for (const id of ["a", "b", "c", "d"]) if (!alive.includes(id as never)) c.isolate(id);
    const leaderAmongAlive = () => alive.find((id) => c.node(id).raft.role === "leader");
    for (let i = 0; i < 30 * ELECTION && leaderAmongAlive() === undefined; i++) {
      for (const id of alive) c.tick(id);
    }
    assert.equal(leaderAmongAlive() !== undefined, electable, `alive ${alive}`);
    if (electable) {
      // §4.3: the new leader finishes the change its predecessor started.
      const leader = leaderAmongAlive()!;
      c.tick(leader, 2);
      for (const id of alive) {
        // c is removed: the leader stops replicating to it once C_new is appended, so only
        // the members of C_new are sure to learn it.
        if (id === "c") continue;
        assert.deepEqual(c.node(id).raft.membership, m(["a", "b", "d"]), `${id} left joint`);
      }
      assert.ok(!membersOfStatus(c.node(leader).raft.membership).includes("c"), "c removed");
      assert.equal(
        c.node(leader).raft.status().commit,
        c.node(leader).storage.lastIndex(),
        "C_new committed",
      );
    }
  }
});

function membersOfStatus(membership: { voters: readonly NodeId[]; learners: readonly NodeId[] }) {
  return [...membership.voters, ...membership.learners];
}

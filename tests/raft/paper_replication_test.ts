/**
 * Log replication, one test per rule of the Raft paper (§5.3, §5.5) plus the fast back-off
 * optimization the paper sketches at the end of §5.3, in the style of etcd's
 * raft_paper_test.go. Some tests write a node's log straight into its storage and restart it,
 * to start from the exact logs of the paper's figures.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Entry, Message, NodeId } from "../../src/raft/mod.ts";
import { append, appliedTexts, outbox, TestCluster, type TestClusterOptions } from "./harness.ts";

const encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Helpers

/** The whole log a node persisted (from its first index). */
function logOf(c: TestCluster, id: NodeId): Entry[] {
  const s = c.node(id).storage;
  return s.entries(s.firstIndex(), s.lastIndex() + 1);
}

/** The terms of a node's log, index by index. */
function termsOf(c: TestCluster, id: NodeId): number[] {
  return logOf(c, id).map((e) => e.term);
}

function normal(index: number, term: number, text = `${index}@${term}`): Entry {
  return { index, term, type: "normal", data: encoder.encode(text) };
}

/** The answers (`appResp`) in `out`. */
function appResps(out: Message[]): { index: number; reject: boolean }[] {
  return out.flatMap((m) => m.type === "appResp" ? [{ index: m.index, reject: m.reject }] : []);
}

/**
 * A cluster whose nodes start from given logs: `terms` lists the terms of the entries after the
 * bootstrap entry (index 1, term 1), so `terms[0]` is the term of index 2. Entries with the
 * same index and term carry the same data (Log Matching). Every node starts in `term`, with
 * only the bootstrap entry known to be committed.
 */
async function clusterWithLogs(
  logs: Record<NodeId, { terms: number[]; term: number }>,
  options: TestClusterOptions = {},
): Promise<TestCluster> {
  const c = await TestCluster.create(Object.keys(logs), options);
  for (const [id, { terms, term }] of Object.entries(logs)) {
    const storage = c.node(id).storage;
    storage.append(terms.map((t, i) => normal(i + 2, t)));
    storage.setHardState({ term, vote: "", commit: 1 });
    c.restart(id);
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// §5.3 Log replication

Deno.test("§5.3: the leader appends a proposal, replicates it and commits it once a majority stores it", async () => {
  const c = await TestCluster.create(["a", "b", "c", "d", "e"]);
  c.elect("a");
  const a = c.node("a").raft;
  c.isolate("a", ["c", "d", "e"]);
  const index = c.propose("a", "x=1");
  assert.equal(index, 3);
  assert.equal(c.node("a").storage.lastIndex(), 3, "the leader appended it");
  assert.equal(c.node("b").storage.lastIndex(), 3, "and replicated it to b");
  assert.equal(a.status().commit, 2, "2 of 5 is no majority");
  assert.deepEqual(appliedTexts(c.node("a")), []);
  // One more follower stores it: 3 of 5.
  c.cut.delete("a->c");
  c.cut.delete("c->a");
  c.tick("a");
  assert.equal(a.status().commit, 3);
  assert.deepEqual(appliedTexts(c.node("a")), ["x=1"], "the leader applies it once committed");
  for (const id of ["b", "c"]) {
    assert.equal(c.node(id).raft.status().commit, 3, `${id} learns the commit index`);
    assert.deepEqual(appliedTexts(c.node(id)), ["x=1"], id);
  }
  for (const id of ["d", "e"]) assert.equal(c.node(id).storage.lastIndex(), 2, id);
});

Deno.test("§5.3: followers apply committed entries in log order, exactly once, and never beyond the commit index", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  for (let i = 0; i < 30; i++) {
    // Every few proposals one follower is cut off for a while.
    if (i % 10 === 3) c.isolate("c");
    if (i % 10 === 7) c.heal();
    c.propose("a", `x=${i}`);
    if (i % 3 === 0) c.tickAll();
    for (const [id, node] of c.nodes) {
      const indexes = node.applied.map((e) => e.index);
      assert.deepEqual(indexes, indexes.map((_, k) => k + 1), `${id} applies 1, 2, 3, ...`);
      assert.ok(indexes.length <= node.raft.status().commit, `${id} applies only committed`);
    }
  }
  c.heal();
  c.tickAll(2);
  const want = Array.from({ length: 30 }, (_, i) => `x=${i}`);
  for (const id of ["a", "b", "c"]) assert.deepEqual(appliedTexts(c.node(id)), want, id);
});

Deno.test("§5.3: AppendEntries consistency check: a follower rejects entries whose predecessor it lacks or holds with another term", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  const f = c.node("c");
  f.raft.step(append("a", "c", 2, 1, 1, [normal(2, 2)], 1));
  assert.deepEqual(appResps(outbox(c)), [{ index: 2, reject: false }]);
  assert.deepEqual(termsOf(c, "c"), [1, 2]);

  f.raft.step(append("a", "c", 2, 3, 2, [normal(4, 2)], 1)); // prevLogIndex 3: missing
  assert.deepEqual(appResps(outbox(c)).map((r) => r.reject), [true]);
  f.raft.step(append("a", "c", 2, 2, 1, [normal(3, 2)], 1)); // prevLogTerm 1: mismatch
  assert.deepEqual(appResps(outbox(c)).map((r) => r.reject), [true]);
  assert.deepEqual(termsOf(c, "c"), [1, 2], "a rejected append changes nothing");

  f.raft.step(append("a", "c", 2, 2, 2, [normal(3, 2)], 1)); // matches
  assert.deepEqual(appResps(outbox(c)), [{ index: 3, reject: false }]);
  assert.deepEqual(termsOf(c, "c"), [1, 2, 2]);
});

Deno.test("§5.3: a follower deletes a conflicting entry and all that follow it, and appends the leader's", async () => {
  const c = await clusterWithLogs({
    a: { terms: [], term: 1 },
    b: { terms: [], term: 1 },
    c: { terms: [2, 2, 2], term: 2 }, // [1:1, 2:2, 3:2, 4:2]
  });
  const f = c.node("c").raft;
  f.step(append("a", "c", 3, 2, 2, [normal(3, 3, "new")], 1));
  assert.deepEqual(appResps(outbox(c)), [{ index: 3, reject: false }]);
  assert.deepEqual(termsOf(c, "c"), [1, 2, 3], "index 3 replaced and index 4 deleted");
  assert.equal(new TextDecoder().decode(logOf(c, "c")[2].data), "new");
  assert.equal(f.status().lastIndex, 3);
});

Deno.test("§5.3: an append that matches existing entries truncates nothing (only a conflict does)", async () => {
  const c = await clusterWithLogs({
    a: { terms: [], term: 1 },
    b: { terms: [], term: 1 },
    c: { terms: [2, 2, 2], term: 2 }, // [1:1, 2:2, 3:2, 4:2]
  });
  const f = c.node("c").raft;
  // A delayed AppendEntries that carries only a prefix of what the follower holds.
  f.step(append("a", "c", 2, 1, 1, [normal(2, 2)], 1));
  assert.deepEqual(appResps(outbox(c)), [{ index: 2, reject: false }]);
  assert.deepEqual(termsOf(c, "c"), [1, 2, 2, 2], "entries 3 and 4 are kept");
  assert.equal(f.status().lastIndex, 4);
});

Deno.test("§5.3: a follower sets its commit index to min(leaderCommit, index of the last new entry)", async () => {
  const c = await clusterWithLogs({
    a: { terms: [], term: 1 },
    b: { terms: [], term: 1 },
    c: { terms: [2, 2, 2], term: 2 }, // [1:1, 2:2, 3:2, 4:2]
  });
  const f = c.node("c").raft;
  // The leader committed up to 4 but this message only vouches for index 2.
  f.step(append("a", "c", 2, 1, 1, [normal(2, 2)], 4));
  outbox(c);
  assert.equal(f.status().commit, 2, "entries 3 and 4 might not match the leader's");
  f.step(append("a", "c", 2, 2, 2, [normal(3, 2)], 2));
  outbox(c);
  assert.equal(f.status().commit, 2, "the leader's commit index bounds it too");
  f.step(append("a", "c", 2, 3, 2, [normal(4, 2)], 4));
  outbox(c);
  assert.equal(f.status().commit, 4);
  assert.deepEqual(c.node("c").applied.map((e) => e.index), [1, 2, 3, 4]);
});

Deno.test("Figure 7: a new leader brings each of the follower logs (a)-(f) in line with its own", async () => {
  // Terms of indexes 2..n (index 1, term 1 is the bootstrap entry).
  const leader = [1, 1, 4, 4, 5, 5, 6, 6, 6]; // [1 1 1 4 4 5 5 6 6 6]
  const followers: Record<string, number[]> = {
    a: [1, 1, 4, 4, 5, 5, 6, 6], //               missing entries
    b: [1, 1, 4], //                                missing many entries
    c: [1, 1, 4, 4, 5, 5, 6, 6, 6, 6], //           an extra uncommitted entry
    d: [1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], //        extra entries of a later term
    e: [1, 1, 4, 4, 4, 4], //                       missing and extra entries
    f: [1, 1, 2, 2, 2, 3, 3, 3, 3, 3], //           a leader of terms 2 and 3 that crashed
  };
  for (const [name, terms] of Object.entries(followers)) {
    const c = await clusterWithLogs({
      l: { terms: leader, term: 7 },
      f: { terms, term: Math.max(...terms) },
      v: { terms: leader, term: 7 },
    });
    const before = logOf(c, "l");
    assert.equal(c.elect("l"), "l", name);
    assert.equal(c.node("l").raft.term, 8, name);
    c.tick("l", 2);
    const after = logOf(c, "l");
    assert.deepEqual(after.slice(0, before.length), before, `${name}: leader is append-only`);
    assert.deepEqual(after.map((e) => e.term), [1, ...leader, 8], `${name}: plus its no-op`);
    assert.deepEqual(logOf(c, "f"), after, `(${name}) the follower's log equals the leader's`);
    assert.equal(c.node("f").raft.status().commit, 11, name);
    assert.deepEqual(
      c.node("f").applied.map((e) => [e.index, e.term]),
      c.node("l").applied.map((e) => [e.index, e.term]),
      name,
    );
  }
});

Deno.test("§5.3 fast back-off: a divergent or far-behind follower is repaired in a few round trips, not one per entry", async () => {
  const n = 300;
  const c = await clusterWithLogs({
    l: { terms: Array(n).fill(3), term: 3 }, // [1:1, 2..301: term 3]
    div: { terms: Array(n).fill(2), term: 2 }, // [1:1, 2..301: term 2], all divergent
    behind: { terms: [], term: 1 }, // [1:1], 300 entries behind
  });
  assert.equal(c.elect("l"), "l");
  c.tick("l", 3);
  const rejects = (from: NodeId) =>
    c.delivered.filter((m) => m.type === "appResp" && m.from === from && m.reject).length;
  for (const id of ["div", "behind"]) {
    assert.deepEqual(logOf(c, id), logOf(c, "l"), id);
    assert.ok(rejects(id) >= 1, `${id} rejected the first probe`);
    assert.ok(rejects(id) <= 3, `${id}: ${rejects(id)} rejections for ${n} entries`);
  }
  assert.equal(c.node("div").raft.status().commit, n + 2);
});

Deno.test("§5.3: the leader retries AppendEntries until every follower stores every entry", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  // Every append to c is lost for a while; c must still end up with everything.
  const lossy = (m: Message) => !(m.to === "c" && m.type === "app");
  for (let i = 0; i < 5; i++) {
    c.node("a").raft.propose(encoder.encode(`x=${i}`));
    c.deliverAll(lossy);
  }
  assert.equal(c.node("a").raft.status().commit, 7, "a and b form a majority");
  assert.equal(c.node("c").storage.lastIndex(), 2);
  c.tick("a", 2);
  assert.equal(c.node("c").storage.lastIndex(), 7);
  assert.deepEqual(appliedTexts(c.node("c")), ["x=0", "x=1", "x=2", "x=3", "x=4"]);
});

Deno.test("§5.5: AppendEntries is idempotent: replaying every append a follower received changes nothing", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  for (let i = 0; i < 10; i++) c.propose("a", `x=${i}`);
  c.tick("a");
  const log = logOf(c, "b");
  const commit = c.node("b").raft.status().commit;
  const apps = c.delivered.filter((m) => m.type === "app" && m.to === "b");
  assert.ok(apps.length >= 10);
  for (const m of apps) c.node("b").raft.step(m);
  const out = outbox(c);
  assert.ok(appResps(out).every((r) => !r.reject), "every replay is acknowledged");
  assert.deepEqual(logOf(c, "b"), log, "no entry truncated or duplicated");
  assert.equal(c.node("b").raft.status().commit, commit);
  assert.equal(c.node("b").applied.length, commit, "nothing applied twice");
});

Deno.test("§5.5: a crashed follower restarts from its disk and catches up", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  c.elect("a");
  c.propose("a", "x=1");
  c.isolate("c");
  c.propose("a", "x=2");
  c.restart("c");
  assert.equal(c.node("c").storage.lastIndex(), 3, "what it persisted survived");
  c.heal();
  c.tick("a", 2);
  assert.deepEqual(appliedTexts(c.node("c")), ["x=1", "x=2"], "re-applied from the start");
  assert.deepEqual(logOf(c, "c"), logOf(c, "a"));
});

/** The driver under slow disks and big states: pipelining, fsyncs per write, snapshots. */
import assert from "node:assert/strict";
import type { KvCommand, KvResult } from "../storage/mod.ts";
import { DriverCluster, type PersistGate, waitFor } from "./_driver_test_util.ts";
import type { RaftNode } from "./driver.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const put = (key: string, value: Uint8Array | string): KvCommand => ({
  checks: [],
  mutations: [{
    type: "set",
    key: enc(key),
    value: typeof value === "string" ? enc(value) : value,
  }],
});

function metric(node: RaftNode, name: string): number {
  const m = new RegExp(`koi_${name}\\{[^}]*\\} (\\d+)`).exec(node.metrics());
  assert.ok(m !== null, `metric koi_${name} is exported`);
  return Number(m[1]);
}

/** Holds the leader's persists and starts a write that waits behind them. */
async function writeWhileLeaderDiskHeld(
  c: DriverCluster,
  leader: RaftNode,
  key: string,
): Promise<{ gate: PersistGate; pending: Promise<KvResult> }> {
  const gate = c.gates.get(leader.nodeId)!;
  gate.hold();
  const pending = leader.write(put(key, "v"));
  pending.catch(() => {}); // awaited by the test; a failed test must not leave it unhandled
  await waitFor(() => gate.blocked > 0, "the leader's persist to be held");
  return { gate, pending };
}

/** Releases the disk, ticks, and expects the held write to succeed. */
async function releaseAndExpectOk(
  c: DriverCluster,
  gate: PersistGate,
  pending: Promise<KvResult>,
): Promise<void> {
  gate.release();
  const stop = c.autoTick();
  try {
    assert.ok((await pending).ok);
  } finally {
    stop();
  }
}

Deno.test("driver: heartbeats keep flowing while the leader's persist is stuck, so no election starts", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  try {
    const leader = await c.leader();
    await c.tick(5);
    const term = leader.status().term;
    const { gate, pending } = await writeWhileLeaderDiskHeld(c, leader, "k");
    await c.tick(120); // six to twelve election timeouts (10..20 ticks)
    for (const n of c.nodes.values()) {
      assert.equal(n.status().term, term, `${n.nodeId} stayed in term ${term}`);
    }
    assert.equal(leader.status().role, "leader");
    await releaseAndExpectOk(c, gate, pending);
  } finally {
    c.gates.forEach((g) => g.release());
    await c.close();
  }
});

Deno.test("driver: the leader sends a batch's appends while it persists them and answers the write once its followers made it durable (§10.2.1)", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  try {
    const leader = await c.leader();
    await c.tick(5);
    const { gate, pending } = await writeWhileLeaderDiskHeld(c, leader, "parallel");
    await waitFor(
      () =>
        c.sent.some(({ m, senderDurable }) =>
          m.type === "app" && m.from === leader.nodeId && m.entries.length > 0 &&
          m.entries.at(-1)!.index > senderDurable
        ),
      "an append sent before the leader's own write of it is durable",
    );
    // The followers' acknowledgements commit it (a majority without the leader): the leader
    // applies and answers it although its own write is still held.
    const stop = c.autoTick();
    try {
      assert.ok((await pending).ok);
    } finally {
      stop();
    }
    assert.equal(gate.blocked > 0, true, "the leader's write is still held");
    const s = leader.status();
    assert.ok(s.applied > c.storages.get(leader.nodeId)!.lastIndex(), "applied beyond its disk");
    gate.release();
  } finally {
    c.gates.forEach((g) => g.release());
    await c.close();
  }
});

Deno.test("driver: a leader that applied beyond its own disk takes a snapshot only once the log on disk reaches it", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  try {
    const leader = await c.leader();
    await c.tick(5);
    const { gate, pending } = await writeWhileLeaderDiskHeld(c, leader, "before-snapshot");
    const stop = c.autoTick();
    try {
      assert.ok((await pending).ok);
      const applied = leader.status().applied;
      assert.ok(applied > c.storages.get(leader.nodeId)!.lastIndex(), "applied beyond its disk");
      let done = false;
      const snap = leader.snapshot();
      snap.then(() => done = true, () => done = true);
      await c.tick(5);
      assert.equal(done, false, "the snapshot waits for the log on disk");
      gate.release();
      assert.ok((await snap).index >= applied);
      assert.equal(c.fatal.get(leader.nodeId), undefined, "the leader did not stop");
      assert.ok((await leader.write(put("after", "v"))).ok);
    } finally {
      stop();
    }
  } finally {
    c.gates.forEach((g) => g.release());
    await c.close();
  }
});

Deno.test("driver: a follower applies only what is durable on it, even when the commit index is ahead", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  try {
    const leader = await c.leader();
    await c.tick(5);
    const [f1] = [...c.nodes.values()].filter((n) => n !== leader);
    // f1's disk is held: the write commits with the other follower and the leader.
    const g1 = c.gates.get(f1.nodeId)!;
    g1.hold();
    const stop = c.autoTick();
    try {
      assert.ok((await leader.write(put("k", "v"))).ok);
      const commit = leader.status().commit;
      await waitFor(() => f1.status().commit >= commit, "f1 to learn the commit index");
      await c.tick(3);
      assert.ok(f1.status().applied <= c.storages.get(f1.nodeId)!.lastIndex());
      assert.ok(f1.status().applied < commit, "f1 has not applied the entry it has not written");
      g1.release();
      await waitFor(() => f1.status().applied >= commit, "f1 to apply once durable");
    } finally {
      stop();
    }
  } finally {
    c.gates.forEach((g) => g.release());
    await c.close();
  }
});

Deno.test("driver: a write costs one Deno.Kv commit on each member, not two", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    await leader.write(put("warm", "up"));
    const settle = async () => {
      const target = leader.status().commit;
      for (const n of c.nodes.values()) {
        await waitFor(() => n.status().applied >= target, `${n.nodeId} applies ${target}`);
      }
      await c.tick(5);
    };
    await settle();
    const before = new Map([...c.storages].map(([id, s]) => [id, s.stats().persistCommits]));
    const writes = 20;
    for (let i = 0; i < writes; i++) assert.ok((await leader.write(put(`k${i}`, "v"))).ok);
    await settle();
    for (const [id, s] of c.storages) {
      const commits = s.stats().persistCommits - before.get(id)!;
      // Without the lazy commit index every write costs two: the entry, then its commit index.
      assert.ok(commits <= writes + 2, `${id}: ${writes} writes cost ${commits} Deno.Kv commits`);
    }
    // /metrics shows it: Ready batches that only moved the commit index made no commit. (Under
    // a loaded machine a commit-only batch may merge with the next write's: not every write
    // leaves one.)
    const skipped = metric(leader, "storage_persists_skipped");
    assert.ok(skipped >= writes / 2, `${skipped} commit-only batches skipped for ${writes} writes`);
    assert.match(
      leader.metrics(),
      /koi_raft_dropped_messages_total\{[^}]*reason="commit_beyond_log"\} 0/,
    );
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: concurrent snapshot requests share one snapshot", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    await Promise.all(Array.from({ length: 200 }, (_, i) => leader.write(put(`k${i}`, "v"))));
    const results = await Promise.all([1, 2, 3, 4].map(() => leader.snapshot()));
    assert.equal(new Set(results.map((r) => r.index)).size, 1, JSON.stringify(results));
    assert.equal(metric(leader, "snapshots_taken"), 1);
    assert.equal(leader.status().snapshot, results[0].index);
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: the log is bounded in bytes: large overwrites trigger snapshots", async () => {
  const logBytesMax = 256 << 10;
  const c = await DriverCluster.create(["a1", "a2", "a3"], {
    snapshotEntries: 1_000_000,
    snapshotLogBytes: logBytesMax,
  });
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    const value = new Uint8Array(100 << 10).fill(7);
    for (let i = 0; i < 30; i++) assert.ok((await leader.write(put("big", value))).ok);
    const target = leader.status().commit;
    for (const n of c.nodes.values()) {
      await waitFor(() => n.status().applied >= target, `${n.nodeId} applies`);
    }
    for (const [id, s] of c.storages) {
      await waitFor(
        () => s.logBytes() < logBytesMax + 2 * value.length,
        `${id}'s log (${s.logBytes()} bytes) to be compacted`,
      );
      assert.ok(s.snapshot().meta.index > 0, `${id} took a snapshot`);
    }
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: handOffLeadership makes another voter leader", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    await leader.write(put("k", "v"));
    const term = leader.status().term;
    assert.equal(await leader.handOffLeadership(3_000), true);
    const next = await c.leader();
    assert.notEqual(next.nodeId, leader.nodeId);
    assert.ok(next.status().term > term);
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: members' incarnations are recorded, checked on every member, and forgotten on removal", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    for (const [id, s] of c.storages) leader.notePeer(id, s.incarnation);
    for (const n of c.nodes.values()) {
      for (const [id, s] of c.storages) {
        await waitFor(
          () => n.verifyPeer(id, "wiped") !== undefined,
          `${n.nodeId} to know ${id}'s incarnation`,
        );
        assert.equal(n.verifyPeer(id, s.incarnation), undefined);
      }
    }
    assert.match(leader.verifyPeer("a2", "wiped")!, /recreated/);
    const page = await leader.list({ prefix: new Uint8Array(0), limit: 100, stale: false });
    assert.deepEqual(page.items, [], "system records never show in a listing");
    assert.equal(page.more, false);
    const victim = [...c.nodes.keys()].find((id) => id !== leader.nodeId)!;
    await leader.removeMember(victim);
    assert.equal(leader.verifyPeer(victim, "wiped"), undefined);
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: a snapshot that does not decode is never written; the node restarts with its data", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    for (let i = 0; i < 5; i++) assert.ok((await leader.write(put(`k${i}`, "v"))).ok);
    const victim = [...c.nodes.values()].find((n) => n !== leader)!;
    await waitFor(() => victim.status().applied >= leader.status().commit, "the victim applies");
    const st = leader.status();
    // What an unauthenticated peer (no cluster secret) can send: a whole "snapshot" of junk.
    victim.step({
      type: "snap",
      from: leader.nodeId,
      to: victim.nodeId,
      term: st.term,
      meta: { index: st.commit + 100, term: st.term, membership: leader.membership() },
      offset: 0,
      total: 4,
      chunk: enc("evil"),
    });
    await waitFor(() => c.fatal.has(victim.nodeId), "the victim to stop on the junk snapshot");
    assert.match(String(c.fatal.get(victim.nodeId)), /SnapshotRefusedError.*it was not written/);
    assert.equal(c.storages.get(victim.nodeId)!.snapshot().meta.index, 0, "nothing was written");
    await c.stop(victim.nodeId);
    const again = await c.start(victim.nodeId); // before the fix: StorageCorruptError here
    await waitFor(() => again.status().applied >= st.commit, "the restarted node to catch up");
    assert.equal(
      new TextDecoder().decode((await again.get(enc("k4"), { stale: true }))!.value),
      "v",
    );
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: a learner that stops hearing from the leader reports no leader", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    const learner = await c.start("a4", { join: true });
    const a4 = c.addresses.get("a4")!;
    await leader.addMember({ id: "a4", raft: a4.raft, http: a4.http, voter: false });
    await waitFor(() => learner.leader() === leader.nodeId, "the learner to know the leader");
    const voters = [...c.nodes.keys()].filter((id) => id !== "a4" && id !== leader.nodeId);
    await c.stop(leader.nodeId);
    await c.stop(voters[0]);
    await c.tick(30); // more than one election timeout (10..20 ticks)
    assert.equal(learner.leader(), "", "a dead leader is not reported");
    assert.equal(learner.leaderHttp(), undefined);
    assert.equal(learner.status().leader, "", "GET /v1/status agrees with /healthz");
    await assert.rejects(learner.get(enc("k"), { stale: false }), /has not heard from a leader/);
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: adding a member that is already a voter changes nothing, not even its address", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    await leader.write(put("k", "v"));
    const other = [...c.nodes.keys()].find((id) => id !== leader.nodeId)!;
    const before = c.peers.get(leader.nodeId)!.get(other);
    await leader.addMember({ id: other, raft: "127.0.0.1:1", http: "127.0.0.1:2", voter: true });
    await leader.write(put("k", "w"));
    assert.equal(c.peers.get(leader.nodeId)!.get(other), before);
    assert.equal(leader.membership().voters.length, 3);
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: while the oldest waiting write has waited past queueWaitMaxMs, new writes are refused at once (503 overloaded), and taken again once it commits", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"], { queueWaitMaxMs: 1_000 });
  try {
    const leader = await c.leader();
    await c.tick(5);
    for (const g of c.gates.values()) g.hold(); // no write can become durable anywhere
    const first = leader.write(put("first", "v"));
    first.catch(() => {});
    c.clock.ms += 900;
    const second = leader.write(put("second", "v"));
    second.catch(() => {});
    c.clock.ms += 200; // first waited 1,100 ms, second 200 ms
    await assert.rejects(
      leader.write(put("third", "v")),
      (e: Error) => e.name === "OverloadedError" && /waited 1100 ms/.test(e.message),
    );
    assert.equal(metric(leader, "refused_queued"), 1);
    for (const g of c.gates.values()) g.release();
    const stop = c.autoTick();
    try {
      assert.ok((await first).ok);
      assert.ok((await second).ok);
      assert.ok((await leader.write(put("third", "v"))).ok, "taken again once the queue moved");
    } finally {
      stop();
    }
  } finally {
    c.gates.forEach((g) => g.release());
    await c.close();
  }
});

Deno.test("driver: linearizable reads are refused the same way while the oldest read waits too long", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"], { queueWaitMaxMs: 1_000 });
  try {
    const leader = await c.leader();
    await c.tick(5);
    // The followers are cut off: no heartbeat round confirms the leader, reads wait.
    c.down.add("a1" === leader.nodeId ? "a2" : "a1");
    c.down.add("a3" === leader.nodeId ? "a2" : "a3");
    const first = leader.get(enc("k"), { stale: false });
    first.catch(() => {});
    c.clock.ms += 1_500;
    await assert.rejects(
      leader.get(enc("k"), { stale: false }),
      (e: Error) => e.name === "OverloadedError" && /reads/.test(e.message),
    );
  } finally {
    await c.close();
  }
});

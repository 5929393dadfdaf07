import assert from "node:assert/strict";
import { NotLeaderError } from "../raft/mod.ts";
import type { KvCommand, KvResult } from "../storage/mod.ts";
import { DriverCluster, waitFor } from "./_driver_test_util.ts";
import { NoLeaderError } from "./errors.ts";
import { incarnationKey } from "./_system_keys.ts";

/**
 * Writes through the current leader, retrying only what the driver reports as not applied
 * (a leader change before commit): a loaded CI machine may see an election mid-test.
 */
async function write(c: DriverCluster, cmd: KvCommand): Promise<KvResult> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const leader = await c.leader();
    try {
      return await leader.write(cmd);
    } catch (e) {
      if (!(e instanceof NoLeaderError) && !(e instanceof NotLeaderError)) throw e;
    }
  }
  throw new Error("no write succeeded in 20 attempts");
}

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const put = (key: string, value: string, requestId?: string): KvCommand => ({
  ...(requestId === undefined ? {} : { requestId }),
  checks: [],
  mutations: [{ type: "set", key: enc(key), value: enc(value) }],
});

Deno.test("driver: a leader commits writes that every member applies; followers refuse writes", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => leader.write(put(`k${i}`, `v${i}`))),
    );
    assert.ok(results.every((r) => r.ok));
    const revs = results.map((r) => (r.ok ? r.rev : 0));
    assert.equal(new Set(revs).size, 50, "each write has its own rev");
    for (const node of c.nodes.values()) {
      await waitFor(() => node.status().applied >= Math.max(...revs), `${node.nodeId} applies`);
      assert.equal(dec((await node.get(enc("k7"), { stale: true }))!.value), "v7");
    }
    const follower = [...c.nodes.values()].find((n) => n !== leader)!;
    await assert.rejects(follower.write(put("x", "y")), NotLeaderError);
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: group commit persists concurrent writes in far fewer Deno.Kv commits", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    const before = Number(/koi_storage_persists_total\{[^}]*\} (\d+)/.exec(leader.metrics())![1]);
    await Promise.all(Array.from({ length: 500 }, (_, i) => leader.write(put(`k${i}`, "v"))));
    const after = Number(/koi_storage_persists_total\{[^}]*\} (\d+)/.exec(leader.metrics())![1]);
    assert.ok(after - before < 100, `500 writes took ${after - before} persists`);
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: a linearizable read on a follower sees a write acknowledged before it", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    const follower = [...c.nodes.values()].find((n) => n !== leader)!;
    for (let i = 0; i < 20; i++) {
      const r = await write(c, put("k", `v${i}`));
      const got = await follower.get(enc("k"), { stale: false });
      assert.equal(dec(got!.value), `v${i}`);
      assert.equal(got!.rev, r.ok ? r.rev : -1);
    }
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: a retried request id applies once and answers the first answer", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    const first = await leader.write(put("k", "first", "c1:1"));
    const retry = await leader.write(put("k", "second", "c1:1"));
    assert.deepEqual(retry, first);
    assert.equal(dec((await leader.get(enc("k"), { stale: false }))!.value), "first");
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: a restarted node rebuilds its state from snapshot and log", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"], { snapshotEntries: 30 });
  const stop = c.autoTick();
  try {
    let leader = await c.leader();
    for (let i = 0; i < 100; i++) await write(c, put(`k${i % 10}`, `v${i}`));
    const victim = [...c.nodes.values()].find((n) => n !== leader)!.nodeId;
    await waitFor(
      () => c.nodes.get(victim)!.status().applied >= leader.status().commit,
      "catch up",
    );
    assert.ok(c.nodes.get(victim)!.status().snapshot > 0, "the node took snapshots");
    await c.stop(victim);
    const again = await c.start(victim);
    await waitFor(() => again.loaded(), "the restarted node loads");
    leader = await c.leader();
    await write(c, put("after", "restart"));
    await waitFor(
      () => again.status().applied >= leader.status().commit,
      "the restarted node catches up",
    );
    assert.equal(dec((await again.get(enc("k9"), { stale: true }))!.value), "v99");
    assert.equal(dec((await again.get(enc("after"), { stale: true }))!.value), "restart");
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: a node down while the leader compacts catches up through a snapshot", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"], { snapshotEntries: 20 });
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    const victim = [...c.nodes.values()].find((n) => n !== leader)!.nodeId;
    await c.stop(victim);
    for (let i = 0; i < 80; i++) await write(c, put(`k${i}`, `v${i}`));
    await leader.snapshot();
    assert.ok(leader.status().snapshot >= 80);
    const back = await c.start(victim);
    await waitFor(() => back.status().applied >= leader.status().commit, "catch up by snapshot");
    assert.ok(back.status().snapshot >= 80, "the follower installed the leader's snapshot");
    assert.equal(dec((await back.get(enc("k42"), { stale: true }))!.value), "v42");
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: add a learner, promote it, then remove the leader", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    for (let i = 0; i < 10; i++) await leader.write(put(`k${i}`, "v"));
    const a4 = await c.start("a4", { join: true });
    await leader.addMember({ id: "a4", raft: "mem:a4", http: "http-a4", voter: false });
    assert.deepEqual(leader.membership().learners, ["a4"]);
    await leader.addMember({ id: "a4", raft: "mem:a4", http: "http-a4", voter: true });
    assert.deepEqual(leader.membership().voters, ["a1", "a2", "a3", "a4"]);
    await leader.removeMember(leader.nodeId);
    const next = await c.leader();
    assert.notEqual(next.nodeId, leader.nodeId);
    assert.ok(!next.membership().voters.includes(leader.nodeId));
    const r = await write(c, put("after", "removal"));
    assert.ok(r.ok);
    await waitFor(() => a4.status().applied >= next.status().commit, "a4 follows");
    assert.equal(dec((await a4.get(enc("after"), { stale: true }))!.value), "removal");
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: status counts the user's keys and bytes, not koi's own records", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    await Promise.all(Array.from({ length: 20 }, (_, i) => leader.write(put(`k${i}`, "vv"))));
    // The leader records each member's incarnation under a system key (asynchronously, once it
    // leads): wait until every node holds them and everything committed so far…
    const deadline = Date.now() + 5_000;
    for (const node of c.nodes.values()) {
      while ((await node.get(incarnationKey(leader.nodeId), { stale: true })) === undefined) {
        assert.ok(Date.now() < deadline, `${node.nodeId} never held the incarnation record`);
        await c.tick();
      }
    }
    const target = leader.status().commit;
    for (const node of c.nodes.values()) {
      await waitFor(() => node.status().applied >= target, `${node.nodeId} applies ${target}`);
      // …and are not counted.
      const expectedBytes = Array.from({ length: 20 }, (_, i) => `k${i}`.length + 2)
        .reduce((a, b) => a + b, 0);
      assert.equal(node.status().keys, 20, node.nodeId);
      assert.equal(node.status().bytes, expectedBytes, node.nodeId);
    }
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: a read waiting on a leader that dies is asked again of the new leader", async () => {
  // Without re-asking, the read would wait out requestTimeoutMs and fail with NoLeaderError.
  const c = await DriverCluster.create(["a1", "a2", "a3"], { requestTimeoutMs: 4_000 });
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    const written = await write(c, put("k", "v1"));
    assert.ok(written.ok);
    const follower = [...c.nodes.values()].find((n) => n !== leader)!;
    await waitFor(() => follower.status().applied >= written.rev, "the follower applies");
    // The leader vanishes from the network (it keeps running, as a partitioned node does);
    // the follower's read goes to it and gets no answer.
    c.down.add(leader.nodeId);
    const read = follower.get(enc("k"), { stale: false });
    await waitFor(
      () => [...c.nodes.values()].some((n) => n !== leader && n.status().role === "leader"),
      "a new leader",
    );
    const got = await read;
    assert.equal(dec(got!.value), "v1");
    assert.match(
      follower.metrics(),
      /koi_reads_reissued\{[^}]*\} [1-9]/,
      "the read was asked again",
    );
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("driver: /metrics reports the process's memory, for bench/state_size.sh and operators", async () => {
  const c = await DriverCluster.create(["a1"]);
  try {
    const node = await c.leader();
    const text = node.metrics();
    for (const name of ["rss", "heap_used", "heap_total", "external"]) {
      const m = new RegExp(`koi_process_${name}_bytes\\{[^}]*\\} (\\d+)`).exec(text);
      assert.ok(m !== null && Number(m[1]) > 0, `koi_process_${name}_bytes is a positive number`);
    }
  } finally {
    await c.close();
  }
});

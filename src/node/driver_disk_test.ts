/**
 * The driver when its data directory fails while it runs (docs/disk_failures.md): Deno.Kv
 * commits fail on demand (`DiskFault`), with the error Deno.Kv throws on a full disk.
 */
import assert from "node:assert/strict";
import { NotLeaderError } from "../raft/mod.ts";
import type { KvCommand } from "../storage/mod.ts";
import { DriverCluster, waitFor } from "./_driver_test_util.ts";
import type { RaftNode } from "./driver.ts";
import { DiskFailedError, NoLeaderError, RequestTimeoutError } from "./errors.ts";
import { createNodeApp } from "./http.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const put = (key: string, value: string): KvCommand => ({
  checks: [],
  mutations: [{ type: "set", key: enc(key), value: enc(value) }],
});

/** Whether `e` says the write was not (or may not have been) applied, so it may be retried. */
function retryable(e: unknown): boolean {
  return e instanceof NoLeaderError || e instanceof NotLeaderError ||
    e instanceof DiskFailedError || e instanceof RequestTimeoutError;
}

/** Writes `key` through whichever node leads (and takes writes); resolves once acknowledged. */
async function write(c: DriverCluster, key: string, value: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const leader = await c.leader();
    try {
      await leader.write(put(key, value));
      return;
    } catch (e) {
      if (!retryable(e) || Date.now() > deadline) throw e;
      await c.tick();
    }
  }
}

/** The acknowledgement invariant: no node said "I hold entries up to i" before they were durable. */
function assertNoAckBeyondDisk(c: DriverCluster): void {
  for (const { m, senderDurable } of c.sent) {
    if (m.type === "appResp" && !m.reject) {
      assert.ok(
        m.index <= senderDurable,
        `${m.from} acknowledged index ${m.index} with only ${senderDurable} on its disk`,
      );
    }
  }
}

function metric(node: RaftNode, name: string): number {
  const match = new RegExp(`^koi_${name}\\{[^}]*\\} (\\S+)$`, "m").exec(node.metrics());
  assert.ok(match, `metric koi_${name} is exported`);
  return Number(match[1]);
}

async function healthz(
  node: RaftNode,
): Promise<{ status: number; code?: string; message?: string }> {
  const r = await createNodeApp({ service: node }).request("/healthz");
  const body = await r.json();
  return { status: r.status, code: body.error?.code, message: body.error?.message };
}

Deno.test("disk failure: a follower whose disk is full acknowledges nothing, refuses writes, reports it and recovers", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    for (let i = 0; i < 5; i++) await write(c, `before${i}`, `v${i}`);
    const follower = [...c.nodes.values()].find((n) => n !== leader)!;
    const id = follower.nodeId;
    c.faults.get(id)!.fail();
    const acked: string[] = [];
    for (let i = 0; i < 20; i++) {
      await write(c, `during${i}`, `v${i}`); // the leader and the other follower make a quorum
      acked.push(`during${i}`);
    }
    await waitFor(() => follower.diskStatus().state === "failed", "the follower notices");
    assert.equal(c.fatal.has(id), false, "a full disk does not stop the node");
    await assert.rejects(follower.write(put("x", "y")), DiskFailedError);
    await assert.rejects(follower.get(enc("during0"), { stale: false }), DiskFailedError);
    const health = await healthz(follower);
    assert.equal(health.status, 503);
    assert.equal(health.code, "disk_failed");
    assert.match(health.message!, /database or disk is full/);
    const status = follower.status();
    assert.equal(status.disk?.state, "failed");
    assert.ok(status.disk!.persistFailures >= 1);
    assert.equal(metric(follower, "disk_failed"), 1);
    assert.ok(metric(follower, "disk_persist_failures_total") >= 1);

    // Memory stays bounded: the leader's entries do not pile up in the follower's log.
    const storage = c.storages.get(id)!;
    const inMemory = () => metric(follower, "raft_last_index") - storage.lastIndex();
    const gap = inMemory();
    for (let i = 20; i < 120; i++) {
      await write(c, `during${i}`, `v${i}`);
      acked.push(`during${i}`);
    }
    assert.ok(inMemory() <= gap, `the follower holds ${inMemory()} undurable entries, was ${gap}`);
    assertNoAckBeyondDisk(c);

    c.faults.get(id)!.clear();
    await waitFor(() => follower.diskStatus().state === "ok", "the follower recovers");
    assert.equal(follower.diskStatus().recoveries, 1);
    assert.ok(
      c.logs.get(id)!.some((l) => /takes writes again/.test(l.message)),
      "the recovery is logged",
    );
    await waitFor(
      () => follower.status().applied >= leader.status().commit,
      "the follower catches up",
    );
    for (const key of acked) {
      assert.ok(await follower.get(enc(key), { stale: true }), `${key} reached the follower`);
    }
    assert.equal((await healthz(follower)).status, 200);
    assert.equal(metric(follower, "disk_failed"), 0);
    assertNoAckBeyondDisk(c);
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("disk failure: a leader whose disk fails hands off, does not lead again while failed, loses nothing acknowledged", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  try {
    const old = await c.leader();
    const id = old.nodeId;
    const acked = new Map<string, string>();
    for (let i = 0; i < 5; i++) {
      await write(c, `k${i}`, `v${i}`);
      acked.set(`k${i}`, `v${i}`);
    }
    c.faults.get(id)!.fail();
    // This write's entry cannot be written on the leader; it may still commit on the others.
    const first = old.write(put("k-fail", "v")).then(() => acked.set("k-fail", "v"), (e) => {
      if (!retryable(e)) throw e;
    });
    const stop = c.autoTick();
    try {
      await waitFor(
        () => [...c.nodes.values()].some((n) => n !== old && n.status().role === "leader"),
        "another node leads",
      );
      await first;
      assert.equal(old.diskStatus().state, "failed");
      await assert.rejects(old.write(put("x", "y")), DiskFailedError);
    } finally {
      stop();
    }
    // Many election timeouts later, with writes going on, it never leads again.
    for (let i = 0; i < 60; i++) {
      await write(c, `w${i}`, `v${i}`);
      acked.set(`w${i}`, `v${i}`);
      await c.tick(3);
      assert.notEqual(old.status().role, "leader", "the node with the failed disk leads again");
    }
    assert.equal(c.fatal.size, 0);
    assertNoAckBeyondDisk(c);

    c.faults.get(id)!.clear();
    const stop2 = c.autoTick();
    try {
      await waitFor(() => old.diskStatus().state === "ok", "the old leader recovers");
      const leader = await c.leader();
      await waitFor(() => old.status().applied >= leader.status().commit, "it catches up");
    } finally {
      stop2();
    }
    assertNoAckBeyondDisk(c);

    // Every acknowledged write survives a restart of every node.
    for (const n of [...c.nodes.keys()]) await c.stop(n);
    for (const n of c.founders) await c.start(n);
    const stop3 = c.autoTick();
    try {
      const leader = await c.leader();
      for (const [key, value] of acked) {
        const got = await leader.get(enc(key), { stale: false });
        assert.equal(got === undefined ? undefined : dec(got.value), value, key);
      }
    } finally {
      stop3();
    }
  } finally {
    await c.close();
  }
});

Deno.test("disk failure: a failed persist is retried with backoff, not stopped, and a snapshot is refused meanwhile", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    await write(c, "a", "1");
    const follower = [...c.nodes.values()].find((n) => n !== leader)!;
    const fault = c.faults.get(follower.nodeId)!;
    fault.fail(new TypeError("disk I/O error")); // what an ext4 remounted read-only gives
    await write(c, "b", "2");
    await waitFor(() => fault.refused >= 3, "three tries");
    await assert.rejects(follower.snapshot(), DiskFailedError);
    const failures = follower.diskStatus().persistFailures;
    assert.ok(failures >= 3);
    // Pauses grow: over the next 50 ticks (500 ms at 10 ms a tick) it tries a handful of times.
    await c.tick(50);
    assert.ok(follower.diskStatus().persistFailures - failures <= 5, "the retries back off");
    assert.equal(c.fatal.size, 0);
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("disk failure: an error that is not a disk problem still stops the node", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"]);
  const stop = c.autoTick();
  try {
    const leader = await c.leader();
    const follower = [...c.nodes.values()].find((n) => n !== leader)!;
    c.faults.get(follower.nodeId)!.fail(new RangeError("Cannot append entries: a bug"));
    await write(c, "a", "1");
    await waitFor(() => c.fatal.has(follower.nodeId), "the node stops");
    assert.match(String(c.fatal.get(follower.nodeId)), /a bug/);
  } finally {
    stop();
    await c.close();
  }
});

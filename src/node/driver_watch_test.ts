/**
 * The watch hub fed by real drivers: the changes a restarted node replays after its snapshot
 * are recorded (its floor is that snapshot), and a follower that installs the leader's
 * snapshot cuts its watchers off with `compacted`.
 */
import assert from "node:assert/strict";
import { NotLeaderError } from "../raft/mod.ts";
import type { KvCommand, KvResult } from "../storage/mod.ts";
import { DriverCluster, waitFor } from "./_driver_test_util.ts";
import { NoLeaderError } from "./errors.ts";
import { WatchHub } from "./_watch_hub.ts";
import { SseReader } from "./_watch_test_util.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const put = (key: string, value: string): KvCommand => ({
  checks: [],
  mutations: [{ type: "set", key: enc(key), value: enc(value) }],
});

/** Writes through the current leader, retrying only a write that was not applied. */
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

function newHub(node: string): WatchHub {
  return new WatchHub({ node, cluster: "a" });
}

Deno.test("driver watch: a restarted node records the changes it replays after its snapshot", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"], { snapshotEntries: 30 });
  const stop = c.autoTick();
  const hub = newHub("victim");
  try {
    let leader = await c.leader();
    const revs: number[] = [];
    for (let i = 0; i < 100; i++) {
      const result = await write(c, put(`k${i % 10}`, `v${i}`));
      if (result.ok) revs.push(result.rev);
    }
    const victim = [...c.nodes.values()].find((n) => n !== leader)!.nodeId;
    await waitFor(
      () => c.nodes.get(victim)!.status().applied >= leader.status().commit,
      "catch up",
    );
    await c.stop(victim);
    const again = await c.start(victim, { watch: hub });
    const snapshot = again.status().snapshot;
    assert.ok(snapshot > 0, "the node restarted from a snapshot");
    assert.equal(hub.floor, snapshot, "the floor is the snapshot it loaded");
    leader = await c.leader();
    await waitFor(() => hub.rev >= revs.at(-1)!, "the replayed changes");
    // A watch from the floor gets exactly the writes after the snapshot, each once.
    const reader = new SseReader(hub.open(new Uint8Array(0), snapshot).body);
    const expected = revs.filter((rev) => rev > snapshot);
    await reader.until(() => reader.data("change").length === expected.length);
    assert.deepEqual(reader.data("change").map((d) => d.rev), expected);
    const later = await write(c, put("after", "restart"));
    assert.ok(later.ok);
    await reader.until(() => reader.data("change").length === expected.length + 1);
    assert.equal(reader.data("change").at(-1)!.rev, later.rev);
    await reader.cancel();
  } finally {
    hub.close();
    stop();
    await c.close();
  }
});

Deno.test("driver watch: installing the leader's snapshot cuts the watchers off as compacted", async () => {
  const c = await DriverCluster.create(["a1", "a2", "a3"], { snapshotEntries: 20 });
  const stop = c.autoTick();
  const hub = newHub("back");
  try {
    const leader = await c.leader();
    const victim = [...c.nodes.values()].find((n) => n !== leader)!.nodeId;
    await c.stop(victim);
    for (let i = 0; i < 80; i++) await write(c, put(`k${i}`, `v${i}`));
    await leader.snapshot();
    // Opened before the node starts: it sees the node's own state, then the install.
    hub.reset(0);
    const reader = new SseReader(hub.open(new Uint8Array(0), 0).body);
    const back = await c.start(victim, { watch: hub });
    await waitFor(() => back.status().applied >= leader.status().commit, "catch up by snapshot");
    const installed = back.status().snapshot;
    assert.ok(installed >= 80, "the follower installed the leader's snapshot");
    await reader.end();
    const [error] = reader.data("error");
    assert.equal(error.code, "compacted");
    assert.equal(error.oldest, installed);
    assert.equal(hub.floor, installed);
    assert.equal(hub.watchers, 0);
    assert.equal(hub.stats().cutCompactedTotal, 1);
  } finally {
    hub.close();
    stop();
    await c.close();
  }
});

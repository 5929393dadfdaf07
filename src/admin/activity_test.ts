import assert from "node:assert/strict";
import { DeploymentActivity, LEADER_CHANGES_MAX, RATE_WINDOW_MS } from "./_activity.ts";
import type { ClustersView, NodeStateView } from "./_views.ts";

function node(id: string, role: string, counters: { reads: number; writes: number } | null) {
  return {
    id,
    http: "",
    raft: "",
    pid: null,
    restarts: 0,
    process: "external",
    reachable: counters !== null,
    error: "",
    status: counters === null ? null : {
      node: id,
      cluster: id[0],
      role,
      term: 5,
      leader: "",
      commit: 0,
      applied: 0,
      snapshot: 0,
      epoch: 1,
      keys: 0,
      bytes: 0,
      members: [],
      ...counters,
    },
  } as NodeStateView;
}

function view(leader: string, nodes: NodeStateView[]): ClustersView {
  return {
    epoch: 1,
    scheme: "carp64-v1",
    healthy: leader !== "",
    clusters: [{ id: "a", loadFactor: 1, leader, nodes }],
  };
}

Deno.test("activity: rates sum every node's counters over the window", () => {
  const act = new DeploymentActivity();
  assert.deepEqual(act.rates("a"), { readsPerSecond: 0, writesPerSecond: 0 });
  act.observe(
    view("a1", [
      node("a1", "leader", { reads: 0, writes: 0 }),
      node("a2", "follower", { reads: 0, writes: 0 }),
    ]),
    0,
  );
  act.observe(
    view("a1", [
      node("a1", "leader", { reads: 50, writes: 20 }),
      node("a2", "follower", { reads: 50, writes: 0 }),
    ]),
    1_000,
  );
  assert.deepEqual(act.rates("a"), { readsPerSecond: 100, writesPerSecond: 20 });
  // A node that restarted counts from 0 again: its new count is all new work, not negative.
  act.observe(
    view("a1", [node("a1", "leader", { reads: 10, writes: 20 }), node("a2", "follower", null)]),
    2_000,
  );
  assert.deepEqual(act.rates("a"), { readsPerSecond: 55, writesPerSecond: 10 });
  // Old samples leave the window: an idle cluster's rate falls to 0.
  for (let t = 3_000; t <= 3_000 + RATE_WINDOW_MS; t += 1_000) {
    act.observe(view("a1", [node("a1", "leader", { reads: 10, writes: 20 })]), t);
  }
  assert.deepEqual(act.rates("a"), { readsPerSecond: 0, writesPerSecond: 0 });
});

Deno.test("activity: leader changes, newest first, bounded", () => {
  const act = new DeploymentActivity();
  const c = { reads: 0, writes: 0 };
  act.observe(view("", [node("a1", "follower", c)]), 0); // no leader yet: not a change
  assert.deepEqual(act.leaderChanges(), []);
  act.observe(view("a1", [node("a1", "leader", c)]), 1);
  act.observe(view("a1", [node("a1", "leader", c)]), 2);
  act.observe(view("", [node("a1", null as unknown as string, null)]), 3);
  act.observe(view("a2", [node("a2", "leader", c)]), 4);
  assert.deepEqual(act.leaderChanges(), [
    { at: 4, cluster: "a", from: "", to: "a2", term: 5 },
    { at: 3, cluster: "a", from: "a1", to: "", term: 0 },
    { at: 1, cluster: "a", from: "", to: "a1", term: 5 },
  ]);
  for (let i = 0; i < LEADER_CHANGES_MAX * 2; i++) {
    act.observe(
      view(i % 2 === 0 ? "a1" : "a2", [node("a1", "leader", c), node("a2", "leader", c)]),
      10 + i,
    );
  }
  assert.equal(act.leaderChanges().length, LEADER_CHANGES_MAX);
  assert.equal(act.leaderChanges()[0].at, 10 + LEADER_CHANGES_MAX * 2 - 1);
});

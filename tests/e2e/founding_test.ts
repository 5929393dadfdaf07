/**
 * Issue 10, item 3, and review finding F6: a founding node whose data directory is empty
 * while its cluster already exists must not found a second cluster. Two followers lose their
 * disks at once and restart as founders: they learn from the survivor that the cluster exists,
 * start empty and stay so (no new cluster, no leader, commit 0) until the operator acts. And
 * the normal cases still work: founders started one after another form one cluster, and a
 * founder started after the cluster formed catches up. Real processes on 127.0.0.1, stopped by
 * PID in a `finally`.
 */
import assert from "node:assert/strict";
import { foundingDecision } from "../../src/node/run_node.ts";
import { ProcessCluster, waitFor } from "./_cluster.ts";

const FOUNDERS = ["a1", "a2", "a3"];
const EXISTS = "Cluster a already exists (peer ";

function e2e(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, sanitizeResources: false, sanitizeOps: false, fn });
}

async function put(c: ProcessCluster, id: string, key: string, value: string): Promise<number> {
  const r = await c.fetch(id, `/v1/kv/${key}`, { method: "PUT", body: value });
  await r.body?.cancel();
  return r.status;
}

async function get(c: ProcessCluster, id: string, key: string, stale = false): Promise<string> {
  const r = await c.fetch(id, `/v1/kv/${key}${stale ? "?consistency=stale" : ""}`);
  const text = await r.text();
  return r.status === 200 ? text : `${r.status} ${text}`;
}

async function cpA(from: string, to: string): Promise<void> {
  const out = await new Deno.Command("cp", { args: ["-a", from, to] }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
}

e2e(
  "e2e: two followers wiped at once and restarted as founders found no second cluster",
  async () => {
    const c = await ProcessCluster.create(FOUNDERS);
    try {
      c.startAll();
      for (const id of FOUNDERS) {
        await waitFor(async () => (await c.fetch(id, "/healthz")).status === 200, `${id} healthy`);
      }
      const survivor = await c.leader();
      const wiped = FOUNDERS.filter((id) => id !== survivor);
      for (let i = 0; i < 20; i++) assert.equal(await put(c, survivor, `k${i}`, `v${i}`), 200);
      const before = await c.status(survivor);
      for (const id of wiped) await c.stop(id, true); // kill -9
      await Deno.mkdir(`${c.dir}/backup`);
      for (const id of wiped) {
        await cpA(c.node(id).data, `${c.dir}/backup/${id}`);
        await Deno.remove(c.node(id).data, { recursive: true });
      }
      for (const id of wiped) c.start(id, ["--log-level", "info"]); // same config, no --join
      for (const id of wiped) {
        await waitFor(async () => (await c.status(id)).node === id, `${id} serves its status`);
      }
      // For several election timeouts: nobody forms a new cluster.
      const until = performance.now() + 3_000;
      while (performance.now() < until) {
        for (const id of wiped) {
          const s = await c.status(id);
          assert.equal(s.commit, 0, `${id} committed ${s.commit}: ${JSON.stringify(s)}`);
          assert.notEqual(s.role, "leader", `${id} leads`);
          assert.ok(s.leader === "" || s.leader === survivor, `${id} follows ${s.leader}`);
          assert.equal(s.members.length, 0, `${id} has members ${JSON.stringify(s.members)}`);
        }
        const s = await c.status(survivor);
        assert.ok(s.term >= before.term && s.commit >= before.commit, JSON.stringify(s));
      }
      for (const id of wiped) {
        assert.match(await get(c, id, "k0", true), /^404/, `${id} holds no data`);
        assert.ok(
          c.node(id).output.includes(`${EXISTS}${survivor} holds it)`),
          `${id} names the survivor: ${c.node(id).output}`,
        );
      }
      // Bring the lost disks back (as an operator restoring a backup would): the cluster works.
      for (const id of wiped) {
        await c.stop(id);
        await Deno.remove(c.node(id).data, { recursive: true });
        await cpA(`${c.dir}/backup/${id}`, c.node(id).data);
        c.start(id);
      }
      for (const id of FOUNDERS) {
        await waitFor(async () => (await c.fetch(id, "/healthz")).status === 200, `${id} healthy`);
      }
      for (const id of FOUNDERS) {
        for (const i of [0, 7, 19]) assert.equal(await get(c, id, `k${i}`), `v${i}`, `${id} k${i}`);
      }
      assert.equal(await put(c, wiped[0], "after", "ok"), 200);
      for (const id of wiped) {
        assert.ok(
          !c.node(id).output.includes(EXISTS),
          "restored: no warning",
        );
      }
    } catch (e) {
      throw new Error(`${e instanceof Error ? e.stack : e}\n--- node logs ---\n${c.logs()}`);
    } finally {
      await c.close();
    }
  },
);

e2e(
  "e2e: founders started one after another form one cluster; a late founder catches up",
  async () => {
    const c = await ProcessCluster.create(FOUNDERS);
    try {
      c.start("a1", ["--log-level", "info"]);
      // Alone, a1 waits for a majority of founders instead of bootstrapping.
      await waitFor(() => c.node("a1").output.includes("waiting until a majority"), "a1 waits");
      const until = performance.now() + 2_000; // a2 starts two seconds later
      while (performance.now() < until) {
        const served = await c.fetch("a1", "/v1/status").then((r) => r.body?.cancel(), () => "no");
        assert.equal(served, "no", "a1 serves no HTTP while it waits");
      }
      c.start("a2");
      for (const id of ["a1", "a2"]) {
        await waitFor(async () => (await c.fetch(id, "/healthz")).status === 200, `${id} healthy`);
      }
      const leader = await c.leader();
      for (let i = 0; i < 30; i++) assert.equal(await put(c, leader, `s${i}`, `v${i}`), 200);
      const commit = (await c.status(leader)).commit;
      assert.ok(!c.node("a1").output.includes(EXISTS), c.node("a1").output);
      // a3, a founder, starts only now: it finds the cluster formed, starts empty and catches up.
      c.start("a3", ["--log-level", "info"]);
      await waitFor(() => c.node("a3").output.includes(EXISTS), `a3: "${EXISTS}…"`);
      // A late founder is a healthy start: the line is info, not a warning (that one is kept
      // for the refusal a node that really lost its disk gets).
      const line = c.node("a3").output.split("\n").find((l) => l.includes(EXISTS))!;
      assert.match(line, /"level":"INFO"/, line);
      await waitFor(async () => (await get(c, "a3", "s29", true)) === "v29", "a3 catches up");
      assert.equal(await get(c, "a3", "s3", true), "v3");
      await waitFor(async () => {
        const m = (await c.status(leader)).members.find((m) => m.id === "a3");
        return m !== undefined && m.voter && m.match >= commit;
      }, "a3 is a voter that matches the leader");
      assert.equal(await put(c, "a3", "through-a3", "ok"), 200);
      const statuses = await Promise.all(FOUNDERS.map((id) => c.status(id)));
      const leaders = new Set(statuses.map((s) => s.leader));
      assert.deepEqual([...leaders], [leader], JSON.stringify(statuses));
    } catch (e) {
      throw new Error(`${e instanceof Error ? e.stack : e}\n--- node logs ---\n${c.logs()}`);
    } finally {
      await c.close();
    }
  },
);

e2e("e2e: a founder alone warns once after 10 s, naming the founders it waits for", async () => {
  const c = await ProcessCluster.create(FOUNDERS);
  try {
    c.start("a1");
    const warning =
      "waiting for a majority of the founders of cluster a to start: a2, a3 not reachable";
    await waitFor(() => c.node("a1").output.includes(warning), "the warning", 20_000);
    assert.equal(c.node("a1").output.split(warning).length - 1, 1, "once");
    // The two others start together: one cluster forms.
    c.start("a2");
    c.start("a3");
    for (const id of FOUNDERS) {
      await waitFor(async () => (await c.fetch(id, "/healthz")).status === 200, `${id} healthy`);
    }
    const leader = await c.leader();
    assert.equal(await put(c, leader, "k", "v"), 200);
    for (const id of FOUNDERS) assert.equal(await get(c, id, "k"), "v");
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.stack : e}\n--- node logs ---\n${c.logs()}`);
  } finally {
    await c.close();
  }
});

Deno.test("foundingDecision: join on any formed peer; bootstrap on a majority of empty founders, all asked", () => {
  const f = ["a1", "a2", "a3"];
  const k = (entries: [string, { formed?: boolean; unreachable?: string }][]) => new Map(entries);
  assert.deepEqual(foundingDecision("a1", ["a1"], k([])), { action: "bootstrap" });
  assert.deepEqual(foundingDecision("a1", f, k([])), { action: "wait", missing: ["a2", "a3"] });
  // a2 empty, a3 never asked yet: wait (a3 might hold the cluster).
  assert.deepEqual(foundingDecision("a1", f, k([["a2", { formed: false }]])), {
    action: "wait",
    missing: ["a3"],
  });
  assert.deepEqual(
    foundingDecision("a1", f, k([["a2", { formed: false }], ["a3", { unreachable: "refused" }]])),
    { action: "bootstrap" },
  );
  assert.deepEqual(
    foundingDecision("a1", f, k([["a2", { formed: false }], ["a3", { formed: true }]])),
    { action: "join", peer: "a3" },
  );
  // A formed joiner (not a founder) counts too.
  assert.deepEqual(foundingDecision("a1", f, k([["j1", { formed: true }]])), {
    action: "join",
    peer: "j1",
  });
  assert.deepEqual(
    foundingDecision("a1", f, k([["a2", { unreachable: "x" }], ["a3", { unreachable: "x" }]])),
    { action: "wait", missing: ["a2", "a3"] },
  );
  const five = ["a1", "a2", "a3", "a4", "a5"];
  const two = k([["a2", { formed: false }], ["a3", { formed: false }]]);
  assert.equal(foundingDecision("a1", five, two).action, "wait"); // a4, a5 not asked yet
  two.set("a4", { unreachable: "x" });
  two.set("a5", { unreachable: "x" });
  assert.equal(foundingDecision("a1", five, two).action, "bootstrap"); // 3 of 5 empty
});

e2e(
  "e2e: SIGTERM while a founder waits for the others stops it at once, with the stopped line",
  async () => {
    const c = await ProcessCluster.create(FOUNDERS);
    try {
      c.start("a1", ["--log-level", "info"]);
      await waitFor(() => c.node("a1").output.includes("waiting until a majority"), "the wait");
      const started = Date.now();
      const child = c.signal("a1", "SIGTERM");
      const status = await child.status;
      assert.equal(status.code, 0, c.logs());
      assert.ok(Date.now() - started < 3_000, `stopped in ${Date.now() - started} ms`);
      await waitFor(() => c.node("a1").output.includes('"beforeReady":true'), "the stopped line");
    } finally {
      await c.close();
    }
  },
);

/**
 * `koi admin` end to end on the default deployment (3 clusters of 3 nodes, moved to free
 * ports): it spawns and supervises the nodes, serves the routing table, the nodes' state, a
 * health check and the status page, authenticates with a generated secret, restarts a dead
 * node, refuses a second admin and stops every node by PID.
 */
import assert from "node:assert/strict";
import { AdminProcess, alive, withAdmin } from "./_admin.ts";
import { waitFor } from "./_cluster.ts";

Deno.test({
  name: "admin: the default deployment starts, serves its API, restarts a dead node and stops",
  sanitizeResources: false,
  async fn() {
    await withAdmin(undefined, async (admin) => {
      const carp = await admin.json<{
        epoch: number;
        scheme: string;
        clusters: {
          id: string;
          loadFactor: number;
          leader: string;
          nodes: { id: string; http: string }[];
        }[];
      }>("/v1/carp");
      assert.equal(carp.epoch, 1);
      assert.equal(carp.scheme, "carp64");
      assert.deepEqual(carp.clusters.map((c) => c.id), ["a", "b", "c"]);
      for (const c of carp.clusters) {
        assert.equal(c.loadFactor, 1);
        assert.deepEqual(c.nodes.map((n) => n.id), [1, 2, 3].map((i) => `${c.id}${i}`));
        assert.ok(c.nodes.every((n) => /^127\.0\.0\.1:\d+$/.test(n.http)));
        assert.ok(c.nodes.some((n) => n.id === c.leader), `cluster ${c.id} names its leader`);
      }
      // Ready means every cluster has a leader; a follower may not have been polled yet.
      let clusters = await admin.clusters();
      await waitFor(
        async () =>
          (clusters = await admin.clusters()).clusters.every((c) =>
            c.nodes.every((n) => n.reachable)
          ),
        "every node reachable",
        30_000,
      );
      assert.equal(clusters.healthy, true);
      for (const c of clusters.clusters) {
        for (const n of c.nodes) {
          assert.equal(n.reachable, true, `${n.id}: ${n.error}`);
          assert.ok(n.pid !== null && alive(n.pid), `${n.id} runs`);
          assert.equal(n.status!.keys, 0);
        }
      }
      // The status page: a static shell whose script draws /v1/dashboard (tests/browser/ runs
      // it in chromium), which names every node.
      const page = await fetch(`${admin.url}/`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get("content-type")!, /text\/html/);
      assert.match(await page.text(), /<script src="\/dashboard.js" defer>/);
      const drawn = await admin.json<{ clusters: { id: string; nodes: { id: string }[] }[] }>(
        "/v1/dashboard",
      );
      const ids = drawn.clusters.flatMap((c) => c.nodes.map((n) => n.id));
      for (const id of ["a1", "b2", "c3"]) assert.ok(ids.includes(id), `${id} in /v1/dashboard`);

      // The generated secret: mode 0600, and the nodes demand it for management.
      const secretPath = `${admin.dir}/data/admin/secret`;
      assert.equal((await Deno.stat(secretPath)).mode! & 0o777, 0o600);
      const secret = (await Deno.readTextFile(secretPath)).trim();
      const node = carp.clusters[0].nodes[0].http;
      const open = await fetch(`http://${node}/v1/status`);
      await open.body?.cancel();
      assert.equal(open.status, 401, "management is authenticated");
      const authed = await fetch(`http://${node}/v1/status`, {
        headers: { authorization: `Bearer ${secret}` },
      });
      assert.equal((await authed.json()).node, "a1");

      // A second admin of the same deployment refuses and leaves the first one alone.
      const second = await admin.runExtra();
      assert.equal(second.code, 1, second.output);
      assert.match(second.output, /Another koi admin \(pid \d+\) already runs this deployment/);
      assert.equal((await admin.clusters()).healthy, true);

      // A node killed by SIGKILL is restarted (a new PID, restarts 1) and serves again.
      const victim = clusters.clusters[1].nodes[0];
      Deno.kill(victim.pid!, "SIGKILL");
      await waitFor(
        async () => {
          const n = (await admin.clusters()).clusters[1].nodes[0];
          return n.restarts === 1 && n.pid !== victim.pid && n.reachable;
        },
        `${victim.id} restarted`,
        30_000,
      );
      assert.match(
        admin.output,
        new RegExp(
          `node ${victim.id} \\(pid ${victim.pid}\\) died unexpectedly \\(signal SIGKILL\\)`,
        ),
      );
      assert.match(admin.output, new RegExp(`restarting node ${victim.id} in`));
      assert.match(admin.output, /\[b1\] .*node ready/, "node output is prefixed by its id");

      // SIGTERM stops every node by PID, then the admin: exit 0.
      const pids = [...admin.nodePids];
      const status = await admin.stop("SIGTERM");
      assert.equal(status?.code, 0, admin.output);
      assert.ok(pids.every((p) => !alive(p)), "every node stopped");
      assert.match(admin.output, /\[admin\] stopped/);
    });
  },
});

Deno.test({
  name: "admin: when the admin dies by SIGKILL its nodes stop too (no orphans)",
  sanitizeResources: false,
  async fn() {
    await withAdmin(ONE_CLUSTER, async (admin) => {
      const pids = [...admin.nodePids];
      assert.equal(pids.length, 3);
      await admin.stop("SIGKILL");
      await waitFor(() => pids.every((p) => !alive(p)), "every node exits", 15_000);
    });
  },
});

Deno.test({
  name: "admin: a taken address is named by its config field and nothing starts",
  sanitizeResources: false,
  async fn() {
    const admin = await AdminProcess.create(ONE_CLUSTER);
    const text = await Deno.readTextFile(admin.configPath);
    const taken = /id = "a2"\s*raft = "[^"]+"\s*http = "127\.0\.0\.1:(\d+)"/.exec(text)!;
    const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(taken[1]) });
    try {
      const run = await admin.runExtra();
      assert.equal(run.code, 1, run.output);
      assert.match(
        run.output,
        new RegExp(`clusters\\[0\\]\\.nodes\\[1\\]\\.http \\(127\\.0\\.0\\.1:${taken[1]}\\)`),
      );
      assert.doesNotMatch(run.output, /node ready/);
    } finally {
      listener.close();
      await admin.close();
    }
  },
});

const ONE_CLUSTER = `
[admin]
http = "127.0.0.1:1"

[[clusters]]
id = "a"

  [[clusters.nodes]]
  id = "a1"
  raft = "127.0.0.1:1"
  http = "127.0.0.1:1"
  data = "data/a1"

  [[clusters.nodes]]
  id = "a2"
  raft = "127.0.0.1:1"
  http = "127.0.0.1:1"
  data = "data/a2"

  [[clusters.nodes]]
  id = "a3"
  raft = "127.0.0.1:1"
  http = "127.0.0.1:1"
  data = "data/a3"
`;

Deno.test({
  name: "admin: a restarted node runs the config and secret the admin loaded, not the edited files",
  sanitizeResources: false,
  async fn() {
    await withAdmin(ONE_CLUSTER, async (admin) => {
      // Someone edits both files while the deployment runs.
      const text = await Deno.readTextFile(admin.configPath);
      await Deno.writeTextFile(
        admin.configPath,
        text.replace("[admin]", "[routing]\nepoch = 9\n\n[admin]"),
      );
      await Deno.writeTextFile(
        `${admin.dir}/data/admin/secret`,
        "another-valid-secret-0123456789\n",
      );
      const victim = (await admin.clusters()).clusters[0].nodes[0];
      Deno.kill(victim.pid!, "SIGKILL");
      let status: { epoch: number } | null = null;
      await waitFor(
        async () => {
          const n = (await admin.clusters()).clusters[0].nodes[0];
          // Reachable: it accepts the admin's secret, so it got the one the admin holds. The
          // status is read from the same poll (a later one may have missed the node).
          status = n.status as unknown as { epoch: number } | null;
          return n.restarts === 1 && n.pid !== victim.pid && n.reachable && status !== null;
        },
        `${victim.id} restarted and reachable`,
        30_000,
      );
      assert.equal(status!.epoch, 1, "the admin's epoch");
    });
  },
});

Deno.test({
  name: "admin: a second signal kills every node and exits 1",
  sanitizeResources: false,
  async fn() {
    await withAdmin(ONE_CLUSTER, async (admin) => {
      const pids = [...admin.nodePids];
      Deno.kill(pids[0], "SIGSTOP"); // it cannot stop on SIGTERM: the first stop waits for it
      admin.child!.kill("SIGTERM");
      const first = performance.now();
      await waitFor(() => /stopping every node/.test(admin.output), "the first stop begins");
      await waitFor(() => pids.slice(1).every((p) => !alive(p)), "the other nodes stop");
      // Signals within 0.5 s of the first are the same one (docs/api.md): this one is later.
      await waitFor(() => performance.now() - first > 700, "0.7 s after the first signal");
      const status = await admin.stop("SIGTERM");
      assert.equal(status?.code, 1, admin.output);
      assert.match(admin.output, /second signal: killing every node/);
      assert.ok(pids.every((p) => !alive(p)), "every node is gone");
    });
  },
});

Deno.test({
  name: "admin: more connections than it takes are refused, and the admin stays up",
  sanitizeResources: false,
  async fn() {
    const admin = await AdminProcess.create(ONE_CLUSTER);
    const conns: Deno.Conn[] = [];
    try {
      admin.start();
      await admin.healthy();
      const { hostname, port } = new URL(admin.url);
      for (let i = 0; i < 300; i++) {
        conns.push(await Deno.connect({ hostname, port: Number(port) }));
      }
      // Beyond 256 the admin answers 503 and closes: read one of the last connections.
      const last = conns[conns.length - 1];
      const buf = new Uint8Array(512);
      const n = await last.read(buf);
      assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 503/);
      for (const c of conns) c.close();
      conns.length = 0;
      await admin.healthy(10_000); // serves again at once
      assert.ok(admin.child !== undefined && [...admin.nodePids].every(alive), "nothing died");
    } finally {
      for (const c of conns) c.close();
      await admin.close();
    }
  },
});

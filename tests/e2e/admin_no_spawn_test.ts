/**
 * `koi admin --no-spawn`: the nodes run elsewhere (here: started by the test, as a service
 * manager would); the admin only polls them, serves the routing table, and stops none of them.
 */
import assert from "node:assert/strict";
import { connect } from "../../mod.ts";
import { alive } from "./_admin.ts";
import { ProcessCluster, waitFor } from "./_cluster.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test({
  name: "admin --no-spawn: serves the routing table of nodes it did not start, and stops none",
  sanitizeResources: false,
  async fn() {
    const c = await ProcessCluster.create(["a1", "a2", "a3"]);
    let admin: Deno.ChildProcess | undefined;
    try {
      c.startAll();
      await c.leader();
      const adminHttp = /\[admin\]\s*http = "([^"]+)"/.exec(
        await Deno.readTextFile(c.configPath),
      )![1];
      const url = `http://${adminHttp}`;
      admin = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}cli.ts`, "admin"]
          .concat(["--config", c.configPath, "--no-spawn"]),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const output = (async () => {
        const [out, err] = await Promise.all([
          new Response(admin!.stdout).text(),
          new Response(admin!.stderr).text(),
        ]);
        return out + err;
      })();
      // Its address check skips the nodes' addresses, which the nodes hold.
      await waitFor(
        async () => {
          const r = await fetch(`${url}/healthz`).catch(() => undefined);
          await r?.body?.cancel();
          return r?.status === 200;
        },
        "the admin to see every leader",
        30_000,
      );
      const body = await (await fetch(`${url}/v1/clusters`)).json();
      const nodes = body.clusters[0].nodes as { process: string; pid: number | null }[];
      assert.deepEqual(nodes.map((n) => [n.process, n.pid]), [
        ["external", null],
        ["external", null],
        ["external", null],
      ]);
      const client = await connect(url);
      try {
        await client.put("no-spawn", "works");
        assert.equal((await client.getText("no-spawn"))?.value, "works");
      } finally {
        client.close();
      }
      admin.kill("SIGTERM");
      const status = await admin.status;
      admin = undefined;
      const text = await output;
      assert.equal(status.code, 0, text);
      assert.match(text, /watching 3 nodes in 1 cluster .*started elsewhere \(--no-spawn\)/);
      assert.doesNotMatch(text, /generated the deployment's secret/);
      for (const n of c.nodes.values()) {
        assert.ok(n.child !== undefined && alive(n.child.pid), `${n.id} still runs`);
      }
      assert.equal((await c.status("a1")).role !== undefined, true);
    } finally {
      try {
        admin?.kill("SIGKILL");
        await admin?.status;
      } catch { /* exited */ }
      await c.close();
    }
  },
});

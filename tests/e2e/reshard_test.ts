/**
 * Online resharding end to end (docs/resharding.md): a running deployment of three
 * single-node clusters grows to four with `koi admin reshard` and shrinks back to three,
 * while a client writes; every acknowledged write reads back afterwards, and the keys that
 * moved are about the ideal fraction.
 */
import assert from "node:assert/strict";
import { connect } from "../../mod.ts";
import { AdminProcess, alive, oneNodeClusterToml } from "./_admin.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function reshard(admin: AdminProcess, path: string, code = 0): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      `${ROOT}deno.json`,
      `${ROOT}cli.ts`,
      "admin",
      "reshard",
      "--config",
      path,
    ],
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, code, `${text}\n--- admin ---\n${admin.output.slice(-3000)}`);
  return text;
}

Deno.test({
  name: "e2e: reshard 3 -> 4 -> 3 clusters under writes; every acknowledged write reads back",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const admin = await AdminProcess.create(
      `[admin]\nhttp = "127.0.0.1:1"\n[routing]\nepoch = 1\n` +
        ["a", "b", "c"].map((id) => oneNodeClusterToml(id)).join(""),
    );
    // The same deployment (withFreePorts moved it) with epoch 2 and a cluster d, then 3 without.
    const three = await Deno.readTextFile(admin.configPath);
    const withEpoch = (text: string, epoch: number) =>
      text.replace(/^epoch = 1$/m, `epoch = ${epoch}`);
    assert.notEqual(withEpoch(three, 2), three);
    const four = admin.dir + "/four.toml";
    const four_d = oneNodeClusterToml("d", three);
    await Deno.writeTextFile(four, withEpoch(three, 2) + "\n" + four_d);
    const back = admin.dir + "/back.toml";
    await Deno.writeTextFile(back, withEpoch(three, 3));
    try {
      admin.start();
      await admin.healthy();
      const client = await connect(admin.url);
      const acked = new Map<string, string>();
      try {
        for (let i = 0; i < 400; i++) {
          await client.put(`user:${i}`, `v0-${i}`);
          acked.set(`user:${i}`, `v0-${i}`);
        }
        let writing = true;
        let n = 0;
        let failures = 0;
        const writer = (async () => {
          while (writing) {
            const key = `user:${(n * 7919) % 500}`;
            const value = `v${++n}`;
            try {
              await client.put(key, value);
              acked.set(key, value);
            } catch {
              failures++; // not acknowledged (its outcome is checked below by the last ack)
              acked.delete(key); // an unknown outcome may have applied: no claim on this key
            }
          }
        })();
        // A new config that skips an epoch is refused, naming the epoch to set; nothing moves.
        const skipping = admin.dir + "/skipping.toml";
        await Deno.writeTextFile(
          skipping,
          withEpoch(three, 3) + "\n" + oneNodeClusterToml("d", three),
        );
        assert.match(await reshard(admin, skipping, 1), /refused the move \(400\).*epoch = 2/);
        const grow = await reshard(admin, four);
        assert.match(grow, /done: \d+ keys moved/);
        const grown = await admin.clusters();
        const dPids = grown.clusters.find((c) => c.id === "d")!.nodes.map((n) => n.pid!);
        assert.ok(dPids.every((pid) => alive(pid)), "d's nodes run");
        const table = await admin.json<{ epoch: number; clusters: { id: string }[] }>("/v1/carp");
        assert.equal(table.epoch, 2);
        assert.deepEqual(table.clusters.map((c) => c.id), ["a", "b", "c", "d"]);
        const shrink = await reshard(admin, back);
        assert.match(shrink, /done: \d+ keys moved/);
        writing = false;
        await writer;
        console.log(`${n} writes during the moves, ${failures} not acknowledged`);
        assert.ok(n > 100, `the client kept writing (${n})`);
        // Done means the drained cluster's nodes are stopped (d was added by this admin).
        assert.ok(dPids.every((pid) => !alive(pid)), "d's nodes stopped after the drain");
        const after = await admin.json<{ epoch: number; clusters: { id: string }[] }>("/v1/carp");
        assert.equal(after.epoch, 3);
        assert.deepEqual(after.clusters.map((c) => c.id), ["a", "b", "c"]);
        // d again, with the data directories its drain left: refused up front (found by an
        // attack: its nodes came back with their old routing state and wedged the move).
        const again = admin.dir + "/again.toml";
        await Deno.writeTextFile(again, withEpoch(three, 4) + "\n" + four_d);
        assert.match(await reshard(admin, again, 1), /data directory .*d1.* is not empty/);
        // An added cluster whose address is taken: refused, naming its field; the admin lives.
        const squatter = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        try {
          const port = (squatter.addr as Deno.NetAddr).port;
          const taken = admin.dir + "/taken.toml";
          await Deno.writeTextFile(
            taken,
            withEpoch(three, 4) + "\n" +
              oneNodeClusterToml("e", three + four_d).replace(
                /http = "[^"]+"/,
                `http = "127.0.0.1:${port}"`,
              ),
          );
          assert.match(
            await reshard(admin, taken, 1),
            new RegExp(`clusters\\[3\\]\\.nodes\\[0\\]\\.http \\(127\\.0\\.0\\.1:${port}\\)`),
          );
        } finally {
          squatter.close();
        }
        assert.equal((await fetch(`${admin.url}/healthz`)).status, 200, "the admin is up");
        const fresh = await connect(admin.url);
        try {
          for (const [key, value] of acked) {
            const got = await fresh.getText(key);
            assert.equal(got?.value, value, `${key} after the moves`);
          }
        } finally {
          fresh.close();
        }
        console.log(grow.trim().split("\n").at(-1));
        console.log(shrink.trim().split("\n").at(-1));
      } finally {
        client.close();
      }
    } finally {
      await admin.close();
    }
  },
});

Deno.test({
  name: "e2e: an admin killed (-9) in the middle of a reshard resumes it when started again",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const admin = await AdminProcess.create(
      `[admin]\nhttp = "127.0.0.1:1"\n[routing]\nepoch = 1\n` +
        ["a", "b"].map((id) => oneNodeClusterToml(id)).join(""),
    );
    const two = await Deno.readTextFile(admin.configPath);
    const three = admin.dir + "/three.toml";
    await Deno.writeTextFile(
      three,
      two.replace(/^epoch = 1$/m, "epoch = 2") + "\n" + oneNodeClusterToml("c", two),
    );
    try {
      admin.start();
      await admin.healthy();
      const client = await connect(admin.url);
      const keys = 6_000;
      try {
        for (let i = 0; i < keys; i += 200) {
          await Promise.all(
            Array.from({ length: 200 }, (_, j) => client.put(`k:${i + j}`, `v${i + j}`)),
          );
        }
      } finally {
        client.close();
      }
      const secret = (await Deno.readTextFile(`${admin.dir}/data/admin/secret`)).trim();
      const started = await fetch(`${admin.url}/v1/reshard`, {
        method: "POST",
        headers: { authorization: `Bearer ${secret}` },
        body: JSON.stringify({ path: three, config: await Deno.readTextFile(three) }),
      });
      assert.equal(started.status, 202, await started.clone().text());
      await started.body?.cancel();
      // Kill the admin once some batches switched, well before the end.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const p = await admin.json<{ keysMoved: number; state: string }>("/v1/reshard");
        assert.notEqual(p.state, "done", "the move ended before the admin could be killed");
        if (p.keysMoved > 0) break;
        assert.ok(Date.now() < deadline, "no key moved in 30 s");
        await new Promise((r) => setTimeout(r, 20));
      }
      await admin.clusters(); // every node PID, for the cleanup
      await admin.stop("SIGKILL");
      // Started again with the config the move began from, it resumes (and says so).
      admin.start();
      await admin.healthy();
      await admin.clusters();
      const end = Date.now() + 60_000;
      for (;;) {
        const r = await fetch(`${admin.url}/v1/reshard`);
        const p = r.status === 200 ? await r.json() : (await r.body?.cancel(), undefined);
        if (p?.state === "done") break;
        assert.ok(Date.now() < end, `the resumed move did not finish: ${JSON.stringify(p)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(admin.output, /resuming the reshard to epoch 2/);
      const table = await admin.json<{ epoch: number; clusters: { id: string }[] }>("/v1/carp");
      assert.equal(table.epoch, 2);
      assert.deepEqual(table.clusters.map((c) => c.id), ["a", "b", "c"]);
      const reader = await connect(admin.url);
      try {
        for (let i = 0; i < keys; i += 500) {
          const got = await Promise.all(
            Array.from({ length: 500 }, (_, j) => reader.getText(`k:${i + j}`)),
          );
          got.forEach((g, j) => assert.equal(g?.value, `v${i + j}`, `k:${i + j}`));
        }
      } finally {
        reader.close();
      }
      // Every key of cluster c is one that moved there: c holds about a third of them.
      const status = await admin.clusters();
      const c = status.clusters.find((x) => x.id === "c")!;
      const held = Math.max(...c.nodes.map((n) => n.status?.keys ?? 0));
      assert.ok(Math.abs(held / keys - 1 / 3) < 0.05, `cluster c holds ${held} of ${keys}`);
    } finally {
      await admin.close();
    }
  },
});

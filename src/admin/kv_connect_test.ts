/**
 * The admin's KV Connect service: what it prints, its database id, and `koi admin` itself
 * (runAdmin, `--no-spawn`) serving `Deno.openKv(url)` over fake nodes, with the generated
 * token kept across a restart.
 */
import assert from "node:assert/strict";
import { freePorts } from "../client/_fake_test_util.ts";
import { parseConfig } from "../config/mod.ts";
import { FakeKvcDeployment } from "../kv_connect/_fake_kvc_test_util.ts";
import { TEST_TOKEN } from "../kv_connect/_gateway_test_util.ts";
import { databaseIdOf, kvConnectLines } from "./_kv_connect.ts";
import { runAdmin } from "./run_admin.ts";

Deno.test("kv connect service: prints the URL, and the generated token bare, ready to paste", () => {
  const generated = { path: "/d/kv_connect_token", token: "tok-0123456789abcdef", created: true };
  assert.deepEqual(
    kvConnectLines({ url: "http://127.0.0.1:7001/kv", generated, configuredTokens: 0 }, "/c.toml"),
    [
      { text: "KV Connect: http://127.0.0.1:7001/kv", bare: false },
      { text: "DENO_KV_ACCESS_TOKEN=tok-0123456789abcdef", bare: true },
    ],
  );
  const configured = kvConnectLines({
    url: "https://[::1]:7001/kv",
    configuredTokens: 2,
    caPath: "/c/ca.pem",
  }, "/c.toml");
  assert.deepEqual(configured.map((l) => l.text), [
    "KV Connect: https://[::1]:7001/kv",
    "KV Connect is HTTPS: start Deno with DENO_CERT=/c/ca.pem to trust it",
    "KV Connect access token: one of the 2 of [kv_connect] tokens in /c.toml (not printed)",
  ]);
  assert.ok(configured.every((l) => !l.bare && !l.text.includes("DENO_KV_ACCESS_TOKEN")));
});

Deno.test("kv connect service: the database id is a UUID, stable per state directory", async () => {
  const id = await databaseIdOf("/srv/koi/data/admin");
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(await databaseIdOf("/srv/koi/data/admin"), id);
  assert.notEqual(await databaseIdOf("/srv/other/data/admin"), id);
});

/** A config of the fake's clusters (a: a1 a2, b: b1, c: c1) with `[kv_connect]`. */
function configText(fake: FakeKvcDeployment, dir: string, kvConnect: string): string {
  const nodes = [...fake.deployment.nodes.values()].length;
  const ports = freePorts(nodes + 1);
  let raft = 0;
  const clusters = [...fake.deployment.clusters.values()].map((c) =>
    `[[clusters]]\nid = "${c.id}"\n` +
    c.nodes.map((n) =>
      `[[clusters.nodes]]\nid = "${n.id}"\nraft = "127.0.0.1:${ports[raft++]}"\n` +
      `http = "${n.http}"\ndata = "${dir}/${n.id}"\n`
    ).join("")
  ).join("\n");
  return `[admin]\nhttp = "127.0.0.1:${ports[nodes]}"\ndata = "${dir}/admin"\n` +
    `[kv_connect]\n${kvConnect}\n${clusters}`;
}

async function startAdmin(text: string, dir: string, lines: string[]) {
  // Under CI's load the previous admin's data-directory lock was twice seen held just after its
  // close resolved (not reproduced locally): wait for it, within 5 s, rather than fail at once.
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      return await runAdmin({
        config: parseConfig(text, { baseDir: dir }),
        configText: text,
        nodeCommand: () => ({ command: "false", args: [] }),
        noSpawn: true,
        log: (line) => lines.push(line),
        output: () => {},
      });
    } catch (error) {
      if (!(error instanceof Error && error.name === "AdminLockedError") || Date.now() > deadline) {
        throw error;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

Deno.test({
  name: "kv connect service: koi admin serves Deno.openKv(url); the token outlives a restart",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const fake = FakeKvcDeployment.start({
      clusters: [{ id: "a", nodes: ["a1", "a2"] }, { id: "b", nodes: ["b1"] }, {
        id: "c",
        nodes: ["c1"],
      }],
    });
    const dir = await Deno.makeTempDir();
    try {
      const [port] = freePorts(1);
      // Configured tokens: the one every test sets in the (shared) environment.
      const text = configText(
        fake,
        dir,
        `listen = "127.0.0.1:${port}"\ntokens = ["${TEST_TOKEN}"]`,
      );
      const lines: string[] = [];
      let admin = await startAdmin(text, dir, lines);
      let kv: Deno.Kv | undefined;
      try {
        await admin.ready;
        assert.equal(admin.kvConnect?.url, `http://127.0.0.1:${port}/kv`);
        assert.equal(admin.kvConnect?.generated, undefined);
        Deno.env.set("DENO_KV_ACCESS_TOKEN", TEST_TOKEN);
        kv = await Deno.openKv(admin.kvConnect!.url);
        for (let i = 0; i < 9; i++) await kv.set(["item", i], `v${i}`);
        const all = [];
        for await (const e of kv.list<string>({ prefix: ["item"] })) all.push(e.value);
        assert.deepEqual(all, Array.from({ length: 9 }, (_, i) => `v${i}`));
        await admin.close();
        // The same deployment again: the client that was open goes on (same database id,
        // its data token still valid).
        admin = await startAdmin(text, dir, lines);
        await admin.ready;
        assert.equal((await kv.get(["item", 3])).value, "v3");
      } finally {
        kv?.close();
        await admin.close();
      }
      // Without tokens: one is generated, kept, and the same one after a restart.
      const generatedText = configText(fake, dir, `listen = "127.0.0.1:${port}"`);
      const first = await startAdmin(generatedText, dir, lines);
      const token = first.kvConnect?.generated?.token;
      await first.close();
      assert.ok(first.kvConnect?.generated?.created);
      assert.ok(
        lines.some((l) =>
          /generated the KV Connect access token in .*kv_connect_token \(mode 0600\)/.test(l)
        ),
      );
      const second = await startAdmin(generatedText, dir, lines);
      try {
        await second.ready;
        assert.equal(second.kvConnect?.generated?.token, token);
        assert.equal(second.kvConnect?.generated?.created, false);
        const meta = await fetch(second.kvConnect!.url, {
          method: "POST",
          headers: { authorization: `Bearer ${token}` },
          body: JSON.stringify({ supportedVersions: [3] }),
        });
        assert.equal(meta.status, 200);
        await meta.body?.cancel();
      } finally {
        await second.close();
      }
    } finally {
      await fake.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("kv connect service: kv_connect.listen taken is named like the other addresses", async () => {
  const fake = FakeKvcDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  const dir = await Deno.makeTempDir();
  const [port] = freePorts(1);
  const held = Deno.listen({ hostname: "127.0.0.1", port });
  try {
    const text = configText(fake, dir, `listen = "127.0.0.1:${port}"`);
    await assert.rejects(
      startAdmin(text, dir, []),
      new RegExp(`already in use: kv_connect.listen \\(127\\.0\\.0\\.1:${port}\\)`),
    );
  } finally {
    held.close();
    await fake.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kv connect lines: a bound below the most says to raise the limit of open files", () => {
  const low = kvConnectLines(
    { url: "http://h:1/kv", configuredTokens: 1, connectionsMax: 256 },
    "c",
  );
  assert.match(low[0].text, /at most 256 connections.*ulimit -n/);
  const high = kvConnectLines(
    { url: "http://h:1/kv", configuredTokens: 1, connectionsMax: 1024 },
    "c",
  );
  assert.equal(high[0].text, "KV Connect: http://h:1/kv");
});

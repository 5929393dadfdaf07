import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test({
  name:
    "e2e: scripts/test-multiple-clusters.sh passes (1,000 keys, every leader killed, 3 -> 4 -> 3 clusters under writes, all read back)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // The script stops the admin and every node by PID on every exit path.
    const out = await new Deno.Command("bash", {
      args: [`${ROOT}scripts/test-multiple-clusters.sh`],
      env: { DENO: Deno.execPath() },
      stdin: "null",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    assert.match(text, /wrote 1000 keys through the client/);
    for (const c of ["a", "b", "c"]) {
      assert.match(text, new RegExp(`killed the leader of cluster ${c}: ${c}\\d \\(pid \\d+\\)`));
    }
    assert.match(text, /all 1000 keys read back after killing every cluster's leader/);
    // Resharding under writes: 3 -> 4 -> 3, with about a quarter of the keys moved each way.
    for (
      const [move, line] of [[
        "grew 3 -> 4",
        /grew 3 -> 4 clusters: done: (\d+) keys moved \(([\d.]+)% of (\d+); ideal 25\.0%\)/,
      ], [
        "shrank 4 -> 3",
        /shrank 4 -> 3 clusters: done: (\d+) keys moved \(([\d.]+)% of (\d+); ideal 25\.0%\)/,
      ]] as const
    ) {
      const m = line.exec(text);
      assert.ok(m, `${move}: ${text}`);
      assert.ok(Math.abs(Number(m[2]) - 25) < 6, `${move} moved ${m[2]}% of the keys`);
    }
    const acked = /(\d+) writes acknowledged during the moves/.exec(text);
    assert.ok(acked && Number(acked[1]) > 100, `writes went on during the moves: ${acked?.[0]}`);
    assert.match(text, /all \d+ keys' last acknowledged writes read back after 3 -> 4 -> 3/);
    // Keys per cluster add up to 1,000 and every cluster holds some.
    const counts = [...text.matchAll(/^ {2}([abc]) +(\d+) +[\d.]+ %/gm)].map((m) => Number(m[2]));
    assert.equal(counts.length, 3, text);
    assert.equal(counts.reduce((a, b) => a + b, 0), 1000);
    assert.match(text, /admin stopped cleanly with its nodes/);
    assert.match(text, /OK: multiple clusters/);
  },
});

Deno.test("deno task start runs the admin on the repository's config.toml (3 clusters of 3)", async () => {
  const manifest = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  assert.equal(manifest.tasks.start, "deno run -A cli.ts admin --config config.toml");
  const { loadConfig } = await import("../../src/config/mod.ts");
  const config = await loadConfig(`${ROOT}config.toml`);
  assert.equal(config.admin.http.text, "127.0.0.1:7000");
  assert.equal(config.kvConnect?.listen.text, "127.0.0.1:7001", "KV Connect is on by default");
  assert.deepEqual(config.clusters.map((c) => [c.id, c.nodes.length]), [["a", 3], ["b", 3], [
    "c",
    3,
  ]]);
});

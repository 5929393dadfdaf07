/**
 * The admin's reshard runner (its record, its checks before a move, its retries) over
 * in-memory clusters: found by an attack on a running deployment.
 */
import assert from "node:assert/strict";
import { type KoiConfig, parseConfig } from "../config/mod.ts";
import { MemoryClusters } from "./_reshard_test_util.ts";
import { ReshardPlanError } from "./_reshard_plan.ts";
import { RESHARD_RECORD_FILE, type ReshardHost, ReshardRunner } from "./_reshard_runner.ts";

/** The TOML of `config()` (the same text it parses). */
function text(clusters: string[], epoch: number): string {
  let port = 7100;
  return `[admin]\nhttp = "127.0.0.1:7000"\n[routing]\nepoch = ${epoch}\n` +
    clusters.map((id) =>
      `[[clusters]]\nid = "${id}"\n[[clusters.nodes]]\nid = "${id}1"\nraft = "127.0.0.1:${port++}"\n` +
      `http = "127.0.0.1:${port++}"\ndata = "d-${id}"\n`
    ).join("");
}

function host(dir: string, clusters: MemoryClusters, overrides: Partial<ReshardHost> = {}) {
  let current: KoiConfig = parseConfig(text(["a", "b"], 1), {
    baseDir: dir,
    path: `${dir}/config.toml`,
  });
  const lines: string[] = [];
  const h: ReshardHost = {
    dataDir: dir,
    transport: clusters,
    config: () => current,
    withSecret: (c) => c,
    reshape: (next) => {
      current = next;
      for (const c of next.clusters) if (!clusters.sms.has(c.id)) clusters.add(c.id);
      return Promise.resolve();
    },
    leaders: () => Promise.resolve(),
    keys: () => Promise.resolve(0),
    recordRouting: () => Promise.resolve(),
    log: (line) => lines.push(line),
    checkAdded: () => Promise.resolve(),
    settleDrained: () => Promise.resolve(),
    rates: () => ({ readsPerSecond: 0, writesPerSecond: 0 }),
    ...overrides,
  };
  return { host: h, lines };
}

Deno.test("reshard runner: a second move records the config the first moved to, so it resumes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const clusters = new MemoryClusters(["a", "b"]);
    const { host: h } = host(dir, clusters);
    let keys = 100;
    h.keys = () => Promise.resolve(keys);
    const runner = new ReshardRunner(h, text(["a", "b"], 1));
    await runner.start(text(["a", "b", "c"], 2), `${dir}/e2.toml`);
    await runner.settled();
    const first = runner.progress()!;
    assert.equal(first.state, "done");
    assert.equal(first.keysAtStart, 100);
    keys = 250;
    await new Promise((r) => setTimeout(r, 5));
    await runner.start(text(["a", "b", "c", "d"], 3), `${dir}/e3.toml`);
    const record = JSON.parse(await Deno.readTextFile(`${dir}/${RESHARD_RECORD_FILE}`));
    assert.equal(record.from.text, text(["a", "b", "c"], 2), "the config in force, not the first");
    assert.equal(record.from.path, `${dir}/e2.toml`);
    await runner.settled();
    // Its own statistics, not the first move's (found by a second attack).
    const second = runner.progress()!;
    assert.equal(second.state, "done");
    assert.equal(second.keysAtStart, 250);
    assert.ok(second.startedAt > first.endedAt, "the second move's own start");
    await runner.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reshard runner: an added cluster that cannot start is a bad config, and nothing is recorded", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const clusters = new MemoryClusters(["a", "b"]);
    const { host: h } = host(dir, clusters, {
      checkAdded: () => Promise.reject(new ReshardPlanError("clusters[2].nodes[0].http is taken")),
    });
    const runner = new ReshardRunner(h, text(["a", "b"], 1));
    await assert.rejects(
      runner.start(text(["a", "b", "c"], 2), `${dir}/e2.toml`),
      ReshardPlanError,
    );
    await assert.rejects(Deno.stat(`${dir}/${RESHARD_RECORD_FILE}`), Deno.errors.NotFound);
    assert.equal(runner.progress(), undefined);
    assert.equal(clusters.sms.get("a")!.routing, undefined, "no move began");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reshard runner: added nodes that fail to start (at a resume) are retried, never fatal", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const clusters = new MemoryClusters(["a", "b"]);
    let failures = 2;
    const base = host(dir, clusters);
    const { host: h, lines } = host(dir, clusters, {
      reshape: (next, changes) => {
        if (changes.added !== undefined && failures-- > 0) {
          return Promise.reject(new Error("An address of the config is already in use"));
        }
        return base.host.reshape(next, changes);
      },
    });
    const runner = new ReshardRunner(h, text(["a", "b"], 1), { retryMs: 10 });
    await runner.start(text(["a", "b", "c"], 2), `${dir}/e2.toml`);
    await runner.settled();
    assert.equal(runner.progress()?.state, "done");
    assert.equal(lines.filter((l) => /cannot start the added clusters/.test(l)).length, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

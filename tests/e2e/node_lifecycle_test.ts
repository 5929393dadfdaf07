/**
 * Issue 10, items 1, 4 and the operator-facing output: the data directory lock, an
 * unwritable data directory, an address in use, and what a healthy node prints. Real
 * processes on 127.0.0.1, each stopped by PID in a `finally`.
 */
import assert from "node:assert/strict";
import { ProcessCluster, waitFor } from "./_cluster.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

function e2e(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, sanitizeResources: false, sanitizeOps: false, fn });
}

/** What a data directory holds: names, sizes and modification times. */
async function snapshotDir(dir: string): Promise<string> {
  const entries: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const info = await Deno.stat(`${dir}/${e.name}`);
    entries.push(`${e.name} ${info.size} ${info.mtime?.getTime()}`);
  }
  return entries.sort().join("\n");
}

/** The JSON lines a process printed. */
function jsonLines(output: string): { message: string; level: string }[] {
  return output.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

e2e(
  "e2e: a second process on the same data directory exits 1 naming it and the holder, touching nothing",
  async () => {
    const c = await ProcessCluster.create(["a1"]);
    try {
      const first = c.start("a1");
      await waitFor(async () => (await c.fetch("a1", "/healthz")).status === 200, "a1 healthy");
      const put = await c.fetch("a1", "/v1/kv/k", { method: "PUT", body: "v" });
      assert.equal(put.status, 200);
      const before = await snapshotDir(c.node("a1").data);
      const second = await c.runExtra("a1");
      assert.equal(second.code, 1, second.output);
      assert.ok(second.output.includes(c.node("a1").data), second.output);
      assert.match(second.output, new RegExp(`process ${first.pid}\\b`));
      assert.equal(await snapshotDir(c.node("a1").data), before, "the directory is untouched");
      const get = await c.fetch("a1", "/v1/kv/k");
      assert.equal(await get.text(), "v", "the first process still serves");
      // At the default log level a healthy node printed exactly one line: ready.
      const lines = jsonLines(c.node("a1").output);
      assert.deepEqual(lines.map((l) => l.message), ["node ready"], c.node("a1").output);
      const status = await c.stop("a1");
      assert.equal(status?.code, 0);
      const after = jsonLines(c.node("a1").output).map((l) => l.message);
      assert.deepEqual(after, ["node ready", "node stopped"], c.node("a1").output);
      // The lock is released: a new process starts.
      c.start("a1");
      await waitFor(async () => (await c.fetch("a1", "/healthz")).status === 200, "a1 again");
    } catch (e) {
      throw new Error(`${e instanceof Error ? e.stack : e}\n--- node logs ---\n${c.logs()}`);
    } finally {
      await c.close();
    }
  },
);

e2e("e2e: an unwritable data directory exits 1 naming the path, never healthy", async () => {
  const c = await ProcessCluster.create(["a1"]);
  const dir = c.node("a1").data;
  await Deno.mkdir(dir, { recursive: true });
  // Root ignores permission bits; the immutable attribute stops root too.
  const root = Deno.uid() === 0;
  const immutable = (flag: string) =>
    new Deno.Command("chattr", { args: [flag, dir], stderr: "null" }).output();
  try {
    if (root) {
      const { success } = await immutable("+i").catch(() => ({ success: false }));
      if (!success) {
        console.warn("skipped: running as root without chattr +i");
        return;
      }
    } else {
      await Deno.chmod(dir, 0o555);
    }
    const result = await c.runExtra("a1", [], 30_000);
    assert.equal(result.code, 1, result.output);
    assert.ok(result.output.includes(dir), result.output);
    assert.match(result.output, /not writable/i);
    assert.ok(!result.output.includes("node ready"), "never reported ready");
  } finally {
    if (root) await immutable("-i").catch(() => {});
    else await Deno.chmod(dir, 0o755).catch(() => {});
    await c.close();
  }
});

e2e("e2e: an address in use exits 1 naming the address and its config field", async () => {
  const c = await ProcessCluster.create(["a1", "a2"]);
  const [host, port] = c.node("a2").http.split(":");
  const squatter = Deno.listen({ hostname: host, port: Number(port) });
  try {
    const result = await c.runExtra("a2");
    assert.equal(result.code, 1, result.output);
    assert.ok(
      result.output.includes(
        `Address already in use: clusters[0].nodes[1].http ${c.node("a2").http}`,
      ),
      result.output,
    );
  } finally {
    squatter.close();
    await c.close();
  }
});

e2e("e2e: a config file with three mistakes lists all three and exits 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "koi-e2e-config-" });
  try {
    const path = `${dir}/config.toml`;
    await Deno.writeTextFile(
      path,
      `[admin]\nhttp = "127.0.0.1:1"\n[[clusters]]\nid = "a"\nload_factor = 0\n` +
        `[[clusters.nodes]]\nid = "a1"\nraft = "127.0.0.1:99999"\nhttp = "127.0.0.1:2"\n` +
        `data = "d"\ncolour = "red"\n`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        `${ROOT}deno.json`,
        `${ROOT}cli.ts`,
        "node",
        "-c",
        path,
        "--id",
        "a1",
      ],
      stdin: "null",
    }).output();
    const text = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, text);
    assert.match(text, /3 problems/);
    for (
      const field of [
        "clusters[0].load_factor",
        "clusters[0].nodes[0].raft",
        "clusters[0].nodes[0].colour",
      ]
    ) {
      assert.ok(text.includes(`Invalid config field ${field}:`), `${field} in ${text}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

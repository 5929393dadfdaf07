import assert from "node:assert/strict";
import { NodeProcess, type SpawnSpec } from "./_node_process.ts";

const evalSpec = (code: string): SpawnSpec => ({
  command: Deno.execPath(),
  args: ["eval", code],
});

async function until(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("node process: output is relayed line by line under the node's id", async () => {
  const lines: string[] = [];
  const p = new NodeProcess({
    id: "x1",
    spawn: evalSpec(
      `console.log("one\\ntwo"); console.error("three"); setInterval(() => {}, 1000)`,
    ),
    output: (line) => lines.push(line),
    log: () => {},
  });
  try {
    p.start();
    await until(() => lines.length === 3, "three lines");
    assert.deepEqual(lines.sort(), ["[x1] one", "[x1] three", "[x1] two"]);
    assert.ok(p.pid !== null);
    assert.equal(p.state, "running");
  } finally {
    await p.stop();
  }
  assert.equal(p.state, "stopped");
  assert.equal(p.pid, null);
});

Deno.test("node process: a process that keeps dying is restarted with doubling delays", async () => {
  const logs: string[] = [];
  const p = new NodeProcess({
    id: "x1",
    spawn: evalSpec("Deno.exit(3)"),
    output: () => {},
    log: (line) => logs.push(line),
    restart: { initialMs: 50, maxMs: 200, stableMs: 60_000 },
  });
  try {
    p.start();
    await until(() => p.restarts >= 4, "four restarts", 30_000);
    assert.equal(p.lastExit?.code, 3);
    assert.match(logs.join("\n"), /node x1 \(pid \d+\) died unexpectedly \(exit code 3\)/);
    const delays = logs.map((l) => /in (\d+\.\d) s \(restart (\d+)\)/.exec(l)).filter((m) => m)
      .map((m) => Number(m![1]));
    // 0.05, 0.1, 0.2, then capped at 0.2 (printed with one decimal: 0.1, 0.1, 0.2, 0.2).
    assert.deepEqual(delays.slice(0, 4), [0.1, 0.1, 0.2, 0.2]);
  } finally {
    await p.stop();
  }
  const restarts = p.restarts;
  await new Promise((r) => setTimeout(r, 300)); // longer than the longest backoff
  assert.equal(p.restarts, restarts, "no restart after stop");
});

Deno.test("node process: stop sends SIGTERM, and SIGKILL when the process ignores it", async () => {
  const logs: string[] = [];
  const p = new NodeProcess({
    id: "x1",
    spawn: evalSpec(
      `Deno.addSignalListener("SIGTERM", () => console.log("ignored")); console.log("up"); ` +
        `setInterval(() => {}, 1000)`,
    ),
    output: (line) => logs.push(line),
    log: (line) => logs.push(line),
    killAfterMs: 300,
  });
  p.start();
  await until(() => logs.includes("[x1] up"), "the process is up");
  const started = Date.now();
  await p.stop();
  assert.ok(Date.now() - started >= 250, "it waited for the deadline");
  assert.equal(p.lastExit?.signal, "SIGKILL");
  assert.ok(logs.includes("[x1] ignored"), "SIGTERM came first");
  assert.match(logs.join("\n"), /did not stop in time: SIGKILL/);
});

Deno.test("node process: a program that cannot be run is retried and reported", async () => {
  const logs: string[] = [];
  const p = new NodeProcess({
    id: "x1",
    spawn: { command: "/nonexistent/koi", args: [] },
    output: () => {},
    log: (line) => logs.push(line),
    restart: { initialMs: 20, maxMs: 20, stableMs: 60_000 },
  });
  try {
    p.start();
    await until(() => p.restarts >= 2, "two retries");
    assert.match(logs[0], /cannot start node x1/);
    assert.ok(p.spawnError);
    assert.equal(p.state === "waiting" || p.state === "running", true);
  } finally {
    await p.stop();
  }
});

Deno.test("node process: a crash-looping node's view says how it ended and what it printed last", async () => {
  const { clustersView } = await import("./_views.ts");
  const { StatusPoller } = await import("./_poller.ts");
  const { parseConfig } = await import("../config/mod.ts");
  const config = parseConfig(
    `[admin]\nhttp = "127.0.0.1:1"\n[[clusters]]\nid = "a"\n[[clusters.nodes]]\nid = "a1"\n` +
      `raft = "127.0.0.1:2"\nhttp = "127.0.0.1:3"\ndata = "d"\n`,
    { baseDir: "/tmp" },
  );
  const p = new NodeProcess({
    id: "a1",
    spawn: evalSpec(`console.error("koi: Cannot use data directory /x: disk full"); Deno.exit(3)`),
    output: () => {},
    log: () => {},
    restart: { initialMs: 60_000, maxMs: 60_000, stableMs: 60_000 },
  });
  try {
    p.start();
    await until(() => p.state === "waiting", "the first exit");
    assert.equal(p.lastLine, "koi: Cannot use data directory /x: disk full");
    const view = clustersView({
      config,
      poller: new StatusPoller(config),
      processes: new Map([["a1", p]]),
    });
    assert.match(
      view.clusters[0].nodes[0].error,
      /^not running \(restart 1 in \d+\.\d s; exit code 3; last line: koi: Cannot use data directory \/x: disk full\)$/,
    );
  } finally {
    await p.stop();
  }
});

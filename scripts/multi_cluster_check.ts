/**
 * The checks of scripts/test-multiple-clusters.sh, through the routing client of mod.ts:
 * writes N keys, prints how many each cluster holds (by CARP and as the nodes count them),
 * kills the leader of every cluster with SIGKILL (the admin restarts them), and reads every
 * key back. Writes every node PID it sees to `--pids` so that the script can stop them by
 * PID whatever happens. Exit code 1 on any failed check.
 *
 * Usage: deno run -A scripts/multi_cluster_check.ts --admin <url> [--keys 1000] [--pids file]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { connect, type DeploymentStatus, type KoiClient } from "../mod.ts";

const CONCURRENCY = 16;

function fail(message: string): never {
  console.error(`check failed: ${message}`);
  Deno.exit(1);
}

async function pool(n: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < n) await work(next++);
  }));
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function recordPids(client: KoiClient, file: string | undefined): Promise<DeploymentStatus> {
  const status = await client.status();
  if (file !== undefined) {
    const pids = status.clusters.flatMap((c) => c.nodes.map((n) => n.pid)).filter((p) => p);
    await Deno.writeTextFile(file, pids.join("\n") + "\n", { append: true });
  }
  return status;
}

const { values } = parseArgs({
  args: Deno.args,
  options: { admin: { type: "string" }, keys: { type: "string" }, pids: { type: "string" } },
  strict: true,
});
if (values.admin === undefined) fail("--admin <url> is required");
const n = Number(values.keys ?? 1000);
const key = (i: number) => `key-${String(i).padStart(5, "0")}`;
const value = (i: number) => `value-${i}`;

const client = await connect(values.admin, { timeoutMs: 30_000 });
try {
  let status = await recordPids(client, values.pids);
  const clusters = status.clusters.map((c) => c.id);

  // 1. Write every key through the client (it routes each to its cluster's leader).
  const started = performance.now();
  await pool(n, async (i) => {
    await client.put(key(i), value(i));
  });
  const ms = performance.now() - started;
  console.log(`wrote ${n} keys through the client in ${(ms / 1000).toFixed(2)} s`);

  // 2. Keys per cluster: by CARP, and as each cluster's leader counts them.
  const routed = new Map(clusters.map((c) => [c, 0]));
  for (let i = 0; i < n; i++) {
    const owner = client.where(key(i)).cluster;
    routed.set(owner, routed.get(owner)! + 1);
  }
  status = await waitFor("every leader to count its keys", async () => {
    const s = await client.status();
    const ok = s.clusters.every((c) =>
      c.nodes.some((node) => node.id === c.leader && node.status?.keys === routed.get(c.id))
    );
    return ok ? s : undefined;
  });
  console.log("keys per cluster:");
  console.log("  CLUSTER  KEYS  SHARE    LEADER");
  for (const c of status.clusters) {
    const count = routed.get(c.id)!;
    console.log(
      `  ${c.id.padEnd(7)}  ${String(count).padStart(4)}  ${
        (100 * count / n).toFixed(1).padStart(5)
      } %  ${c.leader}`,
    );
  }
  if ([...routed.values()].reduce((a, b) => a + b, 0) !== n) fail("the counts do not add up");
  if ([...routed.values()].some((count) => count === 0)) fail("a cluster got no keys");

  // 3. Kill the leader of every cluster at once (SIGKILL, by PID); the admin restarts them.
  const killed = new Map<string, { node: string; pid: number }>();
  for (const c of status.clusters) {
    const leader = c.nodes.find((node) => node.id === c.leader);
    if (leader?.pid == null) fail(`cluster ${c.id} reports no leader process`);
    Deno.kill(leader.pid, "SIGKILL");
    killed.set(c.id, { node: leader.id, pid: leader.pid });
    console.log(`killed the leader of cluster ${c.id}: ${leader.id} (pid ${leader.pid})`);
  }

  // 4. Every key reads back (linearizable reads: from each cluster's new leader).
  const readStarted = performance.now();
  let wrong = 0;
  await pool(n, async (i) => {
    const got = await client.getText(key(i));
    if (got?.value !== value(i)) {
      wrong++;
      console.error(`  ${key(i)}: expected ${value(i)}, got ${got?.value ?? "nothing"}`);
    }
  });
  if (wrong > 0) fail(`${wrong} of ${n} keys did not read back`);
  console.log(
    `all ${n} keys read back after killing every cluster's leader ` +
      `(${((performance.now() - readStarted) / 1000).toFixed(2)} s, elections included)`,
  );

  // 5. The admin restarted every killed leader, and each cluster is led again.
  status = await waitFor("the killed leaders to be restarted and every cluster led", async () => {
    const s = await recordPids(client, values.pids);
    const back = [...killed].every(([c, k]) => {
      const node = s.clusters.find((x) => x.id === c)!.nodes.find((x) => x.id === k.node)!;
      return node.restarts >= 1 && node.pid !== k.pid && node.reachable;
    });
    return back && s.healthy ? s : undefined;
  });
  for (const c of status.clusters) {
    console.log(
      `cluster ${c.id}: leader ${c.leader} (was ${killed.get(c.id)!.node}), restarted node back`,
    );
  }
} finally {
  client.close();
}

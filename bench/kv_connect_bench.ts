/**
 * KV Connect throughput: `kv.set` and `kv.get` through Deno's built-in client
 * (`Deno.openKv(url)`, HTTP/2 to the admin's gateway, then HTTP/1.1 to the cluster) side by side
 * with koi's own client (`put`, `get`, straight to the nodes) on the same deployment of one
 * cluster of 3 nodes, started from source on free ports and stopped by PID at the end.
 *
 *     deno run -A bench/kv_connect_bench.ts [--seconds 5] [--concurrency 16] [--keys 1000]
 *
 * Each phase runs `concurrency` tasks for `seconds`, on `keys` keys with 100-byte values, and
 * prints operations per second and the p50 and p99 latency.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { connect } from "../mod.ts";
import { deploymentToml, withKvConnect } from "../tests/kv_connect/_deployment.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    concurrency: { type: "string", default: "16" },
    keys: { type: "string", default: "1000" },
  },
});
const seconds = Number(args.seconds);
const concurrency = Number(args.concurrency);
const keys = Number(args.keys);
const value = new Uint8Array(100).fill(0x61);

interface PhaseResult {
  readonly name: string;
  readonly ops: number;
  readonly errors: number;
  readonly p50: number;
  readonly p99: number;
  readonly perSecond: number;
}

async function phase(name: string, op: (i: number) => Promise<unknown>): Promise<PhaseResult> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const until = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < until) {
      const i = next++ % keys;
      const t = performance.now();
      try {
        await op(i);
        latencies.push(performance.now() - t);
      } catch {
        errors++;
      }
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return {
    name,
    ops: latencies.length,
    errors,
    p50: at(0.5),
    p99: at(0.99),
    perSecond: latencies.length / elapsed,
  };
}

function row(r: PhaseResult): string {
  return `${r.name.padEnd(34)} ${r.perSecond.toFixed(0).padStart(7)} ops/s  ` +
    `p50 ${r.p50.toFixed(2).padStart(6)} ms  p99 ${r.p99.toFixed(2).padStart(6)} ms  ` +
    `(${r.ops} ok, ${r.errors} errors)`;
}

await withKvConnect(deploymentToml(["a"], 3), async (d) => {
  Deno.env.set("DENO_KV_ACCESS_TOKEN", d.token);
  const kv = await Deno.openKv(d.url);
  const koi = await connect(d.admin.url);
  try {
    console.log(
      `1 cluster of 3 nodes, ${concurrency} tasks, ${seconds} s per phase, ${keys} keys, 100-byte values`,
    );
    const results = [
      await phase("koi client put", (i) => koi.put(`k${i}`, value)),
      await phase("Deno.openKv(url) kv.set", (i) => kv.set(["k", i], value)),
      await phase("koi client get (linearizable)", (i) => koi.get(`k${i}`)),
      await phase("Deno.openKv(url) kv.get (strong)", (i) => kv.get(["k", i])),
    ];
    for (const r of results) console.log(row(r));
  } finally {
    kv.close();
    koi.close();
  }
});

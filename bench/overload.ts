/**
 * Overload: how a 3-node cluster behaves when offered ten times the write rate it sustains.
 *
 * 1. Measures the sustainable rate S: 64 closed-loop writers against the leader.
 * 2. Offers `factor` × S writes per second open-loop (a new request every 1/(factor·S) s,
 *    whether or not earlier ones were answered, up to 16 pipelined on each of up to
 *    `connections` connections) for
 *    `seconds`, sampling the leader's RSS.
 * 3. Stops the load and measures how long until a write is answered again in under 100 ms,
 *    then the sustainable rate once more.
 * 4. Reads back every write that was answered 200.
 *
 *   deno run -A bench/overload.ts [--seconds 10] [--factor 10] [--value-bytes 1024]
 *     [--connections 1100] [--measure-seconds 3]
 *
 * Prints one report; `runOverload` returns it for the test (tests/e2e/overload_test.ts).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ProcessCluster, waitFor } from "../tests/e2e/_cluster.ts";
import { openLoopWrites } from "../tests/e2e/_open_loop.ts";

/** What {@linkcode runOverload} measured. */
export interface OverloadReport {
  /** Writes per second 64 closed-loop writers sustained before the overload. */
  sustainedPerSec: number;
  /** Requests per second the open-loop generator aimed at. */
  targetPerSec: number;
  /** Requests per second it actually sent. */
  offeredPerSec: number;
  /** Answers by status (`"error"`: the request failed without an HTTP answer). */
  statuses: Record<string, number>;
  /** 503 answers that carried `retry-after`. */
  retryAfter: number;
  /** Error codes of the 503 answers (`overloaded`, `no_leader`, …) with their counts. */
  codes: Record<string, number>;
  /** Latency of the 200 answers in the overload, ms. */
  okLatencyMs: { p50: number; p99: number; max: number };
  /** Arrivals the generator could not send: every connection had 16 waiting. */
  notSent: number;
  /** Latency of the 503 answers in the overload, ms. */
  refusedLatencyMs: { p50: number; p99: number; max: number };
  /** Requests sent and never answered (their connection was closed). */
  unanswered: number;
  /** Connections the node closed while requests waited on them. */
  closedByServer: number;
  /** The leader's RSS before the overload and the largest sample during it, bytes. */
  rssBytes: { before: number; max: number; after: number };
  /** Time from the end of the load until a write was answered in under 100 ms again. */
  recoveryMs: number;
  /** The leader's HTTP admission counters after the overload (from /metrics). */
  http: Record<string, number>;
  /** Writes per second sustained after the overload. */
  sustainedAfterPerSec: number;
  /** Writes answered 200 and read back afterwards / missing. */
  acknowledged: number;
  missing: number;
}

/** Options of {@linkcode runOverload}. */
export interface OverloadOptions {
  /** Seconds of overload. */
  seconds: number;
  /** Multiple of the sustained rate to offer. */
  factor: number;
  /** Bytes of each written value. */
  valueBytes: number;
  /** Seconds of each sustained-rate measurement. */
  measureSeconds: number;
  /** Connections the open-loop generator opens at most (16 requests waiting on each). */
  connections: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

const CLOSED_LOOP_WRITERS = 64;

function rssOf(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

function percentiles(values: number[]): { p50: number; p99: number; max: number } {
  if (values.length === 0) return { p50: 0, p99: 0, max: 0 };
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { p50: at(0.5), p99: at(0.99), max: s[s.length - 1] };
}

async function closedLoop(
  url: string,
  seconds: number,
  value: Uint8Array<ArrayBuffer>,
  prefix: string,
  acked: Map<string, number>,
): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let ok = 0;
  let seq = 0;
  await Promise.all(Array.from({ length: CLOSED_LOOP_WRITERS }, async () => {
    while (performance.now() < end) {
      const key = `${prefix}-${seq++}`;
      const r = await fetch(`${url}/v1/kv/${key}`, { method: "PUT", body: value }).catch(() =>
        undefined
      );
      if (r === undefined) continue;
      await r.body?.cancel();
      if (r.status === 200) {
        ok++;
        acked.set(key, value.length);
      }
    }
  }));
  return ok / seconds;
}

/** Runs the overload against a fresh 3-node cluster of real processes; stops it at the end. */
export async function runOverload(options: OverloadOptions): Promise<OverloadReport> {
  const log = options.log ?? (() => {});
  const c = await ProcessCluster.create(["a1", "a2", "a3"]);
  try {
    c.startAll();
    const leader = await c.leader();
    const url = `http://${c.node(leader).http}`;
    const pid = c.node(leader).child!.pid;
    const value = new Uint8Array(options.valueBytes).fill(118);
    const acked = new Map<string, number>();
    await closedLoop(url, 1, value, "warm", acked); // compiles the hot paths first
    const sustainedPerSec = await closedLoop(url, options.measureSeconds, value, "s1", acked);
    log(`sustained: ${Math.round(sustainedPerSec)} writes/s with ${CLOSED_LOOP_WRITERS} writers`);

    const targetPerSec = sustainedPerSec * options.factor;
    const rssBefore = rssOf(pid);
    let rssMax = rssBefore;
    const flood = await openLoopWrites({
      hostname: "127.0.0.1",
      port: Number(c.node(leader).http.split(":")[1]),
      ratePerSec: targetPerSec,
      seconds: options.seconds,
      connections: options.connections,
      depthMax: 16,
      valueBytes: options.valueBytes,
      keyPrefix: "over",
      onTick: () => rssMax = Math.max(rssMax, rssOf(pid)),
    });
    for (const key of flood.acknowledged) acked.set(key, options.valueBytes);
    const stopped = performance.now();
    // Recovery: a write answered in under 100 ms again.
    let recoveryMs = -1;
    await waitFor(
      async () => {
        const t0 = performance.now();
        const r = await fetch(`${url}/v1/kv/recovery-probe`, { method: "PUT", body: value });
        await r.body?.cancel();
        rssMax = Math.max(rssMax, rssOf(pid));
        if (r.status === 200 && performance.now() - t0 < 100) {
          recoveryMs = performance.now() - stopped;
          return true;
        }
        return false;
      },
      "a fast write after the overload",
      60_000,
    );
    const offeredPerSec = flood.sent / flood.elapsedSeconds;
    log(
      `overload: target ${Math.round(targetPerSec)}/s, offered ${Math.round(offeredPerSec)}/s, ` +
        `statuses ${JSON.stringify(flood.statuses)}, unanswered ${flood.unanswered}, ` +
        `recovery ${Math.round(recoveryMs)} ms`,
    );
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const http: Record<string, number> = {};
    for (const m of metrics.matchAll(/^koi_(http_[a-z_]+|refused_queued)\{[^}]*\} (\d+)$/gm)) {
      http[m[1]] = Number(m[2]);
    }
    const sustainedAfterPerSec = await closedLoop(url, options.measureSeconds, value, "s2", acked);
    const rssAfter = rssOf(pid);
    let missing = 0;
    const keys = [...acked.keys()];
    for (let i = 0; i < keys.length; i += 256) {
      await Promise.all(
        keys.slice(i, i + 256).map(async (key) => {
          const r = await fetch(`${url}/v1/kv/${key}`);
          const body = await r.arrayBuffer();
          if (r.status !== 200 || body.byteLength !== acked.get(key)) missing++;
        }),
      );
    }
    return {
      sustainedPerSec,
      targetPerSec,
      offeredPerSec,
      statuses: flood.statuses,
      retryAfter: flood.retryAfter,
      codes: flood.codes,
      unanswered: flood.unanswered,
      closedByServer: flood.closedByServer,
      notSent: flood.notSent,
      okLatencyMs: percentiles(flood.okLatencyMs),
      refusedLatencyMs: percentiles(flood.refusedLatencyMs),
      rssBytes: { before: rssBefore, max: rssMax, after: rssAfter },
      recoveryMs,
      http,
      sustainedAfterPerSec,
      acknowledged: acked.size,
      missing,
    };
  } catch (error) {
    console.error(c.logs());
    throw error;
  } finally {
    await c.close();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seconds: { type: "string", default: "10" },
      factor: { type: "string", default: "10" },
      "value-bytes": { type: "string", default: "1024" },
      "measure-seconds": { type: "string", default: "3" },
      connections: { type: "string", default: "1100" },
    },
  });
  const report = await runOverload({
    seconds: Number(values.seconds),
    factor: Number(values.factor),
    valueBytes: Number(values["value-bytes"]),
    measureSeconds: Number(values["measure-seconds"]),
    connections: Number(values.connections),
    log: (line) => console.log(line),
  });
  console.log(JSON.stringify(report, null, 2));
}

/**
 * Overload against a real 3-node cluster: ten times the write rate it sustains, offered
 * open-loop, and more request bodies at once than the node holds. The leader's memory stays
 * bounded, what it cannot take is refused (503 with retry-after, or the connection closed),
 * every acknowledged write is there afterwards, and it is fast again once the load stops.
 */

import assert from "node:assert/strict";
import { ProcessCluster, waitFor } from "./_cluster.ts";
import { openLoopWrites } from "./_open_loop.ts";

/** Bounded for CI; `deno run -A bench/overload.ts` is the full measurement. */
const FLOOD_SECONDS = 4;
const FACTOR = 10;
/** What the flood may add to the leader's RSS (unbounded queueing added 2.4 GB in 6 s). */
const FLOOD_RSS_GROWTH_MAX = 400 << 20;
/** Connections each declaring a 1 MiB body: twice what the node holds at once (64 MiB). */
const BIG_BODIES = 128;

function rssOf(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

async function sustainedRate(url: string, seconds: number): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let ok = 0;
  let seq = 0;
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (performance.now() < end) {
      const r = await fetch(`${url}/v1/kv/warm-${seq++}`, { method: "PUT", body: "w" })
        .catch(() => undefined);
      await r?.body?.cancel();
      if (r?.status === 200) ok++;
    }
  }));
  return ok / seconds;
}

/** Reads one HTTP answer's head off a raw connection (null when closed first). */
async function readHead(conn: Deno.Conn, ms: number): Promise<string | null> {
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch { /* closed */ }
  }, ms);
  const buffer = new Uint8Array(4096);
  let text = "";
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) return text === "" ? null : text;
      text += new TextDecoder().decode(buffer.subarray(0, n));
      if (text.includes("\r\n\r\n")) return text;
    }
  } catch {
    return text === "" ? null : text;
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name: "overload: 10x the sustained write rate and too many bodies leave memory bounded",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const c = await ProcessCluster.create(["a1", "a2", "a3"]);
    try {
      c.startAll();
      const leader = await c.leader();
      const url = `http://${c.node(leader).http}`;
      const port = Number(c.node(leader).http.split(":")[1]);
      const pid = c.node(leader).child!.pid;

      await t.step("an open-loop flood at 10x the sustained rate", async () => {
        const sustained = await sustainedRate(url, 2);
        assert.ok(sustained > 0, "the cluster sustains writes");
        const before = rssOf(pid);
        let max = before;
        const flood = await openLoopWrites({
          hostname: "127.0.0.1",
          port,
          ratePerSec: sustained * FACTOR,
          seconds: FLOOD_SECONDS,
          connections: 1_100, // more than the node's 1,024
          depthMax: 16,
          valueBytes: 1024,
          keyPrefix: "flood",
          onTick: () => max = Math.max(max, rssOf(pid)),
        });
        const stopped = performance.now();
        const report = JSON.stringify({
          ...flood,
          okLatencyMs: undefined,
          acknowledged: undefined,
        });
        assert.ok(
          max - before < FLOOD_RSS_GROWTH_MAX,
          `the leader's RSS grew by ${((max - before) / 2 ** 20).toFixed(0)} MiB: ${report}`,
        );
        assert.ok(flood.sent > sustained * FLOOD_SECONDS * 2, `the flood was sent: ${report}`);
        for (const status of Object.keys(flood.statuses)) {
          assert.ok(status === "200" || status === "503", `only 200 and 503: ${report}`);
        }
        assert.equal(flood.retryAfter, flood.statuses["503"] ?? 0, "every 503 has retry-after");
        // Fast again once the load stops.
        await waitFor(
          async () => {
            const t0 = performance.now();
            const r = await fetch(`${url}/v1/kv/probe`, { method: "PUT", body: "p" });
            await r.body?.cancel();
            return r.status === 200 && performance.now() - t0 < 200;
          },
          "a write answered in under 200 ms after the flood",
          30_000,
        );
        console.log(
          `flood: sustained ${Math.round(sustained)}/s, offered ${
            Math.round(flood.sent / flood.elapsedSeconds)
          }/s, ${JSON.stringify(flood.statuses)}, unanswered ${flood.unanswered}, RSS +${
            ((max - before) / 2 ** 20).toFixed(0)
          } MiB, fast again after ${Math.round(performance.now() - stopped)} ms`,
        );
        // Every acknowledged write is there.
        const keys = flood.acknowledged;
        for (let i = 0; i < keys.length; i += 200) {
          await Promise.all(
            keys.slice(i, i + 200).map(async (key) => {
              const r = await fetch(`${url}/v1/kv/${key}`);
              const body = await r.arrayBuffer();
              assert.equal(r.status, 200, `${key} was acknowledged`);
              assert.equal(body.byteLength, 1024);
            }),
          );
        }
      });

      await t.step("more bodies at once than the node holds: 503 with retry-after", async () => {
        const conns: Deno.Conn[] = [];
        try {
          for (let i = 0; i < BIG_BODIES; i++) {
            const conn = await Deno.connect({ hostname: "127.0.0.1", port });
            conns.push(conn);
            // Declares 1 MiB and sends a little of it: the node holds the rest's place.
            await conn.write(new TextEncoder().encode(
              `PUT /v1/kv/big-${i} HTTP/1.1\r\nhost: koi\r\ncontent-length: ${1 << 20}\r\n\r\nxx`,
            ));
          }
          const heads = await Promise.all(conns.map((conn) => readHead(conn, 3_000)));
          const refused = heads.filter((h) => h !== null && h.startsWith("HTTP/1.1 503"));
          assert.ok(
            refused.length >= BIG_BODIES / 2 - 2,
            `about half refused, got ${refused.length}: ${heads.find((h) => h !== null)}`,
          );
          for (const h of refused) {
            assert.match(h!, /\r\nretry-after: 1\r\n/i);
          }
        } finally {
          for (const conn of conns) {
            try {
              conn.close();
            } catch { /* closed */ }
          }
        }
        // Once the node saw those connections go, their place is free again.
        await waitFor(
          async () => {
            const r = await fetch(`${url}/v1/kv/after-bodies`, { method: "PUT", body: "ok" });
            await r.body?.cancel();
            return r.status === 200;
          },
          "a write after the bodies' connections closed",
          10_000,
        );
      });
    } catch (error) {
      console.error(c.logs());
      throw error;
    } finally {
      await c.close();
    }
  },
});

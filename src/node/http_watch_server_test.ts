/**
 * Watch streams through koi's HTTP server on real sockets: a stream outlives the request
 * deadline, holds no place among the waiting requests, does not hold up a shutdown, and a
 * client that does not read is cut off with `slow_watcher` while the node's memory for it
 * stays bounded.
 */
import assert from "node:assert/strict";
import { HttpServer, type HttpServerLimits } from "../http/server.ts";
import { harness } from "./_fake_service_test_util.ts";
import { WatchHub, type WatchLimits } from "./_watch_hub.ts";
import { applied, parseSse, SseReader } from "./_watch_test_util.ts";

async function serve(
  limits: Partial<HttpServerLimits>,
  watchLimits: Partial<WatchLimits>,
  fn: (s: { server: HttpServer; watch: WatchHub; url: string }) => Promise<void>,
): Promise<void> {
  const watch = new WatchHub({ node: "n1", cluster: "a", limits: watchLimits });
  watch.reset(0);
  const { app, service } = harness({}, { watch });
  service.seed("k", "v");
  const server = await HttpServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    fetch: app.fetch,
    limits,
  });
  try {
    await fn({ server, watch, url: `http://127.0.0.1:${server.port}` });
  } finally {
    watch.close();
    await server.close(100);
  }
}

/** A fetch that gives up after 5 s: a server that never answers fails the test, not hangs it. */
function open(url: string): Promise<Response> {
  return fetch(url, { signal: AbortSignal.timeout(5_000) });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("watch over HTTP: a stream outlives the request deadline and keeps delivering", async () => {
  const limits = {
    requestTimeoutMs: 300,
    headersTimeoutMs: 300,
    keepAliveTimeoutMs: 200,
    timeoutCheckMs: 50,
  };
  await serve(limits, { keepaliveMs: 100 }, async ({ watch, url }) => {
    const response = await open(`${url}/v1/watch`);
    assert.equal(response.status, 200);
    const reader = new SseReader(response.body!);
    const started = Date.now();
    for (let rev = 1; rev <= 6; rev++) {
      await sleep(250);
      watch.applied(applied(rev, ["set", `k${rev}`, "v"]));
    }
    await reader.until(() => reader.data("change").length === 6);
    assert.ok(Date.now() - started >= 1_500, "the stream lived five request deadlines");
    assert.deepEqual(reader.data("change").map((d) => d.rev), [1, 2, 3, 4, 5, 6]);
    assert.ok(reader.messages.some((m) => m.comment === "keepalive"));
    await reader.cancel();
  });
});

Deno.test("watch over HTTP: streams hold no place among the waiting requests", async () => {
  await serve({ requestsWaitingMax: 2 }, {}, async ({ server, url }) => {
    const streams = [];
    for (let i = 0; i < 4; i++) {
      const response = await open(`${url}/v1/watch`);
      assert.equal(response.status, 200, `watch ${i}`);
      streams.push(new SseReader(response.body!));
      await streams[i].until((m) => m.length >= 1);
    }
    assert.equal(server.stats().streams, 4);
    assert.equal(server.stats().requestsWaiting, 0);
    const get = await open(`${url}/v1/kv/k`);
    assert.equal(get.status, 200, "a request is still admitted");
    assert.equal(await get.text(), "v");
    for (const s of streams) await s.cancel();
  });
});

Deno.test("watch over HTTP: closing the hub ends the streams", async () => {
  await serve({}, {}, async ({ watch, url }) => {
    const readers = [];
    for (let i = 0; i < 2; i++) {
      readers.push(new SseReader((await open(`${url}/v1/watch`)).body!));
      await readers[i].until((m) => m.length >= 1);
    }
    watch.close(); // what a node does when it stops
    for (const r of readers) await r.end();
    assert.equal(watch.watchers, 0);
  });
});

Deno.test("watch over HTTP: a shutdown does not wait for the open streams", async () => {
  await serve({}, {}, async ({ server, url }) => {
    const stream = new SseReader((await open(`${url}/v1/watch`)).body!);
    await stream.until((m) => m.length >= 1);
    const t0 = Date.now();
    await server.close(10_000); // the hub stays open: only the server stops
    assert.ok(Date.now() - t0 < 2_000, `closed in ${Date.now() - t0} ms`);
    await stream.end();
  });
});

Deno.test("watch over HTTP: a client that does not read is cut off with slow_watcher", async () => {
  const pendingBytesMax = 256 * 1024;
  await serve({}, { pendingBytesMax, farewellMs: 10_000 }, async ({ watch, server }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      await conn.write(new TextEncoder().encode("GET /v1/watch HTTP/1.1\r\nhost: x\r\n\r\n"));
      for (let i = 0; i < 100 && watch.watchers === 0; i++) await sleep(5);
      const value = new Uint8Array(60 * 1024).fill(97);
      let rev = 0;
      let most = 0;
      while (watch.stats().cutSlowTotal === 0 && rev < 3_000) {
        watch.applied(applied(++rev, ["set", `k${rev}`, value]));
        most = Math.max(most, watch.stats().pendingBytes);
        await sleep(0);
      }
      assert.equal(watch.stats().cutSlowTotal, 1, `cut off after ${rev} changes`);
      assert.ok(most <= pendingBytesMax, `${most} bytes queued at most`);
      assert.equal(watch.watchers, 0);
      // Reading now, the client gets what the connection held, then the final error.
      let text = "";
      const buffer = new Uint8Array(1 << 16);
      const decoder = new TextDecoder();
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        text += decoder.decode(buffer.subarray(0, n), { stream: true });
        if (text.includes('"code":"slow_watcher"') && text.endsWith("0\r\n\r\n")) break;
      }
      const body = text.slice(text.indexOf("\r\n\r\n") + 4).replace(/\r\n[0-9a-f]+\r\n/g, "");
      const { messages } = parseSse(body.replace(/^[0-9a-f]+\r\n/, ""));
      const last = messages.findLast((m) => m.event !== undefined)!;
      assert.equal(last.event, "error");
      assert.equal(JSON.parse(last.data!).code, "slow_watcher");
      const revs = messages.filter((m) => m.event === "change").map((m) => Number(m.id));
      assert.ok(revs.length > 0 && revs.length < rev, `${revs.length} of ${rev} delivered`);
      assert.deepEqual(revs, revs.map((_, i) => i + 1), "what came came in order, from the start");
    } finally {
      conn.close();
    }
  });
});

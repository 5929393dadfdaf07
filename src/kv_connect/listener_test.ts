/** The listener's bounds: requests at once, a deadline for the body and for the answer, shutdown. */
import assert from "node:assert/strict";
import { waitFor } from "../client/_fake_test_util.ts";
import { listenKvConnect } from "./_listener.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "listener: beyond the requests bound a 503 at once; others pass; unknown paths 404",
  ...opts,
  async fn() {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const listener = listenKvConnect({
      hostname: "127.0.0.1",
      port: 0,
      requestsMax: 2,
      handler: async (req) => {
        if (new URL(req.url).pathname !== "/kv/hold") return undefined;
        await held;
        return new Response("done");
      },
    });
    const base = `http://127.0.0.1:${listener.port}`;
    try {
      const holding = [fetch(`${base}/kv/hold`), fetch(`${base}/kv/hold`)];
      await waitFor(() => listener.inFlight === 2, "two requests in flight");
      const refused = await fetch(`${base}/other`);
      assert.equal(refused.status, 503);
      assert.match(await refused.text(), /Busy: 2 KV Connect requests in flight/);
      release();
      for (const r of await Promise.all(holding)) assert.equal(await r.text(), "done");
      const unknown = await fetch(`${base}/other`);
      assert.equal(unknown.status, 404);
      await unknown.body?.cancel();
    } finally {
      await listener.close();
    }
  },
});

Deno.test({
  name: "listener: a request that does not finish in time is a 503, and its work is told",
  ...opts,
  async fn() {
    let aborted = false;
    const listener = listenKvConnect({
      hostname: "127.0.0.1",
      port: 0,
      requestMs: 100,
      handler: (_req, signal) =>
        new Promise((resolve) => {
          signal.addEventListener("abort", () => {
            aborted = true;
            resolve(new Response("too late"));
          });
        }),
    });
    try {
      const res = await fetch(`http://127.0.0.1:${listener.port}/kv`);
      assert.equal(res.status, 503);
      assert.match(await res.text(), /did not finish within 100 ms/);
      assert.ok(aborted);
    } finally {
      await listener.close();
    }
  },
});

Deno.test({
  name: "listener: close ends streams first (beforeClose) and returns within the drain bound",
  ...opts,
  async fn() {
    let end!: () => void;
    const listener = listenKvConnect({
      hostname: "127.0.0.1",
      port: 0,
      handler: () =>
        Promise.resolve(
          new Response(
            new ReadableStream({
              start(c) {
                c.enqueue(new Uint8Array(4));
                end = () => c.close();
              },
            }),
          ),
        ),
      beforeClose: () => end(),
    });
    const res = await fetch(`http://127.0.0.1:${listener.port}/kv`);
    const reader = res.body!.getReader();
    assert.equal((await reader.read()).value?.length, 4);
    await listener.close(1_000);
    assert.equal((await reader.read()).done, true, "the stream ended");
    await assert.rejects(fetch(`http://127.0.0.1:${listener.port}/kv`), "no longer listening");
  },
});

Deno.test({
  name: "listener: an answer its client does not take in time is cut and its bytes given back",
  ...opts,
  async fn() {
    const listener = listenKvConnect({
      hostname: "127.0.0.1",
      port: 0,
      unsentBytesMax: 4 * 1024 * 1024,
      answerSendMs: 300,
      answerSendBytesPerS: 1 << 30,
      handler: async (req) => {
        await req.body?.cancel();
        return new Response(new Uint8Array(32 * 1024 * 1024));
      },
    });
    const reader = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
    try {
      await reader.write(new TextEncoder().encode("GET /kv/big HTTP/1.1\r\nhost: x\r\n\r\n"));
      await waitFor(() => listener.unsentBytes > 4 * 1024 * 1024, "the answer is held");
      // The client keeps its connection and reads nothing: the answer is cut at its deadline.
      await waitFor(() => listener.answersCut === 1, "the answer cut", 10_000);
      await waitFor(() => listener.inFlight === 0 && listener.unsentBytes === 0, "released");
    } finally {
      reader.close();
      await listener.close();
    }
  },
});

Deno.test({
  name: "listener: an answer not read counts until sent or cancelled; its bytes bound new ones",
  ...opts,
  async fn() {
    const big = new Uint8Array(32 * 1024 * 1024);
    const listener = listenKvConnect({
      hostname: "127.0.0.1",
      port: 0,
      unsentBytesMax: 4 * 1024 * 1024,
      handler: async (req) => {
        await req.body?.cancel();
        return new URL(req.url).pathname === "/kv/big" ? new Response(big) : new Response("ok");
      },
    });
    const base = `http://127.0.0.1:${listener.port}`;
    const reader = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
    try {
      // A client that asks for 32 MiB and reads none of it.
      await reader.write(new TextEncoder().encode("GET /kv/big HTTP/1.1\r\nhost: x\r\n\r\n"));
      await waitFor(() => listener.unsentBytes > 4 * 1024 * 1024, "the answer is held");
      assert.equal(listener.inFlight, 1, "the request counts while its answer is not sent");
      const refused = await fetch(`${base}/kv/v3/snapshot_read`, { method: "POST" });
      assert.equal(refused.status, 503);
      assert.match(await refused.text(), /bytes of KV Connect answers not yet sent/);
      // Only reads wait: a write's or the metadata's answer is small, and goes.
      const small = await fetch(`${base}/kv/small`);
      assert.equal(await small.text(), "ok");
      reader.close(); // the answer is cancelled
      await waitFor(() => listener.inFlight === 0 && listener.unsentBytes === 0, "released");
      const ok = await fetch(`${base}/kv/small`);
      assert.equal(await ok.text(), "ok");
    } finally {
      try {
        reader.close();
      } catch { /* closed above */ }
      await listener.close();
    }
  },
});

Deno.test({
  name: "listener: a body that does not arrive in time is a 408, before the request's 503",
  ...opts,
  async fn() {
    let aborted = false;
    const listener = listenKvConnect({
      hostname: "127.0.0.1",
      port: 0,
      bodyMs: 200,
      requestMs: 10_000,
      handler: async (req, signal) => {
        signal.addEventListener("abort", () => (aborted = true));
        await req.arrayBuffer().catch(() => {});
        return new Response("read");
      },
    });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
    try {
      // Ten bytes announced, none sent.
      await conn.write(
        new TextEncoder().encode("POST /kv HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n"),
      );
      const started = Date.now();
      const buf = new Uint8Array(512);
      const n = await conn.read(buf);
      assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1.1 408/);
      assert.ok(Date.now() - started < 5_000, "long before the request's deadline");
      assert.ok(aborted, "the work is told");
      await waitFor(() => listener.inFlight === 0, "not in flight any more");
    } finally {
      conn.close();
      await listener.close();
    }
  },
});

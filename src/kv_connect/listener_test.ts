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

/**
 * Requests whose client closed its connection, on real sockets: the app learns it through the
 * request's signal while it runs, and a request still waiting behind an earlier one on that
 * connection never reaches the app (nobody would read its answer).
 */
import assert from "node:assert/strict";
import { waitFor, withServer } from "./_server_test_util.ts";

const GET = (path: string) => `GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`;

Deno.test("http server: a request's signal aborts when its client closes the connection; what it pipelined behind never reaches the app", async () => {
  const seen: string[] = [];
  const aborted: string[] = [];
  let release: () => void = () => {};
  const released = new Promise<void>((r) => release = r);
  const fetch = async (request: Request) => {
    const path = new URL(request.url).pathname;
    seen.push(path);
    if (path === "/slow") {
      request.signal.addEventListener("abort", () => aborted.push(path), { once: true });
      await released;
    }
    return new Response("x".repeat(100_000));
  };
  await withServer({}, fetch, async (server) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(new TextEncoder().encode(GET("/slow") + GET("/next") + GET("/last")));
    await waitFor(() => seen.length === 1, "the first request in the app");
    conn.close();
    await waitFor(() => aborted.length === 1, "the first request's signal aborted");
    release();
    await waitFor(
      () => server.stats().requestsOfGoneClients >= 1,
      "the answer dropped",
    );
    assert.deepEqual(seen, ["/slow"]);
    assert.equal(server.stats().answerBytesHeld, 0);
    // The server still serves others.
    const answer = await globalThis.fetch(`http://127.0.0.1:${server.port}/other`);
    assert.equal(answer.status, 200);
    await answer.body?.cancel();
    assert.deepEqual(seen, ["/slow", "/other"]);
  });
});

Deno.test("http server: a request whose client stays gets a signal that never aborts", async () => {
  let signal: AbortSignal | undefined;
  await withServer({}, (request) => {
    signal = request.signal;
    return new Response("ok");
  }, async (server) => {
    const answer = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(await answer.text(), "ok");
    assert.equal(signal?.aborted, false);
  });
});

/**
 * Pieced answers on real sockets: written piece by piece as the connection takes them, whole
 * and in order at the client, counted as held while they are written, and cut at the answer
 * deadline when the client stops taking them.
 */
import assert from "node:assert/strict";
import { AnswerBytes, HttpServer, type HttpServerLimits, piecedResponse } from "./server.ts";
import { waitFor } from "./_server_test_util.ts";

/** 48 MiB in 1 MiB values with small parts between them, like a large read's answer. */
function pieces(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < 48; i++) out.push(Uint8Array.of(i, 0xfe), new Uint8Array(1 << 20).fill(i));
  return out;
}

async function withPieced(
  limits: Partial<HttpServerLimits>,
  fn: (server: HttpServer, answers: AnswerBytes) => Promise<void>,
): Promise<void> {
  const answers = new AnswerBytes(512 << 20);
  const server = await HttpServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    limits,
    answers,
    fetch: () => {
      const all = pieces();
      const bytes = all.reduce((n, p) => n + p.length, 0);
      return answers.mark(piecedResponse(all, { "content-type": "application/x-test" }), bytes);
    },
  });
  try {
    await fn(server, answers);
  } finally {
    await server.close(100);
  }
}

Deno.test("http server: a pieced answer arrives whole, with its length, and is counted until sent", async () => {
  await withPieced({}, async (server, answers) => {
    const answer = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(answer.headers.get("content-length"), String(48 * (2 + (1 << 20))));
    assert.equal(answer.headers.get("content-type"), "application/x-test");
    const body = new Uint8Array(await answer.arrayBuffer());
    let at = 0;
    for (const piece of pieces()) {
      assert.deepEqual(body.subarray(at, at + piece.length), piece);
      at += piece.length;
    }
    assert.equal(at, body.length);
    assert.equal(server.stats().answersPieced, 1);
    await waitFor(() => answers.held === 0, "the answer given back");
  });
});

Deno.test("http server: a pieced answer its client stops taking is cut at the deadline and given back", async () => {
  await withPieced({ answerSendMs: 300, answerSendBytesPerS: 1 << 30 }, async (server, answers) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
      await waitFor(() => answers.held > 0, "the answer counted");
      // The client reads nothing: the kernel's buffers fill, the server waits for drain.
      await waitFor(() => server.stats().answersCutUntaken === 1, "the connection cut", 20_000);
      await waitFor(() => answers.held === 0, "the answer given back");
      await waitFor(() => server.stats().connections === 0, "the connection closed");
    } finally {
      conn.close();
    }
  });
});

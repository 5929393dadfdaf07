/**
 * The HTTP server's bound on answers its clients have not taken, on real sockets: a client
 * that asks for large answers and never reads them pins their bytes; the count refuses what
 * would not fit, and an answer not taken in time closes its connection.
 */
import assert from "node:assert/strict";
import { AnswerBytes, HttpServer, type HttpServerLimits } from "./server.ts";
import { waitFor } from "./_server_test_util.ts";

const SIZE = 20 << 20; // well above what the kernel's socket buffers take on loopback

async function send(conn: Deno.Conn, path = "/"): Promise<void> {
  await conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`));
}

/** Reads the status line of the next answer (and whatever came with it). */
async function status(conn: Deno.Conn): Promise<{ status: number; text: string }> {
  const buffer = new Uint8Array(1 << 16);
  const n = await conn.read(buffer);
  const text = new TextDecoder().decode(buffer.subarray(0, n ?? 0));
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text };
}

/** Reads until the connection closes or `bytes` came; how many came. */
async function drain(conn: Deno.Conn, bytes: number): Promise<number> {
  const buffer = new Uint8Array(1 << 20);
  let total = 0;
  try {
    while (total < bytes) {
      const n = await conn.read(buffer);
      if (n === null) break;
      total += n;
    }
  } catch {
    // reset by the server
  }
  return total;
}

async function withAnswers(
  answers: AnswerBytes,
  limits: Partial<HttpServerLimits>,
  fetch: () => Response,
  fn: (server: HttpServer, connect: () => Promise<Deno.Conn>) => Promise<void>,
): Promise<void> {
  const server = await HttpServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    fetch,
    limits,
    answers,
  });
  const conns: Deno.Conn[] = [];
  const connect = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    conns.push(conn);
    return conn;
  };
  try {
    await fn(server, connect);
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed already */ }
    }
    await server.close(100);
  }
}

Deno.test("http server: large answers not taken are counted; one that does not fit is refused; one not taken in time closes its connection", async () => {
  const answers = new AnswerBytes(48 << 20);
  let built = 0;
  const fetch = () => {
    if (!answers.fits(SIZE)) return new Response("busy", { status: 503 });
    built++;
    return answers.mark(new Response(new Uint8Array(SIZE)), SIZE);
  };
  const limits = { answerSendMs: 1_500, answerSendBytesPerS: 1 << 30 };
  await withAnswers(answers, limits, fetch, async (server, connect) => {
    const slow = [await connect(), await connect()];
    for (const [i, conn] of slow.entries()) {
      await send(conn);
      await waitFor(() => answers.held >= (i + 1) * SIZE, `answer ${i + 1} counted`);
    }
    // Two answers nobody reads hold 40 MiB: a third of 20 would pass the 48 MiB bound.
    const third = await connect();
    await send(third);
    assert.equal((await status(third)).status, 503);
    assert.equal(built, 2);
    assert.equal(answers.refused, 1);
    // The slow clients had 1.5 s to take their answers: their connections are closed.
    await waitFor(() => answers.held === 0, "the untaken answers dropped");
    assert.equal(server.stats().answersCutUntaken, 2);
    for (const conn of slow) assert.ok((await drain(conn, SIZE + 1024)) < SIZE);
    // A client that reads gets the whole answer, and the count goes back to zero.
    const reader = await connect();
    await send(reader);
    assert.ok((await drain(reader, SIZE + 100)) >= SIZE);
    await waitFor(() => answers.held === 0, "the taken answer released");
    assert.equal(server.stats().answersCutUntaken, 2);
  });
});

Deno.test("http server: once the bound is reached, an address holding answers is refused new requests until it takes them", async () => {
  const answers = new AnswerBytes(16 << 20);
  // Not marked by the app: the server counts what it writes.
  const fetch = () => new Response(new Uint8Array(SIZE));
  await withAnswers(answers, {}, fetch, async (server, connect) => {
    const first = await connect();
    await send(first);
    await waitFor(() => answers.held >= SIZE, "the answer counted");
    const second = await connect();
    await send(second);
    const refused = await status(second);
    assert.equal(refused.status, 503);
    assert.match(refused.text, /"overloaded"/);
    assert.match(refused.text, /retry-after: 1/i);
    assert.equal(server.stats().requestsRefusedAnswersHeld, 1);
    // The first client takes its answer: the address is served again.
    assert.ok((await drain(first, SIZE + 100)) >= SIZE);
    await waitFor(() => answers.held === 0, "the answer taken");
    await send(second);
    assert.equal((await status(second)).status, 200);
  });
});

Deno.test("http server: answers pipelined on a connection cut for not taking them are all given back", async () => {
  // Regression: the cut destroyed the connection, but answers queued behind the one being
  // written never emitted finish or close, so their bytes stayed counted for good (a few such
  // connections filled the bound and the node refused every large answer until restarted).
  const answers = new AnswerBytes(1 << 30);
  const size = 1 << 20;
  const fetch = () => new Response(new Uint8Array(size));
  const limits = { answerSendMs: 300, answerSendBytesPerS: 1 << 30 };
  await withAnswers(answers, limits, fetch, async (server, connect) => {
    const conn = await connect();
    const one = `GET / HTTP/1.1\r\nhost: x\r\n\r\n`;
    await conn.write(new TextEncoder().encode(one.repeat(16)));
    await waitFor(() => server.stats().answersCutUntaken >= 1, "the connection cut");
    await waitFor(() => answers.held === 0, "every answer of the cut connection given back");
    // And the node still serves large answers.
    const reader = await connect();
    await send(reader);
    assert.ok((await drain(reader, size + 100)) >= size);
    await waitFor(() => answers.held === 0, "the taken answer released");
  });
});

Deno.test("http server: an answer its client stops taking counts as stalled after a second, still held", async () => {
  const answers = new AnswerBytes(1 << 30);
  const fetch = () => new Response(new Uint8Array(SIZE));
  await withAnswers(answers, {}, fetch, async (_server, connect) => {
    const conn = await connect();
    await send(conn);
    await waitFor(() => answers.held >= SIZE, "the answer counted");
    await waitFor(() => answers.moving === 0, "the answer stalled", 5_000);
    assert.ok(answers.held >= SIZE, "still held");
    assert.ok((await drain(conn, SIZE + 100)) >= SIZE);
    await waitFor(() => answers.held === 0 && answers.moving === 0, "the answer taken");
  });
});

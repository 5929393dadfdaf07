/**
 * koi's HTTP server with `tls`: HTTPS with the same limits as plain HTTP. The 408 of a slow
 * request and the 503 of a connection over the bound arrive over TLS (readable by a TLS
 * client), the accept check keeps working, and plain HTTP or an untrusted certificate fail.
 */
import assert from "node:assert/strict";
import { HttpServer, type HttpServerLimits } from "../../src/http/server.ts";
import { makeTestPki, type TestPki, tlsTest } from "../../src/config/_tls_test_util.ts";

const TEXT = new TextEncoder();

async function withHttps(
  limits: Partial<HttpServerLimits>,
  fn: (server: HttpServer, pki: TestPki) => Promise<void>,
): Promise<void> {
  const pki = await makeTestPki(["node"]);
  const leaf = pki.leaves.get("node")!;
  const server = await HttpServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    limits,
    tls: { cert: leaf.cert, key: leaf.key },
    fetch: async (request) =>
      new Response(`${new URL(request.url).protocol} ${request.method} ${await request.text()}`),
  });
  try {
    await fn(server, pki);
  } finally {
    await server.close(100);
    await Deno.remove(pki.dir, { recursive: true });
  }
}

/** Everything a TLS connection reads until the server closes it (or `ms` pass). */
async function readAll(conn: Deno.TlsConn, ms: number): Promise<{ text: string; closed: boolean }> {
  const chunks: string[] = [];
  const buffer = new Uint8Array(4096);
  const timer = setTimeout(() => conn.close(), ms);
  let closed = false;
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(new TextDecoder().decode(buffer.subarray(0, n)));
    }
    closed = true;
  } catch (error) {
    // A close without close_notify still ends the stream; a timeout closes it here.
    closed = !(error instanceof Deno.errors.BadResource);
  } finally {
    clearTimeout(timer);
  }
  try {
    conn.close();
  } catch { /* closed by the timer */ }
  return { text: chunks.join(""), closed };
}

async function waitUntil(cond: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 5_000;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

await tlsTest("https server: answers over TLS; the app sees https URLs", async () => {
  await withHttps({}, async (server, pki) => {
    using client = Deno.createHttpClient({ caCerts: [pki.ca] });
    const r = await fetch(`https://127.0.0.1:${server.port}/x`, {
      method: "PUT",
      body: "hello",
      client,
    });
    assert.equal(r.status, 200);
    assert.equal(await r.text(), "https: PUT hello");
  });
});

await tlsTest("https server: plain HTTP and a client without the CA fail", async () => {
  await withHttps({}, async (server) => {
    await assert.rejects(() => fetch(`http://127.0.0.1:${server.port}/`));
    await assert.rejects(
      () => fetch(`https://127.0.0.1:${server.port}/`),
      (e: Error) => /certificate/i.test(String(e.cause ?? e.message)),
    );
  });
});

await tlsTest("https server: a slow request is answered 408 over TLS", async () => {
  await withHttps(
    { requestTimeoutMs: 400, headersTimeoutMs: 400, timeoutCheckMs: 50 },
    async (server, pki) => {
      const conn = await Deno.connectTls({
        hostname: "127.0.0.1",
        port: server.port,
        caCerts: [pki.ca],
      });
      await conn.write(TEXT.encode("PUT /k HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nab"));
      const { text, closed } = await readAll(conn, 5_000);
      assert.ok(closed, "the server closed the connection");
      assert.match(text, /^HTTP\/1\.1 408 /);
      assert.match(text, /"code":"request_timeout"/);
    },
  );
});

await tlsTest("https server: a connection over the bound gets its 503 over TLS", async () => {
  await withHttps({ connectionsMax: 2 }, async (server, pki) => {
    const open = () =>
      Deno.connectTls({ hostname: "127.0.0.1", port: server.port, caCerts: [pki.ca] });
    const held = [await open(), await open()];
    try {
      for (const c of held) await c.handshake();
      await waitUntil(() => server.connections === 2, "two connections");
      const extra = await open();
      const { text, closed } = await readAll(extra, 5_000);
      assert.ok(closed);
      assert.match(text, /^HTTP\/1\.1 503 /);
      assert.match(text, /Too many open connections: the limit is 2/);
      held.pop()!.close();
      await waitUntil(() => server.connections === 1, "one connection left");
      using client = Deno.createHttpClient({ caCerts: [pki.ca] });
      const r = await fetch(`https://127.0.0.1:${server.port}/`, {
        method: "PUT",
        body: "hi",
        client,
      });
      assert.equal(await r.text(), "https: PUT hi");
    } finally {
      for (const c of held) c.close();
    }
  });
});

await tlsTest(
  "https server: a connection over its address's bound gets its 503 over TLS",
  async () => {
    await withHttps({ connectionsPerAddressMax: 1 }, async (server, pki) => {
      const open = () =>
        Deno.connectTls({ hostname: "127.0.0.1", port: server.port, caCerts: [pki.ca] });
      const held = await open();
      try {
        await held.handshake();
        await waitUntil(() => server.connections === 1, "one connection");
        const { text, closed } = await readAll(await open(), 5_000);
        assert.ok(closed);
        assert.match(text, /^HTTP\/1\.1 503 /);
        assert.match(
          text,
          /Too many open connections from 127\.0\.0\.1: the limit is 1 per address/,
        );
        assert.equal(server.stats().connectionsRefusedPerAddress, 1);
      } finally {
        held.close();
      }
    });
  },
);

await tlsTest("https server: the accept check sees the HTTPS accept loop alive", async () => {
  await withHttps({ acceptCheckMs: 20 }, async (server, pki) => {
    using client = Deno.createHttpClient({ caCerts: [pki.ca] });
    // Requests for a while: several accept checks (20 ms apart, 1 s to be accepted) pass.
    const until = performance.now() + 1_500;
    let answered = 0;
    while (performance.now() < until) {
      const r = await fetch(`https://127.0.0.1:${server.port}/`, { client });
      assert.equal(r.status, 200);
      await r.body?.cancel();
      answered++;
    }
    assert.ok(answered > 0);
    assert.equal(server.relistens, 0, "no check mistook the TLS server for a dead one");
  });
});

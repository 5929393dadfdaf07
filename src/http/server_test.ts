/**
 * The HTTP server's limits on real sockets (127.0.0.1): deadlines, idle timeout, bounds (in all
 * and per address), drain, and the methods it answers itself.
 */
import assert from "node:assert/strict";
import { connect as netConnect } from "node:net";
import { type DirectAnswer, HttpServer, isUnservedMethod } from "./server.ts";
import { withServer } from "./_server_test_util.ts";

const TEXT = new TextEncoder();

/** Reads from `conn` until it closes or `deadlineMs` passes; the text and whether it closed. */
async function readUntilClosed(
  conn: Deno.Conn,
  deadlineMs: number,
): Promise<{ text: string; closed: boolean }> {
  const chunks: string[] = [];
  const buffer = new Uint8Array(4096);
  const timer = setTimeout(() => conn.close(), deadlineMs);
  let closed = false;
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) {
        closed = true;
        break;
      }
      chunks.push(new TextDecoder().decode(buffer.subarray(0, n)));
    }
  } catch {
    // closed by the timer
  } finally {
    clearTimeout(timer);
  }
  if (closed) conn.close();
  return { text: chunks.join(""), closed };
}

const echo = async (request: Request) =>
  new Response(request.body === null ? "none" : new Uint8Array(await request.arrayBuffer()));

Deno.test("a client sending its body too slowly is answered 408 and cut off", async () => {
  await withServer(
    { requestTimeoutMs: 400, headersTimeoutMs: 400, timeoutCheckMs: 50 },
    echo,
    async (s) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
      const started = performance.now();
      await conn.write(TEXT.encode("PUT /k HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nab"));
      const { text, closed } = await readUntilClosed(conn, 5_000);
      const elapsed = performance.now() - started;
      assert.ok(closed, "the server closed the connection");
      assert.match(text, /^HTTP\/1\.1 408 /);
      assert.match(text, /"code":"request_timeout"/);
      assert.ok(elapsed < 3_000, `cut off after ${elapsed} ms`);
    },
  );
});

Deno.test("an idle keep-alive connection is closed after the idle timeout", async () => {
  await withServer({ keepAliveTimeoutMs: 200 }, echo, async (s) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    await conn.write(TEXT.encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
    const { text, closed } = await readUntilClosed(conn, 5_000);
    assert.ok(closed, "closed while idle");
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /none$/);
  });
});

Deno.test("connections beyond the bound are answered 503 and closed", async () => {
  await withServer({ connectionsMax: 2 }, echo, async (s) => {
    const held = [
      await Deno.connect({ hostname: "127.0.0.1", port: s.port }),
      await Deno.connect({ hostname: "127.0.0.1", port: s.port }),
    ];
    try {
      // The server counts a connection once it accepted it: wait for both.
      const deadline = performance.now() + 5_000;
      while (s.connections < 2 && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal(s.connections, 2);
      const extra = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
      const { text, closed } = await readUntilClosed(extra, 5_000);
      assert.ok(closed);
      assert.match(text, /^HTTP\/1\.1 503 /);
      assert.match(text, /retry-after: 1/);
      assert.match(text, /Too many open connections: the limit is 2/);
      // A held one leaves: a new connection is served again.
      held.pop()!.close();
      const until = performance.now() + 5_000;
      while (s.connections > 1 && performance.now() < until) {
        await new Promise((r) => setTimeout(r, 5));
      }
      const r = await fetch(`http://127.0.0.1:${s.port}/`, { method: "PUT", body: "hi" });
      assert.equal(r.status, 200);
      assert.equal(await r.text(), "hi");
    } finally {
      for (const c of held) c.close();
    }
  });
});

Deno.test("close drains in-flight requests and cuts off what outlives the deadline", async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let entered = 0;
  const server = await HttpServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (request) => {
      entered++;
      if (new URL(request.url).pathname === "/quick") await released;
      else await new Promise(() => {}); // never answers
      return new Response("done");
    },
  });
  try {
    const quick = fetch(`http://127.0.0.1:${server.port}/quick`).then((r) => r.text());
    const stuck = fetch(`http://127.0.0.1:${server.port}/stuck`).then(
      (r) => r.text(),
      (e) => `failed: ${e}`,
    );
    const deadline = performance.now() + 5_000;
    while (entered < 2 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const started = performance.now();
    const closing = server.close(300);
    release();
    assert.equal(await quick, "done");
    await closing;
    const elapsed = performance.now() - started;
    assert.match(await stuck, /^failed/);
    assert.ok(elapsed >= 250 && elapsed < 3_000, `closed after ${elapsed} ms`);
  } finally {
    await server.close(0);
  }
});

Deno.test("HEAD answers the headers without a body; a taken port rejects with EADDRINUSE", async () => {
  const app = () => new Response(null, { headers: { "content-length": "5", etag: '"3"' } });
  await withServer({}, app, async (s) => {
    const r = await fetch(`http://127.0.0.1:${s.port}/`, { method: "HEAD" });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-length"), "5");
    assert.equal(r.headers.get("etag"), '"3"');
    assert.equal(await r.text(), "");
    await assert.rejects(
      () => HttpServer.listen({ hostname: "127.0.0.1", port: s.port, fetch: app }),
      (e: Error & { code?: string }) => e.code === "EADDRINUSE",
    );
  });
});

Deno.test("a direct handler answers what it takes, with its content-length; the rest goes to fetch", async () => {
  const seen: string[] = [];
  const server = await HttpServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (request) => new Response(`app ${request.method}`),
    refuseTarget: (target) => target.includes("..") ? "dot segments" : undefined,
    direct: (request): DirectAnswer | Promise<DirectAnswer> | undefined => {
      seen.push(`${request.method} ${request.target} ${request.body?.length ?? "null"}`);
      if (request.target === "/json") {
        return { status: 201, headers: { "content-type": "application/json" }, body: '{"é":1}' };
      }
      if (request.target === "/bytes") {
        return Promise.resolve({ status: 200, headers: { "x-a": "b" }, body: new Uint8Array(3) });
      }
      return request.target === "/none" ? { status: 204, headers: {}, body: null } : undefined;
    },
  });
  try {
    const base = `http://127.0.0.1:${server.port}`;
    const json = await fetch(`${base}/json`, { method: "PUT", body: "xyz" });
    assert.equal(json.status, 201);
    assert.equal(json.headers.get("content-length"), "8", "UTF-8 bytes, not characters");
    assert.deepEqual(await json.json(), { "é": 1 });
    const bytes = await fetch(`${base}/bytes`);
    assert.equal(bytes.headers.get("content-length"), "3");
    assert.equal(bytes.headers.get("x-a"), "b");
    assert.equal((await bytes.arrayBuffer()).byteLength, 3);
    const none = await fetch(`${base}/none`);
    assert.equal(none.status, 204);
    await none.body?.cancel();
    const app = await fetch(`${base}/other`, { method: "DELETE" });
    assert.equal(await app.text(), "app DELETE");
    const refused = await fetch(`${base}/x..json`);
    assert.equal(refused.status, 400, "the target check comes first");
    await refused.body?.cancel();
    assert.deepEqual(seen, ["PUT /json 3", "GET /bytes null", "GET /none null", "DELETE /other 0"]);
  } finally {
    await server.close(100);
  }
});

Deno.test("pipelined requests on one connection run one after another, in the order sent", async () => {
  const order: string[] = [];
  await withServer({}, async (request) => {
    const body = request.body === null ? "" : await request.text();
    // A write with a body takes longer before it applies (as a node's PUT does: it proposes
    // later than a bodyless DELETE would).
    if (body !== "") await new Promise((resolve) => setTimeout(resolve, 20));
    order.push(`${request.method} ${body}`);
    return new Response(String(order.length));
  }, async (server) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    // The bodyless DELETE must not overtake the PUTs that still read their bodies.
    await conn.write(TEXT.encode(
      "PUT /k HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\none" +
        "PUT /k HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\ntwo" +
        "DELETE /k HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ));
    const { text } = await readUntilClosed(conn, 5_000);
    assert.deepEqual(order, ["PUT one", "PUT two", "DELETE "]);
    assert.equal(text.match(/HTTP\/1\.1 200/g)?.length, 3, text);
  });
});

/** A raw request from `localAddress` (node:net can choose it, Deno.connect cannot). */
function requestFrom(localAddress: string, port: number, request: string): Promise<string> {
  return new Promise((resolve) => {
    const chunks: string[] = [];
    const socket = netConnect({ host: "127.0.0.1", port, localAddress });
    const timer = setTimeout(() => socket.destroy(), 5_000);
    socket.on("connect", () => socket.write(request));
    socket.on("data", (chunk: Uint8Array) => chunks.push(new TextDecoder().decode(chunk)));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(chunks.join(""));
    });
  });
}

async function waitUntil(cond: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 5_000;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("connections from one address beyond its bound are answered 503; others still get in", async () => {
  await withServer({ connectionsMax: 10, connectionsPerAddressMax: 2 }, echo, async (s) => {
    const held = [
      await Deno.connect({ hostname: "127.0.0.1", port: s.port }),
      await Deno.connect({ hostname: "127.0.0.1", port: s.port }),
    ];
    try {
      await waitUntil(() => s.connections === 2, "two connections");
      const extra = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
      const { text, closed } = await readUntilClosed(extra, 5_000);
      assert.ok(closed);
      assert.match(text, /^HTTP\/1\.1 503 /);
      assert.match(text, /retry-after: 1/);
      assert.match(text, /"code":"overloaded"/);
      assert.match(text, /Too many open connections from 127\.0\.0\.1: the limit is 2 per address/);
      assert.equal(s.stats().connectionsRefusedPerAddress, 1);
      assert.equal(s.stats().connectionsRefused, 0, "the total bound was not reached");
      // Another address (all of 127.0.0.0/8 is loopback) has its own count.
      const other = await requestFrom(
        "127.0.0.2",
        s.port,
        "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
      );
      assert.match(other, /^HTTP\/1\.1 200 /);
      // One of the held ones leaves: its address gets a connection again.
      held.pop()!.close();
      await waitUntil(() => s.connections === 1, "one connection left");
      const r = await fetch(`http://127.0.0.1:${s.port}/`, { method: "PUT", body: "hi" });
      assert.equal(await r.text(), "hi");
    } finally {
      for (const c of held) c.close();
    }
  });
});

Deno.test("TRACE, CONNECT and the other methods a fetch Request refuses are answered 501, unlogged", async () => {
  const errors: string[] = [];
  let reached = 0;
  const server = await HttpServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (request) => {
      reached++;
      return new Response(`app ${request.method}`);
    },
    direct: () => undefined,
    onError: (message, error) => errors.push(`${message}: ${error}`),
  });
  try {
    // TRACE is the one method node:http parses that `new Request` refuses: the connection
    // stays, and the request pipelined behind it is served.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(TEXT.encode(
      "TRACE / HTTP/1.1\r\nhost: x\r\n\r\n" +
        "TRACE /v1/kv/a HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" +
        "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ));
    const { text } = await readUntilClosed(conn, 5_000);
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ["501", "501", "200"], text);
    assert.match(text, /"code":"not_implemented","message":"The method TRACE is not served here"/);
    assert.match(text, /app GET$/);
    // CONNECT goes to node:http's "connect" event: answered, and the connection closed (what
    // follows would be a tunnel).
    const tunnel = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await tunnel.write(TEXT.encode("CONNECT example.com:443 HTTP/1.1\r\nhost: x\r\n\r\n"));
    const connect = await readUntilClosed(tunnel, 5_000);
    assert.ok(connect.closed);
    assert.match(connect.text, /^HTTP\/1\.1 501 /);
    assert.match(connect.text, /"code":"not_implemented"/);
    // TRACK and lower-case methods do not get past the parser: a 400, also unlogged.
    for (const method of ["TRACK", "trace"]) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await c.write(TEXT.encode(`${method} / HTTP/1.1\r\nhost: x\r\n\r\n`));
      const { text } = await readUntilClosed(c, 5_000);
      assert.match(text, /^HTTP\/1\.1 (400|501) /, `${method}: ${text}`);
    }
    assert.equal(reached, 1, "only the GET reached the app");
    assert.deepEqual(errors, []);
  } finally {
    await server.close(100);
  }
});

Deno.test("isUnservedMethod: the methods `new Request` throws on, and only those", () => {
  for (const method of ["TRACE", "trace", "TRACK", "Connect", "G T", "GÉT", "A(B", ""]) {
    assert.ok(isUnservedMethod(method), method);
    assert.throws(() => new Request("http://x/", { method }), TypeError, method);
  }
  for (const method of ["GET", "PUT", "PROPFIND", "M-SEARCH", "X!#$%&'*+-.^_`|~"]) {
    assert.ok(!isUnservedMethod(method), method);
    new Request("http://x/", { method });
  }
});

Deno.test("a chunked body past the limit is answered 413 at once, and its connection closed", async () => {
  // Found by the attack: a chunked 200 MiB body was read to its end (discarding all but the
  // limit) before the 413, and a body cut to exactly the limit looked whole to a handler
  // whose own limit is the server's.
  const length = async (request: Request) =>
    new Response(String((await request.arrayBuffer()).byteLength));
  await withServer({ bodyBytesMax: 1_000 }, length, async (server) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const chunk = "x".repeat(3_000);
    await conn.write(
      TEXT.encode(
        "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n" +
          `${chunk.length.toString(16)}\r\n${chunk}\r\n`,
      ),
    );
    // The body never ends: the answer must not wait for it.
    const { text, closed } = await readUntilClosed(conn, 3_000);
    assert.match(text, /^HTTP\/1\.1 413/);
    assert.match(text, /"code":"too_large".*over the 1000 bytes that POST \/ takes/);
    assert.match(text, /connection: close/i);
    assert.ok(closed, "the connection is closed after the answer");
  });
});

Deno.test("a declared length past the limit is answered 413 without reading the body, and its connection closed", async () => {
  const length = async (request: Request) =>
    new Response(String((await request.arrayBuffer()).byteLength));
  await withServer({ bodyBytesMax: 1_000 }, length, async (server) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    // 8 MiB announced, 10 bytes sent: the answer must not wait for the rest.
    await conn.write(
      TEXT.encode("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 8388608\r\n\r\n0123456789"),
    );
    const { text, closed } = await readUntilClosed(conn, 3_000);
    assert.match(text, /^HTTP\/1\.1 413/);
    assert.match(text, /"code":"too_large"/);
    assert.ok(closed, "the connection is closed after the answer");
  });
});

Deno.test("a route's own body limit: a declared length over it is a 413 before the body, also instead of 100 Continue", async () => {
  // Found by the attack: a 2 MiB PUT of a value (limit 1 MiB) waited 10 s for its body and got
  // a 408, because only the server-wide limit (2 MiB + 64 KiB) was checked before reading.
  let reached = 0;
  const length = async (request: Request) => {
    reached++;
    return new Response(String((await request.arrayBuffer()).byteLength));
  };
  const of = (_method: string, target: string) => target.startsWith("/small") ? 100 : 1_000;
  await withServer({ bodyBytesMax: 1_000 }, length, async (server) => {
    const ask = async (head: string, body = "") => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await conn.write(TEXT.encode(`${head}\r\n\r\n${body}`));
      const started = Date.now();
      const answer = await readUntilClosed(conn, 3_000);
      return { ...answer, ms: Date.now() - started };
    };
    // Declared 500 for a route of 100, nothing sent: answered at once.
    const declared = await ask("POST /small HTTP/1.1\r\nhost: x\r\ncontent-length: 500");
    assert.match(declared.text, /^HTTP\/1\.1 413/);
    assert.match(declared.text, /over the 100 bytes that POST \/small takes/);
    assert.ok(declared.closed && declared.ms < 2_000, `${declared.ms} ms`);
    // With expect: 100-continue, the 413 comes instead of 100 Continue.
    const expect = await ask(
      "POST /small HTTP/1.1\r\nhost: x\r\ncontent-length: 500\r\nexpect: 100-continue",
    );
    assert.match(expect.text, /^HTTP\/1\.1 413/);
    assert.doesNotMatch(expect.text, /100 Continue/);
    // A chunked body run past the route's limit.
    const chunk = "y".repeat(300);
    const chunked = await ask(
      "POST /small HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked",
      `${chunk.length.toString(16)}\r\n${chunk}\r\n`,
    );
    assert.match(chunked.text, /^HTTP\/1\.1 413/);
    assert.equal(reached, 0, "no over-limit body reached the app");
    // Within the route's limit: 100 Continue, then the body is read and answered.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(TEXT.encode(
      "POST /big HTTP/1.1\r\nhost: x\r\ncontent-length: 500\r\nexpect: 100-continue\r\n" +
        "connection: close\r\n\r\n",
    ));
    const buffer = new Uint8Array(4096);
    const n = await conn.read(buffer);
    assert.match(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), /^HTTP\/1\.1 100 Continue/);
    await conn.write(TEXT.encode("z".repeat(500)));
    const big = await readUntilClosed(conn, 3_000);
    assert.match(big.text, /HTTP\/1\.1 200[\s\S]*\r\n\r\n500$/);
    assert.equal(reached, 1);
  }, { bodyBytesMaxOf: of });
});

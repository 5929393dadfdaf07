/**
 * The HTTP server's admission on real sockets: pipelining beyond the depth closes the
 * connection, requests beyond the shared bounds are shed with `503 overloaded` in order, and
 * a request that waited too long behind others on its connection is refused instead of run.
 */
import assert from "node:assert/strict";
import { withServer } from "./_server_test_util.ts";

const TEXT = new TextEncoder();

/** Reads answers until `count` status lines arrived, the connection closed, or `ms` passed. */
async function readStatuses(
  conn: Deno.Conn,
  count: number,
  ms = 5_000,
): Promise<{ statuses: string[]; text: string; closed: boolean }> {
  const timer = setTimeout(() => conn.close(), ms);
  const buffer = new Uint8Array(1 << 16);
  let text = "";
  let closed = false;
  try {
    while ((text.match(/HTTP\/1\.1 \d{3}/g) ?? []).length < count) {
      const n = await conn.read(buffer);
      if (n === null) {
        closed = true;
        break;
      }
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
  } catch {
    // closed by the timer
  } finally {
    clearTimeout(timer);
  }
  const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
  return { statuses, text, closed };
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* closed already */ }
}

function put(path: string, body: string): string {
  return `PUT ${path} HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
}

/** A handler that holds each request until `release()`; counts what it ran. */
function gated() {
  let open: () => void = () => {};
  let gate = new Promise<void>((r) => open = r);
  const ran: string[] = [];
  return {
    ran,
    release: () => open(),
    close: () => {
      open();
      gate = Promise.resolve();
    },
    fetch: async (request: Request) => {
      await request.arrayBuffer();
      ran.push(new URL(request.url).pathname);
      await gate;
      return new Response("ok");
    },
  };
}

Deno.test("http admission: a connection pipelining past pipelineDepthMax is closed; others are not", async () => {
  const h = gated();
  await withServer({ pipelineDepthMax: 4 }, h.fetch, async (s) => {
    const other = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    try {
      await conn.write(
        TEXT.encode(Array.from({ length: 6 }, (_, i) => put(`/p${i}`, "x")).join("")),
      );
      const { closed } = await readStatuses(conn, 1);
      assert.ok(closed, "the server closed the connection that pipelined 6 with a depth of 4");
      assert.equal(s.stats().connectionsClosedPipelining, 1);
      h.close();
      await other.write(TEXT.encode(put("/other", "y")));
      const answer = await readStatuses(other, 1);
      assert.deepEqual(answer.statuses, ["200"], "another connection is served");
    } finally {
      h.close();
      closeQuietly(other);
      closeQuietly(conn);
    }
  });
});

Deno.test("http admission: past requestsWaitingMax, requests are shed with 503 + retry-after in order, the connection stays", async () => {
  const h = gated();
  await withServer({ requestsWaitingMax: 2 }, h.fetch, async (s) => {
    const a = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    const b = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    try {
      await a.write(TEXT.encode(put("/a1", "x") + put("/a2", "x")));
      // Wait until both of a's requests are held (a2 behind a1), then b's arrive.
      const deadline = Date.now() + 5_000;
      while (s.stats().requestsWaiting < 2) {
        assert.ok(Date.now() < deadline, "a's requests arrive");
        await new Promise((r) => setTimeout(r, 5));
      }
      await b.write(TEXT.encode(put("/b1", "x") + put("/b2", "x")));
      const shed = await readStatuses(b, 2);
      assert.deepEqual(shed.statuses, ["503", "503"], "b's requests are shed, in order");
      assert.match(shed.text, /retry-after: 1/i);
      assert.match(shed.text, /"code":"overloaded"/);
      assert.equal(shed.closed, false, "the connection stays");
      h.close();
      assert.deepEqual((await readStatuses(a, 2)).statuses, ["200", "200"]);
      await b.write(TEXT.encode(put("/b3", "x")));
      assert.deepEqual((await readStatuses(b, 1)).statuses, ["200"], "b is served again");
      assert.deepEqual(h.ran, ["/a1", "/a2", "/b3"], "shed requests never ran");
      assert.equal(s.stats().requestsShed, 2);
    } finally {
      h.close();
      closeQuietly(a);
      closeQuietly(b);
    }
  });
});

Deno.test("http admission: bodies past bodyBytesWaitingMax are shed at once, even before their body came", async () => {
  const h = gated();
  await withServer({ bodyBytesWaitingMax: 1_000 }, h.fetch, async (s) => {
    const a = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    const b = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    try {
      await a.write(TEXT.encode(put("/a", "x".repeat(800))));
      const deadline = Date.now() + 5_000;
      while (s.stats().bodyBytesWaiting < 800) {
        assert.ok(Date.now() < deadline, "a's body is held");
        await new Promise((r) => setTimeout(r, 5));
      }
      // Declares 500 bytes, sends 2: its answer does not wait for the rest.
      await b.write(TEXT.encode("PUT /b HTTP/1.1\r\nhost: x\r\ncontent-length: 500\r\n\r\nxx"));
      const shed = await readStatuses(b, 1, 3_000);
      assert.deepEqual(shed.statuses, ["503"]);
      assert.match(shed.text, /retry-after: 1/i);
      h.close();
      assert.deepEqual((await readStatuses(a, 1)).statuses, ["200"]);
      assert.equal(s.stats().bodyBytesWaiting, 0, "the budget is given back");
    } finally {
      h.close();
      closeQuietly(a);
      closeQuietly(b);
    }
  });
});

Deno.test("http admission: a chunked body that outgrows the budget is refused with 503 and the connection ends", async () => {
  await withServer({ bodyBytesWaitingMax: 1_000 }, async (r) => {
    await r.arrayBuffer();
    return new Response("ok");
  }, async (s) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    try {
      const chunk = "x".repeat(600);
      const hex = chunk.length.toString(16);
      await conn.write(TEXT.encode(
        `PUT /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n` +
          `${hex}\r\n${chunk}\r\n${hex}\r\n${chunk}\r\n0\r\n\r\n`,
      ));
      const { statuses, text } = await readStatuses(conn, 1);
      assert.deepEqual(statuses, ["503"]);
      assert.match(text, /retry-after: 1/i);
      assert.equal(s.stats().bodyBytesWaiting, 0);
    } finally {
      closeQuietly(conn);
    }
  });
});

Deno.test("http admission: a request that waited past queueWaitMaxMs behind others on its connection is refused, not run", async () => {
  const h = gated();
  await withServer({ queueWaitMaxMs: 100 }, h.fetch, async (s) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    try {
      await conn.write(TEXT.encode(put("/first", "x") + put("/second", "x")));
      const deadline = Date.now() + 5_000;
      while (s.stats().requestsWaiting < 2) {
        assert.ok(Date.now() < deadline, "both requests arrive");
        await new Promise((r) => setTimeout(r, 5));
      }
      await new Promise((r) => setTimeout(r, 200)); // the second now waited past 100 ms
      h.close();
      const { statuses, text } = await readStatuses(conn, 2);
      assert.deepEqual(statuses, ["200", "503"]);
      assert.match(text, /waited \d+ ms behind earlier requests/);
      assert.deepEqual(h.ran, ["/first"]);
      assert.equal(s.stats().requestsWaitedTooLong, 1);
    } finally {
      h.close();
      closeQuietly(conn);
    }
  });
});

/**
 * The KV Connect endpoint driven by Deno's own client: `Deno.openKv(url)` against a
 * `Deno.serve` listener on 127.0.0.1 running the handler over an in-memory backend.
 */
import assert from "node:assert/strict";
import { type KvEntry, type ReadRange, ValueEncoding } from "./_datapath.ts";
import { kvConnectHandler } from "./_handler.ts";

/** The tuple encoding of a key of strings (type byte 0x02, UTF-8, 0x00; no 0x00 inside). */
function tupleKey(...parts: string[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) out.push(0x02, ...new TextEncoder().encode(p), 0x00);
  return new Uint8Array(out);
}

function compare(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function memoryBackend(entries: KvEntry[]) {
  const sorted = [...entries].sort((x, y) => compare(x.key, y.key));
  return {
    read: (ranges: readonly ReadRange[]) =>
      Promise.resolve(ranges.map((r) => {
        const hit = sorted.filter((e) => compare(e.key, r.start) >= 0 && compare(e.key, r.end) < 0);
        if (r.reverse) hit.reverse();
        return hit.slice(0, r.limit);
      })),
  };
}

const stamp = (n: number) => Uint8Array.from({ length: 10 }, (_, i) => (i === 9 ? n : 0));
const bytes = (s: string) => new TextEncoder().encode(s);

async function withEndpoint(
  entries: KvEntry[],
  fn: (url: string) => Promise<void>,
): Promise<void> {
  const handler = kvConnectHandler(memoryBackend(entries), {
    accessTokens: ["the-access-token-0123456789"],
    databaseId: "6f1c2f6e-4c1b-4a51-9d8e-3f1a2b3c4d5e",
    basePath: "/kv",
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => (await handler(req)) ?? new Response("not found", { status: 404 }),
  );
  try {
    await fn(`http://127.0.0.1:${server.addr.port}/kv`);
  } finally {
    await server.shutdown();
  }
}

Deno.test({
  name:
    "kv connect: Deno.openKv(url) reads through the endpoint (get, getMany, list, reverse, limit)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const entries: KvEntry[] = ["ada", "bob", "cy"].map((name, i) => ({
      key: tupleKey("users", name),
      value: bytes(`${name}!`),
      encoding: ValueEncoding.BYTES,
      versionstamp: stamp(i + 1),
    }));
    entries.push({
      key: tupleKey("count"),
      value: new Uint8Array([42, 0, 0, 0, 0, 0, 0, 0]),
      encoding: ValueEncoding.LE64,
      versionstamp: stamp(9),
    });
    Deno.env.set("DENO_KV_ACCESS_TOKEN", "the-access-token-0123456789");
    await withEndpoint(entries, async (url) => {
      const kv = await Deno.openKv(url);
      try {
        const ada = await kv.get<Uint8Array>(["users", "ada"]);
        assert.deepEqual(ada.value, bytes("ada!"));
        assert.equal(ada.versionstamp, "00000000000000000001");
        assert.equal((await kv.get(["users", "zed"])).value, null);
        const count = await kv.get<Deno.KvU64>(["count"]);
        assert.equal(count.value?.value, 42n);
        const many = await kv.getMany<Uint8Array[]>([["users", "cy"], ["nope"]]);
        assert.deepEqual(many.map((e) => e.value), [bytes("cy!"), null]);
        const names = [];
        for await (const e of kv.list({ prefix: ["users"] })) names.push(e.key[1]);
        assert.deepEqual(names, ["ada", "bob", "cy"]);
        const last = [];
        for await (const e of kv.list({ prefix: ["users"] }, { reverse: true, limit: 2 })) {
          last.push(e.key[1]);
        }
        assert.deepEqual(last, ["cy", "bob"]);
        // Writes are not served yet: the client gets an error, nothing is half-done.
        await assert.rejects(kv.set(["users", "dee"], bytes("x")));
      } finally {
        kv.close();
      }
    });
  },
});

Deno.test({
  name: "kv connect: a wrong access token is refused (401), and so is a forged data token",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withEndpoint([], async (url) => {
      const meta = await fetch(url, {
        method: "POST",
        headers: { authorization: "Bearer wrong", "content-type": "application/json" },
        body: JSON.stringify({ supportedVersions: [1, 2, 3] }),
      });
      assert.equal(meta.status, 401);
      await meta.body?.cancel();
      const ok = await fetch(url, {
        method: "POST",
        headers: { authorization: "Bearer the-access-token-0123456789" },
        body: JSON.stringify({ supportedVersions: [1, 2, 3] }),
      });
      const m = await ok.json();
      assert.equal(m.version, 3);
      assert.equal(m.endpoints[0].url, "/kv/v3");
      assert.ok(!m.endpoints[0].url.endsWith("/"));
      const forged = await fetch(`${url}/v3/snapshot_read`, {
        method: "POST",
        headers: { authorization: "Bearer forged", "x-denokv-database-id": m.databaseId },
        body: new Uint8Array(),
      });
      assert.equal(forged.status, 401);
      await forged.body?.cancel();
      const garbage = await fetch(`${url}/v3/snapshot_read`, {
        method: "POST",
        headers: { authorization: `Bearer ${m.token}`, "x-denokv-database-id": m.databaseId },
        body: new Uint8Array([0x0a, 0x09, 0x01]),
      });
      assert.equal(garbage.status, 400);
      await garbage.body?.cancel();
      const old = await fetch(url, {
        method: "POST",
        headers: { authorization: "Bearer the-access-token-0123456789" },
        body: JSON.stringify({ supportedVersions: [1] }),
      });
      assert.equal(old.status, 400);
      await old.body?.cancel();
      // A body over the limit, streamed without a declared length: refused, not buffered.
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent++ === 32) c.close(); // 2 MiB in all
          else c.enqueue(new Uint8Array(64 * 1024));
        },
      });
      const big = await fetch(`${url}/v3/snapshot_read`, {
        method: "POST",
        headers: { authorization: `Bearer ${m.token}`, "x-denokv-database-id": m.databaseId },
        body: stream,
      });
      assert.equal(big.status, 413);
      await big.body?.cancel();
    });
  },
});

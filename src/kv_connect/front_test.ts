/**
 * The KV Connect front door (_front.ts): the connection bounds and the first-byte deadline that
 * `Deno.serve` lacks (a flood of silent or dripping connections took the admin down with every
 * node, out of file descriptors), and bytes relayed both ways to the server behind it.
 */
import assert from "node:assert/strict";
import { listenFront } from "./_front.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

/** Resolves true once the server closes `conn` (a read gives EOF or fails), false after `ms`. */
async function closedWithin(conn: Deno.Conn, ms: number): Promise<boolean> {
  const timer = new Promise<false>((r) => setTimeout(() => r(false), ms));
  const read = conn.read(new Uint8Array(16)).then((n) => n === null, () => true);
  return await Promise.race([read, timer]);
}

async function withServer(
  fn: (port: number, front: ReturnType<typeof listenFront>) => Promise<void>,
  bounds: { connectionsPerAddressMax?: number; connectionsMax?: number; firstByteMs?: number },
) {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/s.sock`;
  const server = Deno.serve({ path, onListen: () => {} }, () => new Response("hello"));
  const front = listenFront({ hostname: "127.0.0.1", port: 0, upstream: path, ...bounds });
  try {
    await fn(front.port, front);
  } finally {
    front.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "front: relays HTTP both ways",
  ...opts,
  async fn() {
    await withServer(async (port) => {
      const r = await fetch(`http://127.0.0.1:${port}/kv`);
      assert.equal(await r.text(), "hello");
    }, {});
  },
});

Deno.test({
  name: "front: one connection beyond the per-address bound is closed at once; others go on",
  ...opts,
  async fn() {
    await withServer(async (port, front) => {
      const held = await Promise.all(
        Array.from({ length: 3 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
      );
      try {
        const deadline = Date.now() + 5_000;
        while (front.connections < 3 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 10));
        }
        const extra = await Deno.connect({ hostname: "127.0.0.1", port });
        assert.ok(await closedWithin(extra, 2_000), "the fourth is closed");
        extra.close();
        assert.equal(front.refused, 1);
        assert.equal(front.connections, 3);
      } finally {
        for (const c of held) c.close();
      }
    }, { connectionsPerAddressMax: 3 });
  },
});

Deno.test({
  name: "front: a connection that sends nothing is closed after the first-byte deadline",
  ...opts,
  async fn() {
    await withServer(async (port) => {
      const silent = await Deno.connect({ hostname: "127.0.0.1", port });
      const started = Date.now();
      assert.ok(await closedWithin(silent, 3_000), "closed");
      assert.ok(Date.now() - started >= 250, "not before the deadline");
      silent.close();
    }, { firstByteMs: 300 });
  },
});

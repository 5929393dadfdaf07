/**
 * The test's key encoder (`_key_codec.ts`) against Deno itself: the bytes Deno 2.9.6's client
 * sends for `kv.get(key)` over KV Connect (captured by koi's endpoint handler over a backend
 * that records the ranges it is asked for), and the order `Deno.openKv(":memory:")` lists keys
 * in (the byte order of the encoding).
 */
import assert from "node:assert/strict";
import type { ReadRange } from "../../src/kv_connect/_datapath.ts";
import { kvConnectHandler } from "../../src/kv_connect/_handler.ts";
import { compareBytes, encodeKey } from "./_key_codec.ts";

/** Keys covering every part type and the encoding's edge cases. */
export const CODEC_KEYS: readonly Deno.KvKey[] = [
  ["plain"],
  [""],
  ["nul\0inside", "two"],
  ["ünïcødé ✓ 🐟"],
  [new Uint8Array([])],
  [new Uint8Array([0, 0xff, 0, 1])],
  [0],
  [-0],
  [1],
  [-1],
  [1.5],
  [-1.5],
  [Number.MAX_VALUE],
  [-Number.MIN_VALUE],
  [Infinity],
  [-Infinity],
  [NaN],
  [0n],
  [1n],
  [-1n],
  [255n],
  [256n],
  [-256n],
  [2n ** 63n],
  [2n ** 64n - 1n],
  [2n ** 64n],
  [-(2n ** 64n)],
  [2n ** 100n + 12345n],
  [-(2n ** 100n) - 12345n],
  [true],
  [false],
  ["users", 42, 7n, true, new Uint8Array([9])],
];

// The same token as src/kv_connect/handler_test.ts: tests of one `deno test --parallel` run may
// share a process, and Deno's client reads DENO_KV_ACCESS_TOKEN from the process environment.
const TOKEN = "the-access-token-0123456789";

Deno.test({
  name: "kv connect keys: the encoder gives the bytes Deno's own client sends for every part type",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const seen: ReadRange[] = [];
    const handler = kvConnectHandler({
      read: (ranges) => {
        seen.push(...ranges);
        return Promise.resolve(ranges.map(() => []));
      },
      write: () => Promise.reject(new Error("this test only reads")),
      watch: () => {
        throw new Error("this test only reads");
      },
    }, {
      accessTokens: [TOKEN],
      databaseId: "0b6c1f64-93f4-4d8e-8f3a-5c2a1e9d7b10",
      basePath: "/kv",
    });
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (req) => (await handler(req)) ?? new Response("not found", { status: 404 }),
    );
    Deno.env.set("DENO_KV_ACCESS_TOKEN", TOKEN);
    const kv = await Deno.openKv(`http://127.0.0.1:${server.addr.port}/kv`);
    try {
      for (const key of CODEC_KEYS) {
        seen.length = 0;
        assert.equal((await kv.get(key)).value, null);
        assert.equal(seen.length, 1, `one range for ${Deno.inspect(key)}`);
        const expected = encodeKey(key);
        assert.deepEqual(
          [...seen[0].start],
          [...expected],
          `start of the range of ${Deno.inspect(key)}`,
        );
        assert.deepEqual([...seen[0].end], [...expected, 0], `end of ${Deno.inspect(key)}`);
      }
    } finally {
      kv.close();
      await server.shutdown();
    }
  },
});

Deno.test("kv connect keys: Deno.openKv(':memory:') lists keys in the encoding's byte order", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    for (const [i, key] of CODEC_KEYS.entries()) await kv.set(["order", ...key], i);
    const listed: number[] = [];
    for await (const e of kv.list<number>({ prefix: ["order"] })) listed.push(e.value);
    const expected = CODEC_KEYS.map((key, i) => ({ i, bytes: encodeKey(key) }))
      .sort((a, b) => compareBytes(a.bytes, b.bytes))
      .map((x) => x.i);
    assert.deepEqual(listed, expected);
  } finally {
    kv.close();
  }
});

import assert from "node:assert/strict";
import { ByteSlab, SLAB_BYTES, SLAB_COPY_BYTES_MAX } from "./_byte_slab.ts";
import { decodeCommand, encodeCommand } from "./kv_command.ts";

Deno.test("ByteSlab: small copies share one buffer, are copies, and never overlap", () => {
  const slab = new ByteSlab();
  const src = Uint8Array.from({ length: 150 }, (_, i) => i);
  const copies = Array.from({ length: 1000 }, () => slab.copy(src));
  const buffers = new Set(copies.map((c) => c.buffer));
  assert.equal(buffers.size, Math.ceil((1000 * 150) / Math.floor(SLAB_BYTES / 150) / 150));
  src[0] = 99; // the copies do not follow the source
  for (const c of copies) assert.deepEqual([...c], Array.from({ length: 150 }, (_, i) => i));
  copies[0][1] = 7; // nor each other
  assert.equal(copies[1][1], 1);
  assert.ok(copies.every((c) => c.byteOffset + c.length <= SLAB_BYTES));
});

Deno.test("ByteSlab: a large copy gets a buffer of its own", () => {
  const slab = new ByteSlab();
  const big = new Uint8Array(SLAB_COPY_BYTES_MAX + 1).fill(5);
  const copy = slab.copy(big);
  assert.equal(copy.buffer.byteLength, big.length);
  assert.deepEqual(copy, big);
  assert.notEqual(copy.buffer, big.buffer);
});

const K1 = new TextEncoder().encode("k1");
const K2 = new TextEncoder().encode("k2");

Deno.test("encodeCommand: successive commands are independent, decodable slab views", () => {
  const a = encodeCommand({
    checks: [],
    mutations: [{ type: "set", key: K1, value: new Uint8Array([1, 2]) }],
  });
  const b = encodeCommand({ checks: [], mutations: [{ type: "delete", key: K2 }] });
  assert.equal(a.buffer, b.buffer, "they share a slab");
  assert.deepEqual(decodeCommand(a).mutations, [{
    type: "set",
    key: K1,
    value: new Uint8Array([1, 2]),
  }]);
  assert.deepEqual(decodeCommand(b).mutations, [{ type: "delete", key: K2 }]);
});

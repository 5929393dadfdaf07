import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { msgpackShape } from "./_msgpack_shape.ts";
import { CommandDecodeError } from "./kv_command.ts";
import { decodeRouteCommand, encodeRouteCommand } from "./route_command.ts";

const LIMITS = { depth: 8, values: 100_000 };

Deno.test("msgpack shape: depth and values of every kind of value", () => {
  const samples: [unknown, number, number][] = [
    [null, 0, 1],
    [true, 0, 1],
    [-1, 0, 1],
    [300, 0, 1],
    [70_000, 0, 1],
    [2 ** 40, 0, 1],
    [-(2 ** 40), 0, 1],
    [1.5, 0, 1],
    ["x".repeat(40), 0, 1],
    ["x".repeat(300), 0, 1],
    [new Uint8Array(70_000), 0, 1],
    [[], 0, 1],
    [{}, 0, 1],
    [[1, [2, [3]]], 3, 6],
    [{ a: [1, 2], b: { c: null } }, 2, 9],
    [Array.from({ length: 20 }, (_, i) => i), 1, 21],
    [Array.from({ length: 70_000 }, () => 0), 1, 70_001],
    [Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])), 1, 41],
  ];
  for (const [value, depth, values] of samples) {
    assert.deepEqual(
      msgpackShape(encode(value), { depth: 8, values: 1_000_000 }),
      { depth, values },
      JSON.stringify(value)?.slice(0, 40),
    );
  }
});

Deno.test("msgpack shape: truncated, trailing, unknown bytes and limits refuse", () => {
  const bytes = encode([1, "two", new Uint8Array(10)]);
  for (let cut = 0; cut < bytes.length; cut++) {
    assert.equal(msgpackShape(bytes.subarray(0, cut), LIMITS), undefined, `cut at ${cut}`);
  }
  assert.equal(msgpackShape(new Uint8Array([...bytes, 0]), LIMITS), undefined, "trailing");
  assert.equal(msgpackShape(new Uint8Array([0xc1]), LIMITS), undefined);
  assert.equal(msgpackShape(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]), LIMITS), undefined);
  assert.equal(msgpackShape(encode([[[[[[[[[1]]]]]]]]]), LIMITS), undefined, "depth 9");
  assert.equal(msgpackShape(encode(new Array(100_000).fill(0)), LIMITS), undefined, "values");
});

Deno.test("routing commands: a deeply nested body is refused at once, not decoded", () => {
  // 2 MiB of one-element arrays: decoding it took 0.7 s (found by an attack on a leader).
  const deep = new Uint8Array(2 << 20).fill(0x91);
  deep[deep.length - 1] = 0xc0;
  const started = performance.now();
  assert.throws(() => decodeRouteCommand(deep), CommandDecodeError);
  const inside = encodeRouteCommand({
    type: "stage",
    epoch: 2,
    source: "a",
    puts: [],
    deletes: [],
  });
  // The same nesting inside an otherwise valid stage command.
  const nested = new Uint8Array(inside.length + (1 << 20));
  nested.set(inside.subarray(0, inside.length - 2));
  nested.fill(0x91, inside.length - 2, nested.length - 1);
  nested[nested.length - 1] = 0xc0;
  assert.throws(() => decodeRouteCommand(nested), /Cannot decode a routing command/);
  const ms = performance.now() - started;
  assert.ok(ms < 200, `refused in ${ms.toFixed(0)} ms`);
});

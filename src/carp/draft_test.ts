import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CARP_MIX,
  carpArgmax,
  carpCombine,
  carpHashBytes,
  carpHashString,
  carpMemberHash,
  carpMultipliers,
} from "./_draft.ts";
import { CarpConfigError } from "./_errors.ts";
import { CarpTable } from "./table.ts";

const encoder = new TextEncoder();

// An independent reference of the draft with BigInt arithmetic modulo 2^32.
const MOD = 1n << 32n;
function rotlRef(x: bigint, n: bigint): bigint {
  return ((x << n) | (x >> (32n - n))) % MOD;
}
function hashRef(bytes: Uint8Array): bigint {
  let h = 0n;
  for (const b of bytes) h = (h + rotlRef(h, 19n) + BigInt(b)) % MOD;
  return h;
}
function mixRef(x: bigint): bigint {
  return rotlRef((x + x * BigInt(CARP_MIX)) % MOD, 21n);
}

Deno.test("carp: test vector: node-1, node-2 with equal load factors, key foo goes to node-1", () => {
  const table = new CarpTable({
    scheme: "carp",
    epoch: 1,
    members: [{ id: "node-1", loadFactor: 1 }, { id: "node-2", loadFactor: 1 }],
  });
  assert.equal(table.owner("foo"), "node-1");
  assert.equal(table.owner(encoder.encode("foo")), "node-1");
  // the scores behind it (pinned, and checked against the BigInt reference below)
  const k = carpHashString("foo");
  assert.equal(k, 0x09d81ac4);
  assert.equal(carpMemberHash("node-1"), 0x0c893e27);
  assert.equal(carpMemberHash("node-2"), 0x3955888a);
  assert.ok(carpCombine(k, carpMemberHash("node-1")) > carpCombine(k, carpMemberHash("node-2")));
});

Deno.test("carp: test vector: load factors 0.2, 0.4, 0.4 give 0.8434327, 1.0888669, 1.0888669", () => {
  const x = carpMultipliers([
    { id: "a", loadFactor: 0.2 },
    { id: "b", loadFactor: 0.4 },
    { id: "c", loadFactor: 0.4 },
  ]);
  assert.ok(Math.abs(x[0] - 0.8434327) < 5e-8, `X_a = ${x[0]}`);
  assert.ok(Math.abs(x[1] - 1.0888669) < 5e-8, `X_b = ${x[1]}`);
  assert.ok(Math.abs(x[2] - 1.0888669) < 5e-8, `X_c = ${x[2]}`);
  // the public Rust implementation's truncated values
  assert.equal(Math.trunc(x[0] * 1e6) / 1e6, 0.843432);
  assert.equal(Math.trunc(x[1] * 1e6) / 1e6, 1.088866);
});

Deno.test("carp: multipliers: X_1 = (K p_1)^(1/K), equal load factors give 1, input order does not matter", () => {
  const x = carpMultipliers([
    { id: "c", loadFactor: 3 },
    { id: "a", loadFactor: 1 },
    { id: "b", loadFactor: 2 },
  ]);
  assert.equal(x[1], Math.pow(3 * (1 / 6), 1 / 3));
  assert.deepEqual(
    carpMultipliers([
      { id: "a", loadFactor: 1 },
      { id: "b", loadFactor: 2 },
      { id: "c", loadFactor: 3 },
    ]),
    [x[1], x[2], x[0]],
  );
  for (const v of carpMultipliers([1, 2, 3, 4].map((i) => ({ id: `n${i}`, loadFactor: 5 })))) {
    assert.ok(Math.abs(v - 1) < 1e-15, `multiplier ${v}`);
  }
  assert.deepEqual(carpMultipliers([{ id: "only", loadFactor: 0.3 }]), [1]);
});

Deno.test("carp: hashBytes, memberHash and combine equal a BigInt reference of the draft", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.string({ minLength: 1 }), (bytes, id) => {
      const k = carpHashBytes(bytes);
      assert.equal(BigInt(k), hashRef(bytes));
      const m = carpMemberHash(id);
      assert.equal(BigInt(m), mixRef(hashRef(encoder.encode(id))));
      assert.equal(BigInt(carpCombine(k, m)), mixRef(BigInt(k ^ m) & (MOD - 1n)));
    }),
    { numRuns: 1000 },
  );
});

Deno.test("carp: keys are hashed as their UTF-8 bytes, case preserved", () => {
  assert.equal(carpHashString("ключ"), carpHashBytes(encoder.encode("ключ")));
  assert.equal(carpHashString(""), 0);
  assert.equal(carpHashString("a"), 0x61);
  assert.notEqual(carpHashString("Foo"), carpHashString("foo"));
});

Deno.test("carp: the mix drops the top bit of k ^ m and never sets bit 21", () => {
  fc.assert(
    fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), (k, m) => {
      const c = carpCombine(k, m);
      assert.equal(c, carpCombine(k, (m ^ 0x80000000) >>> 0));
      assert.equal(c & (1 << 21), 0);
    }),
  );
});

Deno.test("carp: ties go to the first member (the caller orders members by id)", () => {
  const hashes = Uint32Array.from([0x1234, 0x1234]);
  const key = encoder.encode("any");
  assert.equal(carpArgmax(key, key.length, { hashes, multipliers: Float64Array.from([1, 1]) }), 0);
  assert.equal(carpArgmax(key, key.length, { hashes, multipliers: Float64Array.from([1, 2]) }), 1);
});

Deno.test("carp: multipliers reject a load factor that is not finite and > 0", () => {
  for (const loadFactor of [0, -1, NaN, Infinity]) {
    assert.throws(
      () => carpMultipliers([{ id: "a", loadFactor: 1 }, { id: "b", loadFactor }]),
      CarpConfigError,
    );
  }
});

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CARP64_SEED_HI,
  CARP64_SEED_LO,
  carp64Argmax,
  carp64Combine,
  carp64KeyHash,
  carp64MemberHash,
  carp64Score,
  type Hash64,
  hex64,
  murmur3x86_32,
  negLogUnit,
} from "./_carp64.ts";

const encoder = new TextEncoder();

// An independent reference of SplitMix64's finalizer with BigInt arithmetic modulo 2^64.
const MASK64 = (1n << 64n) - 1n;
function mixRef(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}
function toBig(h: Hash64): bigint {
  return (BigInt(h[0]) << 32n) | BigInt(h[1]);
}
const hash64 = fc.tuple(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }));

Deno.test("carp64: murmur3x86_32 matches the published MurmurHash3_x86_32 vectors", () => {
  const cases: [string, number, number][] = [
    ["", 0, 0],
    ["", 1, 0x514e28b7],
    ["", 0xffffffff, 0x81f16f39],
    ["test", 0, 0xba6bd213],
    ["hello", 0, 0x248bfa47],
    ["Hello, world!", 0x9747b28c, 0x24884cba],
    ["The quick brown fox jumps over the lazy dog", 0x9747b28c, 0x2fa826cd],
  ];
  for (const [text, seed, expected] of cases) {
    assert.equal(murmur3x86_32(encoder.encode(text), seed), expected, `${text} / ${seed}`);
  }
});

Deno.test("carp64: the key hash is murmur3 under SEED_HI and SEED_LO, strings as UTF-8", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 70 }), fc.string(), (bytes, text) => {
      assert.deepEqual(carp64KeyHash(bytes), [
        murmur3x86_32(bytes, CARP64_SEED_HI),
        murmur3x86_32(bytes, CARP64_SEED_LO),
      ]);
      assert.deepEqual(carp64KeyHash(text), carp64KeyHash(encoder.encode(text)));
    }),
    { numRuns: 1000 },
  );
});

Deno.test("carp64: the combination is SplitMix64's finalizer of k XOR m (its published outputs)", () => {
  // SplitMix64 seeded with 0: outputs are mix(n * 0x9e3779b97f4a7c15)
  assert.equal(hex64(carp64Combine([0x9e3779b9, 0x7f4a7c15], [0, 0])), "0xe220a8397b1dcdaf");
  assert.equal(hex64(carp64Combine([0x3c6ef372, 0xfe94f82a], [0, 0])), "0x6e789e6aa1b965f4");
  assert.equal(hex64(carp64Combine([0xdaa66d2c, 0x7ddf743f], [0, 0])), "0x06c45d188009454f");
  fc.assert(
    fc.property(hash64, hash64, (k, m) => {
      assert.equal(toBig(carp64Combine(k, m)), mixRef(toBig(k) ^ toBig(m)));
    }),
    { numRuns: 5000 },
  );
});

Deno.test("carp64: the member hash is the finalizer of the id's key hash", () => {
  for (const id of ["a", "node-1", "ключ"]) {
    assert.equal(toBig(carp64MemberHash(id)), mixRef(toBig(carp64KeyHash(id))));
  }
});

Deno.test("carp64: pinned vectors (docs/carp.md)", () => {
  assert.equal(hex64(carp64KeyHash("")), "0x1388a0fbede1521e");
  assert.equal(hex64(carp64KeyHash("foo")), "0x0a5099291d3a7e2b");
  assert.equal(hex64(carp64KeyHash("user:42")), "0x93a290821b15610f");
  assert.equal(hex64(carp64KeyHash("ключ")), "0x30c0fbbca2ec3372");
  assert.equal(hex64(carp64MemberHash("a")), "0xb13bc322c64ae799");
  assert.equal(hex64(carp64MemberHash("b")), "0x7e4d2139f9cd5c08");
  assert.equal(hex64(carp64MemberHash("c")), "0x918f28bc3c99625f");
  const k = carp64KeyHash("foo");
  const expected: [string, number, string, number][] = [
    ["a", 1, "0xbe9836fb13018978", 3.3894991042181943],
    ["b", 2, "0x9cf6fdcabb7a442b", 4.0886768256248684],
    ["c", 3, "0x095fd34290dee8a7", 0.9071107428968564],
  ];
  for (const [id, loadFactor, x, score] of expected) {
    const m = carp64MemberHash(id);
    assert.equal(hex64(carp64Combine(k, m)), x);
    assert.ok(Math.abs(carp64Score(k, m, loadFactor) - score) < 1e-12 * score, `${id}`);
  }
});

Deno.test("carp64: h = (u + 1/2) / 2^53 from the top 53 bits, never 0 or 1", () => {
  const ln = (u: number) => -Math.log((u + 0.5) / 2 ** 53);
  // u = 0 and u = 2^53 - 1: both ends stay finite and positive
  assert.equal(negLogUnit(0, 0), ln(0));
  assert.equal(negLogUnit(0, 0x7ff), ln(0)); // the low 11 bits are dropped
  const top = negLogUnit(0xffffffff, 0xffffffff);
  assert.ok(top > 0 && Number.isFinite(top));
  assert.ok(Math.abs(top - 0.5 / 2 ** 53) < 1e-30);
  assert.ok(Math.abs(negLogUnit(0x80000000, 0) - Math.LN2) < 1e-15);
  fc.assert(
    fc.property(hash64, ([hi, lo]) => {
      const u = Number(toBig([hi, lo]) >> 11n);
      const expected = ln(u);
      const got = negLogUnit(hi, lo);
      assert.ok(got > 0 && Number.isFinite(got));
      if (hi < 0x80000000) assert.equal(got, expected);
      else assert.ok(Math.abs(got - expected) <= 1e-15 + 1e-9 * expected, `${u}`);
    }),
    { numRuns: 5000 },
  );
});

Deno.test("carp64: argmax (with its skipped logarithms) equals the plain argmax of the scores", () => {
  const members = fc.uniqueArray(
    fc.record({
      id: fc.string({ minLength: 1, maxLength: 6 }),
      loadFactor: fc.oneof(fc.double({ min: 1e-3, max: 1e3, noNaN: true }), fc.constant(1)),
    }),
    { minLength: 1, maxLength: 12, selector: (m) => m.id },
  );
  fc.assert(
    fc.property(members, fc.uint8Array({ maxLength: 24 }), (list, key) => {
      const hashes = list.map((m) => carp64MemberHash(m.id));
      const got = carp64Argmax(key, key.length, {
        hi: Uint32Array.from(hashes, (h) => h[0]),
        lo: Uint32Array.from(hashes, (h) => h[1]),
        loadFactors: Float64Array.from(list, (m) => m.loadFactor),
      });
      const k = carp64KeyHash(key);
      let best = 0;
      let bestScore = -Infinity;
      for (let i = 0; i < list.length; i++) {
        const score = carp64Score(k, hashes[i], list[i].loadFactor);
        if (score > bestScore) [best, bestScore] = [i, score];
      }
      assert.equal(got, best);
    }),
    { numRuns: 3000 },
  );
});

Deno.test("carp64: ties go to the first member (the caller orders members by id)", () => {
  const key = encoder.encode("any");
  const [hi, lo] = carp64MemberHash("x");
  const lanes = { hi: Uint32Array.from([hi, hi]), lo: Uint32Array.from([lo, lo]) };
  assert.equal(carp64Argmax(key, key.length, { ...lanes, loadFactors: Float64Array.of(1, 1) }), 0);
  assert.equal(carp64Argmax(key, key.length, { ...lanes, loadFactors: Float64Array.of(1, 2) }), 1);
});

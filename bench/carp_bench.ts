/**
 * CARP routing: `owner()` latency of both schemes with 3, 10 and 100 clusters, and (printed once
 * when the module loads) the distribution report that compares the draft-exact `carp` with
 * koi's `carp64` side by side over 10^6 random keys: evenness of equal clusters, shares of
 * load factors 1:2:3:4, and the keys moved by adding a cluster or changing a load factor.
 *
 *   deno bench bench/carp_bench.ts
 *
 * @module
 */
import { type CarpMember, type CarpScheme, CarpTable } from "../src/carp/mod.ts";

const SCHEMES: readonly CarpScheme[] = ["carp", "carp64"];
const REPORT_KEYS = 1_000_000;

/** Seeded xorshift32 as a base-36 string: deterministic keys, runs compare. */
function keyGenerator(seed: number): () => string {
  let s = seed | 0;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0).toString(36);
  };
  return () => `k:${next()}${next()}`;
}

function members(weights: readonly number[], name = (i: number) => `cluster-${i + 1}`) {
  return weights.map((loadFactor, i): CarpMember => ({ id: name(i), loadFactor }));
}

function equal(count: number, name?: (i: number) => string): CarpMember[] {
  return members(Array.from({ length: count }, () => 1), name);
}

function ownersOf(scheme: CarpScheme, list: readonly CarpMember[], keys: readonly string[]) {
  const table = new CarpTable({ scheme, epoch: 1, members: list });
  return keys.map((key) => table.owner(key));
}

function shares(list: readonly CarpMember[], owners: readonly string[]): number[] {
  const counts = new Map<string, number>(list.map((m) => [m.id, 0]));
  for (const id of owners) counts.set(id, counts.get(id)! + 1);
  return list.map((m) => counts.get(m.id)! / owners.length);
}

function maxOverMean(list: readonly CarpMember[], owners: readonly string[]): string {
  const s = shares(list, owners);
  return `${(Math.max(...s) * s.length).toFixed(3)} (min ${
    (Math.min(...s) * s.length).toFixed(3)
  })`;
}

/** Percent of keys that changed owner, and of those that moved between `unchanged` members. */
function moved(before: readonly string[], after: readonly string[], unchanged: Set<string>) {
  let all = 0;
  let between = 0;
  for (let i = 0; i < before.length; i++) {
    if (before[i] === after[i]) continue;
    all++;
    if (unchanged.has(before[i]) && unchanged.has(after[i])) between++;
  }
  const pct = (n: number) => `${(100 * n / before.length).toFixed(2)} %`;
  return [pct(all), pct(between)];
}

function report(): void {
  const started = performance.now();
  const next = keyGenerator(20240611);
  const keys = Array.from({ length: REPORT_KEYS }, next);
  const sequential = Array.from(
    { length: REPORT_KEYS },
    (_, i) => `user:${String(i).padStart(7, "0")}`,
  );
  const rows: [string, string, string, string][] = [];
  const row = (what: string, f: (scheme: CarpScheme) => string, ideal: string) => {
    rows.push([what, f("carp"), f("carp64"), ideal]);
  };

  const ten = equal(10);
  const eleven = equal(11);
  const letters = equal(10, (i) => String.fromCharCode(97 + i));
  const twenty = equal(20);
  const tenOwners = new Map(SCHEMES.map((s) => [s, ownersOf(s, ten, keys)]));
  row(
    "10 equal clusters (cluster-1..10): max/mean",
    (s) => maxOverMean(ten, tenOwners.get(s)!),
    "1",
  );
  row(
    "10 equal clusters (a..j): max/mean",
    (s) => maxOverMean(letters, ownersOf(s, letters, keys)),
    "1",
  );
  row("20 equal clusters: max/mean", (s) => maxOverMean(twenty, ownersOf(s, twenty, keys)), "1");
  row(
    "10 equal, sequential keys user:0000000..: max/mean",
    (s) => maxOverMean(ten, ownersOf(s, ten, sequential)),
    "1",
  );

  const weighted = members([1, 2, 3, 4]);
  const weightedOwners = new Map(SCHEMES.map((s) => [s, ownersOf(s, weighted, keys)]));
  const fmtShares = (s: number[]) => s.map((x) => x.toFixed(3).slice(1)).join("/");
  row(
    "load factors 1:2:3:4: shares",
    (s) => fmtShares(shares(weighted, weightedOwners.get(s)!)),
    ".100/.200/.300/.400",
  );

  const old = new Set(ten.map((m) => m.id));
  const added = new Map(
    SCHEMES.map((s) => [s, moved(tenOwners.get(s)!, ownersOf(s, eleven, keys), old)]),
  );
  row("add an 11th equal cluster: keys moved", (s) => added.get(s)![0], "9.09 %");
  row("  of them between the old 10 clusters", (s) => added.get(s)![1], "0.00 %");

  const changed = members([1, 3, 3, 4]);
  const others = new Set(["cluster-1", "cluster-3", "cluster-4"]);
  const change = new Map(
    SCHEMES.map((s) => [s, moved(weightedOwners.get(s)!, ownersOf(s, changed, keys), others)]),
  );
  row("1:2:3:4 -> 1:3:3:4: keys moved", (s) => change.get(s)![0], "7.27 %");
  row("  of them between clusters 1, 3 and 4", (s) => change.get(s)![1], "0.00 %");

  const widths = [0, 1, 2, 3].map((c) =>
    Math.max(...rows.map((r) => r[c].length), ["", "carp", "carp64", "ideal"][c].length)
  );
  const line = (r: readonly string[]) =>
    r.map((cell, c) => cell.padEnd(widths[c])).join("  ").trimEnd();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`\nCARP distribution: ${REPORT_KEYS.toLocaleString("en")} keys (${seconds} s)`);
  console.log(line(["", "carp", "carp64", "ideal"]));
  for (const r of rows) console.log(line(r));
  console.log();
}

report();

// owner() latency: realistic keys, cycled so that no call is constant-folded
const LATENCY_KEYS = Array.from({ length: 4096 }, (_, i) => `user:${(i * 7919) % 1_000_000}`);
/** Where each call's result goes, so that it is used. */
export let sink = 0;
for (const count of [3, 10, 100]) {
  for (const scheme of SCHEMES) {
    const table = new CarpTable({ scheme, epoch: 1, members: equal(count) });
    let i = 0;
    Deno.bench({
      group: `owner, ${count} clusters`,
      name: scheme,
      baseline: scheme === "carp",
      fn() {
        sink ^= table.owner(LATENCY_KEYS[i++ & 4095]).length;
      },
    });
  }
}

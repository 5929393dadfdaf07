import assert from "node:assert/strict";
import {
  countOwners,
  distKey,
  distMembers,
  distSvg,
  distWork,
  formatDist,
  moveStats,
  ownerIndices,
  runDist,
  shareStats,
} from "./_dist.ts";
import { CarpTable } from "./table.ts";

Deno.test("dist: keys are key-<i>, members cluster-1..K, equal or 1..K", () => {
  assert.equal(distKey(0), "key-0");
  assert.equal(distKey(41), "key-41");
  assert.deepEqual(distMembers(3, false).map((m) => [m.id, m.loadFactor]), [
    ["cluster-1", 1],
    ["cluster-2", 1],
    ["cluster-3", 1],
  ]);
  assert.deepEqual(distMembers(3, true).map((m) => m.loadFactor), [1, 2, 3]);
});

Deno.test("dist: moveStats on a hand-checked case", () => {
  // key:    0  1  2  3  4  5  6  7
  // before: 0  1  2  0  1  2  0  1
  // after:  0  3  2  3  1  0  0  1   (3 = the added member)
  // moved: keys 1, 3 (to the new member) and 5 (2 -> 0, between old members): 3/8
  const before = Uint32Array.from([0, 1, 2, 0, 1, 2, 0, 1]);
  const after = Uint32Array.from([0, 3, 2, 3, 1, 0, 0, 1]);
  assert.deepEqual(moveStats(before, after, 3, 0.25), {
    moved: 3 / 8,
    ideal: 0.25,
    movedBetweenOthers: 1 / 8,
  });
  assert.deepEqual(moveStats(before, before, 3, 0.25).moved, 0);
  assert.throws(() => moveStats(before, after.subarray(1), 3, 0.25), RangeError);
});

Deno.test("dist: ownerIndices agree with CarpTable.owner on a tiny case", () => {
  const members = distMembers(3, false);
  const ids = [...members.map((m) => m.id), "cluster-4"];
  for (const scheme of ["carp", "carp64"] as const) {
    const table = new CarpTable({ scheme, epoch: 1, members });
    const owners = ownerIndices(scheme, members, ids, 20);
    for (let i = 0; i < 20; i++) assert.equal(ids[owners[i]], table.owner(`key-${i}`));
  }
});

Deno.test("dist: shareStats of known counts", () => {
  const s = shareStats([30, 10, 20, 40], [1, 1, 1, 1]);
  assert.deepEqual(s.shares, [0.3, 0.1, 0.2, 0.4]);
  assert.equal(s.maxOverMean, 1.6);
  assert.equal(s.minOverMean, 0.4);
  // ratios 1.2, 0.4, 0.8, 1.6: mean 1, variance (0.04 + 0.36 + 0.04 + 0.36) / 4 = 0.2
  assert.ok(Math.abs(s.cv - Math.sqrt(0.2)) < 1e-12);
  assert.ok(Math.abs(s.maxRelDev - 0.6) < 1e-12);
  const w = shareStats([10, 20, 30], [1, 2, 3]);
  assert.equal(w.maxOverMean, 1);
  assert.equal(w.minOverMean, 1);
  assert.equal(w.cv, 0);
});

Deno.test("dist: shares sum to N and moved fractions are exact (small N)", () => {
  const keys = 5_000;
  let progressed = 0;
  const report = runDist({ keys, clusters: [3, 4], onProgress: (n) => (progressed += n) });
  assert.equal(progressed, distWork({ keys, clusters: [3, 4] }));
  assert.equal(report.cases.length, 4);
  for (const c of report.cases) {
    for (const s of c.schemes) {
      assert.equal(s.counts.reduce((a, b) => a + b, 0), keys, `${c.name} ${s.scheme}`);
      assert.ok(Math.abs(s.shares.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    }
    const carp64 = c.schemes.find((s) => s.scheme === "carp64")!;
    // carp64 is rendezvous hashing: only keys of the removed member move, only to the added one
    assert.equal(carp64.remove.moved, carp64.shares[c.clusters - 1]);
    assert.equal(carp64.remove.movedBetweenOthers, 0);
    assert.equal(carp64.add.movedBetweenOthers, 0);
  }
  // carp64, adding: the moved keys are exactly those the new member owns in the bigger table
  const members = distMembers(3, false);
  const ids = [...members.map((m) => m.id), "cluster-4"];
  const before = ownerIndices("carp64", members, ids, keys);
  const after = ownerIndices("carp64", distMembers(4, false), ids, keys);
  const added = report.cases[0].schemes.find((s) => s.scheme === "carp64")!.add;
  assert.equal(added.moved, countOwners(after, 4)[3] / keys);
  assert.equal(moveStats(before, after, 3, 0.25).moved, added.moved);
  assert.equal(added.ideal, 1 / 4);
  assert.equal(report.cases[0].schemes[0].remove.ideal, 1 / 3);
});

Deno.test("dist: carp64 weighted shares follow load factors within 2 % at N = 10^5", () => {
  const keys = 100_000;
  const members = distMembers(3, true); // 1, 2, 3
  const ids = members.map((m) => m.id);
  const counts = countOwners(ownerIndices("carp64", members, ids, keys), 3);
  const stats = shareStats(counts, [1, 2, 3]);
  // the smallest share, 1/6, has a standard deviation of 0.7 % of itself at this N
  assert.ok(stats.maxRelDev < 0.02, `max relative deviation ${stats.maxRelDev}`);
  stats.shares.forEach((s, i) => assert.ok(Math.abs(s - (i + 1) / 6) < 0.005, `share ${i}: ${s}`));
});

Deno.test("dist: the table and the SVG name every case and cluster", () => {
  const report = runDist({ keys: 500, clusters: [3] });
  const text = formatDist(report);
  for (const name of ["3 equal", "3 weighted 1..3", "cluster-3", "carp64", "max/mean"]) {
    assert.ok(text.includes(name), name);
  }
  const svg = distSvg(report);
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  assert.ok(svg.trimEnd().endsWith("</svg>"));
  // 2 cases x 3 clusters x 2 schemes bars, plus the legend's 2 swatches and the background
  assert.equal(svg.match(/<rect /g)!.length, 12 + 2 + 1);
  assert.ok(!svg.includes("NaN"));
});

/**
 * The distribution benchmark behind `koi bench dist` (issue 11), as pure computation: no I/O,
 * no clock. For N deterministic keys (`key-<i>`, hashed as UTF-8) and K clusters
 * (`cluster-1..K`), with equal load factors and with load factors 1..K, under both schemes:
 * per-cluster shares, max/mean and min/mean, the coefficient of variation, and the fraction
 * of keys moved when a cluster is added (`cluster-<K+1>`) or removed (`cluster-<K>`).
 *
 * With unequal load factors every ratio is taken against the expected count
 * `N * w_i / sum(w)`: "max/mean" is the largest `count_i / expected_i` (for equal load factors
 * that is max count / mean count), "CV" the population standard deviation of those ratios.
 *
 * Not exported from `mod.ts`: it is a tool, not part of routing.
 *
 * @module
 */

import type { CarpMember, CarpScheme } from "./_types.ts";
import { CarpTable } from "./table.ts";

/** The schemes the benchmark compares, in column order. */
export const DIST_SCHEMES: readonly CarpScheme[] = Object.freeze(["carp", "carp64"] as const);

/** How often (in keys) {@linkcode runDist} reports progress. */
export const DIST_PROGRESS_STEP = 16_384;

/** The key number `i` of the benchmark: `key-<i>`. */
export function distKey(i: number): string {
  return `key-${i}`;
}

/** The id of cluster number `i` (1-based): `cluster-<i>`. */
export function distClusterId(i: number): string {
  return `cluster-${i}`;
}

/** The base members of a case: `cluster-1..count` with the given load factor per index. */
export function distMembers(count: number, weighted: boolean): CarpMember[] {
  return Array.from({ length: count }, (_, i) => ({
    id: distClusterId(i + 1),
    loadFactor: weighted ? i + 1 : 1,
  }));
}

/**
 * The owner of keys `0..keys-1` as an index into `ids` (the ids of every member that appears
 * in any table of the case, so that owners of different tables compare). `onProgress` gets the
 * number of keys done since its previous call.
 */
export function ownerIndices(
  scheme: CarpScheme,
  members: readonly CarpMember[],
  ids: readonly string[],
  keys: number,
  onProgress?: (advance: number) => void,
): Uint32Array {
  const table = new CarpTable({ scheme, epoch: 1, members });
  const index = new Map(ids.map((id, i) => [id, i]));
  const out = new Uint32Array(keys);
  let reported = 0;
  for (let i = 0; i < keys; i++) {
    out[i] = index.get(table.owner(distKey(i)))!;
    if (onProgress !== undefined && i + 1 - reported === DIST_PROGRESS_STEP) {
      onProgress(DIST_PROGRESS_STEP);
      reported = i + 1;
    }
  }
  if (onProgress !== undefined && keys > reported) onProgress(keys - reported);
  return out;
}

/** Keys per member index (`size` entries). */
export function countOwners(owners: Uint32Array, size: number): number[] {
  const counts = new Array<number>(size).fill(0);
  for (let i = 0; i < owners.length; i++) counts[owners[i]]++;
  return counts;
}

/** Evenness of one table's counts against its load factors. */
export interface ShareStats {
  /** Keys per member, in member order. */
  readonly counts: readonly number[];
  /** `counts[i] / N`. */
  readonly shares: readonly number[];
  /** `w_i / sum(w)`: the share each member should get. */
  readonly idealShares: readonly number[];
  /** Largest `count_i / expected_i` (1 is perfect). */
  readonly maxOverMean: number;
  /** Smallest `count_i / expected_i` (1 is perfect). */
  readonly minOverMean: number;
  /** Coefficient of variation: population standard deviation of `count_i / expected_i`. */
  readonly cv: number;
  /** Largest `|share_i / idealShare_i - 1|`: how far a share is from its load factor. */
  readonly maxRelDev: number;
}

/** {@linkcode ShareStats} of `counts` (member order) against `loadFactors` (same order). */
export function shareStats(counts: readonly number[], loadFactors: readonly number[]): ShareStats {
  const total = counts.reduce((a, b) => a + b, 0);
  const weight = loadFactors.reduce((a, b) => a + b, 0);
  const idealShares = loadFactors.map((w) => w / weight);
  const shares = counts.map((c) => (total === 0 ? 0 : c / total));
  const ratios = shares.map((s, i) => s / idealShares[i]);
  const mean = ratios.reduce((a, b) => a + b, 0) / ratios.length;
  const variance = ratios.reduce((a, r) => a + (r - mean) ** 2, 0) / ratios.length;
  return {
    counts: [...counts],
    shares,
    idealShares,
    maxOverMean: Math.max(...ratios),
    minOverMean: Math.min(...ratios),
    cv: Math.sqrt(variance) / mean,
    maxRelDev: Math.max(...ratios.map((r) => Math.abs(r - 1))),
  };
}

/** Keys that changed owner between two tables. */
export interface MoveStats {
  /** Fraction of all keys whose owner changed. */
  readonly moved: number;
  /** What consistent hashing promises: the changed member's load factor over the total. */
  readonly ideal: number;
  /** Fraction of all keys that moved between two members other than `changed`. */
  readonly movedBetweenOthers: number;
}

/**
 * Compares owners (indices into one id list) before and after a change; `changed` is the
 * index of the member added or removed, `ideal` the fraction that should move.
 */
export function moveStats(
  before: Uint32Array,
  after: Uint32Array,
  changed: number,
  ideal: number,
): MoveStats {
  if (before.length !== after.length) throw new RangeError("owner arrays differ in length");
  let moved = 0;
  let between = 0;
  for (let i = 0; i < before.length; i++) {
    if (before[i] === after[i]) continue;
    moved++;
    if (before[i] !== changed && after[i] !== changed) between++;
  }
  const n = before.length || 1;
  return { moved: moved / n, ideal, movedBetweenOthers: between / n };
}

/** One scheme's results for one case. */
export interface DistSchemeResult extends ShareStats {
  /** The scheme. */
  readonly scheme: CarpScheme;
  /** Adding `cluster-<K+1>` (load factor 1 for equal cases, K+1 for weighted ones). */
  readonly add: MoveStats;
  /** Removing `cluster-<K>`. */
  readonly remove: MoveStats;
}

/** One case: K clusters with their load factors, both schemes. */
export interface DistCase {
  /** E.g. `"10 equal"` or `"10 weighted 1..10"`. */
  readonly name: string;
  /** K. */
  readonly clusters: number;
  /** The members of the base table. */
  readonly members: readonly CarpMember[];
  /** One result per scheme, in {@linkcode DIST_SCHEMES} order. */
  readonly schemes: readonly DistSchemeResult[];
}

/** The whole benchmark's result (what `--json` prints). */
export interface DistReport {
  /** N. */
  readonly keys: number;
  /** How keys are named. */
  readonly keyFormat: "key-<i>, i = 0..N-1, UTF-8";
  /** The cases, for each K an equal and a weighted one. */
  readonly cases: readonly DistCase[];
}

/** What {@linkcode runDist} measures. */
export interface DistOptions {
  /** N, the number of keys (>= 1). */
  readonly keys: number;
  /** The cluster counts K to sweep (each >= 2). */
  readonly clusters: readonly number[];
  /** Gets the number of key lookups done since its previous call. */
  readonly onProgress?: (advance: number) => void;
}

/** Total lookups {@linkcode runDist} makes: for progress bars. */
export function distWork(options: Pick<DistOptions, "keys" | "clusters">): number {
  // per K: 2 cases x 2 schemes x 3 tables (base, added, removed)
  return options.keys * options.clusters.length * 2 * DIST_SCHEMES.length * 3;
}

/** Runs the benchmark: for each K, equal and weighted load factors, both schemes. */
export function runDist(options: DistOptions): DistReport {
  const { keys, onProgress } = options;
  if (!Number.isInteger(keys) || keys < 1) throw new RangeError(`keys must be >= 1: ${keys}`);
  const cases: DistCase[] = [];
  for (const k of options.clusters) {
    if (!Number.isInteger(k) || k < 2) throw new RangeError(`clusters must be >= 2: ${k}`);
    for (const weighted of [false, true]) {
      const members = distMembers(k, weighted);
      const addedMember = { id: distClusterId(k + 1), loadFactor: weighted ? k + 1 : 1 };
      const ids = [...members.map((m) => m.id), addedMember.id];
      const loadFactors = members.map((m) => m.loadFactor);
      const weight = loadFactors.reduce((a, b) => a + b, 0);
      const schemes = DIST_SCHEMES.map((scheme): DistSchemeResult => {
        const base = ownerIndices(scheme, members, ids, keys, onProgress);
        const added = ownerIndices(scheme, [...members, addedMember], ids, keys, onProgress);
        const removed = ownerIndices(scheme, members.slice(0, -1), ids, keys, onProgress);
        return {
          scheme,
          ...shareStats(countOwners(base, k), loadFactors),
          add: moveStats(
            base,
            added,
            k,
            addedMember.loadFactor / (weight + addedMember.loadFactor),
          ),
          remove: moveStats(base, removed, k - 1, members[k - 1].loadFactor / weight),
        };
      });
      const name = weighted ? `${k} weighted 1..${k}` : `${k} equal`;
      cases.push({ name, clusters: k, members, schemes });
    }
  }
  return { keys, keyFormat: "key-<i>, i = 0..N-1, UTF-8", cases };
}

const pct = (x: number, digits = 2) => `${(100 * x).toFixed(digits)} %`;

function table(rows: readonly (readonly string[])[], rightAlign: (c: number) => boolean): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) =>
    r.map((cell, c) => (rightAlign(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join("  ").trimEnd()
  ).join("\n");
}

/** The plain-text report: a summary table, then the shares per cluster of each case. */
export function formatDist(report: DistReport): string {
  const summary: string[][] = [[
    "case",
    "scheme",
    "max/mean",
    "min/mean",
    "CV",
    "max |dev|",
    "add: moved",
    "ideal",
    "between old",
    "remove: moved",
    "ideal",
    "between rest",
  ]];
  for (const c of report.cases) {
    for (const s of c.schemes) {
      summary.push([
        c.name,
        s.scheme,
        s.maxOverMean.toFixed(4),
        s.minOverMean.toFixed(4),
        s.cv.toFixed(4),
        pct(s.maxRelDev),
        pct(s.add.moved, 3),
        pct(s.add.ideal, 3),
        pct(s.add.movedBetweenOthers, 3),
        pct(s.remove.moved, 3),
        pct(s.remove.ideal, 3),
        pct(s.remove.movedBetweenOthers, 3),
      ]);
    }
  }
  const parts = [
    `CARP distribution: ${report.keys.toLocaleString("en")} keys (${report.keyFormat})`,
    "max/mean, min/mean, CV and max |dev| are of count / expected count (expected = N * w / sum w);",
    "add: cluster-<K+1> joins (load factor 1, or K+1 when weighted); remove: cluster-<K> leaves.",
    "",
    table(summary, (c) => c >= 2),
  ];
  for (const c of report.cases) {
    const rows: string[][] = [["cluster", "load", "ideal", ...c.schemes.map((s) => s.scheme)]];
    c.members.forEach((m, i) => {
      rows.push([
        m.id,
        String(m.loadFactor),
        pct(c.schemes[0].idealShares[i], 3),
        ...c.schemes.map((s) => pct(s.shares[i], 3)),
      ]);
    });
    parts.push("", `Shares, ${c.name}:`, table(rows, (col) => col >= 1));
  }
  return parts.join("\n");
}

const escapeXml = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Bar colours of the schemes, in {@linkcode DIST_SCHEMES} order. */
const COLOURS = ["#d95f02", "#1b9e77"];

/**
 * A self-contained SVG: one panel per case, for each cluster the share under each scheme side
 * by side, with the ideal share (the load factor's) as a black tick.
 */
export function distSvg(report: DistReport): string {
  const panelHeight = 260;
  const top = 40;
  const left = 60;
  const plotHeight = 170;
  const maxK = Math.max(...report.cases.map((c) => c.clusters));
  const slot = Math.max(8, Math.min(60, Math.floor(1100 / maxK)));
  const width = left + 20 + slot * maxK;
  const height = top + panelHeight * report.cases.length;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="18" font-size="14">CARP shares per cluster, ${
      report.keys.toLocaleString("en")
    } keys</text>`,
  ];
  DIST_SCHEMES.forEach((scheme, i) => {
    const x = left + 330 + i * 90;
    out.push(
      `<rect x="${x}" y="8" width="12" height="12" fill="${COLOURS[i]}"/>`,
      `<text x="${x + 16}" y="18">${scheme}</text>`,
    );
  });
  out.push(
    `<line x1="${left + 520}" y1="14" x2="${left + 540}" y2="14" stroke="black" stroke-width="2"/>`,
    `<text x="${left + 544}" y="18">ideal</text>`,
  );
  report.cases.forEach((c, p) => {
    const y0 = top + p * panelHeight + 20; // top of the plot area
    const base = y0 + plotHeight;
    const peak = Math.max(...c.schemes.flatMap((s) => [...s.shares, ...s.idealShares]));
    const scale = plotHeight / (peak * 1.1);
    const stats = c.schemes.map((s) => `${s.scheme} max/mean ${s.maxOverMean.toFixed(3)}`);
    out.push(
      `<text x="${left}" y="${y0 - 6}" font-size="12">${
        escapeXml(`${c.name}: ${stats.join(", ")}`)
      }</text>`,
    );
    out.push(
      `<line x1="${left}" y1="${base}" x2="${
        left + slot * c.clusters
      }" y2="${base}" stroke="#444"/>`,
      `<line x1="${left}" y1="${y0}" x2="${left}" y2="${base}" stroke="#444"/>`,
    );
    for (let t = 0; t <= 4; t++) {
      const v = (peak * 1.1 * t) / 4;
      const y = (base - v * scale).toFixed(1);
      out.push(
        `<text x="${left - 4}" y="${y}" text-anchor="end" dominant-baseline="middle">${
          (100 * v).toFixed(1)
        } %</text>`,
      );
    }
    const bar = Math.max(2, Math.floor((slot - 4) / c.schemes.length));
    c.members.forEach((m, i) => {
      const x = left + i * slot + 2;
      c.schemes.forEach((s, j) => {
        const h = s.shares[i] * scale;
        out.push(
          `<rect x="${x + j * bar}" y="${(base - h).toFixed(1)}" width="${bar - 1}" height="${
            h.toFixed(1)
          }" fill="${COLOURS[j % COLOURS.length]}"><title>${
            escapeXml(`${m.id} ${s.scheme}: ${pct(s.shares[i], 3)}`)
          }</title></rect>`,
        );
      });
      const yi = (base - c.schemes[0].idealShares[i] * scale).toFixed(1);
      out.push(
        `<line x1="${x}" y1="${yi}" x2="${x + bar * c.schemes.length - 1}" y2="${yi}" ` +
          `stroke="black" stroke-width="2"/>`,
      );
      if (c.clusters <= 20 || (i + 1) % 10 === 0) {
        out.push(
          `<text x="${x + (bar * c.schemes.length) / 2}" y="${base + 14}" text-anchor="middle">${
            i + 1
          }</text>`,
        );
      }
    });
  });
  out.push("</svg>", "");
  return out.join("\n");
}

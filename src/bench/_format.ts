/**
 * The plain-text report of `koi bench load`: what ran, the throughput, a latency table per
 * operation type, errors by kind and operations per cluster.
 *
 * @module
 */
import type { PhaseReport } from "./_stats.ts";
import type { LoadReport } from "./run_load.ts";
import { OP_TYPES } from "./_workload.ts";

const int = (n: number) => Math.round(n).toLocaleString("en");
const rate = (n: number) =>
  n.toLocaleString("en", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
const secs = (s: number) => `${s.toFixed(2)} s`;

/** Milliseconds with about four significant digits: 0.123, 1.234, 12.35, 123.4. */
function ms(v: number): string {
  return v.toFixed(v >= 100 ? 1 : v >= 10 ? 2 : 3);
}

/** Aligned columns, two spaces apart; columns from `rightFrom` on are right-aligned. */
function columns(rows: readonly (readonly string[])[], rightFrom: number): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) =>
    r.map((cell, c) => (c >= rightFrom ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join("  ").trimEnd()
  ).join("\n");
}

/** The report as text; lines may carry server messages (escape them before printing). */
export function formatLoad(report: LoadReport): string {
  const { measured } = report;
  const details = Object.entries(report.deployment).map(([k, v]) => `${k} ${v}`).join(", ");
  const limit = [
    report.limit.seconds === null ? undefined : `${report.limit.seconds} s`,
    report.limit.ops === null ? undefined : `${int(report.limit.ops)} ops`,
  ].filter((x) => x !== undefined).join(" or ");
  const lines = [
    `koi bench load: workload ${report.workload} (${report.mix}), ${report.distribution} over ` +
    `${int(report.keys)} keys, ${int(report.valueBytes)}-byte values, ${report.consistency} reads`,
    `target ${report.target} (${details}), ${report.clients} clients, seed ${report.seed}, ` +
    `until ${limit}`,
  ];
  if (report.preload !== null) {
    lines.push(
      `preload: every key written once in ${secs(report.preload.seconds)}, ` +
        summary(report.preload),
    );
  }
  lines.push(
    `measured ${secs(measured.seconds)} after a ${report.warmupSeconds} s warm-up: ` +
      summary(measured),
    "",
    latencyTable(measured),
    "",
    `errors by kind: ${errorsLine(measured)}`,
  );
  for (const [kind, message] of Object.entries(measured.errorSamples)) {
    lines.push(`  ${kind}, e.g.: ${message}`);
  }
  lines.push("", clusterTable(measured));
  return lines.join("\n");
}

/** `N ops, R ops/s, E errors (P %)`. */
function summary(phase: PhaseReport): string {
  return `${int(phase.ops)} ops, ${rate(phase.opsPerSecond)} ops/s, ` +
    `${int(phase.errors)} errors (${pct(phase.errorRate)})` +
    (phase.errors > 0 ? `: ${errorsLine(phase)}` : "");
}

function errorsLine(phase: PhaseReport): string {
  const kinds = Object.entries(phase.errorsByKind);
  return kinds.length === 0 ? "none" : kinds.map(([kind, n]) => `${kind} ${int(n)}`).join(", ");
}

function latencyTable(phase: PhaseReport): string {
  const rows: string[][] = [
    ["op", "ops", "ops/s", "errors", "misses", "p50 ms", "p95 ms", "p99 ms", "max ms"],
  ];
  for (const type of [...OP_TYPES, "all" as const]) {
    const t = phase.byType[type];
    if (t === undefined) continue;
    const l = t.latencyMs;
    const none = l.count === 0;
    rows.push([
      type,
      int(t.ops),
      rate(t.opsPerSecond),
      int(t.errors),
      type === "update" ? "-" : int(t.misses),
      ...[l.p50, l.p95, l.p99, l.max].map((v) => (none ? "-" : ms(v))),
    ]);
  }
  return columns(rows, 1);
}

function clusterTable(phase: PhaseReport): string {
  const rows: string[][] = [["cluster", "ops", "share", "errors"]];
  for (const [id, c] of Object.entries(phase.byCluster)) {
    rows.push([id, int(c.ops), phase.ops > 0 ? pct(c.ops / phase.ops) : "-", int(c.errors)]);
  }
  return columns(rows, 1);
}

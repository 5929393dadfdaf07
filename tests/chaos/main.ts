/**
 * `deno task chaos [--runs N] [--seconds S] [--seed X] [--workers W] [--no-partitions] [--bank]`:
 * N randomised chaos runs (see run_chaos.ts) against two 3-node clusters of real processes;
 * prints each run's operations, faults and verdict, and exits 1 on any violation, on a key
 * the checker could not decide, or on a run with too few successful operations.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { formatViolation } from "./linearizability.ts";
import { type ChaosReport, runChaos } from "./run_chaos.ts";
import { runBankChaos } from "./run_bank_chaos.ts";

const USAGE =
  `Usage: deno task chaos [--runs N] [--seconds S] [--seed X] [--workers W] [--no-partitions] [--bank]

  --runs N         randomised runs (default 1)
  --seconds S      seconds of faults under load per run (default 30)
  --seed X         the first run's seed (default: random); run i uses X + i
  --workers W      concurrent clients (default 8)
  --no-partitions  no network namespaces, so no partitions (kills and pauses only)
  --bank           the transactional workload: transfers between accounts of both clusters
                   (cross-cluster transactions) and audits (snapshot reads), checked for
                   strict serializability (default 6 workers)

Partitions need root and "ip netns" (iproute2) and iptables; without them they are skipped,
and each run says why. Exit code 0 when every run is linearizable, 1 otherwise, 2 on usage.`;

/** Successful operations a run must reach per second of chaos (else it proves too little). */
export const MIN_OK_PER_SECOND = 10;

/** Whether a report passes: no violation, nothing undecided, enough successes. */
export function reportPasses(r: ChaosReport, seconds: number): boolean {
  return r.check.ok && r.finalReadFailures === 0 && r.ops.ok >= MIN_OK_PER_SECOND * seconds;
}

/** One run's report in a few lines. */
export function formatReport(r: ChaosReport, seconds: number): string {
  const faults = Object.entries(r.faults).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
  const verdict = r.check.ok
    ? "linearizable"
    : `${r.check.violations.length} violation(s), ${r.check.undecided.length} undecided`;
  const lines = [
    `seed ${r.seed}: ${r.ops.ok} ok, ${r.ops.fail} fail, ${r.ops.unknown} unknown; ` +
    `${r.check.keys} keys; ${verdict}${reportPasses(r, seconds) ? "" : " -- FAILED"}`,
    `  faults: ${faults.join(", ") || "none"}`,
  ];
  if (r.partitionsSkipped !== "") lines.push(`  partitions skipped: ${r.partitionsSkipped}`);
  if (r.finalReadFailures > 0) lines.push(`  final reads that failed: ${r.finalReadFailures}`);
  if (r.ops.ok < MIN_OK_PER_SECOND * seconds) {
    lines.push(`  too few successful operations (< ${MIN_OK_PER_SECOND} per second)`);
  }
  for (const v of r.check.violations) lines.push(formatViolation(v));
  for (const u of r.check.undecided) lines.push(`  undecided: key ${u.key}: ${u.reason}`);
  return lines.join("\n");
}

/** Writes a failed run's history as JSON lines (keys and values as text); its path. */
async function dumpHistory(r: ChaosReport): Promise<string> {
  const path = `${Deno.env.get("TMPDIR") ?? "/tmp"}/koi-chaos-${r.seed}.jsonl`;
  const text = (b: Uint8Array | null | undefined) =>
    b === undefined ? undefined : b === null ? null : new TextDecoder().decode(b);
  const lines = r.operations.map((o) =>
    JSON.stringify({
      ...o,
      key: text(o.key),
      value: text(o.value),
      endMs: Number.isFinite(o.endMs) ? o.endMs : null,
      result: o.result === undefined ? undefined : { ...o.result, value: text(o.result.value) },
    })
  );
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        runs: { type: "string" },
        seconds: { type: "string" },
        seed: { type: "string" },
        workers: { type: "string" },
        "no-partitions": { type: "boolean" },
        bank: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const int = (text: string | undefined, name: string, fallback: number, min: number) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) throw new RangeError(`--${name}: ${text}`);
    return n;
  };
  let runs: number, seconds: number, seed: number, workers: number;
  try {
    runs = int(values.runs, "runs", 1, 1);
    seconds = int(values.seconds, "seconds", 30, 1);
    seed = int(values.seed, "seed", Math.floor(Math.random() * 2 ** 31), 0);
    workers = int(values.workers, "workers", 8, 1);
  } catch (error) {
    console.error(`Invalid ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.bank) {
    return await bankRuns(runs, seconds, seed, values.workers === undefined ? 6 : workers, {
      partitions: values["no-partitions"] ? "off" : "auto",
    });
  }
  let failed = 0;
  const totals = { ok: 0, fail: 0, unknown: 0, violations: 0 };
  const faults = new Map<string, number>();
  for (let i = 0; i < runs; i++) {
    const report = await runChaos({
      seed: seed + i,
      seconds,
      workers,
      partitions: values["no-partitions"] ? "off" : "auto",
      log: (line) => console.log(line),
    });
    console.log(formatReport(report, seconds));
    if (!reportPasses(report, seconds)) {
      failed++;
      const path = await dumpHistory(report);
      console.log(`  history: ${path}${report.dir === "" ? "" : `; data and logs: ${report.dir}`}`);
    }
    totals.ok += report.ops.ok;
    totals.fail += report.ops.fail;
    totals.unknown += report.ops.unknown;
    totals.violations += report.check.violations.length;
    for (const [k, n] of Object.entries(report.faults)) faults.set(k, (faults.get(k) ?? 0) + n);
  }
  console.log(
    `${runs} run(s) of ${seconds} s from seed ${seed}: ${
      runs - failed
    } passed, ${failed} failed; ` +
      `${totals.violations} violation(s); operations ${totals.ok} ok, ${totals.fail} fail, ` +
      `${totals.unknown} unknown; faults ${
        [...faults].filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(", ")
      }`,
  );
  return failed === 0 ? 0 : 1;
}

/** The transactional runs (`--bank`): one line each, and the totals. */
async function bankRuns(
  runs: number,
  seconds: number,
  seed: number,
  workers: number,
  options: { partitions: "off" | "auto" },
): Promise<number> {
  let failed = 0;
  let committed = 0;
  let cross = 0;
  for (let i = 0; i < runs; i++) {
    const r = await runBankChaos({
      seed: seed + i,
      seconds,
      workers,
      partitions: options.partitions,
      log: (line) => console.log(line),
    });
    const faults = Object.entries(r.faults).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
    console.log(
      `seed ${r.seed}: ${r.committed} transfers committed (${r.crossCommitted} across clusters), ` +
        `${r.counts.audit ?? 0} audits; faults ${faults.join(", ") || "none"}; ` +
        (r.violation === "" ? "strictly serializable" : `VIOLATION: ${r.violation}`),
    );
    if (r.partitionsSkipped !== "") console.log(`  partitions skipped: ${r.partitionsSkipped}`);
    if (r.violation !== "") failed++;
    committed += r.committed;
    cross += r.crossCommitted;
  }
  console.log(
    `${runs} bank run(s) of ${seconds} s from seed ${seed}: ${runs - failed} passed, ` +
      `${failed} failed; ${committed} transfers committed, ${cross} across clusters`,
  );
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));

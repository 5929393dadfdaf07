/**
 * `deno task sim`: runs the deterministic Raft simulation.
 *
 *   deno task sim --seed 42          replay one seed (prints its configuration and counts)
 *   deno task sim --seeds 5000       sweep seeds 1..5000 (or --from N --seeds M)
 *   deno task sim --txn --seeds 5000 the multi-cluster mode: transactions over several clusters
 *
 * Prints, per fault kind and per coverage counter, how often it happened over the sweep, and
 * the violations with the command that replays each. Exits 1 when any seed violated a
 * property.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { runSimulation } from "./simulation.ts";
import { runTxnSimulation } from "./txn_simulation.ts";
import { COVERAGE_DOCS, isCoverage } from "./stats.ts";

const USAGE =
  `Usage: deno task sim [--txn] [--seed N | --seeds COUNT [--from FIRST]] [--fault-ms MS]
                     [--stop-on-violation]

Runs the deterministic Raft simulation. A failing seed prints the command that replays it.

  --txn                 the multi-cluster mode: 2 to 4 clusters, a bank moved with
                        cross-cluster transactions and audited with snapshot reads,
                        checked for strict serializability (default --fault-ms 4000)

  --seed N              run exactly seed N and print what happened
  --seeds COUNT         run COUNT seeds (default 100), starting at --from (default 1)
  --fault-ms MS         simulated milliseconds of faults per seed (default 5000)
  --stop-on-violation   stop the sweep at the first violation (used by deno task mutants)
  -h, --help            show this help`;

function parsePositive(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`Invalid --${name}: expected a non-negative integer, got ${text}`);
    Deno.exit(2);
  }
  return n;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        seed: { type: "string" },
        seeds: { type: "string" },
        from: { type: "string" },
        "fault-ms": { type: "string" },
        "stop-on-violation": { type: "boolean" },
        txn: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const faultMs = parsePositive("fault-ms", values["fault-ms"], values.txn ? 4_000 : 5_000);
  const seeds: number[] = [];
  if (values.seed !== undefined) {
    seeds.push(parsePositive("seed", values.seed, 0));
  } else {
    const from = parsePositive("from", values.from, 1);
    const count = parsePositive("seeds", values.seeds, 100);
    for (let s = from; s < from + count; s++) seeds.push(s);
  }
  if (values.txn) return await sweepTxn(seeds, faultMs, values["stop-on-violation"] === true);
  const totals: Record<string, number> = {};
  let violations = 0;
  const started = performance.now();
  let ran = 0;
  for (const seed of seeds) {
    const r = await runSimulation(seed, { faultMs });
    ran++;
    for (const [k, v] of Object.entries(r.stats)) totals[k] = (totals[k] ?? 0) + v;
    if (seeds.length === 1) {
      console.log(`seed ${seed}: config ${JSON.stringify(r.config)}`);
      console.log(`seed ${seed}: ran ${r.timeMs} simulated ms; ${JSON.stringify(r.stats)}`);
    }
    if (r.violation !== undefined) {
      violations++;
      console.log(`VIOLATION seed ${seed}: ${r.violation}`);
      console.log(`  replay: deno task sim --seed ${seed}`);
      if (values["stop-on-violation"]) break;
    }
  }
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`\n${ran} seeds in ${secs} s; occurrences per kind over all seeds:`);
  const unreached: string[] = [];
  for (const [kind, n] of Object.entries(totals)) {
    if (!isCoverage(kind)) console.log(`  ${kind.padEnd(20)} ${n}`);
  }
  console.log("coverage (hard states reached):");
  for (const [kind, n] of Object.entries(totals)) {
    if (!isCoverage(kind)) continue;
    console.log(`  ${kind.padEnd(20)} ${String(n).padStart(8)}  ${COVERAGE_DOCS[kind]}`);
    if (n === 0) unreached.push(kind);
  }
  if (unreached.length > 0) console.log(`coverage not reached: ${unreached.join(", ")}`);
  console.log(`violations: ${violations}`);
  return violations === 0 ? 0 : 1;
}

/** The multi-cluster sweep: prints its counts and the violations; 1 when there was one. */
async function sweepTxn(seeds: readonly number[], faultMs: number, stop: boolean): Promise<number> {
  const totals: Record<string, number> = {};
  let violations = 0;
  let ran = 0;
  const started = performance.now();
  for (const seed of seeds) {
    const r = await runTxnSimulation(seed, { faultMs });
    ran++;
    for (const [k, v] of Object.entries(r.counts)) totals[k] = (totals[k] ?? 0) + v;
    if (seeds.length === 1) {
      console.log(`seed ${seed}: config ${JSON.stringify(r.config)}`);
      console.log(`seed ${seed}: ran ${r.timeMs} simulated ms; ${JSON.stringify(r.counts)}`);
    }
    if (r.violation !== undefined) {
      violations++;
      console.log(`VIOLATION seed ${seed}: ${r.violation}`);
      console.log(`  replay: deno task sim --txn --seed ${seed}`);
      if (stop) break;
    }
  }
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`\n${ran} multi-cluster seeds in ${secs} s; counts over all seeds:`);
  for (const [kind, n] of Object.entries(totals)) console.log(`  ${kind.padEnd(20)} ${n}`);
  console.log(`violations: ${violations}`);
  return violations === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());

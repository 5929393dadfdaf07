/**
 * The counter program of counter_test.ts: `tasks` concurrent loops increment one key through
 * `Deno.openKv(url)` with check-and-retry atomics (get, then
 * `atomic().check(entry).set(key, value + 1).commit()`, again on `ok: false`) for `duration`
 * ms, then the key is read back. Run in its own process so that `DENO_KV_ACCESS_TOKEN` is set
 * for it alone.
 *
 * Usage: deno run -A _counter.ts --url <kv connect url> [--tasks 8] [--duration-ms 6000]
 * Prints `KVC_COUNTER_STARTED` after the first successful commit and `KVC_COUNTER <json>`
 * (a {@linkcode CounterReport}) as its last line.
 *
 * @module
 */
import { parseArgs } from "node:util";

/** The counter's key. */
export const COUNTER_KEY: Deno.KvKey = ["kvc-counter", "hits"];

/** What the program saw. */
export interface CounterReport {
  /** Commits that answered `ok: true`: each one applied exactly one increment. */
  successes: number;
  /** Commits that answered `ok: false` (another task won): nothing applied. */
  conflicts: number;
  /** Commits that threw: applied once or not at all, nobody knows. */
  unknown: number;
  /** Commits still unanswered when the program gave up on them (also unknown). */
  hung: number;
  /** Reads (`get`) that threw; they commit nothing. */
  readErrors: number;
  /** The first few errors of unknown commits and failed reads. */
  errors: string[];
  /** The counter's value read back after every task stopped (null: it could not be read). */
  final: number | null;
  /** When the first and the last successful commits answered (ms since 1970). */
  firstSuccessAt: number | null;
  lastSuccessAt: number | null;
}

const PREFIX = "KVC_COUNTER ";

/** Parses the `KVC_COUNTER` line of the program's output. */
export function parseCounterOutput(stdout: string): CounterReport {
  const line = stdout.split("\n").reverse().find((l) => l.startsWith(PREFIX));
  if (line === undefined) throw new Error(`No ${PREFIX.trim()} line in:\n${stdout.slice(-4000)}`);
  return JSON.parse(line.slice(PREFIX.length)) as CounterReport;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Runs the counter against `kv`; `onFirstSuccess` is called once. */
export async function runCounter(
  kv: Deno.Kv,
  options: { tasks: number; durationMs: number; settleMs: number; onFirstSuccess?: () => void },
): Promise<CounterReport> {
  const report: CounterReport = {
    successes: 0,
    conflicts: 0,
    unknown: 0,
    hung: 0,
    readErrors: 0,
    errors: [],
    final: null,
    firstSuccessAt: null,
    lastSuccessAt: null,
  };
  const note = (what: string, error: unknown) => {
    if (report.errors.length < 10) {
      report.errors.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  let inFlight = 0;
  const until = Date.now() + options.durationMs;
  const task = async () => {
    while (Date.now() < until) {
      let entry: Deno.KvEntryMaybe<number>;
      try {
        entry = await kv.get<number>(COUNTER_KEY);
      } catch (error) {
        report.readErrors++;
        note("get", error);
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      inFlight++;
      try {
        const r = await kv.atomic().check(entry).set(COUNTER_KEY, (entry.value ?? 0) + 1)
          .commit();
        if (r.ok) {
          report.successes++;
          const now = Date.now();
          report.lastSuccessAt = now;
          if (report.firstSuccessAt === null) {
            report.firstSuccessAt = now;
            options.onFirstSuccess?.();
          }
        } else {
          report.conflicts++;
        }
      } catch (error) {
        report.unknown++;
        note("commit", error);
      } finally {
        inFlight--;
      }
    }
  };
  const all = Promise.all(Array.from({ length: options.tasks }, task));
  if (await withTimeout(all, options.durationMs + options.settleMs) === "timeout") {
    report.hung = inFlight;
  }
  const final = await withTimeout(kv.get<number>(COUNTER_KEY), options.settleMs).catch((e) => {
    note("final get", e);
    return "timeout" as const;
  });
  report.final = final === "timeout" ? null : final.value ?? 0;
  return report;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      url: { type: "string" },
      tasks: { type: "string", default: "8" },
      "duration-ms": { type: "string", default: "6000" },
      "settle-ms": { type: "string", default: "30000" },
    },
    strict: true,
  });
  const kv = await Deno.openKv(values.url!);
  const report = await runCounter(kv, {
    tasks: Number(values.tasks),
    durationMs: Number(values["duration-ms"]),
    settleMs: Number(values["settle-ms"]),
    onFirstSuccess: () => console.log("KVC_COUNTER_STARTED"),
  });
  console.log(PREFIX + JSON.stringify(report));
  Deno.exit(0); // a hung commit may still wait on the network
}

/**
 * Runs the conformance scenarios against one store and compares two stores' results.
 *
 * - {@linkcode runScenarios}: every scenario that applies to the target, in list order, each
 *   bounded by a timeout (a request koi answers with a 5xx is retried by Deno's client for
 *   ever, so a hang is reported as a timeout rather than stalling the suite); slow ones are
 *   started first and awaited last.
 * - {@linkcode compareResults}: per scenario, passed / failed / excluded / koi-only / skipped,
 *   and {@linkcode summarize} prints them with the totals.
 * - As a program (`deno run -A _harness.ts --target koi --url <url> --table <json>`) it runs
 *   the scenarios in its own process, where `DENO_KV_ACCESS_TOKEN` can be set for it alone,
 *   and prints `KVC_RESULTS <json>` as its last line.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { CarpTable, type CarpTableOptions } from "../../mod.ts";
import { finalize, type Json } from "./_observe.ts";
import { type ScenarioContext, scenarioContext, type Target } from "./_placement.ts";
import { type Scenario, SCENARIOS } from "./_scenarios.ts";

/** What one scenario gave on one store. */
export type ScenarioResult =
  | { readonly status: "observed"; readonly observation: Json; readonly ms: number }
  | { readonly status: "error"; readonly error: string; readonly ms: number }
  | { readonly status: "timeout"; readonly ms: number }
  | { readonly status: "skipped"; readonly reason: string };

/** Results by scenario name. */
export type Results = Record<string, ScenarioResult>;

/** Options of {@linkcode runScenarios}. */
export interface RunOptions {
  /** Per scenario (a slow one gets `ctx.expiryDeadlineMs` more); default 60 s. */
  readonly timeoutMs?: number;
  /** Whether slow scenarios run (default true). */
  readonly slow?: boolean;
  /** Only these scenarios (by name), when given. */
  readonly only?: readonly string[];
  /** The scenarios (default: all of `_scenarios.ts`). */
  readonly scenarios?: readonly Scenario[];
}

const PREFIX = "KVC_RESULTS ";

async function runOne(
  scenario: Scenario,
  kv: Deno.Kv,
  ctx: ScenarioContext,
  timeoutMs: number,
): Promise<ScenarioResult> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    const run = scenario.run(kv, ctx, [scenario.name]).then((o) => ({ o }));
    const raced = await Promise.race([run, timeout]);
    if (raced === "timeout") {
      run.catch(() => {}); // it may still fail later; nobody is listening
      return { status: "timeout", ms: ms() };
    }
    return { status: "observed", observation: finalize(raced.o), ms: ms() };
  } catch (error) {
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return { status: "error", error: text, ms: ms() };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs the scenarios that apply to `ctx.target` against `kv`. */
export async function runScenarios(
  kv: Deno.Kv,
  ctx: ScenarioContext,
  options: RunOptions = {},
): Promise<Results> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const all = options.scenarios ?? SCENARIOS;
  const chosen = options.only === undefined
    ? all
    : all.filter((s) => options.only!.includes(s.name));
  const results: Results = {};
  const background = new Map<string, Promise<ScenarioResult>>();
  const applies = (s: Scenario): string | undefined => {
    if (s.koiOnly && ctx.target !== "koi") return "koi only";
    if (s.slow !== undefined && options.slow === false) {
      return `slow (${s.slow}); KOI_KVC_SLOW=1 runs it`;
    }
    return undefined;
  };
  for (const s of chosen) {
    if (s.slow === undefined || applies(s) !== undefined) continue;
    background.set(s.name, runOne(s, kv, ctx, timeoutMs + ctx.expiryDeadlineMs));
  }
  for (const s of chosen) {
    const skip = applies(s);
    if (skip !== undefined) results[s.name] = { status: "skipped", reason: skip };
    else if (!background.has(s.name)) results[s.name] = await runOne(s, kv, ctx, timeoutMs);
  }
  for (const [name, result] of background) results[name] = await result;
  // In list order.
  return Object.fromEntries(chosen.map((s) => [s.name, results[s.name]]));
}

/** The verdict on one scenario. */
export interface Verdict {
  readonly name: string;
  readonly kind: "compared" | "excluded" | "koi-only" | "skipped";
  readonly passed: boolean;
  /** Why it failed, was excluded or skipped; the two observations of an excluded one. */
  readonly detail: string;
}

function shown(r: ScenarioResult | undefined): string {
  if (r === undefined) return "(not run)";
  switch (r.status) {
    case "observed":
      return JSON.stringify(r.observation, null, 1);
    case "error":
      return `threw unexpectedly: ${r.error}`;
    case "timeout":
      return `timed out after ${r.ms} ms`;
    case "skipped":
      return `skipped: ${r.reason}`;
  }
}

/** First line where two pretty-printed observations differ, with some context. */
function firstDifference(a: string, b: string): string {
  const la = a.split("\n"), lb = b.split("\n");
  const i = la.findIndex((line, j) => line !== lb[j]);
  const at = i < 0 ? la.length : i;
  const around = (lines: string[]) => lines.slice(Math.max(0, at - 3), at + 3).join("\n");
  return `first difference at line ${at + 1}:\n--- reference\n${around(la)}\n--- subject\n${
    around(lb)
  }`;
}

/** Compares `subject` (e.g. koi) to `reference` (`:memory:`) scenario by scenario. */
export function compareResults(
  reference: Results,
  subject: Results,
  scenarios: readonly Scenario[] = SCENARIOS,
): Verdict[] {
  const verdicts: Verdict[] = [];
  for (const s of scenarios) {
    const ref = reference[s.name], sub = subject[s.name];
    if (ref === undefined && sub === undefined) continue;
    if (s.koiOnly) {
      if (sub === undefined || sub.status === "skipped") {
        verdicts.push({ name: s.name, kind: "skipped", passed: true, detail: "koi only" });
      } else {
        verdicts.push({
          name: s.name,
          kind: "koi-only",
          passed: sub.status === "observed",
          detail: shown(sub),
        });
      }
      continue;
    }
    if (s.excluded !== undefined) {
      verdicts.push({
        name: s.name,
        kind: "excluded",
        passed: true,
        detail: `${s.excluded}\n  reference: ${shown(ref)}\n  subject:   ${shown(sub)}`,
      });
      continue;
    }
    if (ref?.status === "skipped" || sub?.status === "skipped") {
      const reason = ref?.status === "skipped" ? ref.reason : (sub as { reason: string }).reason;
      verdicts.push({ name: s.name, kind: "skipped", passed: true, detail: reason });
      continue;
    }
    if (ref?.status !== "observed") {
      verdicts.push({
        name: s.name,
        kind: "compared",
        passed: false,
        detail: `the reference did not observe: ${shown(ref)}`,
      });
      continue;
    }
    const a = shown(ref), b = shown(sub);
    verdicts.push({
      name: s.name,
      kind: "compared",
      passed: sub?.status === "observed" && a === b,
      detail: sub?.status !== "observed" ? `subject: ${b}` : a === b ? "" : firstDifference(a, b),
    });
  }
  return verdicts;
}

/** The per-scenario lines and the totals (run, passed, failed, excluded, koi-only, skipped). */
export function summarize(title: string, verdicts: readonly Verdict[]): string {
  const count = (f: (v: Verdict) => boolean) => verdicts.filter(f).length;
  const compared = count((v) => v.kind === "compared");
  const koiOnly = count((v) => v.kind === "koi-only");
  const lines = [`${title}`];
  for (const v of verdicts) {
    const mark = v.kind === "compared" || v.kind === "koi-only"
      ? (v.passed ? "pass" : "FAIL")
      : v.kind === "excluded"
      ? "excl"
      : "skip";
    const why = v.kind === "excluded"
      ? `: ${v.detail.split("\n")[0]}`
      : v.kind === "skipped"
      ? `: ${v.detail}`
      : "";
    lines.push(`  ${mark} ${v.name}${v.kind === "koi-only" ? " (koi only)" : ""}${why}`);
  }
  lines.push(
    `  ${compared + koiOnly} run, ${
      count((v) =>
        v.passed && v.kind !== "excluded" &&
        v.kind !== "skipped"
      )
    } passed, ${count((v) => !v.passed)} failed, ${count((v) => v.kind === "excluded")} excluded, ${
      count((v) => v.kind === "skipped")
    } skipped`,
  );
  return lines.join("\n");
}

/** The details of failed verdicts (for an assertion message). */
export function failures(verdicts: readonly Verdict[]): string {
  return verdicts.filter((v) => !v.passed).map((v) => `${v.name}: ${v.detail}`).join("\n\n");
}

/** Parses the `KVC_RESULTS` line of a runner's output. */
export function parseRunnerOutput(stdout: string): Results {
  const line = stdout.split("\n").reverse().find((l) => l.startsWith(PREFIX));
  if (line === undefined) throw new Error(`No ${PREFIX.trim()} line in:\n${stdout.slice(-4000)}`);
  return JSON.parse(line.slice(PREFIX.length)) as Results;
}

/** Arguments of the runner program. */
export interface RunnerArgs {
  readonly target: Target;
  /** `:memory:` or the KV Connect URL. */
  readonly url: string;
  readonly table: CarpTableOptions;
  readonly expiryDeadlineMs: number;
  readonly slow: boolean;
  /** Only these scenarios, when given. */
  readonly only?: readonly string[];
}

/** The command line of the runner program for `args` (run it with `deno run -A`). */
export function runnerArgs(args: RunnerArgs): string[] {
  return [
    new URL(import.meta.url).pathname,
    "--target",
    args.target,
    "--url",
    args.url,
    "--table",
    JSON.stringify(args.table),
    "--expiry-ms",
    String(args.expiryDeadlineMs),
    "--slow",
    String(args.slow),
    ...(args.only === undefined ? [] : ["--only", args.only.join(",")]),
  ];
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      target: { type: "string" },
      url: { type: "string" },
      table: { type: "string" },
      "expiry-ms": { type: "string" },
      slow: { type: "string" },
      only: { type: "string" },
    },
    strict: true,
  });
  const target = values.target as Target;
  const table = new CarpTable(JSON.parse(values.table!));
  const ctx = scenarioContext(target, table, { expiryDeadlineMs: Number(values["expiry-ms"]) });
  const kv = await Deno.openKv(values.url!);
  const results = await runScenarios(kv, ctx, {
    slow: values.slow !== "false",
    only: values.only?.split(","),
  });
  try {
    kv.close();
  } catch { /* a hung request may still hold it */ }
  console.log(PREFIX + JSON.stringify(results));
  Deno.exit(0); // a scenario that timed out may still wait on the network
}

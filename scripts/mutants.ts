/**
 * `deno task mutants`: plants each known Raft bug of {@linkcode MUTANTS} in a copy of the
 * repository, one at a time, and checks that the deterministic simulation (seeds 1..500, the
 * range CI runs) or the paper-rule tests (`tests/raft`) catch it. The working tree is never
 * modified: `src/`, `tests/`, `deno.json` and `deno.lock` are copied into a temporary
 * directory first.
 *
 *   deno task mutants                   every mutant
 *   deno task mutants --only vote-twice one mutant (repeatable)
 *   deno task mutants --seeds 200       a shorter simulation sweep
 *
 * Prints a table: mutant | caught by the simulation | caught by the paper tests | time.
 * Exits 1 when a mutant survives both or does not type-check, 2 when a mutant does not apply.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { applyMutant, type Mutant, MUTANTS } from "./_mutants_list.ts";

/** The seed range CI runs (`tests/sim/sim_test.ts`). */
const CI_SEEDS = 500;
/** What the copy needs to run the simulation and the paper tests. */
const COPIED = ["src", "tests", "deno.json", "deno.lock"];
/** A simulation sweep of a mutant is killed after this long. */
const SIM_TIMEOUT_MS = 300_000;
/** A run of the paper tests (or a type check) of a mutant is killed after this long. */
const PAPER_TIMEOUT_MS = 60_000;
/** Longest violation message shown in the table. */
const MESSAGE_CHARS_MAX = 110;

/** What one mutant run found. */
interface Outcome {
  readonly mutant: Mutant;
  /** Why the mutant could not be run (it does not type-check). */
  readonly broken?: string;
  /** "seed N: message" of the first violating seed. */
  readonly sim?: string;
  /** The first failing paper test. */
  readonly paper?: string;
  /** How many paper tests failed. */
  readonly paperFailed: number;
  /** Wall-clock seconds. */
  readonly seconds: number;
}

async function copyTree(from: string, to: string): Promise<void> {
  const info = await Deno.stat(from);
  if (info.isFile) {
    await Deno.copyFile(from, to);
    return;
  }
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isSymlink) continue;
    await copyTree(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

/**
 * Runs deno with `args` in `cwd`; returns its exit code, combined output, and whether it was
 * killed after `timeoutMs` (a mutant can make a test loop forever).
 */
async function deno(
  cwd: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number; out: string; timedOut: boolean }> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  try {
    const { code, stdout, stderr } = await child.output();
    const dec = new TextDecoder();
    return { code, out: dec.decode(stdout) + dec.decode(stderr), timedOut };
  } finally {
    clearTimeout(timer);
  }
}

function shorten(s: string): string {
  const line = s.split("\n")[0];
  return line.length <= MESSAGE_CHARS_MAX ? line : `${line.slice(0, MESSAGE_CHARS_MAX - 1)}…`;
}

/** The simulation's first violation over seeds 1..`seeds`, if any. */
async function runSim(dir: string, seeds: number): Promise<string | undefined> {
  const args = ["run", "tests/sim/main.ts", "--seeds", String(seeds), "--stop-on-violation"];
  const { code, out, timedOut } = await deno(dir, args, SIM_TIMEOUT_MS);
  const m = out.match(/^VIOLATION seed (\d+): (.*)$/m);
  if (m !== null) return `seed ${m[1]}: ${shorten(m[2])}`;
  if (timedOut) return `the sweep hung (killed after ${SIM_TIMEOUT_MS / 1000} s)`;
  if (code !== 0) return `the simulation failed to run: ${shorten(out.trim())}`;
  return undefined;
}

/** The failing paper tests. */
async function runPaper(dir: string): Promise<string[]> {
  const { code, out, timedOut } = await deno(
    dir,
    ["test", "-A", "--no-check", "tests/raft"],
    PAPER_TIMEOUT_MS,
  );
  const failed = [...out.matchAll(/^(.+?) \.\.\. FAILED/gm)].map((m) => m[1].trim());
  if (timedOut) {
    // The last test that started and never finished is the one the mutant hangs.
    const started = [...out.matchAll(/^(.+?) \.\.\.(?: |$)/gm)].map((m) => m[1].trim());
    const hung = started.at(-1) ?? "tests/raft";
    return [...new Set([...failed, `${hung} (hung; killed after ${PAPER_TIMEOUT_MS / 1000} s)`])];
  }
  if (code !== 0 && failed.length === 0) return [`tests did not run: ${shorten(out.trim())}`];
  return [...new Set(failed)];
}

async function runMutant(dir: string, mutant: Mutant, seeds: number): Promise<Outcome> {
  const started = performance.now();
  const path = `${dir}/${mutant.file}`;
  const original = await Deno.readTextFile(path);
  await Deno.writeTextFile(path, applyMutant(mutant, original));
  try {
    const check = await deno(dir, ["check", "src/raft/mod.ts"], PAPER_TIMEOUT_MS);
    if (check.code !== 0) {
      return {
        mutant,
        broken: `does not type-check: ${shorten(check.out.match(/TS\d+.*$/m)?.[0] ?? check.out)}`,
        paperFailed: 0,
        seconds: (performance.now() - started) / 1000,
      };
    }
    // The two catchers are independent processes: run them side by side.
    const [sim, paper] = await Promise.all([runSim(dir, seeds), runPaper(dir)]);
    return {
      mutant,
      ...(sim === undefined ? {} : { sim }),
      ...(paper.length === 0 ? {} : { paper: paper[0] }),
      paperFailed: paper.length,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await Deno.writeTextFile(path, original);
  }
}

function printTable(outcomes: readonly Outcome[]): void {
  const rows = outcomes.map((o) => [
    o.mutant.name,
    o.broken ?? o.sim ?? "-",
    o.broken !== undefined
      ? "-"
      : o.paper === undefined
      ? "-"
      : o.paperFailed > 1
      ? `${shorten(o.paper)} (+${o.paperFailed - 1} more)`
      : shorten(o.paper),
    `${o.seconds.toFixed(1)} s`,
  ]);
  const header = ["mutant", "caught by the simulation", "caught by the paper tests", "time"];
  console.log(`| ${header.join(" | ")} |`);
  console.log(`| ${header.map((h, i) => (i === 3 ? "---:" : "-".repeat(h.length))).join(" | ")} |`);
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      only: { type: "string", multiple: true },
      seeds: { type: "string" },
      keep: { type: "boolean" },
    },
  });
  const seeds = values.seeds === undefined ? CI_SEEDS : Number(values.seeds);
  if (!Number.isInteger(seeds) || seeds < 1) {
    console.error(`Invalid --seeds: expected a positive integer, got ${values.seeds}`);
    return 2;
  }
  const only = values.only ?? [];
  const unknown = only.filter((n) => !MUTANTS.some((m) => m.name === n));
  if (unknown.length > 0) {
    console.error(`Unknown mutant: ${unknown.join(", ")}`);
    return 2;
  }
  const selected = MUTANTS.filter((m) => only.length === 0 || only.includes(m.name));
  // Refuse before running anything when the core drifted away from a mutant's text.
  const problems: string[] = [];
  for (const m of selected) {
    try {
      applyMutant(m, await Deno.readTextFile(m.file));
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  if (problems.length > 0) {
    for (const p of problems) console.error(p);
    return 2;
  }
  const dir = await Deno.makeTempDir({ prefix: "koi_mutants_" });
  try {
    for (const name of COPIED) {
      try {
        await copyTree(name, `${dir}/${name}`);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    console.log(
      `${selected.length} mutants; simulation seeds 1..${seeds}, paper tests tests/raft (copy in ${dir})`,
    );
    const outcomes: Outcome[] = [];
    for (const m of selected) {
      const o = await runMutant(dir, m, seeds);
      const verdict = o.broken ??
        (o.sim !== undefined || o.paper !== undefined ? "caught" : "SURVIVED");
      console.log(`  ${m.name}: ${verdict} (${o.seconds.toFixed(1)} s)`);
      outcomes.push(o);
    }
    console.log("");
    printTable(outcomes);
    const bad = outcomes.filter((o) =>
      o.broken !== undefined || (o.sim === undefined && o.paper === undefined)
    );
    const bySim = outcomes.filter((o) => o.sim !== undefined).length;
    console.log(
      `\n${outcomes.length - bad.length}/${outcomes.length} caught ` +
        `(${bySim} by the simulation); ${bad.length === 0 ? "no survivor" : "FAILED"}`,
    );
    for (const o of bad) console.log(`  ${o.mutant.name}: ${o.broken ?? "survived"}`);
    return bad.length === 0 ? 0 : 1;
  } finally {
    if (!values.keep) await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await main());

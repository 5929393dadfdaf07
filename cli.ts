/**
 * The koi command line: one executable, several modes (see README.md). Exit codes: 0 success,
 * 1 runtime failure, 2 usage or configuration error (naming the bad flag or field).
 *
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import {
  configure,
  getConsoleSink,
  getLogger,
  jsonLinesFormatter,
  type LogLevel,
} from "@logtape/logtape";
import { ConfigError, loadConfig } from "./src/config/mod.ts";
import { runNode, SHUTDOWN_DRAIN_MS, SHUTDOWN_HANDOFF_MS } from "./src/node/run_node.ts";
import { distSvg, distWork, formatDist, runDist } from "./src/carp/_dist.ts";
import cliProgress from "cli-progress";

/**
 * A node that has not stopped this long after SIGINT/SIGTERM exits anyway (code 1): the
 * shutdown steps have their own deadlines, this is the backstop under 10 s.
 */
const SHUTDOWN_HARD_MS = Math.max(9_000, SHUTDOWN_HANDOFF_MS + SHUTDOWN_DRAIN_MS + 2_000);

const USAGE = `koi — a sharded, Raft-replicated key-value store

Usage: koi <mode> [options]

Modes:
  node     run one Raft member of config.toml          (koi node --help)
  admin    spawn and supervise every node (coming with the admin issue)
  client   get / put / del / list / status (coming with the client issue)
  bench    benchmarks: dist (CARP key distribution)      (koi bench --help)

Options:
  -h, --help     show this help
  -V, --version  print the version
`;

const NODE_USAGE = `Usage: koi node --config <config.toml> --id <node id> [options]

Runs one Raft member of the deployment described by config.toml: its Raft peer port, its
HTTP API and its Deno.Kv file under the node's data directory. On the very first start a
founding member bootstraps the cluster with the other founding members of its cluster, once a
majority of them are up with empty data directories too; if a peer already holds the cluster
(this node started late, or lost its disk), it starts empty instead and waits for the leader.
A node with join = true starts empty and waits until a member adds it (POST /v1/members).
SIGINT or SIGTERM stop it cleanly: a leader first hands leadership to another member, then
Raft stops, in-flight HTTP requests drain, and the files close (at most 10 s; a second
signal exits at once). At the default log level a healthy node prints one line when it is
ready and one when it stops. See docs/operations.md.

Options:
  -c, --config <path>     the deployment file (required)
      --id <node id>      which node of the file to run (required)
      --join              start empty and wait to be added (POST /v1/members), whatever
                          the config's join says: how a node whose disk was lost rejoins
      --log-level <level> trace, debug, info, warning, error or fatal (default: warning)
  -h, --help              show this help

Exit codes: 0 stopped by a signal, 1 runtime failure (data directory locked or unwritable,
address in use, ...), 2 usage or configuration error.`;

const BENCH_USAGE = `Usage: koi bench <benchmark> [options]

Benchmarks:
  dist     how CARP spreads keys over clusters, both schemes   (koi bench dist --help)
  load     HTTP load against a deployment (coming with the client issue)

Options:
  -h, --help   show this help`;

const BENCH_DIST_USAGE = `Usage: koi bench dist [--keys N] [--clusters 3,10] [--json] [--svg <path>]

Routes N deterministic keys (key-0 .. key-<N-1>, as UTF-8) over K clusters cluster-1..K,
with equal load factors and with load factors 1..K, under both schemes: "carp" (the draft,
exactly) and "carp64" (koi's default). Prints, per case and scheme, max/mean and min/mean,
the coefficient of variation and the largest deviation of count / expected count (expected
= N * w / sum w), the fraction of keys moved when cluster-<K+1> is added (load factor 1, or
K+1 when weighted; ideal w / (sum w + w), 1/(K+1) for equal clusters) or cluster-<K> is
removed (ideal w_K / sum w, 1/K for equal clusters), and the share of every cluster. The same
flags give the same numbers on every machine. A progress bar shows on stderr when stdout and
stderr are terminals and CI is not set.

Options:
      --keys <N>          number of keys, 1 .. 100000000 (default: 1000000; 1e6 and 1_000_000
                          are accepted)
      --clusters <list>   comma-separated cluster counts K to sweep, each 2 .. 1000
                          (default: 3,10)
      --json              print the full report as JSON instead of the tables
      --svg <path>        also write an SVG chart of the shares per cluster, both schemes side
                          by side, one panel per case (written only when this flag is given)
  -h, --help              show this help

Exit codes: 0 done, 1 runtime failure (e.g. the SVG cannot be written), 2 usage error.`;

const KEYS_MAX = 100_000_000;
const CLUSTERS_MAX = 1000;

const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;

/** The version of this program (as in deno.json). */
export const KOI_VERSION = "0.1.0";

/** A usage error: the message names the bad flag; exit code 2. */
class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

async function nodeMode(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string", short: "c" },
      id: { type: "string" },
      join: { type: "boolean" },
      "log-level": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(NODE_USAGE);
    return 0;
  }
  if (values.config === undefined) throw new UsageError("Missing flag --config <config.toml>");
  if (values.id === undefined) throw new UsageError("Missing flag --id <node id>");
  // Case-insensitive: WARNING, Info and warn mean what they say.
  const given = (values["log-level"] ?? "warning").toLowerCase();
  const level = given === "warn" ? "warning" : given;
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`Invalid --log-level: ${level}; expected one of ${LOG_LEVELS.join(", ")}`);
  }
  const config = await loadConfig(values.config);
  await configure({
    sinks: { console: getConsoleSink({ formatter: jsonLinesFormatter }) },
    loggers: [
      { category: ["koi"], lowestLevel: level as LogLevel, sinks: ["console"] },
      // The ready and stopped lines print at the default level too (not at error or fatal).
      {
        category: ["koi", "lifecycle"],
        lowestLevel: level === "error" || level === "fatal" ? level : "info",
        sinks: ["console"],
        parentSinks: "override",
      },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });
  const cluster = config.clusters.find((c) => c.nodes.some((n) => n.id === values.id))?.id;
  const logger = getLogger(["koi", "node"]).with({ node: values.id, cluster });
  const lifecycle = getLogger(["koi", "lifecycle"]);
  let fatal: unknown;
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  let started = false;
  let signalled = false;
  const onSignal = () => {
    if (!started) {
      // Still starting (e.g. a founder waiting for the other founders): nothing to hand off
      // or drain, and whatever was written is crash-safe, so stop at once.
      lifecycle.info("node stopped", { node: values.id, cluster, beforeReady: true });
      Deno.exit(0);
    }
    if (signalled) {
      console.error(`koi node ${values.id}: second signal: exiting without a clean stop`);
      Deno.exit(1);
    }
    signalled = true;
    stop();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const running = await runNode({
    config,
    nodeId: values.id,
    ...(values.join ? { join: true } : {}),
    log: (lvl, message, fields) => logger[lvl](message, fields ?? {}),
    lifecycle: (message, fields) => lifecycle.info(message, fields),
    onFatal: (error) => {
      fatal = error;
      stop();
    },
  });
  started = true;
  await stopped;
  const backstop = setTimeout(() => {
    console.error(`koi node ${values.id}: did not stop within ${SHUTDOWN_HARD_MS} ms; exiting`);
    Deno.exit(1);
  }, SHUTDOWN_HARD_MS);
  await running.close();
  clearTimeout(backstop);
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  if (fatal !== undefined) {
    console.error(`koi node ${values.id}: stopped after a fatal error: ${fatal}`);
    return 1;
  }
  return 0;
}

/** The usage text printed after a usage error of `args` (the mode's own, if it has one). */
function usageFor(args: readonly string[]): string {
  if (args[0] === "node") return NODE_USAGE;
  if (args[0] === "bench") return args[1] === "dist" ? BENCH_DIST_USAGE : BENCH_USAGE;
  return USAGE;
}

async function benchMode(args: string[]): Promise<number> {
  const [which, ...rest] = args;
  switch (which) {
    case undefined:
    case "-h":
    case "--help":
    case "help":
      console.log(BENCH_USAGE);
      return 0;
    case "dist":
      return await benchDist(rest);
    default:
      throw new UsageError(`Unknown benchmark: ${which}`);
  }
}

function parseKeys(text: string): number {
  const clean = text.replace(/_/g, "");
  const n = /^\d+(e\d+)?$/i.test(clean) ? Number(clean) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > KEYS_MAX) {
    throw new UsageError(
      `Invalid --keys: ${text}; expected an integer from 1 to ${KEYS_MAX.toLocaleString("en")}`,
    );
  }
  return n;
}

function parseClusters(text: string): number[] {
  const list = text.split(",").map((part) => part.trim());
  const counts = list.map((part) => (/^\d+$/.test(part) ? Number(part) : NaN));
  if (counts.length === 0 || counts.some((k) => !(k >= 2 && k <= CLUSTERS_MAX))) {
    throw new UsageError(
      `Invalid --clusters: ${text}; expected comma-separated integers from 2 to ${CLUSTERS_MAX}`,
    );
  }
  return counts;
}

/** Whether a progress bar may draw: stdout and stderr are terminals, and not in CI. */
function progressAllowed(): boolean {
  if (!Deno.stdout.isTerminal() || !Deno.stderr.isTerminal()) return false;
  try {
    return !Deno.env.get("CI");
  } catch {
    return false; // no env permission: stay quiet
  }
}

/** The part of cli-progress's SingleBar this file uses (the package ships no types). */
interface ProgressBar {
  start(total: number, value: number): void;
  increment(step: number): void;
  stop(): void;
}

async function benchDist(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      keys: { type: "string" },
      clusters: { type: "string" },
      json: { type: "boolean" },
      svg: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(BENCH_DIST_USAGE);
    return 0;
  }
  const keys = values.keys === undefined ? 1_000_000 : parseKeys(values.keys);
  const clusters = values.clusters === undefined ? [3, 10] : parseClusters(values.clusters);
  if (values.svg === "") throw new UsageError("Invalid --svg: expected a file path");
  let bar: ProgressBar | undefined;
  if (progressAllowed()) {
    const { SingleBar, Presets } = cliProgress as unknown as {
      SingleBar: new (options: object, preset: object) => ProgressBar;
      Presets: { shades_classic: object };
    };
    bar = new SingleBar(
      { format: "koi bench dist [{bar}] {percentage}% | ETA {eta}s", stream: process.stderr },
      Presets.shades_classic,
    );
    bar.start(distWork({ keys, clusters }), 0);
  }
  const report = runDist({
    keys,
    clusters,
    ...(bar ? { onProgress: (n: number) => bar.increment(n) } : {}),
  });
  bar?.stop();
  if (values.svg !== undefined) await Deno.writeTextFile(values.svg, distSvg(report));
  console.log(values.json ? JSON.stringify(report, null, 2) : formatDist(report));
  if (values.svg !== undefined && !values.json) console.log(`\nSVG chart: ${values.svg}`);
  return 0;
}

async function main(args: string[]): Promise<number> {
  const [mode, ...rest] = args;
  try {
    switch (mode) {
      case undefined:
      case "-h":
      case "--help":
      case "help":
        console.log(USAGE);
        return 0;
      case "-V":
      case "--version":
      case "version":
        console.log(`koi ${KOI_VERSION} (deno ${Deno.version.deno})`);
        return 0;
      case "node":
        return await nodeMode(rest);
      case "bench":
        return await benchMode(rest);
      default:
        throw new UsageError(`Unknown mode: ${mode}`);
    }
  } catch (error) {
    if (error instanceof UsageError || isParseArgsError(error)) {
      console.error(`koi: ${(error as Error).message}\n\n${usageFor(args)}`);
      return 2;
    }
    if (error instanceof ConfigError) {
      console.error(`koi: ${error.message}`);
      return 2;
    }
    console.error(`koi: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof TypeError && typeof code === "string" &&
    code.startsWith("ERR_PARSE_ARGS");
}

if (import.meta.main) Deno.exit(await main(Deno.args));

/**
 * `koi bench`: the benchmarks of the command line, `dist` (here) and `load`
 * (bench_load_cmd.ts).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { distSvg, distWork, formatDist, runDist } from "../carp/_dist.ts";
import { type ProgressBar, progressBar } from "../bench/_progress.ts";
import { benchLoad, countFlag } from "./bench_load_cmd.ts";
import { progressAllowed, UsageError } from "./_common.ts";

export { BENCH_LOAD_USAGE } from "./bench_load_cmd.ts";

/** The usage of `koi bench`. */
export const BENCH_USAGE = `Usage: koi bench <benchmark> [options]

Benchmarks:
  dist     how CARP spreads keys over clusters, both schemes   (koi bench dist --help)
  load     YCSB-style load against a running deployment      (koi bench load --help)

Options:
  -h, --help   show this help`;

/** The usage of `koi bench dist`. */
export const BENCH_DIST_USAGE =
  `Usage: koi bench dist [--keys N] [--clusters 3,10] [--json] [--svg <path>]

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

/** Runs `koi bench <args>`; returns the exit code. */
export async function benchCommand(args: string[]): Promise<number> {
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
    case "load":
      return await benchLoad(rest);
    default:
      throw new UsageError(`Unknown benchmark: ${which}`);
  }
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
  const keys = values.keys === undefined
    ? 1_000_000
    : countFlag(values.keys, "--keys", 1, KEYS_MAX);
  const clusters = values.clusters === undefined ? [3, 10] : parseClusters(values.clusters);
  if (values.svg === "") throw new UsageError("Invalid --svg: expected a file path");
  let bar: ProgressBar | undefined;
  if (progressAllowed()) {
    bar = progressBar("koi bench dist [{bar}] {percentage}% | ETA {eta}s");
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

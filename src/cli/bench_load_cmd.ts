/**
 * `koi bench load`: a YCSB-style load generator against a running deployment, through the
 * routing client, or against etcd through its gRPC API or its JSON gateway, with the same
 * workloads (src/bench/ does the work; this file parses flags and prints).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { KoiError, VALUE_BYTES_MAX } from "../client/mod.ts";
import { formatLoad } from "../bench/_format.ts";
import { type ProgressBar, progressBar } from "../bench/_progress.ts";
import { ETCD_DEFAULT_ENDPOINT, parseEtcdEndpoints } from "../bench/_etcd.ts";
import { EtcdHttpTarget } from "../bench/_etcd_http.ts";
import { KoiTarget, type LoadTarget } from "../bench/_target.ts";
import { DISTRIBUTIONS, WORKLOAD_NAMES, WORKLOADS } from "../bench/_workload.ts";
import { KEYS_MAX } from "../bench/_zipfian.ts";
import {
  type LoadOptions,
  type LoadProgress,
  type LoadReport,
  runLoad,
} from "../bench/run_load.ts";
import { adminFlag, DEFAULT_ADMIN, timeoutFlag } from "./_client_args.ts";
import { terminalSafe } from "./_client_format.ts";
import { progressAllowed, UsageError } from "./_common.ts";

/** The KV Connect URL of the default deployment (config.toml's `[kv_connect]`). */
const DEFAULT_KV_CONNECT = "http://127.0.0.1:7001/kv";

/** The usage of `koi bench load`. */
export const BENCH_LOAD_USAGE = `Usage: koi bench load [options]

Drives a running koi deployment through the routing client, YCSB style: --clients concurrent
callers share one client (its routing table, leader cache and connections) and send the
workload's reads and updates, one at a time each. After --warmup-seconds of load that is not
counted, it measures for --seconds (or --ops operations, whichever comes first) and prints the
throughput, per operation type the latency (p50, p95, p99, max, within 1 %), errors by kind
(the client's error codes: timeout, unavailable, ...) and the operations per cluster. Keys are
user<n>, n zero-padded, 0 .. --keys - 1. A progress bar shows on stderr when stdout and stderr
are terminals and CI is not set. With --target etcd-grpc or etcd-http the same workloads go to
an etcd cluster (one pseudo-cluster "etcd"; error kinds from gRPC codes), to compare.

Options:
      --target <t>              koi (default), etcd-grpc (etcd's gRPC API, npm etcd3) or
                                etcd-http (etcd's v3 JSON gateway, fetch with keep-alive)
      --admin <url>             koi: the admin (URL or host:port; default: $KOI_ADMIN, else
                                ${DEFAULT_ADMIN})
      --etcd <endpoints>        etcd: client URLs, comma-separated host:port (default:
                                ${ETCD_DEFAULT_ENDPOINT})
      --workload <A|B|C|W|T>    A: 50 % reads, 50 % updates; B: 95 % reads; C: reads only;
                                W: updates only; T: transactions (koi: two-key atomic writes
                                through KV Connect, half within one cluster as txn-one, half
                                across clusters as txn-cross) (default: A)
      --kv-connect <url>        koi, workload T: the KV Connect URL (default: $KOI_KV_CONNECT,
                                else ${DEFAULT_KV_CONNECT}); the token is
                                $DENO_KV_ACCESS_TOKEN, as koi admin prints it
      --distribution <d>        zipfian (YCSB's, theta 0.99, hot keys scrambled over the key
                                space) or uniform (default: zipfian)
      --keys <N>                the key space, 1 .. ${
  KEYS_MAX.toLocaleString("en")
} (default: 100000)
      --value-bytes <N>         the size of each update's value, 0 .. ${VALUE_BYTES_MAX} (default: 100)
      --clients <N>             concurrent callers, 1 .. 1000 (default: 16)
      --seconds <S>             measure for S seconds (default: 10, unless --ops is given)
      --ops <N>                 measure N operations
      --warmup-seconds <S>      load before measuring, not counted (default: 1; 0: none)
      --preload                 write every key once before the warm-up (with progress)
      --consistency <c>         reads: linearizable or stale (default: linearizable; etcd:
                                stale is a serializable range)
      --seed <N>                seeds the key choices and the mix, 0 .. 4294967295 (default:
                                random; the report says which, to repeat a run)
      --timeout <ms>            each operation's budget, retries included, and how long to
                                wait for the routing table (etcd: for its first status
                                answer) (default: 10000)
      --max-error-rate <F>      exit 1 when more than this fraction of the measured (or the
                                preload's) operations failed, 0 .. 1 (default: 0.01)
      --json                    print the report as one JSON object instead of the tables
  -h, --help                    show this help

Exit codes: 0 done; 1 the deployment (or etcd) cannot be reached, no operation completed, or
more than --max-error-rate of the operations failed (the report is printed first); 2 usage
error.`;

const CLIENTS_MAX = 1000;
const SECONDS_MAX = 86_400;
const SEED_MAX = 4_294_967_295;

/** The stores `--target` names. */
const TARGETS = ["koi", "etcd-grpc", "etcd-http"] as const;

/** Which store to drive, and where it is. */
type TargetSpec =
  | { readonly kind: "koi"; readonly admin: string; readonly kvConnect: string }
  | { readonly kind: "etcd-grpc" | "etcd-http"; readonly endpoints: readonly string[] };

/** What the flags ask for: the runner's options without the target, and the command's own. */
interface LoadSettings {
  readonly target: TargetSpec;
  readonly timeoutMs: number | undefined;
  readonly maxErrorRate: number;
  readonly json: boolean;
  readonly load: Omit<LoadOptions, "target" | "onProgress">;
}

/** Runs `koi bench load <args>`; returns the exit code. */
export async function benchLoad(args: string[]): Promise<number> {
  const settings = parseLoadArgs(args);
  if (settings === undefined) {
    console.log(BENCH_LOAD_USAGE);
    return 0;
  }
  const target = await connectTarget(settings);
  const bar = progressAllowed() ? new PhaseBar() : undefined;
  let report: LoadReport;
  try {
    report = await runLoad({
      ...settings.load,
      target,
      ...(bar ? { onProgress: (p: LoadProgress) => bar.show(p) } : {}),
    });
  } finally {
    bar?.stop();
    await target.close();
  }
  const failure = verdict(report, settings.maxErrorRate);
  if (settings.json) {
    const ok = failure === undefined;
    console.log(JSON.stringify({ ...report, maxErrorRate: settings.maxErrorRate, ok }, null, 2));
  } else {
    console.log(formatLoad(report).split("\n").map(terminalSafe).join("\n"));
  }
  if (failure === undefined) return 0;
  console.error(`koi: ${failure}`);
  return 1;
}

/** The settings of `args`, or undefined for `--help`. */
function parseLoadArgs(args: string[]): LoadSettings | undefined {
  const { values } = parseArgs({
    args,
    options: {
      target: { type: "string" },
      admin: { type: "string" },
      etcd: { type: "string" },
      "kv-connect": { type: "string" },
      workload: { type: "string" },
      distribution: { type: "string" },
      keys: { type: "string" },
      "value-bytes": { type: "string" },
      clients: { type: "string" },
      seconds: { type: "string" },
      ops: { type: "string" },
      "warmup-seconds": { type: "string" },
      preload: { type: "boolean" },
      consistency: { type: "string" },
      seed: { type: "string" },
      timeout: { type: "string" },
      "max-error-rate": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return undefined;
  const ops = values.ops === undefined ? undefined : countFlag(values.ops, "--ops", 1, 1e12);
  const seconds = values.seconds === undefined
    ? (ops === undefined ? 10 : undefined)
    : secondsFlag(values.seconds, "--seconds", false);
  return {
    target: targetFlags(values.target, values.admin, values.etcd, values["kv-connect"]),
    timeoutMs: values.timeout === undefined ? undefined : timeoutFlag(values.timeout),
    maxErrorRate: fractionFlag(values["max-error-rate"] ?? "0.01", "--max-error-rate"),
    json: values.json === true,
    load: {
      workload: WORKLOADS[choice(values.workload?.toUpperCase(), "--workload", WORKLOAD_NAMES)],
      distribution: choice(values.distribution, "--distribution", DISTRIBUTIONS),
      keys: countFlag(values.keys ?? "100000", "--keys", 1, KEYS_MAX),
      valueBytes: countFlag(values["value-bytes"] ?? "100", "--value-bytes", 0, VALUE_BYTES_MAX),
      clients: countFlag(values.clients ?? "16", "--clients", 1, CLIENTS_MAX),
      ...(seconds === undefined ? {} : { seconds }),
      ...(ops === undefined ? {} : { ops }),
      warmupSeconds: secondsFlag(values["warmup-seconds"] ?? "1", "--warmup-seconds", true),
      consistency: choice(values.consistency, "--consistency", ["linearizable", "stale"] as const),
      seed: values.seed === undefined
        ? crypto.getRandomValues(new Uint32Array(1))[0]
        : countFlag(values.seed, "--seed", 0, SEED_MAX),
      preload: values.preload === true,
    },
  };
}

/** `given` if it is one of `options` (the first option when not given); a usage error if not. */
function choice<T extends string>(
  given: string | undefined,
  flag: string,
  options: readonly T[],
): T {
  if (given === undefined) return options[0];
  if (!(options as readonly string[]).includes(given)) {
    throw new UsageError(`Invalid ${flag}: ${given}; expected one of ${options.join(", ")}`);
  }
  return given as T;
}

/**
 * The integer `text` of `flag`, `min` to `max`; `_` separators and an exponent are accepted
 * (`1_000_000`, `1e6`) because key counts are long.
 */
export function countFlag(text: string, flag: string, min: number, max: number): number {
  const clean = text.replace(/_/g, "");
  const n = /^\d+(e\d+)?$/i.test(clean) ? Number(clean) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(
      `Invalid ${flag}: ${text}; expected an integer from ${min} to ${max.toLocaleString("en")}`,
    );
  }
  return n;
}

/** Seconds (decimals allowed), over 0 (or 0 itself when `zero`), at most a day. */
function secondsFlag(text: string, flag: string, zero: boolean): number {
  const n = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(n <= SECONDS_MAX && (zero ? n >= 0 : n > 0))) {
    throw new UsageError(
      `Invalid ${flag}: ${text}; expected seconds, ${zero ? "0" : "over 0"} to ${SECONDS_MAX}`,
    );
  }
  return n;
}

/** A fraction from 0 to 1. */
function fractionFlag(text: string, flag: string): number {
  const n = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(n >= 0 && n <= 1)) throw new UsageError(`Invalid ${flag}: ${text}; expected 0 to 1`);
  return n;
}

/** The target of `--target`, `--admin` and `--etcd` (each of the last two with its own store only). */
function targetFlags(
  target: string | undefined,
  admin: string | undefined,
  etcd: string | undefined,
  kvConnect: string | undefined,
): TargetSpec {
  const kind = choice(target, "--target", TARGETS);
  if (kind === "koi") {
    if (etcd !== undefined) throw new UsageError("--etcd needs --target etcd-grpc or etcd-http");
    return {
      kind,
      admin: adminFlag(admin),
      kvConnect: kvConnect ?? envOr("KOI_KV_CONNECT") ?? DEFAULT_KV_CONNECT,
    };
  }
  if (admin !== undefined) throw new UsageError(`--admin is for --target koi, not ${kind}`);
  try {
    return { kind, endpoints: parseEtcdEndpoints(etcd ?? ETCD_DEFAULT_ENDPOINT) };
  } catch (error) {
    throw new UsageError(`Invalid --etcd: ${(error as Error).message}`);
  }
}

/** Connects; an admin URL the client refuses is a usage error, an unreachable store exit 1. */
async function connectTarget(settings: LoadSettings): Promise<LoadTarget> {
  const { target } = settings;
  const timeout = settings.timeoutMs === undefined ? {} : { timeoutMs: settings.timeoutMs };
  try {
    switch (target.kind) {
      case "koi":
        return await KoiTarget.connect(target.admin, { ...timeout, kvConnect: target.kvConnect });
      case "etcd-http":
        return await EtcdHttpTarget.connect(target.endpoints, timeout);
      case "etcd-grpc": {
        // loaded here only: etcd3 and gRPC take a third of a second to load
        const { EtcdGrpcTarget } = await import("../bench/_etcd_grpc.ts");
        return await EtcdGrpcTarget.connect(target.endpoints, timeout);
      }
    }
  } catch (error) {
    if (error instanceof KoiError && error.code === "bad_request") {
      throw new UsageError(error.message);
    }
    const why = terminalSafe(error instanceof Error ? error.message : String(error));
    throw new Error(
      target.kind === "koi"
        ? `cannot reach the deployment of admin ${target.admin}: ${why}`
        : `cannot reach etcd at ${target.endpoints.join(",")} (${target.kind}): ${why}`,
    );
  }
}

/** Why the run failed, or undefined when it did not. */
function verdict(report: LoadReport, maxErrorRate: number): string | undefined {
  const { measured, preload } = report;
  const failed = (rate: number, what: string) =>
    `${(100 * rate).toFixed(2)} % of ${what} failed, over --max-error-rate ${maxErrorRate}`;
  if (preload !== null && preload.errorRate > maxErrorRate) {
    return failed(preload.errorRate, "the preload's writes");
  }
  if (measured.ops === 0) return "no operation completed in the measured interval";
  if (measured.errorRate > maxErrorRate) {
    return failed(measured.errorRate, "the measured operations");
  }
  return undefined;
}

/** One progress bar per phase of the run (preload, warm-up, measure), on stderr. */
class PhaseBar {
  #bar: ProgressBar | undefined;
  #phase: string | undefined;

  show(progress: LoadProgress): void {
    const payload = {
      phase: progress.phase.padEnd(7),
      ops: progress.ops.toLocaleString("en"),
      rate: Math.round(progress.opsPerSecond).toLocaleString("en"),
      errors: progress.errors.toLocaleString("en"),
    };
    const value = Math.round(progress.fraction * 1000);
    if (progress.phase !== this.#phase) {
      this.#bar?.update(1000); // the phase before ended: its bar shows 100 %
      this.stop();
      this.#phase = progress.phase;
      this.#bar = progressBar(
        "koi bench load {phase} [{bar}] {percentage}% | {ops} ops | {rate} ops/s | {errors} errors",
      );
      this.#bar.start(1000, value, payload);
    } else {
      this.#bar?.update(value, payload);
    }
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = undefined;
  }
}

/** An environment variable, or undefined (also without --allow-env). */
function envOr(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

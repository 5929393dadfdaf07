/**
 * The load runner: `clients` concurrent callers send a workload's operations to a
 * {@linkcode LoadTarget}: optionally a preload that writes every key once, then a warm-up
 * that is not counted, then the measured interval, until a duration or an operation count.
 *
 * @module
 */
import { type PhaseReport, Recorder } from "./_stats.ts";
import type { LoadTarget } from "./_target.ts";
import {
  type Distribution,
  keyName,
  type Op,
  OpStream,
  valueOf,
  type Workload,
  type WorkloadName,
} from "./_workload.ts";

/** How reads are sent: through the leader (linearizable) or by any replica (stale). */
export type ReadConsistency = "linearizable" | "stale";

/** What a load run does. */
export interface LoadOptions {
  /** The store under load. */
  readonly target: LoadTarget;
  /** The operation mix. */
  readonly workload: Workload;
  /** How keys are chosen. */
  readonly distribution: Distribution;
  /** The key space: keys `user0` … `user<keys-1>`, zero-padded. */
  readonly keys: number;
  /** The size of the value every update writes. */
  readonly valueBytes: number;
  /** How many callers send at once, each one operation at a time. */
  readonly clients: number;
  /** Stop sending after this many measured seconds (at least one of seconds and ops). */
  readonly seconds?: number;
  /** Stop sending after this many measured operations. */
  readonly ops?: number;
  /** Seconds of load before measuring, not counted (0: none). */
  readonly warmupSeconds: number;
  /** How reads are sent. */
  readonly consistency: ReadConsistency;
  /** Seeds the key choices, the mix and the value: the same seed, the same sequence. */
  readonly seed: number;
  /** Whether to write every key once before the warm-up. */
  readonly preload: boolean;
  /** The clock in milliseconds (tests); default `performance.now`. */
  readonly now?: () => number;
  /** Called at most every 100 ms of the clock, and at the end of each phase. */
  readonly onProgress?: (progress: LoadProgress) => void;
}

/** Where a run is, for a progress bar. */
export interface LoadProgress {
  /** The phase running. */
  readonly phase: "preload" | "warmup" | "measure";
  /** How far the phase is, 0 to 1. */
  readonly fraction: number;
  /** Operations the phase completed. */
  readonly ops: number;
  /** Operations of the phase that failed. */
  readonly errors: number;
  /** The phase's operations per second so far. */
  readonly opsPerSecond: number;
}

/** Everything a run measured, and what it was asked to do. */
export interface LoadReport {
  /** The target's name (`koi`, `etcd-grpc`, `etcd-http`). */
  readonly target: string;
  /** The target's details (koi: admin URL, routing epoch, scheme; etcd: endpoints, version). */
  readonly deployment: Readonly<Record<string, string | number>>;
  /** The workload's name. */
  readonly workload: WorkloadName;
  /** The workload's mix in words. */
  readonly mix: string;
  /** The fraction of reads. */
  readonly readFraction: number;
  /** How keys were chosen. */
  readonly distribution: Distribution;
  /** The key space. */
  readonly keys: number;
  /** The value size. */
  readonly valueBytes: number;
  /** Concurrent callers. */
  readonly clients: number;
  /** How reads were sent. */
  readonly consistency: ReadConsistency;
  /** The seed. */
  readonly seed: number;
  /** The limits asked for: seconds and operations (null when not given). */
  readonly limit: { readonly seconds: number | null; readonly ops: number | null };
  /** The warm-up, in seconds. */
  readonly warmupSeconds: number;
  /** The preload's numbers (updates only), or null without `preload`. */
  readonly preload: PhaseReport | null;
  /** The measured interval's numbers. */
  readonly measured: PhaseReport;
}

/** How often the runner reports progress, in milliseconds of its clock. */
const PROGRESS_EVERY_MS = 100;

/** Runs the load of `options` and returns what it measured. */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const { target, workload, seconds, ops } = options;
  if (seconds === undefined && ops === undefined) {
    throw new RangeError("A load run needs seconds or ops (or both)");
  }
  const now = options.now ?? (() => performance.now());
  const value = valueOf(options.valueBytes, options.seed);
  const preload = options.preload ? await runPreload(options, value, now) : null;
  const stream = new OpStream(workload, options.distribution, options.keys, options.seed);
  const warm = new Recorder(target.clusters);
  const measured = new Recorder(target.clusters);
  const start = now();
  const measureStart = start + options.warmupSeconds * 1000;
  const measureEnd = seconds === undefined ? Infinity : measureStart + seconds * 1000;
  const progress = throttled(options, now);
  let issued = 0;
  let lastEnd = measureStart;
  await drive(
    options,
    () => {
      const t = now();
      if (t < measureStart) {
        progress("warmup", (t - start) / (measureStart - start), warm, t - start);
        return { op: stream.next(), recorder: warm };
      }
      if (t >= measureEnd || (ops !== undefined && issued >= ops)) return undefined;
      issued++;
      const fraction = Math.max(
        (t - measureStart) / (measureEnd - measureStart),
        issued / (ops ?? Infinity),
      );
      progress("measure", fraction, measured, t - measureStart);
      return { op: stream.next(), recorder: measured };
    },
    value,
    now,
    (recorder, end) => {
      if (recorder === measured && end > lastEnd) lastEnd = end;
    },
  );
  const report = measured.report(measured.ops > 0 ? (lastEnd - measureStart) / 1000 : 0);
  options.onProgress?.({ phase: "measure", fraction: 1, ...counts(report) });
  return {
    target: target.name,
    deployment: target.details,
    workload: workload.name,
    mix: workload.description,
    readFraction: workload.readFraction,
    distribution: options.distribution,
    keys: options.keys,
    valueBytes: options.valueBytes,
    clients: options.clients,
    consistency: options.consistency,
    seed: options.seed,
    limit: { seconds: seconds ?? null, ops: ops ?? null },
    warmupSeconds: options.warmupSeconds,
    preload,
    measured: report,
  };
}

/** Writes every key once, in index order, with the run's callers. */
async function runPreload(
  options: LoadOptions,
  value: Uint8Array,
  now: () => number,
): Promise<PhaseReport> {
  const recorder = new Recorder(options.target.clusters);
  const progress = throttled(options, now);
  const start = now();
  let next = 0;
  let lastEnd = start;
  await drive(
    options,
    () => {
      if (next >= options.keys) return undefined;
      progress("preload", next / options.keys, recorder, now() - start);
      return { op: { type: "update", key: keyName(next++, options.keys) }, recorder };
    },
    value,
    now,
    (_, end) => {
      if (end > lastEnd) lastEnd = end;
    },
  );
  const report = recorder.report((lastEnd - start) / 1000);
  options.onProgress?.({ phase: "preload", fraction: 1, ...counts(report) });
  return report;
}

/** One operation to send and where to count it. */
interface Job {
  readonly op: Op;
  readonly recorder: Recorder;
}

/**
 * Runs `options.clients` callers, each sending the job `take` gives it and waiting for the
 * answer, until `take` says stop; resolves once every caller has its last answer.
 */
async function drive(
  options: LoadOptions,
  take: () => Job | undefined,
  value: Uint8Array,
  now: () => number,
  ended: (recorder: Recorder, end: number) => void,
): Promise<void> {
  const { target } = options;
  const stale = options.consistency === "stale";
  const caller = async () => {
    for (let job = take(); job !== undefined; job = take()) {
      const { op, recorder } = job;
      const cluster = target.clusterOf(op.key);
      const begin = now();
      try {
        if (op.type === "read") {
          const hit = await target.get(op.key, { stale });
          recorder.success(op.type, cluster, now() - begin, !hit);
        } else if (op.type === "txn-one" || op.type === "txn-cross") {
          if (target.transact === undefined) throw new Error(`${target.name} has no transactions`);
          await target.transact(op.key, op.type === "txn-one" ? "one" : "cross", value);
          recorder.success(op.type, cluster, now() - begin);
        } else {
          await target.put(op.key, value);
          recorder.success(op.type, cluster, now() - begin);
        }
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        recorder.failure(op.type, cluster, target.errorKind(error), message);
      }
      ended(recorder, now());
    }
  };
  await Promise.all(Array.from({ length: options.clients }, caller));
}

/** A progress reporter that calls `onProgress` at most every 100 ms of the clock. */
function throttled(
  options: LoadOptions,
  now: () => number,
): (phase: LoadProgress["phase"], fraction: number, recorder: Recorder, elapsedMs: number) => void {
  let last = -Infinity;
  return (phase, fraction, recorder, elapsedMs) => {
    if (options.onProgress === undefined) return;
    const t = now();
    if (t - last < PROGRESS_EVERY_MS) return;
    last = t;
    options.onProgress({
      phase,
      fraction: Math.min(1, Math.max(0, fraction)),
      ops: recorder.ops,
      errors: recorder.errors,
      opsPerSecond: elapsedMs > 0 ? recorder.ops / (elapsedMs / 1000) : 0,
    });
  };
}

function counts(report: PhaseReport): Pick<LoadProgress, "ops" | "errors" | "opsPerSecond"> {
  return { ops: report.ops, errors: report.errors, opsPerSecond: report.opsPerSecond };
}

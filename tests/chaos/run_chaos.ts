/**
 * One chaos run: a deployment of two 3-node clusters of real processes (each node in its own
 * network namespace when the machine allows it), concurrent clients recording a history,
 * the nemesis injecting faults, then healing, final reads, a kill -9 of everything, a restart
 * of every node from its data, final reads again, and the linearizability check of the
 * whole history: every acknowledged write must still be there, and every read consistent.
 *
 * @module
 */
import { connect, HistoryRecorder, type RecordedOperation } from "../../mod.ts";
import { Prng } from "../sim/prng.ts";
import { ChaosDeployment } from "./_deployment.ts";
import { chaosNetwork, healAll } from "./_lab.ts";
import { FAULT_KINDS, type FaultKind, type PartitionNetwork, runNemesis } from "./_nemesis.ts";
import { chooseKeys, finalReads, runWorkload } from "./_workload.ts";
import { checkHistory, type CheckResult, type HistoryEntry } from "./linearizability.ts";

/** Options of {@linkcode runChaos}. */
export interface ChaosOptions {
  readonly seed: number;
  /** Seconds of faults under load. */
  readonly seconds: number;
  /** Concurrent clients (default 8). */
  readonly workers?: number;
  /** Keys of each cluster (default 4): few keys, so that operations contend. */
  readonly keysPerCluster?: number;
  /** Partitions: `auto` (when the machine allows network namespaces), or `off`. */
  readonly partitions?: "auto" | "off";
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

/** What one run did and found. */
export interface ChaosReport {
  readonly seed: number;
  /** Operations by outcome (the final reads included). */
  readonly ops: { ok: number; fail: number; unknown: number };
  /** Faults injected, by kind. */
  readonly faults: Record<FaultKind, number>;
  /** Why partitions were not injected, or "" when they were. */
  readonly partitionsSkipped: string;
  /** The deployment's folder (data and logs), kept when the check failed; else "". */
  readonly dir: string;
  /** Final reads that did not succeed in time (before and after the restart). */
  readonly finalReadFailures: number;
  /** The linearizability verdict on the whole history. */
  readonly check: CheckResult;
  /** The whole history, as checked. */
  readonly entries: readonly HistoryEntry[];
  /** The whole history, as recorded (with error codes). */
  readonly operations: readonly RecordedOperation[];
}

const CLUSTERS = { a: ["a1", "a2", "a3"], b: ["b1", "b2", "b3"] };
const CALL_TIMEOUT_MS = 2_000;
const FINAL_READS_MS = 60_000;

/** Runs one chaos run; the caller decides what counts as a failure. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => {});
  const prng = new Prng(options.seed);
  const { lab, partitionsSkipped, placement } = await chaosNetwork(
    Object.values(CLUSTERS).flat(),
    options.partitions ?? "auto",
  );
  const network: PartitionNetwork | undefined = lab;
  const d = await ChaosDeployment.create({ clusters: CLUSTERS, placement });
  const history = new HistoryRecorder();
  let keep = false;
  try {
    d.startAll();
    await d.waitForLeaders();
    await d.waitForAdmin();
    let keys: string[];
    {
      using probe = await connect(d.adminUrl);
      keys = chooseKeys(probe, Object.keys(CLUSTERS), options.keysPerCluster ?? 4);
    }
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), options.seconds * 1000);
    let faults: Map<FaultKind, number>;
    try {
      [, faults] = await Promise.all([
        runWorkload(
          {
            adminUrl: d.adminUrl,
            workers: options.workers ?? 8,
            keysPerCluster: options.keysPerCluster ?? 4,
            callTimeoutMs: CALL_TIMEOUT_MS,
            signal: stop.signal,
            prng: prng.fork(),
          },
          keys,
          history,
        ),
        runNemesis({
          deployment: d,
          network,
          prng: prng.fork(),
          signal: stop.signal,
          faultMs: [800, 3_000],
          calmMs: [300, 1_500],
          log: (line) => log(`  fault: ${line}`),
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
    // Heal everything, then read every key: the state the run left.
    await healAll(d, lab);
    let finalReadFailures = await finalReads(d.adminUrl, keys, history, FINAL_READS_MS);
    // Kill everything at once and restart every node from its data: nothing acknowledged
    // may be lost.
    await d.stopAll();
    d.startAll();
    await d.waitForLeaders();
    await d.waitForAdmin();
    finalReadFailures += await finalReads(d.adminUrl, keys, history, FINAL_READS_MS);
    const entries = history.operations().map(toEntry);
    const check = checkHistory(entries);
    keep = !check.ok; // the nodes' data and logs, to find out why
    const ops = { ok: 0, fail: 0, unknown: 0 };
    for (const e of entries) ops[e.outcome]++;
    const counted = Object.fromEntries(FAULT_KINDS.map((k) => [k, faults.get(k) ?? 0])) as Record<
      FaultKind,
      number
    >;
    return {
      seed: options.seed,
      ops,
      faults: counted,
      partitionsSkipped,
      dir: keep ? d.dir : "",
      finalReadFailures,
      check,
      entries,
      operations: history.operations(),
    };
  } catch (error) {
    throw new Error(`chaos run ${options.seed} failed: ${error}\n${d.tails()}`, { cause: error });
  } finally {
    await d.close(keep);
    await lab?.close();
  }
}

/** A recorded client call as the checker's entry (a refused condition constrains state). */
export function toEntry(o: RecordedOperation): HistoryEntry {
  const key = new TextDecoder().decode(o.key);
  const value = o.value === undefined ? "" : new TextDecoder().decode(o.value);
  const base = { process: o.client, key, invokeMs: o.invokeMs, endMs: o.endMs };
  const outcome = o.outcome === "pending" ? "unknown" : o.outcome;
  const refused = o.outcome === "fail" && o.errorCode === "precondition_failed";
  if (o.f === "get") {
    const r = o.result;
    const result = r?.value === null || r?.value === undefined
      ? null
      : { value: new TextDecoder().decode(r.value), rev: r.rev! };
    return { ...base, op: { f: "read" }, outcome, ...(outcome === "ok" ? { result } : {}) };
  }
  const op = o.f === "put"
    ? o.ifRev !== undefined
      ? { f: "cas" as const, ifRev: o.ifRev, value }
      : o.ifAbsent
      ? { f: "putIfAbsent" as const, value }
      : { f: "write" as const, value }
    : o.ifRev !== undefined
    ? { f: "deleteIf" as const, ifRev: o.ifRev }
    : { f: "delete" as const };
  if (refused) return { ...base, op, outcome: "ok", result: { precondition: true } };
  if (outcome !== "ok") return { ...base, op, outcome };
  const result = o.f === "put"
    ? { rev: o.result!.rev! }
    : { rev: o.result!.rev!, existed: o.result!.deleted! };
  return { ...base, op, outcome, result };
}

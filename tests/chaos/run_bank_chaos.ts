/**
 * One transactional chaos run: the deployment of run_chaos.ts (two 3-node clusters of real
 * processes, in network namespaces when the machine allows it), a bank spread over both
 * clusters moved by cross-cluster transactions and audited by snapshot reads (_bank.ts) while
 * the nemesis kills, pauses and partitions; then healing, a final audit (every lock
 * resolved), a kill -9 of everything, a restart from the data, another audit, and the check
 * of the whole history for strict serializability (tests/sim/txn_checker.ts).
 *
 * @module
 */
import { connect } from "../../mod.ts";
import { Prng } from "../sim/prng.ts";
import { checkBankHistory, type ReadOp, type WriteOp } from "../sim/txn_checker.ts";
import { BankClient, bankHistory, bankKeys, runBankWorkload } from "./_bank.ts";
import { ChaosDeployment } from "./_deployment.ts";
import type { ChaosOptions } from "./run_chaos.ts";
import { chaosNetwork, healAll } from "./_lab.ts";
import { FAULT_KINDS, type FaultKind, type PartitionNetwork, runNemesis } from "./_nemesis.ts";

/** Options of {@linkcode runBankChaos}: those of a chaos run, with workers and accounts. */
export interface BankChaosOptions
  extends Pick<ChaosOptions, "seed" | "seconds" | "partitions" | "log"> {
  /** Concurrent workers (default 6). */
  readonly workers?: number;
  /** Accounts of each cluster (default 3). */
  readonly accountsPerCluster?: number;
}

/** What one run did and found. */
export interface BankChaosReport {
  readonly seed: number;
  /** Operations by outcome. */
  readonly counts: Readonly<Record<string, number>>;
  /** Transfers committed (the history's, after the unknown ones were settled by reads). */
  readonly committed: number;
  /** Cross-cluster transfers committed. */
  readonly crossCommitted: number;
  /** Faults injected, by kind. */
  readonly faults: Record<FaultKind, number>;
  /** Why partitions were not injected, or "" when they were. */
  readonly partitionsSkipped: string;
  /** The violation the checker found, or "". */
  readonly violation: string;
  /** The history, as checked. */
  readonly history: { readonly writes: readonly WriteOp[]; readonly reads: readonly ReadOp[] };
}

const CLUSTERS = { a: ["a1", "a2", "a3"], b: ["b1", "b2", "b3"] };
const FINAL_AUDIT_MS = 60_000;

/** Runs one transactional chaos run. */
export async function runBankChaos(options: BankChaosOptions): Promise<BankChaosReport> {
  const log = options.log ?? (() => {});
  const prng = new Prng(options.seed);
  const { lab, partitionsSkipped, placement } = await chaosNetwork(
    Object.values(CLUSTERS).flat(),
    options.partitions ?? "auto",
  );
  const network: PartitionNetwork | undefined = lab;
  const d = await ChaosDeployment.create({ clusters: CLUSTERS, placement });
  const h = bankHistory();
  let keep = false;
  try {
    d.startAll();
    await d.waitForLeaders();
    await d.waitForAdmin();
    let keys: Uint8Array[];
    {
      using probe = await connect(d.adminUrl);
      keys = bankKeys(probe, Object.keys(CLUSTERS), options.accountsPerCluster ?? 3);
    }
    const opener = await BankClient.open(d.adminUrl, keys, h, "opener", d.secret);
    try {
      await opener.open();
    } finally {
      opener.close();
    }
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), options.seconds * 1000);
    let faults: Map<FaultKind, number>;
    try {
      [, faults] = await Promise.all([
        runBankWorkload(d.adminUrl, keys, h, {
          workers: options.workers ?? 6,
          prng: prng.fork(),
          signal: stop.signal,
          secret: d.secret,
        }),
        runNemesis({
          deployment: d,
          network,
          prng: prng.fork(),
          signal: stop.signal,
          faultMs: [800, 3_000],
          calmMs: [300, 1_500],
          kinds: FAULT_KINDS.filter((k) => k !== "reshard"),
          log: (line) => log(`  fault: ${line}`),
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
    await healAll(d, lab);
    await finalAudit(d.adminUrl, keys, h, d.secret);
    await d.stopAll();
    d.startAll();
    await d.waitForLeaders();
    await d.waitForAdmin();
    await finalAudit(d.adminUrl, keys, h, d.secret);
    let violation = "";
    try {
      checkBankHistory(h.writes, h.reads);
    } catch (error) {
      violation = error instanceof Error ? error.message : String(error);
      keep = true;
    }
    const counted = Object.fromEntries(FAULT_KINDS.map((k) => [k, faults.get(k) ?? 0])) as Record<
      FaultKind,
      number
    >;
    const committed = h.writes.filter((w) => w.status === "committed");
    return {
      seed: options.seed,
      counts: h.counts,
      committed: committed.length,
      crossCommitted: h.counts["cross-committed"] ?? 0,
      faults: counted,
      partitionsSkipped,
      violation,
      history: { writes: h.writes, reads: h.reads },
    };
  } catch (error) {
    keep = true;
    throw new Error(`bank chaos run ${options.seed} failed: ${error}\n${d.tails()}`, {
      cause: error,
    });
  } finally {
    await d.close(keep);
    await lab?.close();
  }
}

/** An audit that must succeed (every lock resolved) within {@linkcode FINAL_AUDIT_MS}. */
async function finalAudit(
  adminUrl: string,
  keys: readonly Uint8Array[],
  h: ReturnType<typeof bankHistory>,
  secret: string,
): Promise<void> {
  const auditor = await BankClient.open(adminUrl, keys, h, "final", secret);
  try {
    const deadline = Date.now() + FINAL_AUDIT_MS;
    while (Date.now() < deadline) {
      if (await auditor.audit(AbortSignal.timeout(10_000)) !== undefined) return;
    }
    throw new Error(`No final audit succeeded within ${FINAL_AUDIT_MS} ms`);
  } finally {
    auditor.close();
  }
}

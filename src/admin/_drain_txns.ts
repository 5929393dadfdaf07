/**
 * The last step of a drain before its clusters stop (docs/resharding.md, "Transactions"): a
 * drained cluster may still be the primary of cross-cluster transactions, holding decisions
 * that other clusters have not applied yet, or that other clusters hold intents of. Once its
 * nodes stop, nobody could resolve those intents: their keys would stay locked forever and a
 * committed transaction would stay half-applied. So the admin waits until no cluster names a
 * drained one, running the janitor itself meanwhile (the gateway's no longer reaches the
 * drained clusters once the new table is out).
 *
 * @module
 */
import { encode } from "@msgpack/msgpack";
import { type JanitorTransport, sweepDecisions } from "../client/_txn_janitor.ts";
import {
  decodeHeld,
  decodeRecords,
  decodeTxnAnswer,
  encodeTxnCommand,
  type TxnRecordsAnswer,
} from "../client/_txn_wire.ts";
import { sleep } from "../client/_http.ts";
import { TXN_PATHS } from "../txn/mod.ts";

/** How often the admin asks again while transactions hold a drain, in milliseconds. */
export const DRAIN_SETTLE_POLL_MS = 1_000;
/** How often it says what it waits for, in milliseconds. */
export const DRAIN_SETTLE_LOG_MS = 10_000;
/** Records one janitor question asks a cluster for, at most. */
const RECORDS_BATCH = 100;

/** A msgpack request to a cluster's leader (authorized with the cluster's secret). */
export interface ClusterCalls {
  /** POSTs `body` to `path` at `cluster`'s leader; answers the body of a 200. */
  post(cluster: string, path: string, body: Uint8Array): Promise<Uint8Array>;
}

/** The janitor's questions over {@linkcode ClusterCalls}. */
export function janitorOver(
  calls: ClusterCalls,
): JanitorTransport<never> & { records(cluster: string): Promise<TxnRecordsAnswer> } {
  return {
    async records(cluster) {
      return decodeRecords(await calls.post(cluster, TXN_PATHS.records, encode([RECORDS_BATCH])));
    },
    async held(cluster, txns) {
      return decodeHeld(await calls.post(cluster, TXN_PATHS.held, encode([...txns])), txns.length);
    },
    async command(cluster, cmd) {
      if (cmd.type === "prepare") throw new Error("The janitor never prepares");
      return decodeTxnAnswer(await calls.post(cluster, TXN_PATHS.command, encodeTxnCommand(cmd)));
    },
  };
}

/** Options of {@linkcode settleDrainedTransactions}. */
export interface SettleOptions {
  /** Every cluster of the deployment during the move (the drained ones too). */
  readonly clusters: readonly string[];
  /** The clusters about to stop. */
  readonly drained: readonly string[];
  readonly calls: ClusterCalls;
  readonly signal: AbortSignal;
  /** One line for the admin's output. */
  readonly log: (line: string) => void;
  readonly pollMs?: number;
  readonly logMs?: number;
}

/**
 * Resolves once no cluster names a drained one in its transactions: no drained cluster keeps
 * a decision not forgotten, no cluster holds an intent whose primary is drained. Sweeps with
 * the janitor between questions (an attempt whose coordinator died is resolved once its
 * deadline, at most a minute away, passed). A cluster that does not answer is asked again.
 */
export async function settleDrainedTransactions(o: SettleOptions): Promise<void> {
  if (o.drained.length === 0) return;
  const janitor = janitorOver(o.calls);
  const drained = new Set(o.drained);
  let loggedAt = -Infinity;
  for (;;) {
    o.signal.throwIfAborted();
    const waiting: string[] = [];
    for (const cluster of o.clusters) {
      let records: TxnRecordsAnswer;
      try {
        records = await janitor.records(cluster);
      } catch (error) {
        o.signal.throwIfAborted();
        waiting.push(`cluster ${cluster} did not answer (${String((error as Error)?.message)})`);
        continue;
      }
      const p = records.pending;
      if (p === undefined) {
        // A node older than the question tells nothing: stopping its cluster could strand
        // transactions, so the drain waits until the node is upgraded.
        waiting.push(`${cluster} does not say which transactions it keeps (upgrade its nodes)`);
        continue;
      }
      if (drained.has(cluster) && p.decisions > 0) {
        waiting.push(`${cluster} keeps ${p.decisions} decision(s) not applied everywhere yet`);
      }
      const named = p.primaries.filter((x) => drained.has(x));
      if (named.length > 0) {
        waiting.push(
          `${cluster} holds intents of transactions whose primary is ${named.join(", ")}`,
        );
      }
      // Its decisions are forgotten only once each secondary said it holds no intent: a
      // secondary that stopped first would keep them, unforgettable, for good.
      const asked = p.secondaries.filter((x) => drained.has(x));
      if (asked.length > 0) {
        waiting.push(
          `${cluster} keeps decisions not yet confirmed by ${asked.join(", ")}`,
        );
      }
    }
    if (waiting.length === 0) return;
    await sweepDecisions(o.clusters, janitor).catch(() => {});
    if (Date.now() - loggedAt >= (o.logMs ?? DRAIN_SETTLE_LOG_MS)) {
      loggedAt = Date.now();
      o.log(
        `the drained cluster${o.drained.length === 1 ? "" : "s"} ${o.drained.join(", ")} ` +
          `stay${o.drained.length === 1 ? "s" : ""} up until the transactions naming ` +
          `${o.drained.length === 1 ? "it" : "them"} are resolved: ${waiting.join("; ")}`,
      );
    }
    await sleep(o.pollMs ?? DRAIN_SETTLE_POLL_MS, o.signal);
  }
}

/**
 * The janitor of cross-cluster transactions (docs/transactions.md, "Resolution"): a decision
 * stays at its primary until every participant applied it and the coordinator said so; a
 * coordinator that died after deciding leaves it there for good. The janitor asks each primary
 * for its decisions whose deadline passed long ago, applies each one at the secondaries that
 * still hold its intent (rolling it forward), then tells the primary to forget it.
 *
 * @module
 */
import type { TxnAnswer, TxnCommand } from "../txn/mod.ts";
import type { UnforgottenDecision } from "./_txn_wire.ts";

/** What the janitor needs of the clusters. */
export interface JanitorTransport<M> {
  /** A primary's decisions not forgotten, past their deadline. */
  records(cluster: string): Promise<UnforgottenDecision[]>;
  /** Per attempt, whether `cluster` still holds its intent. */
  held(cluster: string, txns: readonly string[]): Promise<boolean[]>;
  /** A transaction command at `cluster`. */
  command(cluster: string, cmd: TxnCommand<M>): Promise<TxnAnswer>;
}

/** What one sweep did. */
export interface SweepReport {
  /** Decisions applied at a secondary that still held the intent. */
  readonly rolledForward: number;
  /** Decisions the primaries forgot. */
  readonly forgotten: number;
}

/** One sweep over `clusters`; a cluster that fails is left for the next sweep. */
export async function sweepDecisions<M>(
  clusters: readonly string[],
  t: JanitorTransport<M>,
): Promise<SweepReport> {
  let rolledForward = 0;
  let forgotten = 0;
  for (const primary of clusters) {
    let records: UnforgottenDecision[];
    try {
      records = await t.records(primary);
    } catch {
      continue;
    }
    for (const r of records) {
      let clear = true;
      for (const secondary of r.secondaries) {
        try {
          const [held] = await t.held(secondary, [r.txn]);
          if (!held) continue;
          const a = await t.command(secondary, { type: "commit", txn: r.txn, vs: r.vs });
          if ("state" in a && a.state === "committed") rolledForward++;
          else clear = false;
        } catch {
          clear = false; // asked again at the next sweep
        }
      }
      if (!clear) continue;
      try {
        await t.command(primary, { type: "forget", txn: r.txn });
        forgotten++;
      } catch { /* at the next sweep */ }
    }
  }
  return { rolledForward, forgotten };
}

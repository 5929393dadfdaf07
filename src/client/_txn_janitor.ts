/**
 * The janitor of cross-cluster transactions (docs/transactions.md, "Resolution"): a decision
 * stays at its primary until every participant applied it and the coordinator said so; a
 * coordinator that died after deciding leaves it there for good, and one that died before
 * deciding leaves its locks until someone resolves them. The janitor asks each cluster for its
 * decisions and prepared attempts whose deadline passed a while ago: it resolves the attempts
 * (abort at their primary unless committed, then that outcome where they are held), applies
 * each decision at the secondaries that still hold its intent (rolling it forward), then tells
 * the primary to forget it.
 *
 * @module
 */
import type { TxnAnswer, TxnCommand } from "../txn/mod.ts";
import type { StaleIntent, UnforgottenDecision } from "./_txn_wire.ts";

/** What the janitor needs of the clusters. */
export interface JanitorTransport<M> {
  /** A primary's decisions not forgotten, and the attempts prepared there, past their deadline. */
  records(cluster: string): Promise<{ decisions: UnforgottenDecision[]; stale: StaleIntent[] }>;
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
  /** Attempts prepared past their deadline, resolved (at their primary, then where held). */
  readonly resolved: number;
}

/** One sweep over `clusters`; a cluster that fails is left for the next sweep. */
export async function sweepDecisions<M>(
  clusters: readonly string[],
  t: JanitorTransport<M>,
): Promise<SweepReport> {
  let rolledForward = 0;
  let forgotten = 0;
  let resolved = 0;
  for (const primary of clusters) {
    let records: UnforgottenDecision[];
    let stale: StaleIntent[];
    try {
      ({ decisions: records, stale } = await t.records(primary));
    } catch {
      continue;
    }
    // `primary` here is where the stale intents are held: each is decided at its own primary
    // (abort unless committed), then that outcome applied here.
    for (const s of stale) {
      try {
        const decided = await t.command(s.primary, {
          type: "abort",
          txn: s.txn,
          deadline: s.deadline,
        });
        if (s.primary !== primary) {
          await t.command(
            primary,
            "state" in decided && decided.state === "committed"
              ? { type: "commit", txn: s.txn, vs: decided.vs }
              : { type: "abort", txn: s.txn, deadline: s.deadline },
          );
        }
        resolved++;
      } catch { /* at the next sweep */ }
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
  return { rolledForward, forgotten, resolved };
}

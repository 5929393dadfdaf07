/**
 * What a reshard asks for (docs/resharding.md): the running deployment's config and the new
 * one, checked against each other, and the tables and clusters of the move. Pure.
 *
 * @module
 */
import { ConfigError, type KoiConfig } from "../config/mod.ts";
import type { TableSpec } from "../storage/mod.ts";

/** A move from one routing table to the next. */
export interface ReshardPlan {
  /** The table in force. */
  readonly from: TableSpec;
  /** The table the move goes to (epoch + 1). */
  readonly to: TableSpec;
  /** Clusters of the new table that the deployment does not run yet. */
  readonly added: readonly string[];
  /** Clusters of the table in force that the new one drains (they end empty and stop). */
  readonly drained: readonly string[];
  /** Every cluster of either table: the running ones first, in their order, then added ones. */
  readonly clusters: readonly string[];
  /** The deployment during the move: the running config plus the added clusters. */
  readonly during: KoiConfig;
  /** The deployment after the move: the new config. */
  readonly after: KoiConfig;
  /** The fraction of keys an ideal (weighted) hash moves: 1 - sum of min(old, new) shares. */
  readonly idealFraction: number;
}

/** The new config does not describe a move the admin can make (exit 2 for the CLI). */
export class ReshardPlanError extends ConfigError {
  /** Creates the error with the whole explanation. */
  constructor(message: string) {
    super("routing", message);
    this.name = "ReshardPlanError";
  }
}

function tableOf(config: KoiConfig): TableSpec {
  return {
    scheme: config.routing.scheme,
    epoch: config.routing.epoch,
    members: config.clusters.map((c) => ({ id: c.id, loadFactor: c.loadFactor })),
  };
}

function shares(t: TableSpec): Map<string, number> {
  const total = t.members.reduce((s, m) => s + m.loadFactor, 0);
  return new Map(t.members.map((m) => [m.id, m.loadFactor / total]));
}

/** The fraction of keys whose owner changes from `a` to `b` under an ideal hash. */
export function idealMovedFraction(a: TableSpec, b: TableSpec): number {
  if (a.scheme !== b.scheme) return 1 - 1 / Math.max(a.members.length, b.members.length);
  const sa = shares(a);
  const sb = shares(b);
  let kept = 0;
  for (const [id, s] of sa) kept += Math.min(s, sb.get(id) ?? 0);
  return Math.max(0, 1 - kept);
}

function nodesText(c: KoiConfig["clusters"][number]): string {
  return JSON.stringify(c.nodes.map((n) => [n.id, n.raft.text, n.http.text, n.dataDir]));
}

/** Checks `next` against the running `current` and plans the move; throws on any mismatch. */
export function planReshard(current: KoiConfig, next: KoiConfig): ReshardPlan {
  const want = current.routing.epoch + 1;
  if (next.routing.epoch !== want) {
    throw new ReshardPlanError(
      `the new config must set [routing] epoch = ${want} (the running deployment has epoch ` +
        `${current.routing.epoch}); it has ${next.routing.epoch}`,
    );
  }
  if (
    next.admin.http.text !== current.admin.http.text || next.admin.dataDir !== current.admin.dataDir
  ) {
    throw new ReshardPlanError(
      "the new config must keep the [admin] section (http and data) of the running one",
    );
  }
  const before = new Map(current.clusters.map((c) => [c.id, c]));
  const nodeIds = new Set(current.clusters.flatMap((c) => c.nodes.map((n) => n.id)));
  const added: string[] = [];
  for (const c of next.clusters) {
    const old = before.get(c.id);
    if (old === undefined) {
      added.push(c.id);
      for (const n of c.nodes) {
        if (nodeIds.has(n.id)) {
          throw new ReshardPlanError(
            `node ${n.id} of the new cluster ${c.id} has the id of a running node`,
          );
        }
      }
    } else if (nodesText(old) !== nodesText(c)) {
      throw new ReshardPlanError(
        `cluster ${c.id} lists other nodes than the running deployment: resharding moves keys ` +
          `between clusters and keeps their members (change members with POST /v1/members)`,
      );
    }
  }
  const kept = new Set(next.clusters.map((c) => c.id));
  const drained = current.clusters.filter((c) => !kept.has(c.id)).map((c) => c.id);
  const from = tableOf(current);
  const to = tableOf(next);
  const same = from.scheme === to.scheme && drained.length === 0 && added.length === 0 &&
    next.clusters.every((c) => before.get(c.id)!.loadFactor === c.loadFactor);
  if (same) {
    throw new ReshardPlanError(
      "the new config routes every key as the running one does: nothing to move (change " +
        "clusters, load factors or the scheme)",
    );
  }
  const during: KoiConfig = {
    ...current,
    routing: { ...next.routing },
    clusters: [...current.clusters, ...next.clusters.filter((c) => !before.has(c.id))],
  };
  return {
    from,
    to,
    added,
    drained,
    clusters: during.clusters.map((c) => c.id),
    during,
    after: next,
    idealFraction: idealMovedFraction(from, to),
  };
}

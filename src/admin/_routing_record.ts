/**
 * The routing table a deployment last ran with, kept in `<admin.data>/routing.json`. Keys
 * live on the cluster that owned them when they were written, and only a reshard
 * (`koi admin reshard`, docs/resharding.md) moves them, so an edited config.toml that changes
 * the clusters, their load factors or the scheme would silently hide every key whose owner
 * changes; one
 * that keeps the epoch would also let clients and nodes mix two tables under one number, and
 * one that lowers it would roll clients back. The admin refuses all three at start, naming
 * the difference, unless the operator says the change is meant.
 *
 * @module
 */
import { ConfigError, type KoiConfig } from "../config/mod.ts";

/** The record's file name inside the admin's state directory. */
export const ROUTING_RECORD_FILE = "routing.json";

/** What the record holds. */
export interface RoutingRecord {
  /** The routing epoch. */
  readonly epoch: number;
  /** The scheme. */
  readonly scheme: string;
  /** The CARP members in config order. */
  readonly clusters: readonly { readonly id: string; readonly loadFactor: number }[];
}

/** The routing a config describes. */
export function routingOf(config: KoiConfig): RoutingRecord {
  return {
    epoch: config.routing.epoch,
    scheme: config.routing.scheme,
    clusters: config.clusters.map((c) => ({ id: c.id, loadFactor: c.loadFactor })),
  };
}

/** How `next` differs from `last`, as phrases ("cluster c removed", …); empty when alike. */
export function routingChanges(last: RoutingRecord, next: RoutingRecord): string[] {
  const changes: string[] = [];
  if (last.scheme !== next.scheme) changes.push(`scheme ${last.scheme} → ${next.scheme}`);
  const before = new Map(last.clusters.map((c) => [c.id, c.loadFactor]));
  const after = new Map(next.clusters.map((c) => [c.id, c.loadFactor]));
  for (const [id, w] of before) {
    if (!after.has(id)) changes.push(`cluster ${id} removed`);
    else if (after.get(id) !== w) changes.push(`cluster ${id} load factor ${w} → ${after.get(id)}`);
  }
  for (const id of after.keys()) if (!before.has(id)) changes.push(`cluster ${id} added`);
  return changes;
}

/**
 * The config changes the routing in a way the admin does not start with by default: a
 * configuration error (exit 2) on field `routing`.
 */
export class RoutingChangeError extends ConfigError {
  /** Creates the error with the whole explanation. */
  constructor(message: string) {
    super("routing", message);
    this.name = "RoutingChangeError";
  }
}

/**
 * Compares the config's routing with the recorded one and records it. Throws
 * {@linkcode RoutingChangeError} when the epoch went back, or when the routing changed (with
 * or without a new epoch) and `acceptChange` is false. Returns the changes accepted, if any.
 */
export async function checkRouting(
  dir: string,
  config: KoiConfig,
  acceptChange: boolean,
): Promise<string[]> {
  const path = `${dir}/${ROUTING_RECORD_FILE}`;
  const next = routingOf(config);
  let last: RoutingRecord | undefined;
  try {
    last = parseRecord(await Deno.readTextFile(path), path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  let changes: string[] = [];
  if (last !== undefined) {
    changes = routingChanges(last, next);
    if (next.epoch < last.epoch) {
      throw new RoutingChangeError(
        `config.toml's [routing] epoch went back from ${last.epoch} to ${next.epoch}: clients ` +
          `that hold the newer table would keep it. After a reshard (koi admin reshard), start ` +
          `the admin with the config the reshard moved to; else set epoch = ${
            last.epoch + (changes.length > 0 ? 1 : 0)
          } or more.`,
      );
    }
    if (changes.length > 0 && next.epoch === last.epoch) {
      throw new RoutingChangeError(
        `config.toml changes the routing (${changes.join("; ")}) but keeps [routing] epoch ` +
          `${last.epoch}: nodes and clients could not tell the two tables apart. Bump the ` +
          `epoch (epoch = ${last.epoch + 1}) and see below.`,
      );
    }
    if (changes.length > 0 && !acceptChange) {
      throw new RoutingChangeError(
        `config.toml changes the routing of a deployment that may hold data (${
          changes.join("; ")
        }). Starting with it would not move keys between clusters: every key whose owner ` +
          `changes would stay where it is and no longer be found. To move them, start the admin ` +
          `with the previous config and run koi admin reshard --config <this file>; else ` +
          `restore the previous clusters and load factors, start a new deployment, or pass ` +
          `--accept-routing-change if the keys that move may be lost.`,
      );
    }
  }
  if (last === undefined || changes.length > 0 || last.epoch !== next.epoch) {
    const tmp = `${path}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify(next, null, 2) + "\n");
    await Deno.rename(tmp, path);
  }
  return changes;
}

/** Records `config`'s routing as the one the deployment runs (after a reshard). */
export async function recordRouting(dir: string, config: KoiConfig): Promise<void> {
  const path = `${dir}/${ROUTING_RECORD_FILE}`;
  const tmp = `${path}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(routingOf(config), null, 2) + "\n");
  await Deno.rename(tmp, path);
}

function parseRecord(text: string, path: string): RoutingRecord {
  try {
    const r = JSON.parse(text) as RoutingRecord;
    const keys = (o: object, allowed: string[]) => Object.keys(o).every((k) => allowed.includes(k));
    const ok = typeof r === "object" && r !== null && keys(r, ["epoch", "scheme", "clusters"]) &&
      Number.isSafeInteger(r.epoch) && r.epoch >= 1 && typeof r.scheme === "string" &&
      Array.isArray(r.clusters) && r.clusters.length > 0 &&
      r.clusters.every((c) =>
        typeof c === "object" && c !== null && keys(c, ["id", "loadFactor"]) &&
        typeof c.id === "string" && Number.isFinite(c.loadFactor) && c.loadFactor > 0
      ) &&
      new Set(r.clusters.map((c) => c.id)).size === r.clusters.length;
    if (ok) return r;
  } catch { /* below */ }
  throw new RoutingChangeError(
    `${path} is damaged: it records the routing the deployment last ran with. Restore it, or ` +
      `delete it if config.toml describes that routing exactly.`,
  );
}

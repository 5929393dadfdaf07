/**
 * The admin's answers as plain data: the routing table (`GET /v1/carp`) and the deployment's
 * state (`GET /v1/clusters`), built from the config, the supervised processes and the latest
 * status poll. The HTTP routes and the status page render these.
 *
 * @module
 */
import type { KoiConfig } from "../config/mod.ts";
import type { DeploymentActivity, LeaderChange } from "./_activity.ts";
import type { ReshardPlan } from "./_reshard_plan.ts";
import type { ReshardProgress } from "./_reshard.ts";
import type { NodeProcess, NodeProcessState } from "./_node_process.ts";
import { hostPort, nodeBaseUrl, type PolledStatus, type StatusPoller } from "./_poller.ts";

/** What the views read. */
export interface DeploymentSource {
  /** The deployment. */
  readonly config: KoiConfig;
  /** The latest status of every node. */
  readonly poller: StatusPoller;
  /** The supervised processes by node id (absent for nodes the admin does not run). */
  readonly processes: ReadonlyMap<string, NodeProcess>;
  /** Rates and leader changes over the poll rounds (the status page's; none when absent). */
  readonly activity?: DeploymentActivity;
  /** The move clients route by, once it began everywhere (docs/resharding.md). */
  readonly move?: () => ReshardPlan | undefined;
  /** The move that runs but has not begun everywhere: clients keep its old table. */
  readonly pendingMove?: () => ReshardPlan | undefined;
  /** The running or last move's progress. */
  readonly reshard?: () => ReshardProgress | undefined;
}

/** `GET /v1/carp`: everything a client needs to route. */
export interface CarpView {
  /** Routing epoch. */
  readonly epoch: number;
  /** Routing scheme. */
  readonly scheme: string;
  /** Whether keys move to this table now (docs/resharding.md): a node may redirect (421). */
  readonly moving?: boolean;
  /** The clusters in config order. */
  readonly clusters: readonly {
    readonly id: string;
    readonly loadFactor: number;
    /**
     * During a move: the cluster is not in the table (its keys move away); clients need its
     * nodes for the keys it still holds.
     */
    readonly draining?: boolean;
    /** The leader the admin saw last, "" when none (a hint). */
    readonly leader: string;
    /**
     * `http` is the node's `host:port`; `url` its base URL, `https://` when the deployment
     * runs TLS (clients that read only `http` assume `http://`).
     */
    readonly nodes: readonly { readonly id: string; readonly http: string; readonly url: string }[];
  }[];
}

/** One node in `GET /v1/clusters`. */
export interface NodeStateView {
  /** Node id. */
  readonly id: string;
  /** Its HTTP address. */
  readonly http: string;
  /** Its Raft address. */
  readonly raft: string;
  /** The PID of its process, null when not running. */
  readonly pid: number | null;
  /** Restarts by the admin. */
  readonly restarts: number;
  /** The process's state; `external` when the admin does not run it (`--no-spawn`). */
  readonly process: NodeProcessState | "external";
  /** Whether it answered the last status poll. */
  readonly reachable: boolean;
  /** Why not ("" when it did). */
  readonly error: string;
  /** Its last answer to `GET /v1/status`, or null. */
  readonly status: PolledStatus | null;
}

/** `GET /v1/clusters`. */
export interface ClustersView {
  /** Routing epoch. */
  readonly epoch: number;
  /** Routing scheme. */
  readonly scheme: string;
  /** Whether every cluster has a leader. */
  readonly healthy: boolean;
  /** The clusters in config order. */
  readonly clusters: readonly {
    readonly id: string;
    readonly loadFactor: number;
    readonly leader: string;
    readonly nodes: readonly NodeStateView[];
  }[];
}

/** The routing table. */
export function carpView(source: DeploymentSource): CarpView {
  const { config, poller } = source;
  const move = source.move?.();
  const cluster = (c: KoiConfig["clusters"][number], draining: boolean) => ({
    id: c.id,
    loadFactor: c.loadFactor,
    ...(draining ? { draining: true } : {}),
    leader: poller.leaderOf(c.id),
    nodes: c.nodes.map((n) => ({ id: n.id, http: hostPort(n), url: nodeBaseUrl(n) })),
  });
  if (move !== undefined) {
    // The next table, and the clusters it drains (their nodes, for the keys they still hold).
    const next = move.after;
    const drained = config.clusters.filter((c) => move.drained.includes(c.id));
    return {
      epoch: next.routing.epoch,
      scheme: next.routing.scheme,
      moving: true,
      clusters: [
        ...next.clusters.map((c) => cluster(c, false)),
        ...drained.map((c) => cluster(c, true)),
      ],
    };
  }
  const pending = source.pendingMove?.();
  if (pending !== undefined) {
    // The deployment polls the added clusters already; clients route by the old table.
    const old = new Set(pending.from.members.map((m) => m.id));
    return {
      epoch: pending.from.epoch,
      scheme: pending.from.scheme,
      clusters: config.clusters.filter((c) => old.has(c.id)).map((c) => cluster(c, false)),
    };
  }
  return {
    epoch: config.routing.epoch,
    scheme: config.routing.scheme,
    clusters: config.clusters.map((c) => cluster(c, false)),
  };
}

/** The state of every node. */
export function clustersView(source: DeploymentSource): ClustersView {
  const { config, poller, processes } = source;
  return {
    epoch: config.routing.epoch,
    scheme: config.routing.scheme,
    healthy: poller.allLeaders(),
    clusters: config.clusters.map((c) => ({
      id: c.id,
      loadFactor: c.loadFactor,
      leader: poller.leaderOf(c.id),
      nodes: c.nodes.map((n): NodeStateView => {
        const view = poller.view(n.id);
        const proc = processes.get(n.id);
        let error = view.error;
        if (view.status === null && proc !== undefined && proc.state === "waiting") {
          const inMs = Math.max(0, proc.nextStartAt - Date.now());
          const exit = proc.lastExit;
          const how = proc.spawnError !== undefined
            ? `cannot start: ${proc.spawnError}`
            : exit === undefined
            ? ""
            : exit.signal !== null
            ? `killed by ${exit.signal}`
            : `exit code ${exit.code}`;
          error = `not running (restart ${proc.restarts + 1} in ${(inMs / 1000).toFixed(1)} s` +
            `${how === "" ? "" : `; ${how}`}${
              proc.lastLine === "" ? "" : `; last line: ${proc.lastLine}`
            })`;
        }
        return {
          id: n.id,
          http: hostPort(n),
          raft: n.raft.text,
          pid: proc?.pid ?? null,
          restarts: proc?.restarts ?? 0,
          process: proc?.state ?? "external",
          reachable: view.status !== null,
          error,
          status: view.status,
        };
      }),
    })),
  };
}

/** One node in `GET /v1/dashboard`: what the status page shows of it. */
export interface DashboardNode {
  /** Node id. */
  readonly id: string;
  /** Its HTTP address. */
  readonly http: string;
  /** Its PID, null when not running. */
  readonly pid: number | null;
  /** Restarts by the admin. */
  readonly restarts: number;
  /** `leader`, `follower`, `candidate`, `preCandidate`, or `unreachable`. */
  readonly role: string;
  /** `ok`, `unreachable` or `disk_failed`. */
  readonly health: string;
  /** Its term, commit and applied indexes and keys (null when unreachable). */
  readonly term: number | null;
  readonly commit: number | null;
  readonly applied: number | null;
  readonly keys: number | null;
  /** Why it is unreachable or unhealthy ("" when it is fine). */
  readonly error: string;
}

/** `GET /v1/dashboard`: everything the status page draws, in one answer. */
export interface DashboardView {
  /** When the admin built it (ms since the epoch). */
  readonly at: number;
  /** Routing epoch and scheme. */
  readonly epoch: number;
  readonly scheme: string;
  /** Whether every cluster has a leader. */
  readonly healthy: boolean;
  /** The clusters in config order. */
  readonly clusters: readonly {
    readonly id: string;
    readonly loadFactor: number;
    readonly leader: string;
    /** Keys and bytes the cluster holds, as its leader (else its most advanced node) says. */
    readonly keys: number;
    readonly bytes: number;
    readonly readsPerSecond: number;
    readonly writesPerSecond: number;
    readonly nodes: readonly DashboardNode[];
  }[];
  /** Recent leader changes, newest first. */
  readonly leaderChanges: readonly LeaderChange[];
  /** The running or last reshard since the admin started, or null. */
  readonly reshard: ReshardProgress | null;
}

/** The status page's data: {@linkcode clustersView} plus rates and leader changes. */
export function dashboardView(source: DeploymentSource, at: number): DashboardView {
  const view = clustersView(source);
  const activity = source.activity;
  return {
    at,
    epoch: view.epoch,
    scheme: view.scheme,
    healthy: view.healthy,
    clusters: view.clusters.map((c) => {
      const leader = c.nodes.find((n) => n.id === c.leader)?.status;
      const best = leader ?? c.nodes.map((n) => n.status).filter((s) => s !== null)
        .sort((a, b) => b.applied - a.applied)[0];
      return {
        id: c.id,
        loadFactor: c.loadFactor,
        leader: c.leader,
        keys: best?.keys ?? 0,
        bytes: best?.bytes ?? 0,
        ...(activity?.rates(c.id) ?? { readsPerSecond: 0, writesPerSecond: 0 }),
        nodes: c.nodes.map(dashboardNode),
      };
    }),
    leaderChanges: activity?.leaderChanges() ?? [],
    reshard: source.reshard?.() ?? null,
  };
}

function dashboardNode(node: NodeStateView): DashboardNode {
  const s = node.status;
  // The node's status carries its disk state (docs/disk_failures.md) beyond the client's type.
  const disk = (s as { disk?: { state?: unknown; error?: unknown } } | null)?.disk;
  const diskFailed = disk?.state === "failed";
  return {
    id: node.id,
    http: node.http,
    pid: node.pid,
    restarts: node.restarts,
    role: s?.role ?? "unreachable",
    health: s === null ? "unreachable" : diskFailed ? "disk_failed" : "ok",
    term: s?.term ?? null,
    commit: s?.commit ?? null,
    applied: s?.applied ?? null,
    keys: s?.keys ?? null,
    error: s === null
      ? node.error
      : diskFailed
      ? `disk failed: ${String(disk?.error ?? "").slice(0, 200)}`
      : "",
  };
}

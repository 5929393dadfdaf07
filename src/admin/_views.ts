/**
 * The admin's answers as plain data: the routing table (`GET /v1/carp`) and the deployment's
 * state (`GET /v1/clusters`), built from the config, the supervised processes and the latest
 * status poll. The HTTP routes and the status page render these.
 *
 * @module
 */
import type { KoiConfig } from "../config/mod.ts";
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
}

/** `GET /v1/carp`: everything a client needs to route. */
export interface CarpView {
  /** Routing epoch. */
  readonly epoch: number;
  /** Routing scheme. */
  readonly scheme: string;
  /** The clusters in config order. */
  readonly clusters: readonly {
    readonly id: string;
    readonly loadFactor: number;
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
  return {
    epoch: config.routing.epoch,
    scheme: config.routing.scheme,
    clusters: config.clusters.map((c) => ({
      id: c.id,
      loadFactor: c.loadFactor,
      leader: poller.leaderOf(c.id),
      nodes: c.nodes.map((n) => ({ id: n.id, http: hostPort(n), url: nodeBaseUrl(n) })),
    })),
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

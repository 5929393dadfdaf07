/** The admin's view of every cluster and node (`GET /v1/clusters`). */

import {
  adminBaseUrl,
  attempt,
  errorOf,
  type FetchLike,
  isAnswer,
  jsonOf,
  makeFetcher,
  tooLargeError,
} from "./_http.ts";
import { ADMIN_ANSWER_BYTES_MAX } from "./_limits.ts";
import { parseDeploymentStatus } from "./_status_parse.ts";
import { KoiError, KoiHttpError, TimeoutError, UnavailableError } from "./errors.ts";

/** A node's own `GET /v1/status` answer (docs/api.md, "Management"). */
export interface NodeStatus {
  /** The node id. */
  readonly node: string;
  /** The node's cluster id. */
  readonly cluster: string;
  /** `leader`, `follower`, `candidate` or `preCandidate`. */
  readonly role: string;
  /** The node's Raft term. */
  readonly term: number;
  /** The leader the node knows, `""` when none. */
  readonly leader: string;
  /** The node's commit index. */
  readonly commit: number;
  /** The node's applied index. */
  readonly applied: number;
  /** The index of the node's latest snapshot. */
  readonly snapshot: number;
  /** The routing epoch the node runs with. */
  readonly epoch: number;
  /** The number of keys the node's applied state holds . */
  readonly keys: number;
  /** The bytes of keys and values the node's applied state holds . */
  readonly bytes: number;
  /** The cluster's members as this node knows them; `match` only on the leader. */
  readonly members: readonly {
    readonly id: string;
    readonly voter: boolean;
    readonly match: number;
  }[];
  /** Gets and lists the node answered since it started (absent from older nodes). */
  readonly reads?: number;
  /** Writes the node acknowledged since it started (absent from older nodes). */
  readonly writes?: number;
}

/** One node as the admin reports it. */
export interface AdminNodeReport {
  /** The node id. */
  readonly id: string;
  /** The node's HTTP address. */
  readonly http: string;
  /** The node's Raft address. */
  readonly raft: string;
  /** The node process's pid; null when it is not running. */
  readonly pid: number | null;
  /** The admin's view of the node's process (e.g. `running`, `waiting`, `stopped`). */
  readonly process?: string;
  /** How often the admin restarted the node. */
  readonly restarts: number;
  /** Whether the admin reached the node's `/v1/status`. */
  readonly reachable: boolean;
  /** Why not, when not reachable (e.g. `connection refused`); `""` otherwise. */
  readonly error: string;
  /** The node's status, or null when it was not reachable. */
  readonly status: NodeStatus | null;
}

/** One cluster as the admin reports it. */
export interface AdminClusterReport {
  /** The cluster id. */
  readonly id: string;
  /** The cluster's CARP load factor. */
  readonly loadFactor: number;
  /** The leader the admin knows, `""` when none. */
  readonly leader: string;
  /** The cluster's nodes, in config order. */
  readonly nodes: readonly AdminNodeReport[];
}

/** The admin's `GET /v1/clusters` answer: the whole deployment. */
export interface DeploymentStatus {
  /** The routing epoch. */
  readonly epoch: number;
  /** The CARP scheme. */
  readonly scheme: string;
  /** True once every cluster has a leader. */
  readonly healthy: boolean;
  /** Every cluster, in config order. */
  readonly clusters: readonly AdminClusterReport[];
}

/** Options of {@linkcode deploymentStatus}. */
export interface DeploymentStatusOptions {
  /** How long to wait for the admin's answer, in milliseconds. Default 10,000. */
  readonly timeoutMs?: number;
  /** Aborts the request. */
  readonly signal?: AbortSignal;
  /** The `fetch` to use (tests); default: the global one on an own HTTP client. */
  readonly fetch?: (input: URL, init: RequestInit) => Promise<Response>;
  /** Certificates (PEM) to trust for an `https://` admin: see `ConnectOptions.caCerts`. */
  readonly caCerts?: readonly string[];
}

/**
 * Asks the admin for every cluster and node (`GET /v1/clusters`): roles, terms, commit and
 * applied indexes, key counts, pids and restarts, and why a node could not be reached. One
 * request, no retries, and no routing table needed: it works while clusters are unhealthy.
 *
 * @example
 * ```ts
 * import { deploymentStatus } from "./mod.ts";
 *
 * const status = await deploymentStatus("http://127.0.0.1:7000");
 * for (const cluster of status.clusters) {
 *   console.log(cluster.id, cluster.leader || "no leader");
 * }
 * ```
 */
export async function deploymentStatus(
  admin: string | URL,
  options: DeploymentStatusOptions = {},
): Promise<DeploymentStatus> {
  const base = adminBaseUrl(admin);
  const fetcher = makeFetcher(
    options.fetch as FetchLike | undefined,
    options.caCerts === undefined ? {} : { caCerts: options.caCerts },
  );
  try {
    return await fetchDeploymentStatus(fetcher.fetch, base, options);
  } finally {
    fetcher.close();
  }
}

/** {@linkcode deploymentStatus} with a given fetch and base URL. */
export async function fetchDeploymentStatus(
  fetchFn: FetchLike,
  base: URL,
  options: DeploymentStatusOptions,
): Promise<DeploymentStatus> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const url = new URL("v1/clusters", base);
  const signal = options.signal ?? new AbortController().signal;
  const result = await attempt(
    fetchFn,
    url,
    { method: "GET" },
    timeoutMs,
    signal,
    ADMIN_ANSWER_BYTES_MAX,
  );
  const who = `the admin ${base.origin}`;
  if (!isAnswer(result)) {
    if (result.kind === "too_large") throw tooLargeError("Cannot fetch the status", who, result);
    if (result.kind === "aborted") {
      throw new KoiError("aborted", `Asking ${who} for the status was aborted`, {
        cause: result.reason,
      });
    }
    if (result.kind === "timeout") {
      throw new TimeoutError(`${who} did not answer within ${timeoutMs} ms`, {
        attempts: 1,
        timeoutMs,
      });
    }
    throw new UnavailableError(`Cannot reach ${who}: ${result.message}`, {
      attempts: 1,
      timeoutMs,
    });
  }
  if (result.status !== 200) {
    const { code, message } = errorOf(result);
    throw new KoiHttpError(code, `${who} answered ${result.status} ${code}: ${message}`, {
      status: result.status,
    });
  }
  return parseDeploymentStatus(jsonOf(result), who);
}

/**
 * The client's routing state: the CARP table in use (fetched from the admin, refetched
 * after `421 wrong_shard` and after a cluster failed at every node), the leader it believes in per cluster, and the nodes that
 * recently failed a connection.
 */

import { type Call, type ClientCore, untilCallEnds } from "./_call.ts";
import { throwIfAborted } from "./_failures.ts";
import {
  attempt,
  errorOf,
  isAnswer,
  jsonOf,
  now,
  retryAfterMs,
  sleep,
  tooLargeError,
} from "./_http.ts";
import { ADMIN_ANSWER_BYTES_MAX } from "./_limits.ts";
import { type ClusterInfo, type NodeInfo, parseRoutingTable, type RoutingTable } from "./_table.ts";
import { KoiError, KoiHttpError, TimeoutError, UnavailableError } from "./errors.ts";

/** A node that failed a connection is tried after the others for this long. */
const DOWN_MS = 2_000;

/**
 * The least time between two refetches of the table after a cluster failed at every node:
 * a cluster that is down stays down for a while, and its callers must not hammer the admin.
 */
const OUTAGE_REFRESH_MS = 1_000;

/** A cluster's routing state: its nodes and the leader the client believes in. */
export interface ClusterState {
  readonly info: ClusterInfo;
  readonly byId: ReadonlyMap<string, NodeInfo>;
  leader: string | undefined;
  /** Turns of the members for spread reads: the next read starts at member `turn % n`. */
  turn: number;
}

/** The routing table of one client, its clusters' leaders and its nodes' failures. */
export class Routes {
  readonly #core: ClientCore;
  readonly #down = new Map<string, number>();
  #table!: RoutingTable;
  #clusters = new Map<string, ClusterState>();
  #refreshing: Promise<RoutingTable> | undefined;
  #outageRefreshAt = 0;

  /** Routes nothing until {@linkcode Routes.refresh} installed a first table. */
  constructor(core: ClientCore) {
    this.#core = core;
  }

  /** The routing table in use. */
  get table(): RoutingTable {
    return this.#table;
  }

  /** The routing state of cluster `id`, when the table in use has it. */
  cluster(id: string): ClusterState | undefined {
    return this.#clusters.get(id);
  }

  /** Fetches the table from the admin, retrying within `call`'s deadline, and installs it. */
  async refresh(call: Call): Promise<RoutingTable> {
    return this.#install(await this.#fetchTable(call, true));
  }

  /**
   * The node to try next, failed ones last: for a write (or `anyMember` false) the leader,
   * then the others in config order; for a spread read the members in turn, so that reads
   * load every member alike.
   */
  pick(state: ClusterState, tried: ReadonlySet<string>, anyMember = false): NodeInfo | undefined {
    const t = now();
    const nodes = state.info.nodes;
    const start = anyMember && tried.size === 0 ? state.turn++ % nodes.length : 0;
    let best: NodeInfo | undefined;
    let bestRank = Infinity;
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[(start + i) % nodes.length];
      if (tried.has(node.id)) continue;
      const down = (this.#down.get(node.id) ?? 0) > t;
      const rank = (down ? 2 : 0) + (anyMember || node.id === state.leader ? 0 : 1);
      if (rank < bestRank) {
        best = node;
        bestRank = rank;
      }
    }
    return best;
  }

  /** Notes that `node` did not answer: it goes last for a while, and is no longer leader. */
  nodeFailed(state: ClusterState, node: NodeInfo): void {
    this.#down.set(node.id, now() + DOWN_MS);
    if (state.leader === node.id) state.leader = undefined;
  }

  /**
   * Notes that `node` answered, and learns the leader from the answer's `x-koi-leader`
   * when it names a node of the cluster.
   */
  nodeAnswered(state: ClusterState, node: NodeInfo, headers: Headers): void {
    this.#down.delete(node.id);
    const leader = headers.get("x-koi-leader");
    if (leader !== null && state.byId.has(leader)) state.leader = leader;
  }

  /**
   * After `421 wrong_shard`: refetches the table, then routes by it when its epoch is newer
   * than the node's, else by the node's `x-koi-owner` (for this request only).
   */
  async rerouteAfterWrongShard(key: Uint8Array, headers: Headers, call: Call): Promise<string> {
    const nodeEpoch = Number(headers.get("x-koi-epoch") ?? NaN);
    const owner = headers.get("x-koi-owner") ?? "";
    let table = this.#table;
    try {
      table = await untilCallEnds(this.#sharedRefresh(call), call);
    } catch {
      // the admin is unreachable (or the call aborted, which the caller checks next): keep
      // the table and go by the node's word
    }
    if (Number.isSafeInteger(nodeEpoch) && table.epoch > nodeEpoch) return table.carp.owner(key);
    if (this.#clusters.has(owner)) return owner;
    return table.carp.owner(key);
  }

  /**
   * After every node of a cluster failed to answer: refetches the table (one attempt, shared
   * with concurrent calls, at most once per {@linkcode OUTAGE_REFRESH_MS}). A cluster that
   * was drained and then stopped answers nothing, not `421`, so this is how its callers learn
   * of the table without it. Resolves with whether a newer table is now in use.
   */
  async refreshAfterOutage(call: Call): Promise<boolean> {
    const t = now();
    if (this.#refreshing === undefined && t < this.#outageRefreshAt) return false;
    this.#outageRefreshAt = t + OUTAGE_REFRESH_MS;
    const epoch = this.#table.epoch;
    try {
      await untilCallEnds(this.#sharedRefresh(call), call);
    } catch {
      // the admin is unreachable too (or the call aborted, which the caller checks next)
    }
    return this.#table.epoch > epoch;
  }

  /** One refresh at a time: concurrent calls that need one share it. */
  #sharedRefresh(call: Call): Promise<RoutingTable> {
    if (this.#refreshing === undefined) {
      const refreshCall: Call = {
        ...call,
        deadline: Math.min(call.deadline, now() + this.#core.settings.attemptTimeoutMs),
        signal: this.#core.closed,
      };
      this.#refreshing = this.#fetchTable(refreshCall, false)
        .then((table) => this.#install(table))
        .finally(() => (this.#refreshing = undefined));
    }
    return this.#refreshing;
  }

  /** Uses `table` unless it is older than the one in use; keeps the leaders learned. */
  #install(table: RoutingTable): RoutingTable {
    if (this.#table !== undefined && table.epoch < this.#table.epoch) return this.#table;
    const clusters = new Map<string, ClusterState>();
    for (const info of table.clusters) {
      const byId = new Map(info.nodes.map((n) => [n.id, n]));
      const known = this.#clusters.get(info.id)?.leader;
      const leader = info.leader !== "" && byId.has(info.leader)
        ? info.leader
        : known !== undefined && byId.has(known)
        ? known
        : undefined;
      clusters.set(info.id, { info, byId, leader, turn: this.#clusters.get(info.id)?.turn ?? 0 });
    }
    this.#table = table;
    this.#clusters = clusters;
    return table;
  }

  /**
   * `GET /v1/carp` of the admin. With `retry`, retries `503` and connection failures with
   * backoff until the call's deadline; otherwise one attempt.
   */
  async #fetchTable(call: Call, retry: boolean): Promise<RoutingTable> {
    const { admin, fetcher, settings, closed } = this.#core;
    const url = new URL("v1/carp", admin);
    const who = `the admin ${admin.origin}`;
    let step = 0;
    let lastText = "";
    let lastWasTimeout = false;
    const fail = (): never => {
      const options = { attempts: call.attempts, timeoutMs: call.timeoutMs };
      const text = `No routing table from ${who} within ${call.timeoutMs} ms` +
        (lastText ? `; last: ${lastText}` : "");
      throw lastWasTimeout ? new TimeoutError(text, options) : new UnavailableError(text, options);
    };
    for (;;) {
      if (call.signal.aborted) throwIfAborted(call, "connect", undefined, closed);
      const remaining = call.deadline - now();
      if (remaining <= 0) return fail();
      call.attempts += 1;
      const ms = Math.min(settings.attemptTimeoutMs, remaining);
      const result = await attempt(
        fetcher.fetch,
        url,
        { method: "GET" },
        ms,
        call.signal,
        ADMIN_ANSWER_BYTES_MAX,
      );
      let hint: number | undefined;
      if (!isAnswer(result)) {
        if (result.kind === "too_large") {
          throw tooLargeError("Cannot fetch the routing table", who, result);
        }
        if (result.kind === "aborted") {
          throwIfAborted(call, "connect", undefined, closed);
          throw new KoiError("aborted", "Fetching the routing table was aborted");
        }
        // Cut short by the deadline: what the admin said before tells more.
        if (result.kind === "timeout" && ms < settings.attemptTimeoutMs && lastText) {
          return fail();
        }
        if (result.kind === "network" && result.tls === true) {
          // A certificate or scheme mismatch does not heal by retrying: say so now.
          throw new UnavailableError(`Cannot fetch the routing table: ${who}: ${result.message}`, {
            attempts: call.attempts,
            timeoutMs: call.timeoutMs,
          });
        }
        lastWasTimeout = result.kind === "timeout";
        lastText = result.kind === "timeout"
          ? `no answer within ${Math.ceil(result.ms)} ms`
          : `${who}: ${result.message}`;
      } else if (result.status === 200) {
        return parseRoutingTable(jsonOf(result), admin.origin);
      } else {
        const { code, message } = errorOf(result);
        const text = `${who} answered ${result.status} ${code}: ${message}`;
        if (result.status !== 503) {
          throw new KoiHttpError(code, `Cannot fetch the routing table: ${text}`, {
            status: result.status,
          });
        }
        lastWasTimeout = false;
        lastText = text;
        hint = retryAfterMs(result.headers);
      }
      if (!retry) return fail();
      const cap = Math.min(settings.retryMaxMs, settings.retryBaseMs * 2 ** step);
      step = Math.min(step + 1, 30);
      const left = call.deadline - now();
      const delay = hint !== undefined && hint < left ? hint : Math.random() * cap;
      if (delay >= left) return fail();
      await sleep(delay, call.signal);
    }
  }
}

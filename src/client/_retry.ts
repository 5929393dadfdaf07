/**
 * The retry loop of key requests and listings: picks a node of the owning cluster, sends,
 * and retries `503`, timeouts, broken connections and `421 wrong_shard` by the rules of
 * docs/client.md within the call's deadline; writes carry a request-id session.
 */

import type { Call, ClientCore, Request } from "./_call.ts";
import {
  ClusterLeftError,
  deadlineError,
  failureLast,
  httpError,
  type Last,
  nodeUrl,
  throwIfAborted,
  withOwnKey,
} from "./_failures.ts";
import {
  type Answer,
  attempt,
  errorOf,
  isAnswer,
  now,
  retryAfterMs,
  sleep,
  tooLargeError,
} from "./_http.ts";
import type { Routes } from "./_route.ts";
import { requestId, type SessionPool } from "./_sessions.ts";
import { KoiError } from "./errors.ts";

/** Sends the requests of one client, on its routes and with its sessions. */
export class Sender {
  readonly #core: ClientCore;
  readonly #routes: Routes;
  readonly #sessions: SessionPool;

  /** A sender of `core`'s client, routing by `routes`, writing on `sessions`. */
  constructor(core: ClientCore, routes: Routes, sessions: SessionPool) {
    this.#core = core;
    this.#routes = routes;
    this.#sessions = sessions;
  }

  /** Runs a write on a borrowed session; gives the session back when the write ended. */
  async write(request: Request, call: Call): Promise<Answer> {
    throwIfAborted(call, request.what, undefined, this.#core.closed);
    request.session = this.#sessions.acquire();
    let settled = false;
    try {
      const answer = await this.run(request, call);
      settled = true;
      return answer;
    } catch (error) {
      settled = !(error instanceof KoiError && error.outcomeUnknown);
      throw error;
    } finally {
      // A retired session (stale_request) was replaced on the request: only that one returns.
      this.#sessions.release(request.session, settled);
    }
  }

  /**
   * Sends `request` until it gets an answer to return (2xx, or 404 for a GET) or an error
   * to throw, retrying by the rules of docs/client.md within the call's deadline.
   */
  async run(request: Request, call: Call): Promise<Answer> {
    const write = request.write ?? request.method !== "GET";
    const spread = !write && this.#core.settings.readFrom === "any";
    let clusterId = request.cluster ?? this.#routes.table.carp.owner(request.key!);
    const tried = new Set<string>();
    let step = 0;
    let shardHops = 0;
    let staleRetries = 0;
    let waited = false;
    /** Whether a node answered (any status) since every node was last tried. */
    let heard = false;
    let last: Last | undefined;
    const backoff = () => {
      const cap = Math.min(
        this.#core.settings.retryMaxMs,
        this.#core.settings.retryBaseMs * 2 ** step,
      );
      step = Math.min(step + 1, 30);
      return Math.random() * cap;
    };
    /** Waits `ms`, unless the deadline comes first: then throws the deadline error now. */
    const pause = async (ms: number) => {
      if (now() + ms >= call.deadline) throw deadlineError(request.what, call, last);
      await sleep(ms, call.signal);
      throwIfAborted(call, request.what, last, this.#core.closed);
    };
    for (;;) {
      throwIfAborted(call, request.what, last, this.#core.closed);
      const remaining = call.deadline - now();
      if (remaining <= 0) throw deadlineError(request.what, call, last);
      let state = this.#routes.cluster(clusterId);
      if (state === undefined) {
        if (request.key === undefined) {
          throw new ClusterLeftError(request.what, clusterId, call);
        }
        clusterId = this.#routes.table.carp.owner(request.key);
        state = this.#routes.cluster(clusterId)!;
      }
      const node = this.#routes.pick(state, tried, spread);
      if (node === undefined) {
        // Every node failed once: start over, after a wait unless the last failure waited.
        tried.clear();
        if (!heard && await this.#routes.refreshAfterOutage(call)) {
          // None answered at all, and the admin has a newer table: the cluster may be gone
          // (drained and stopped). A key goes to its owner by that table at once.
          throwIfAborted(call, request.what, last, this.#core.closed);
          if (request.key !== undefined) clusterId = this.#routes.table.carp.owner(request.key);
          step = 0;
          continue;
        }
        heard = false;
        if (!waited) await pause(backoff());
        waited = false;
        continue;
      }
      waited = false;
      const headers: Record<string, string> = { ...request.headers };
      if (request.session !== undefined) {
        headers[request.requestIdHeader ?? "x-request-id"] = requestId(request.session);
      }
      const url = nodeUrl(node, `${request.path ?? "/v1/kv"}${request.query}`, state.info.id);
      const ms = Math.min(this.#core.settings.attemptTimeoutMs, remaining);
      call.attempts += 1;
      const result = await attempt(
        this.#core.fetcher.fetch,
        url,
        {
          method: request.method,
          headers,
          ...(request.body === undefined ? {} : { body: request.body as Uint8Array<ArrayBuffer> }),
        },
        ms,
        call.signal,
        request.answerBytesMax,
        request.answerRoom,
      );
      if (!isAnswer(result)) {
        if (result.kind === "no_room") {
          // The caller's own bound: asking another node would take the same room.
          throw new KoiError("overloaded", `${request.what}: ${result.message}`, {
            cluster: state.info.id,
            node: node.id,
          });
        }
        if (result.kind === "too_large") {
          // A node that breaks the contract: no other node is asked.
          throw tooLargeError(request.what, `node ${node.id} (${node.http})`, result, {
            cluster: state.info.id,
            node: node.id,
            outcomeUnknown: write,
          });
        }
        if (result.kind === "aborted") {
          if (write) call.maybeApplied = true;
          throwIfAborted(call, request.what, last, this.#core.closed);
          throw new KoiError("aborted", `${request.what} was aborted`, { cause: result.reason });
        }
        // Any network failure may follow a write the node received, "connection refused"
        // included: Deno's fetch sends on a kept-alive connection, and when the node closes it
        // (it died) after reading the request, fetch sends it again on a new connection and
        // reports only that one's refusal.
        if (write) call.maybeApplied = true;
        const cut = result.kind === "timeout" && ms < this.#core.settings.attemptTimeoutMs;
        if (cut && last !== undefined && last.kind !== "timeout") {
          // The deadline cut this attempt short: what the cluster said before tells more.
          throw deadlineError(request.what, call, last);
        }
        last = failureLast(result, state.info.id, node);
        tried.add(node.id);
        this.#routes.nodeFailed(state, node);
        continue;
      }
      this.#routes.nodeAnswered(state, node, result.headers);
      heard = true;
      if (result.status >= 200 && result.status < 300) return result;
      const { code, message: said } = errorOf(result);
      if (result.status === 404 && request.method === "GET" && code === "not_found") return result;
      // The node names the key by its key_b64; the caller knows it by what it gave.
      const message = request.key === undefined ? said : withOwnKey(said, request.key);
      const answered = `node ${node.id} (${node.http}) answered ${result.status} ${code}`;
      last = {
        kind: "http",
        cluster: state.info.id,
        node: node.id,
        text: `${answered}: ${message}`,
        cause: httpError(code, `${request.what}: ${answered}: ${message}`, result, {
          cluster: state.info.id,
          node: node.id,
        }),
      };
      if (result.status === 503) {
        // no_leader may follow a write that waited and may still apply; overloaded and
        // disk_failed are refusals at the door (nothing was proposed).
        if (write && code !== "overloaded" && code !== "disk_failed") call.maybeApplied = true;
        tried.add(node.id); // another node may know a leader (this one may be cut off)
        const hint = retryAfterMs(result.headers);
        await pause(hint !== undefined && hint < call.deadline - now() ? hint : backoff());
        waited = true;
        continue;
      }
      if (result.status === 421 && request.key !== undefined) {
        shardHops += 1;
        if (shardHops > 1) await pause(backoff());
        clusterId = await this.#routes.rerouteAfterWrongShard(request.key, result.headers, call);
        tried.clear();
        continue;
      }
      // koi's own key requests only: a raw caller (the gateway) resolves locks itself.
      if (result.status === 409 && code === "locked" && request.path === undefined) {
        // A transaction in flight holds the key (the node waited for it already): nothing was
        // applied, nothing remembered for the request id. Wait a little and send the same
        // request again; a lock whose coordinator is gone is resolved by the admin's janitor
        // (transaction commands need the cluster's secret, which a client does not hold).
        await pause(backoff());
        waited = true;
        continue;
      }
      if (result.status === 409 && code === "stale_request" && request.session !== undefined) {
        // The server saw a greater seq under this client id: another writer uses it. The
        // session is never lent again. If no attempt of this write may have been applied,
        // the write is sent again under a new session (a refused request is not applied).
        if (!call.maybeApplied && staleRetries === 0) {
          staleRetries += 1;
          request.session = this.#sessions.replace();
          continue;
        }
        throw httpError(
          code,
          `${request.what}: ${answered}: ${message}; the write may or may not have been ` +
            "applied (another writer may be using this client id)",
          result,
          { cluster: state.info.id, node: node.id, outcomeUnknown: true },
        );
      }
      throw httpError(code, `${request.what}: ${answered}: ${message}`, result, {
        cluster: state.info.id,
        node: node.id,
        outcomeUnknown: write && (call.maybeApplied || result.status >= 500),
      });
    }
  }
}

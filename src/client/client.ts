/**
 * The routing client: fetches the CARP table from the admin, sends each key request to the
 * leader of the cluster that owns the key, and retries what can be retried within the call's
 * deadline. docs/client.md describes the behaviour; docs/api.md the HTTP API underneath.
 *
 * @module
 */

import {
  compareBytes,
  decodeBase64Url,
  encodeBase64Url,
  equalBytes,
  showKey,
  toBytes,
  utf8Lossy,
} from "./_bytes.ts";
import {
  adminBaseUrl,
  type Answer,
  attempt,
  type AttemptFailure,
  errorOf,
  type Fetcher,
  type FetchLike,
  isAnswer,
  jsonOf,
  makeFetcher,
  now,
  retryAfterMs,
  sleep,
} from "./_http.ts";
import { requestId, type Session, SessionPool } from "./_sessions.ts";
import { type DeploymentStatus, fetchDeploymentStatus } from "./_status.ts";
import {
  type ClusterInfo,
  isObject,
  type NodeInfo,
  parseRoutingTable,
  type RoutingTable,
} from "./_table.ts";
import {
  KoiError,
  KoiHttpError,
  PreconditionFailedError,
  TimeoutError,
  UnavailableError,
} from "./errors.ts";

/** The largest key, in bytes (keys are 1..1024 bytes). */
export const KEY_BYTES_MAX = 1024;
/** The largest value, in bytes (1 MiB). */
export const VALUE_BYTES_MAX = 1_048_576;
/** The largest page `list` returns. */
export const LIST_LIMIT_MAX = 1000;
/** The page size `list` uses when no `limit` is given. */
export const LIST_LIMIT_DEFAULT = 100;
/** A call's default time budget, retries included, in milliseconds. */
export const TIMEOUT_MS_DEFAULT = 10_000;
/** One attempt's default time budget, in milliseconds (capped by what the call has left). */
export const ATTEMPT_TIMEOUT_MS_DEFAULT = 5_000;

/** The largest timeout a timer can hold (about 24.8 days). */
const TIMEOUT_MS_MAX = 2_147_483_647;
/** A node that failed a connection is tried after the others for this long. */
const DOWN_MS = 2_000;

/** How a read is served: by the leader (`linearizable`, the default) or any node (`stale`). */
export type Consistency = "linearizable" | "stale";

/** Options of {@linkcode connect}. */
export interface ConnectOptions {
  /**
   * Each call's time budget in milliseconds, retries included (default 10,000). A call
   * that cannot finish in time throws {@linkcode TimeoutError} or
   * {@linkcode UnavailableError}; every call may override it.
   */
  readonly timeoutMs?: number;
  /** How long `connect` waits for the admin's table, retries included. Default: `timeoutMs`. */
  readonly connectTimeoutMs?: number;
  /**
   * One request's time budget (default 5,000 ms, capped by what the call has left): a node
   * that does not answer in time is left for another node of its cluster.
   */
  readonly attemptTimeoutMs?: number;
  /** The first retry waits up to this long (full jitter), doubling per retry. Default 25. */
  readonly retryBaseMs?: number;
  /** No retry waits longer than this (full jitter), apart from `retry-after`. Default 1,000. */
  readonly retryMaxMs?: number;
  /**
   * A readable prefix of the client's request ids (default `koi`): sessions are named
   * `<clientId>-<16 random hex digits>-<n>`, so two clients never share one.
   */
  readonly clientId?: string;
  /** Aborts `connect` (not the client's later calls). */
  readonly signal?: AbortSignal;
  /**
   * The `fetch` to send requests with (for tests or a custom transport). By default the
   * client uses the global `fetch` on its own `Deno.HttpClient`, which `close()` releases.
   */
  readonly fetch?: (input: URL, init: RequestInit) => Promise<Response>;
}

/** What every call accepts. */
export interface CallOptions {
  /** This call's time budget in milliseconds, retries included (default: the client's). */
  readonly timeoutMs?: number;
  /** Aborts the call; it then throws a {@linkcode KoiError} with code `aborted`. */
  readonly signal?: AbortSignal;
}

/** Options of {@linkcode KoiClient.get}. */
export interface GetOptions extends CallOptions {
  /** `linearizable` (default: the leader confirms it is current) or `stale` (any node). */
  readonly consistency?: Consistency;
}

/** Options of {@linkcode KoiClient.put}. */
export interface PutOptions extends CallOptions {
  /** Write only if the key exists with exactly this revision (`if-match`). */
  readonly ifRev?: number;
  /** Write only if the key is absent (`if-none-match: *`). Not together with `ifRev`. */
  readonly ifAbsent?: boolean;
}

/** Options of {@linkcode KoiClient.delete}. */
export interface DeleteOptions extends CallOptions {
  /** Delete only if the key exists with exactly this revision (`if-match`). */
  readonly ifRev?: number;
}

/** Options of {@linkcode KoiClient.list}. */
export interface ListOptions extends CallOptions {
  /** Only keys starting with these bytes (a string is UTF-8). Default: every key. */
  readonly prefix?: string | Uint8Array;
  /** Only keys strictly after this one in byte order: pass the previous page's `next`. */
  readonly after?: string | Uint8Array;
  /** The page size, 1..1000 (default 100). */
  readonly limit?: number;
  /** `linearizable` (default) or `stale` (any node of each cluster). */
  readonly consistency?: Consistency;
}

/** Options of {@linkcode KoiClient.scan}: those of `list`, with `pageSize` for `limit`. */
export interface ScanOptions extends Omit<ListOptions, "limit"> {
  /** Keys fetched per page, 1..1000 (default 100). Each page is one call with its own budget. */
  readonly pageSize?: number;
}

/** A value and its revision. */
export interface GetResult {
  /** The value's bytes. */
  readonly value: Uint8Array;
  /** The Raft log index of the write that set it: grows with every write of the key. */
  readonly rev: number;
}

/** A value decoded as UTF-8, and its revision. */
export interface GetTextResult {
  /** The value as text (invalid UTF-8 becomes U+FFFD). */
  readonly value: string;
  /** The value's revision. */
  readonly rev: number;
}

/** The answer to a put. */
export interface PutResult {
  /** The key's new revision. */
  readonly rev: number;
}

/** The answer to a delete. */
export interface DeleteResult {
  /** The revision of the delete (a delete is a write, also of an absent key). */
  readonly rev: number;
  /** Whether the key existed. */
  readonly deleted: boolean;
}

/** One listed key. */
export interface ListItem {
  /** The key's exact bytes. */
  readonly key: Uint8Array;
  /** The key as text (invalid UTF-8 becomes U+FFFD). */
  readonly keyText: string;
  /** The key's revision. */
  readonly rev: number;
  /** The cluster that holds it. */
  readonly cluster: string;
}

/** One page of keys, merged over every cluster in byte order. */
export interface ListPage {
  /** Up to `limit` keys in unsigned byte order. */
  readonly items: readonly ListItem[];
  /** True when further keys match: ask again with `after: page.next`. */
  readonly more: boolean;
  /** The last key of this page, when `more` is true. */
  readonly next?: Uint8Array;
}

/** Where a key lives: its cluster, that cluster's nodes and the leader the client knows. */
export interface KeyRoute {
  /** The owning cluster's id. */
  readonly cluster: string;
  /** The cluster's nodes, in config order. */
  readonly nodes: readonly NodeInfo[];
  /** The leader the client currently sends to, when it knows one. */
  readonly leader: NodeInfo | undefined;
}

/** The client-wide settings, resolved. */
interface Settings {
  readonly timeoutMs: number;
  readonly attemptTimeoutMs: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
}

/** A cluster's routing state: its nodes and the leader the client believes in. */
interface ClusterState {
  readonly info: ClusterInfo;
  readonly byId: ReadonlyMap<string, NodeInfo>;
  leader: string | undefined;
}

/** One logical request, sent as many times as the retry rules allow. */
interface Request {
  readonly method: "GET" | "PUT" | "DELETE";
  /** For key requests: the key, routed by CARP. */
  readonly key?: Uint8Array;
  /** For listings: the cluster asked. */
  readonly cluster?: string;
  readonly query: string;
  readonly body?: Uint8Array;
  readonly headers: Record<string, string>;
  /** For writes: the session whose id and seq every attempt carries. */
  session?: Session;
  /** For messages: `put "user:1"`. */
  readonly what: string;
}

/** One call: its deadline, its signal, and what happened so far. */
interface Call {
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  readonly userSignal: AbortSignal | undefined;
  attempts: number;
  /** A write attempt may have been applied (sent, then no definite answer). */
  maybeApplied: boolean;
}

/** What the last attempt of a call ran into, for the final error. */
interface Last {
  readonly kind: "timeout" | "network" | "http";
  readonly cluster: string;
  readonly node: string;
  readonly text: string;
  readonly cause?: unknown;
}

/**
 * A connected koi client. Get one from {@linkcode connect}; close it with `close()` (or
 * `using`). All methods are safe to call concurrently: every write borrows its own
 * request-id session, so concurrent writes never share a client id.
 *
 * @example
 * ```ts
 * import { connect } from "./mod.ts";
 *
 * using koi = await connect("http://127.0.0.1:7000");
 * const { rev } = await koi.put("user:1", "Ada");
 * const hit = await koi.getText("user:1"); // { value: "Ada", rev }
 * await koi.put("user:1", "Ada L.", { ifRev: rev }); // compare-and-set
 * for await (const item of koi.scan({ prefix: "user:" })) console.log(item.keyText);
 * ```
 */
export class KoiClient {
  readonly #admin: URL;
  readonly #fetcher: Fetcher;
  readonly #settings: Settings;
  readonly #clientId: string;
  readonly #sessions: SessionPool;
  readonly #closer = new AbortController();
  readonly #down = new Map<string, number>();
  #table!: RoutingTable;
  #clusters = new Map<string, ClusterState>();
  #refreshing: Promise<RoutingTable> | undefined;

  private constructor(admin: URL, fetcher: Fetcher, settings: Settings, clientId: string) {
    this.#admin = admin;
    this.#fetcher = fetcher;
    this.#settings = settings;
    this.#clientId = clientId;
    this.#sessions = new SessionPool(clientId);
  }

  /** Use {@linkcode connect}: it validates `options` and fetches the table first. */
  static async connect(admin: string | URL, options: ConnectOptions = {}): Promise<KoiClient> {
    const base = adminBaseUrl(admin);
    const settings: Settings = {
      timeoutMs: checkTimeout(options.timeoutMs, "timeoutMs") ?? TIMEOUT_MS_DEFAULT,
      attemptTimeoutMs: checkTimeout(options.attemptTimeoutMs, "attemptTimeoutMs") ??
        ATTEMPT_TIMEOUT_MS_DEFAULT,
      retryBaseMs: checkDelay(options.retryBaseMs, "retryBaseMs") ?? 25,
      retryMaxMs: checkDelay(options.retryMaxMs, "retryMaxMs") ?? 1_000,
    };
    const connectTimeoutMs = checkTimeout(options.connectTimeoutMs, "connectTimeoutMs") ??
      settings.timeoutMs;
    const prefix = options.clientId ?? "koi";
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(prefix)) {
      throw new KoiError(
        "bad_request",
        `Invalid clientId ${JSON.stringify(prefix)}: expected 1 to 64 characters of ` +
          "[A-Za-z0-9_.-]",
      );
    }
    const random = new Uint8Array(8);
    crypto.getRandomValues(random);
    const hex = [...random].map((b) => b.toString(16).padStart(2, "0")).join("");
    const client = new KoiClient(
      base,
      makeFetcher(options.fetch as FetchLike | undefined),
      settings,
      `${prefix}-${hex}`,
    );
    try {
      const call = client.#call({ timeoutMs: connectTimeoutMs, signal: options.signal });
      client.#install(await client.#fetchTable(call, true));
      return client;
    } catch (error) {
      client.close();
      throw error;
    }
  }

  /** The routing table in use (replaced by `refresh()` and after `421 wrong_shard`). */
  get table(): RoutingTable {
    return this.#table;
  }

  /** The routing epoch of the table in use. */
  get epoch(): number {
    return this.#table.epoch;
  }

  /** The admin's base URL. */
  get adminUrl(): URL {
    return new URL(this.#admin);
  }

  /** This client's id: every request-id session is `<clientId>-<n>`. */
  get clientId(): string {
    return this.#clientId;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closer.signal.aborted;
  }

  /**
   * Which cluster owns `key`, its nodes, and the leader the client would send to. Pure
   * routing: no request is sent.
   *
   * @example
   * ```ts
   * import { connect } from "./mod.ts";
   *
   * using koi = await connect("http://127.0.0.1:7000");
   * const { cluster, leader } = koi.where("user:1"); // e.g. "b", { id: "b2", http: "…" }
   * ```
   */
  where(key: string | Uint8Array): KeyRoute {
    const bytes = checkKey(key, "key");
    const state = this.#clusters.get(this.#table.carp.owner(bytes))!;
    const leader = state.leader === undefined ? undefined : state.byId.get(state.leader);
    return { cluster: state.info.id, nodes: state.info.nodes, leader };
  }

  /**
   * Reads `key`: its value and revision, or null when it is absent. Linearizable by
   * default; `consistency: "stale"` lets any node answer from its own state (it may miss
   * recent writes, but works without a leader).
   *
   * @example
   * ```ts
   * import { connect } from "./mod.ts";
   *
   * using koi = await connect("http://127.0.0.1:7000");
   * const hit = await koi.get("user:1");
   * if (hit !== null) console.log(hit.rev, new TextDecoder().decode(hit.value));
   * ```
   */
  async get(key: string | Uint8Array, options: GetOptions = {}): Promise<GetResult | null> {
    const bytes = checkKey(key, "key");
    const stale = checkConsistency(options.consistency);
    const call = this.#call(options);
    const answer = await this.#run({
      method: "GET",
      key: bytes,
      query: `?key_b64=${encodeBase64Url(bytes)}${stale ? "&consistency=stale" : ""}`,
      headers: {},
      what: `get ${showKey(bytes)}`,
    }, call);
    if (answer.status === 404) return null;
    const rev = parseEtag(answer.headers.get("etag"));
    if (rev === undefined) {
      throw new KoiError("bad_response", `get ${showKey(bytes)}: the answer has no valid etag`);
    }
    return { value: answer.body, rev };
  }

  /** {@linkcode KoiClient.get}, with the value decoded as UTF-8 text. */
  async getText(key: string | Uint8Array, options: GetOptions = {}): Promise<GetTextResult | null> {
    const hit = await this.get(key, options);
    return hit === null ? null : { value: utf8Lossy(hit.value), rev: hit.rev };
  }

  /**
   * Writes `value` (a string is UTF-8; at most 1 MiB) under `key`; returns the new
   * revision. `ifRev` makes it a compare-and-set, `ifAbsent` a create; a failed condition
   * throws {@linkcode PreconditionFailedError}. Retries after a `503`, a timeout or a broken
   * connection carry the same request id, so the write is applied at most once.
   *
   * @example
   * ```ts
   * import { connect } from "./mod.ts";
   *
   * using koi = await connect("http://127.0.0.1:7000");
   * const { rev } = await koi.put("user:1", "Ada", { ifAbsent: true });
   * await koi.put("user:1", new Uint8Array([1, 2, 3]), { ifRev: rev });
   * ```
   */
  async put(
    key: string | Uint8Array,
    value: string | Uint8Array,
    options: PutOptions = {},
  ): Promise<PutResult> {
    const bytes = checkKey(key, "key");
    const body = toBytes(value);
    if (!(body instanceof Uint8Array)) {
      throw new KoiError("bad_request", "Invalid value: expected a string or a Uint8Array");
    }
    if (body.length > VALUE_BYTES_MAX) {
      throw new KoiError(
        "too_large",
        `Invalid value for key ${showKey(bytes)}: ${body.length} bytes, the limit is ` +
          `${VALUE_BYTES_MAX} (1 MiB)`,
      );
    }
    const headers = conditionHeaders(options.ifRev, options.ifAbsent);
    headers["content-type"] = "application/octet-stream";
    const call = this.#call(options);
    const answer = await this.#write({
      method: "PUT",
      key: bytes,
      query: `?key_b64=${encodeBase64Url(bytes)}`,
      body,
      headers,
      what: `put ${showKey(bytes)}`,
    }, call);
    const json = jsonOf(answer);
    if (!isObject(json) || !isRev(json.rev)) {
      throw this.#badWriteAnswer(`put ${showKey(bytes)}`);
    }
    return { rev: json.rev };
  }

  /**
   * Deletes `key`; `deleted` says whether it existed (deleting an absent key is still a
   * write with a revision). `ifRev` deletes only that revision.
   *
   * @example
   * ```ts
   * import { connect } from "./mod.ts";
   *
   * using koi = await connect("http://127.0.0.1:7000");
   * const { deleted } = await koi.delete("user:1");
   * ```
   */
  async delete(key: string | Uint8Array, options: DeleteOptions = {}): Promise<DeleteResult> {
    const bytes = checkKey(key, "key");
    const headers = conditionHeaders(options.ifRev, undefined);
    const call = this.#call(options);
    const answer = await this.#write({
      method: "DELETE",
      key: bytes,
      query: `?key_b64=${encodeBase64Url(bytes)}`,
      headers,
      what: `delete ${showKey(bytes)}`,
    }, call);
    const json = jsonOf(answer);
    if (!isObject(json) || !isRev(json.rev) || typeof json.deleted !== "boolean") {
      throw this.#badWriteAnswer(`delete ${showKey(bytes)}`);
    }
    return { rev: json.rev, deleted: json.deleted };
  }

  /**
   * One page of keys of every cluster, merged in unsigned byte order: asks each cluster
   * for up to `limit` keys after `after`, merges them and keeps the first `limit`. Pass
   * `page.next` as `after` while `page.more` is true to see every key exactly once (keys
   * written or deleted meanwhile may or may not show). Each cluster's part is linearizable
   * (or stale); the page is not one snapshot of all clusters.
   *
   * @example
   * ```ts
   * import { connect } from "./mod.ts";
   *
   * using koi = await connect("http://127.0.0.1:7000");
   * let page = await koi.list({ prefix: "user:", limit: 50 });
   * while (page.more) page = await koi.list({ prefix: "user:", limit: 50, after: page.next });
   * ```
   */
  async list(options: ListOptions = {}): Promise<ListPage> {
    const prefix = checkBound(options.prefix, "prefix");
    const after = checkBound(options.after, "after");
    const limit = checkLimit(options.limit, "limit");
    const stale = checkConsistency(options.consistency);
    const call = this.#call(options);
    const query = `?prefix_b64=${encodeBase64Url(prefix)}&after_b64=${encodeBase64Url(after)}` +
      `&limit=${limit}${stale ? "&consistency=stale" : ""}`;
    const table = this.#table;
    const stop = new AbortController();
    const clusterCall: Call = { ...call, signal: AbortSignal.any([call.signal, stop.signal]) };
    const parts = table.clusters.map(async (cluster) => {
      try {
        const answer = await this.#run({
          method: "GET",
          cluster: cluster.id,
          query,
          headers: {},
          what: `list of cluster ${cluster.id}`,
        }, clusterCall);
        return parseListAnswer(answer, cluster.id);
      } catch (error) {
        stop.abort(); // one cluster failed: the page cannot be complete
        throw error;
      }
    });
    const settled = await Promise.allSettled(parts);
    const failed =
      settled.find((s): s is PromiseRejectedResult =>
        s.status === "rejected" && !(s.reason instanceof KoiError && s.reason.code === "aborted" &&
          !call.signal.aborted)
      ) ?? settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    const pages = settled.map((s) => (s as PromiseFulfilledResult<ClusterPage>).value);
    return mergePages(pages, limit, (key) => table.carp.owner(key));
  }

  /**
   * Every key matching `options`, page by page (see {@linkcode KoiClient.list}); each page
   * is one call with its own time budget.
   *
   * @example
   * ```ts
   * import { connect } from "./mod.ts";
   *
   * using koi = await connect("http://127.0.0.1:7000");
   * for await (const { keyText, rev } of koi.scan({ prefix: "user:" })) console.log(keyText, rev);
   * ```
   */
  async *scan(options: ScanOptions = {}): AsyncGenerator<ListItem, void, undefined> {
    const limit = checkLimit(options.pageSize, "pageSize");
    let after = options.after;
    for (;;) {
      const page = await this.list({ ...options, limit, after });
      yield* page.items;
      if (!page.more || page.next === undefined) return;
      after = page.next;
    }
  }

  /**
   * Fetches the routing table from the admin again and uses it when its epoch is not older
   * than the current one. The client does this by itself after `421 wrong_shard`.
   */
  async refresh(options: CallOptions = {}): Promise<RoutingTable> {
    const call = this.#call(options);
    return this.#install(await this.#fetchTable(call, true));
  }

  /**
   * The admin's report of every cluster and node (`GET /v1/clusters`): see
   * {@linkcode deploymentStatus}. One request, no retries.
   */
  async status(options: CallOptions = {}): Promise<DeploymentStatus> {
    const call = this.#call(options);
    return await fetchDeploymentStatus(this.#fetcher.fetch, this.#admin, {
      timeoutMs: call.deadline - now(),
      signal: call.signal,
    });
  }

  /**
   * Closes the client: calls in flight fail with code `closed` (a write among them with
   * `outcomeUnknown` when it was sent), later calls fail at once, and the pooled
   * keep-alive connections are released. Idempotent.
   */
  close(): void {
    if (!this.#closer.signal.aborted) {
      this.#closer.abort(new KoiError("closed", "The koi client is closed"));
    }
    this.#fetcher.close();
  }

  /** Closes the client (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  // -------------------------------------------------------------------------------------

  #call(options: CallOptions): Call {
    const timeoutMs = checkTimeout(options.timeoutMs, "timeoutMs") ?? this.#settings.timeoutMs;
    const signals = [this.#closer.signal];
    if (options.signal !== undefined) signals.push(options.signal);
    return {
      deadline: now() + timeoutMs,
      timeoutMs,
      signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals),
      userSignal: options.signal,
      attempts: 0,
      maybeApplied: false,
    };
  }

  /** Runs a write on a borrowed session; gives the session back when the write ended. */
  async #write(request: Request, call: Call): Promise<Answer> {
    this.#throwIfAborted(call, request, undefined);
    request.session = this.#sessions.acquire();
    let settled = false;
    try {
      const answer = await this.#run(request, call);
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
  async #run(request: Request, call: Call): Promise<Answer> {
    const write = request.method !== "GET";
    let clusterId = request.cluster ?? this.#table.carp.owner(request.key!);
    const tried = new Set<string>();
    let step = 0;
    let shardHops = 0;
    let staleRetries = 0;
    let waited = false;
    let last: Last | undefined;
    const backoff = () => {
      const cap = Math.min(this.#settings.retryMaxMs, this.#settings.retryBaseMs * 2 ** step);
      step = Math.min(step + 1, 30);
      return Math.random() * cap;
    };
    /** Waits `ms`, unless the deadline comes first: then throws the deadline error now. */
    const pause = async (ms: number) => {
      if (now() + ms >= call.deadline) throw this.#deadlineError(request, call, last);
      await sleep(ms, call.signal);
      this.#throwIfAborted(call, request, last);
    };
    for (;;) {
      this.#throwIfAborted(call, request, last);
      const remaining = call.deadline - now();
      if (remaining <= 0) throw this.#deadlineError(request, call, last);
      let state = this.#clusters.get(clusterId);
      if (state === undefined) {
        if (request.key === undefined) {
          throw new UnavailableError(
            `${request.what}: cluster ${clusterId} left the routing table during the call`,
            { attempts: call.attempts, timeoutMs: call.timeoutMs, cluster: clusterId },
          );
        }
        clusterId = this.#table.carp.owner(request.key);
        state = this.#clusters.get(clusterId)!;
      }
      const node = this.#pick(state, tried);
      if (node === undefined) {
        // Every node failed once: start over, after a wait unless the last failure waited.
        tried.clear();
        if (!waited) await pause(backoff());
        waited = false;
        continue;
      }
      waited = false;
      const headers: Record<string, string> = { ...request.headers };
      if (request.session !== undefined) headers["x-request-id"] = requestId(request.session);
      const url = new URL(`http://${node.http}/v1/kv${request.query}`);
      const ms = Math.min(this.#settings.attemptTimeoutMs, remaining);
      call.attempts += 1;
      const result = await attempt(
        this.#fetcher.fetch,
        url,
        {
          method: request.method,
          headers,
          ...(request.body === undefined ? {} : { body: request.body as Uint8Array<ArrayBuffer> }),
        },
        ms,
        call.signal,
      );
      if (!isAnswer(result)) {
        if (result.kind === "aborted") {
          if (write) call.maybeApplied = true;
          this.#throwIfAborted(call, request, last);
          throw new KoiError("aborted", `${request.what} was aborted`, { cause: result.reason });
        }
        if (write && !(result.kind === "network" && result.refused)) call.maybeApplied = true;
        const cut = result.kind === "timeout" && ms < this.#settings.attemptTimeoutMs;
        if (cut && last !== undefined && last.kind !== "timeout") {
          // The deadline cut this attempt short: what the cluster said before tells more.
          throw this.#deadlineError(request, call, last);
        }
        last = failureLast(result, state.info.id, node);
        tried.add(node.id);
        this.#down.set(node.id, now() + DOWN_MS);
        if (state.leader === node.id) state.leader = undefined;
        continue;
      }
      this.#down.delete(node.id);
      this.#noteLeader(state, result.headers);
      if (result.status >= 200 && result.status < 300) return result;
      const { code, message } = errorOf(result);
      if (result.status === 404 && request.method === "GET" && code === "not_found") return result;
      const answered = `node ${node.id} (${node.http}) answered ${result.status} ${code}`;
      last = {
        kind: "http",
        cluster: state.info.id,
        node: node.id,
        text: `${answered}: ${message}`,
        cause: this.#httpError(code, `${request.what}: ${answered}: ${message}`, result, {
          cluster: state.info.id,
          node: node.id,
        }),
      };
      if (result.status === 503) {
        // no_leader may follow a write that waited and may still apply; overloaded is a
        // refusal at the door.
        if (write && code !== "overloaded") call.maybeApplied = true;
        tried.add(node.id); // another node may know a leader (this one may be cut off)
        const hint = retryAfterMs(result.headers);
        await pause(hint !== undefined && hint < call.deadline - now() ? hint : backoff());
        waited = true;
        continue;
      }
      if (result.status === 421 && request.key !== undefined) {
        shardHops += 1;
        if (shardHops > 1) await pause(backoff());
        clusterId = await this.#rerouteAfterWrongShard(request.key, result.headers, call);
        tried.clear();
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
        throw this.#httpError(
          code,
          `${request.what}: ${answered}: ${message}; the write may or may not have been ` +
            "applied (another writer may be using this client id)",
          result,
          { cluster: state.info.id, node: node.id, outcomeUnknown: true },
        );
      }
      throw this.#httpError(code, `${request.what}: ${answered}: ${message}`, result, {
        cluster: state.info.id,
        node: node.id,
        outcomeUnknown: write && (call.maybeApplied || result.status >= 500),
      });
    }
  }

  /**
   * After `421 wrong_shard`: refetches the table, then routes by it when its epoch is newer
   * than the node's, else by the node's `x-koi-owner` (for this request only).
   */
  async #rerouteAfterWrongShard(key: Uint8Array, headers: Headers, call: Call): Promise<string> {
    const nodeEpoch = Number(headers.get("x-koi-epoch") ?? NaN);
    const owner = headers.get("x-koi-owner") ?? "";
    let table = this.#table;
    try {
      table = await untilAborted(this.#sharedRefresh(call), call.signal);
    } catch {
      // the admin is unreachable (or the call aborted, which the caller checks next): keep
      // the table and go by the node's word
    }
    if (Number.isSafeInteger(nodeEpoch) && table.epoch > nodeEpoch) return table.carp.owner(key);
    if (this.#clusters.has(owner)) return owner;
    return table.carp.owner(key);
  }

  /** One refresh at a time: concurrent calls that need one share it. */
  #sharedRefresh(call: Call): Promise<RoutingTable> {
    if (this.#refreshing === undefined) {
      const refreshCall: Call = {
        ...call,
        deadline: Math.min(call.deadline, now() + this.#settings.attemptTimeoutMs),
        signal: this.#closer.signal,
      };
      this.#refreshing = this.#fetchTable(refreshCall, false)
        .then((table) => this.#install(table))
        .finally(() => (this.#refreshing = undefined));
    }
    return this.#refreshing;
  }

  /**
   * `GET /v1/carp` of the admin. With `retry`, retries `503` and connection failures with
   * backoff until the call's deadline; otherwise one attempt.
   */
  async #fetchTable(call: Call, retry: boolean): Promise<RoutingTable> {
    const url = new URL("v1/carp", this.#admin);
    const who = `the admin ${this.#admin.origin}`;
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
      if (call.signal.aborted) this.#throwIfAborted(call, { what: "connect" }, undefined);
      const remaining = call.deadline - now();
      if (remaining <= 0) return fail();
      call.attempts += 1;
      const ms = Math.min(this.#settings.attemptTimeoutMs, remaining);
      const result = await attempt(this.#fetcher.fetch, url, { method: "GET" }, ms, call.signal);
      let hint: number | undefined;
      if (!isAnswer(result)) {
        if (result.kind === "aborted") {
          this.#throwIfAborted(call, { what: "connect" }, undefined);
          throw new KoiError("aborted", "Fetching the routing table was aborted");
        }
        // Cut short by the deadline: what the admin said before tells more.
        if (result.kind === "timeout" && ms < this.#settings.attemptTimeoutMs && lastText) {
          return fail();
        }
        lastWasTimeout = result.kind === "timeout";
        lastText = result.kind === "timeout"
          ? `no answer within ${Math.ceil(result.ms)} ms`
          : `${who}: ${result.message}`;
      } else if (result.status === 200) {
        return parseRoutingTable(jsonOf(result), this.#admin.origin);
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
      const cap = Math.min(this.#settings.retryMaxMs, this.#settings.retryBaseMs * 2 ** step);
      step = Math.min(step + 1, 30);
      const left = call.deadline - now();
      const delay = hint !== undefined && hint < left ? hint : Math.random() * cap;
      if (delay >= left) return fail();
      await sleep(delay, call.signal);
    }
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
      clusters.set(info.id, { info, byId, leader });
    }
    this.#table = table;
    this.#clusters = clusters;
    return table;
  }

  /** The node to try next: the leader, then the others in config order; failed ones last. */
  #pick(state: ClusterState, tried: ReadonlySet<string>): NodeInfo | undefined {
    const t = now();
    let best: NodeInfo | undefined;
    let bestRank = Infinity;
    for (const node of state.info.nodes) {
      if (tried.has(node.id)) continue;
      const down = (this.#down.get(node.id) ?? 0) > t;
      const rank = (down ? 2 : 0) + (node.id === state.leader ? 0 : 1);
      if (rank < bestRank) {
        best = node;
        bestRank = rank;
      }
    }
    return best;
  }

  /** Learns the leader from an answer's `x-koi-leader`, when it names a node of the cluster. */
  #noteLeader(state: ClusterState, headers: Headers): void {
    const leader = headers.get("x-koi-leader");
    if (leader !== null && state.byId.has(leader)) state.leader = leader;
  }

  #throwIfAborted(call: Call, request: Pick<Request, "what">, last: Last | undefined): void {
    if (!call.signal.aborted) return;
    const outcomeUnknown = call.maybeApplied;
    const where = last === undefined ? {} : { cluster: last.cluster, node: last.node };
    if (this.#closer.signal.aborted) {
      throw new KoiError(
        "closed",
        `${request.what}: the client is closed` +
          (outcomeUnknown ? "; the write may or may not have been applied" : ""),
        { ...where, outcomeUnknown },
      );
    }
    if (call.userSignal?.aborted) {
      throw new KoiError(
        "aborted",
        `${request.what} was aborted` +
          (outcomeUnknown ? "; the write may or may not have been applied" : ""),
        { ...where, outcomeUnknown, cause: call.userSignal.reason },
      );
    }
    throw new KoiError("aborted", `${request.what} was aborted`, { ...where, outcomeUnknown });
  }

  #deadlineError(request: Request, call: Call, last: Last | undefined): KoiError {
    const options = {
      attempts: call.attempts,
      timeoutMs: call.timeoutMs,
      outcomeUnknown: call.maybeApplied,
      ...(last === undefined
        ? {}
        : { cluster: last.cluster, node: last.node, cause: last.cause ?? new Error(last.text) }),
    };
    const tries = `${call.attempts} attempt${call.attempts === 1 ? "" : "s"}`;
    const tail = (last === undefined ? "" : `; last: ${last.text}`) +
      (call.maybeApplied ? "; the write may or may not have been applied" : "");
    if (last === undefined || last.kind === "timeout") {
      return new TimeoutError(
        `${request.what}: no answer within ${call.timeoutMs} ms (${tries})${tail}`,
        options,
      );
    }
    return new UnavailableError(
      `${request.what}: cluster ${last.cluster} unavailable for ${call.timeoutMs} ms ` +
        `(${tries})${tail}`,
      options,
    );
  }

  #httpError(
    code: string,
    message: string,
    answer: Answer,
    options: { cluster: string; node: string; outcomeUnknown?: boolean },
  ): KoiHttpError {
    if (answer.status === 412) {
      return new PreconditionFailedError(message, parseEtag(answer.headers.get("etag")), options);
    }
    return new KoiHttpError(code, message, { ...options, status: answer.status });
  }

  #badWriteAnswer(what: string): KoiError {
    return new KoiError(
      "bad_response",
      `${what}: the node's answer is not the expected JSON; the write may or may not have ` +
        "been applied",
      { outcomeUnknown: true },
    );
  }
}

/**
 * Connects to a koi deployment: fetches the routing table from the admin at `admin` (a URL,
 * or `host:port` for `http://host:port`), retrying while the admin answers `503 starting`
 * or cannot be reached, for up to `connectTimeoutMs` (default: `timeoutMs`, 10 s).
 *
 * @example
 * ```ts
 * import { connect } from "./mod.ts";
 *
 * const koi = await connect("http://127.0.0.1:7000", { timeoutMs: 5_000 });
 * try {
 *   await koi.put("greeting", "hello");
 *   console.log((await koi.getText("greeting"))?.value); // "hello"
 * } finally {
 *   koi.close();
 * }
 * ```
 */
export function connect(admin: string | URL, options: ConnectOptions = {}): Promise<KoiClient> {
  return KoiClient.connect(admin, options);
}

// ---------------------------------------------------------------------------------------
// Listing

/** One cluster's answer to a listing. */
export interface ClusterPage {
  readonly cluster: string;
  readonly items: readonly { readonly key: Uint8Array; readonly rev: number }[];
  readonly more: boolean;
}

function parseListAnswer(answer: Answer, cluster: string): ClusterPage {
  const json = jsonOf(answer);
  const bad = (what: string): never => {
    throw new KoiError("bad_response", `list of cluster ${cluster}: ${what}`, { cluster });
  };
  if (!isObject(json) || !Array.isArray(json.items) || typeof json.more !== "boolean") {
    return bad("the answer is not {items, more}");
  }
  const items = json.items.map((item) => {
    if (!isObject(item) || !isRev(item.rev)) return bad("an item is not {key, rev}");
    const key = typeof item.key_b64 === "string"
      ? decodeBase64Url(item.key_b64)
      : typeof item.key === "string"
      ? toBytes(item.key)
      : undefined;
    if (key === undefined) return bad("an item has no valid key");
    return { key, rev: item.rev };
  });
  return { cluster, items, more: json.more };
}

/**
 * Merges the clusters' pages (each the first `limit` keys of its cluster after the same
 * bound) into the first `limit` keys overall. A key held by two clusters (left behind by a
 * routing change) shows once, from the cluster `owner` names if it is one of them.
 */
export function mergePages(
  pages: readonly ClusterPage[],
  limit: number,
  owner: (key: Uint8Array) => string,
): ListPage {
  const all: ListItem[] = [];
  for (const page of pages) {
    for (const item of page.items) {
      all.push({
        key: item.key,
        keyText: utf8Lossy(item.key),
        rev: item.rev,
        cluster: page.cluster,
      });
    }
  }
  all.sort((a, b) => compareBytes(a.key, b.key));
  const merged: ListItem[] = [];
  for (const item of all) {
    const previous = merged[merged.length - 1];
    if (previous !== undefined && equalBytes(previous.key, item.key)) {
      if (owner(item.key) === item.cluster) merged[merged.length - 1] = item;
      continue;
    }
    merged.push(item);
  }
  const items = merged.slice(0, limit);
  const more = merged.length > limit || pages.some((p) => p.more);
  return more && items.length > 0
    ? { items, more, next: items[items.length - 1].key }
    : { items, more: more && items.length > 0 };
}

// ---------------------------------------------------------------------------------------
// Argument checks

function checkKey(key: string | Uint8Array, what: string): Uint8Array {
  if (typeof key !== "string" && !(key instanceof Uint8Array)) {
    throw new KoiError("bad_request", `Invalid ${what}: expected a string or a Uint8Array`);
  }
  const bytes = toBytes(key);
  if (bytes.length < 1 || bytes.length > KEY_BYTES_MAX) {
    throw new KoiError(
      "bad_request",
      `Invalid ${what}: must be 1 to ${KEY_BYTES_MAX} bytes, got ${bytes.length}`,
    );
  }
  if (bytes[0] === 0xff) {
    throw new KoiError(
      "bad_request",
      `Invalid ${what}: keys starting with byte 0xFF are reserved for koi's system records`,
    );
  }
  return bytes;
}

function checkBound(bound: string | Uint8Array | undefined, what: string): Uint8Array {
  if (bound === undefined) return new Uint8Array(0);
  if (typeof bound !== "string" && !(bound instanceof Uint8Array)) {
    throw new KoiError("bad_request", `Invalid ${what}: expected a string or a Uint8Array`);
  }
  const bytes = toBytes(bound);
  if (bytes.length > KEY_BYTES_MAX) {
    throw new KoiError(
      "bad_request",
      `Invalid ${what}: must be 0 to ${KEY_BYTES_MAX} bytes, got ${bytes.length}`,
    );
  }
  if (what === "prefix" && bytes[0] === 0xff) {
    throw new KoiError(
      "bad_request",
      "Invalid prefix: keys starting with byte 0xFF are reserved for koi's system records",
    );
  }
  return bytes;
}

function checkLimit(limit: number | undefined, what: string): number {
  if (limit === undefined) return LIST_LIMIT_DEFAULT;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > LIST_LIMIT_MAX) {
    throw new KoiError(
      "bad_request",
      `Invalid ${what}: must be an integer from 1 to ${LIST_LIMIT_MAX}, got ${limit}`,
    );
  }
  return limit;
}

function checkConsistency(consistency: Consistency | undefined): boolean {
  if (consistency === undefined || consistency === "linearizable") return false;
  if (consistency === "stale") return true;
  throw new KoiError(
    "bad_request",
    `Invalid consistency: ${JSON.stringify(consistency)}; expected "linearizable" or "stale"`,
  );
}

function checkTimeout(ms: number | undefined, what: string): number | undefined {
  if (ms === undefined) return undefined;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0 || ms > TIMEOUT_MS_MAX) {
    throw new KoiError(
      "bad_request",
      `Invalid ${what}: must be a number of milliseconds > 0 and <= ${TIMEOUT_MS_MAX}, got ${ms}`,
    );
  }
  return ms;
}

function checkDelay(ms: number | undefined, what: string): number | undefined {
  if (ms === undefined) return undefined;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0 || ms > TIMEOUT_MS_MAX) {
    throw new KoiError("bad_request", `Invalid ${what}: must be a number of milliseconds >= 0`);
  }
  return ms;
}

function conditionHeaders(
  ifRev: number | undefined,
  ifAbsent: boolean | undefined,
): Record<string, string> {
  if (ifRev !== undefined && ifAbsent) {
    throw new KoiError("bad_request", "Invalid options: give ifRev or ifAbsent, not both");
  }
  if (ifAbsent !== undefined && typeof ifAbsent !== "boolean") {
    throw new KoiError("bad_request", `Invalid ifAbsent: expected a boolean, got ${ifAbsent}`);
  }
  if (ifRev !== undefined) {
    if (!isRev(ifRev)) {
      throw new KoiError(
        "bad_request",
        `Invalid ifRev: must be an integer >= 1 (a revision), got ${ifRev}`,
      );
    }
    return { "if-match": `"${ifRev}"` };
  }
  return ifAbsent ? { "if-none-match": "*" } : {};
}

function isRev(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 1;
}

function parseEtag(etag: string | null): number | undefined {
  const match = etag === null ? null : /^"(\d{1,16})"$/.exec(etag.trim());
  const rev = match === null ? NaN : Number(match[1]);
  return isRev(rev) ? rev : undefined;
}

/** `promise`, or a rejection as soon as `signal` aborts (the promise itself goes on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function failureLast(failure: AttemptFailure, cluster: string, node: NodeInfo): Last {
  const who = `node ${node.id} (${node.http})`;
  if (failure.kind === "timeout") {
    return {
      kind: "timeout",
      cluster,
      node: node.id,
      text: `${who} did not answer within ${Math.ceil(failure.ms)} ms`,
    };
  }
  const message = failure.kind === "network" ? failure.message : "aborted";
  return { kind: "network", cluster, node: node.id, text: `${who}: ${message}` };
}

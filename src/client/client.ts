/**
 * The routing client: fetches the CARP table from the admin, sends each key request to the
 * leader of the cluster that owns the key, and retries what can be retried within the call's
 * deadline. docs/client.md describes the behaviour; docs/api.md the HTTP API underneath.
 *
 * @module
 */

import { encodeBase64Url, showKey, toBytes, utf8Lossy } from "./_bytes.ts";
import { type ClientCore, newCall, type Settings } from "./_call.ts";
import {
  checkBound,
  checkConsistency,
  checkDelay,
  checkKey,
  checkLimit,
  checkReadFrom,
  checkTimeout,
  conditionHeaders,
  isRev,
  parseEtag,
} from "./_checks.ts";
import { badWriteAnswer, ClusterLeftError } from "./_failures.ts";
import { adminBaseUrl, type Fetcher, type FetchLike, jsonOf, makeFetcher, now } from "./_http.ts";
import {
  ATTEMPT_TIMEOUT_MS_DEFAULT,
  TIMEOUT_MS_DEFAULT,
  VALUE_ANSWER_BYTES_MAX,
  VALUE_BYTES_MAX,
  WRITE_ANSWER_BYTES_MAX,
} from "./_limits.ts";
import { listClusters } from "./_list.ts";
import { watchCluster, WatchIterator } from "./_watch.ts";
import { Sender } from "./_retry.ts";
import { RawCalls } from "./_raw.ts";
import { Routes } from "./_route.ts";
import { SessionPool } from "./_sessions.ts";
import { type DeploymentStatus, fetchDeploymentStatus } from "./_status.ts";
import { isObject, type RoutingTable } from "./_table.ts";
import type {
  CallOptions,
  ConnectOptions,
  DeleteOptions,
  DeleteResult,
  GetOptions,
  GetResult,
  GetTextResult,
  KeyRoute,
  ListItem,
  ListOptions,
  ListPage,
  PutOptions,
  PutResult,
  ScanOptions,
  WatchEvent,
  WatchOptions,
} from "./_types.ts";
import { KoiError } from "./errors.ts";
import { type HistoryInvocation, HistoryRecorder, type HistoryResult } from "./history.ts";

/** The raw calls of each client (reached through `internal.ts`, not the public API). */
const rawCalls = new WeakMap<KoiClient, RawCalls>();

/** The raw POSTs of `client`'s routes and sessions (for the KV Connect gateway). */
export function rawCallsOf(client: KoiClient): RawCalls {
  const raw = rawCalls.get(client);
  if (raw === undefined) throw new TypeError("Not a KoiClient");
  return raw;
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
  readonly #core: ClientCore;
  readonly #clientId: string;
  readonly #closer: AbortController;
  readonly #routes: Routes;
  readonly #sender: Sender;
  readonly #history: HistoryRecorder | undefined;

  private constructor(
    admin: URL,
    fetcher: Fetcher,
    settings: Settings,
    clientId: string,
    history: HistoryRecorder | undefined,
  ) {
    this.#closer = new AbortController();
    this.#history = history;
    this.#core = { admin, fetcher, settings, closed: this.#closer.signal };
    this.#clientId = clientId;
    this.#routes = new Routes(this.#core);
    this.#sender = new Sender(this.#core, this.#routes, new SessionPool(clientId));
    rawCalls.set(this, new RawCalls(this.#core, this.#routes, this.#sender));
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
      readFrom: checkReadFrom(options.readFrom),
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
      makeFetcher(
        options.fetch as FetchLike | undefined,
        options.caCerts === undefined ? {} : { caCerts: options.caCerts },
      ),
      settings,
      `${prefix}-${hex}`,
      checkHistory(options.history),
    );
    try {
      const call = newCall({ timeoutMs: connectTimeoutMs, signal: options.signal }, client.#core);
      await client.#routes.refresh(call);
      return client;
    } catch (error) {
      client.close();
      throw error;
    }
  }

  /** The routing table in use (replaced by `refresh()` and after `421 wrong_shard`). */
  get table(): RoutingTable {
    return this.#routes.table;
  }

  /** The routing epoch of the table in use. */
  get epoch(): number {
    return this.#routes.table.epoch;
  }

  /** The admin's base URL. */
  get adminUrl(): URL {
    return new URL(this.#core.admin);
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
    const state = this.#routes.cluster(this.#routes.table.carp.owner(bytes))!;
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
    return await this.#recorded(
      {
        f: "get",
        key: bytes,
        ...(options.consistency === undefined ? {} : { consistency: options.consistency }),
      },
      () => this.#get(bytes, stale, options),
      (hit) => hit === null ? { value: null } : { value: hit.value, rev: hit.rev },
    );
  }

  /** Runs `run`, recorded in the history (if the client has one) as `call`. */
  async #recorded<T>(
    call: HistoryInvocation,
    run: () => Promise<T>,
    answer: (result: T) => HistoryResult,
  ): Promise<T> {
    const h = this.#history?.invoke(this.#clientId, call);
    if (h === undefined) return await run();
    try {
      const result = await run();
      h.ok(answer(result));
      return result;
    } catch (error) {
      h.threw(error);
      throw error;
    }
  }

  async #get(bytes: Uint8Array, stale: boolean, options: GetOptions): Promise<GetResult | null> {
    const call = newCall(options, this.#core);
    const answer = await this.#sender.run({
      method: "GET",
      key: bytes,
      query: `?key_b64=${encodeBase64Url(bytes)}${stale ? "&consistency=stale" : ""}`,
      headers: {},
      answerBytesMax: VALUE_ANSWER_BYTES_MAX,
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
    return await this.#recorded(
      {
        f: "put",
        key: bytes,
        value: body,
        ...(options.ifRev === undefined ? {} : { ifRev: options.ifRev }),
        ...(options.ifAbsent === undefined ? {} : { ifAbsent: options.ifAbsent }),
      },
      () => this.#put(bytes, body, headers, options),
      (result) => result,
    );
  }

  async #put(
    bytes: Uint8Array,
    body: Uint8Array,
    headers: Record<string, string>,
    options: PutOptions,
  ): Promise<PutResult> {
    const call = newCall(options, this.#core);
    const answer = await this.#sender.write({
      method: "PUT",
      key: bytes,
      query: `?key_b64=${encodeBase64Url(bytes)}`,
      body,
      headers,
      answerBytesMax: WRITE_ANSWER_BYTES_MAX,
      what: `put ${showKey(bytes)}`,
    }, call);
    const json = jsonOf(answer);
    if (!isObject(json) || !isRev(json.rev)) {
      throw badWriteAnswer(`put ${showKey(bytes)}`);
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
    return await this.#recorded(
      { f: "delete", key: bytes, ...(options.ifRev === undefined ? {} : { ifRev: options.ifRev }) },
      () => this.#delete(bytes, headers, options),
      (result) => result,
    );
  }

  async #delete(
    bytes: Uint8Array,
    headers: Record<string, string>,
    options: DeleteOptions,
  ): Promise<DeleteResult> {
    const call = newCall(options, this.#core);
    const answer = await this.#sender.write({
      method: "DELETE",
      key: bytes,
      query: `?key_b64=${encodeBase64Url(bytes)}`,
      headers,
      answerBytesMax: WRITE_ANSWER_BYTES_MAX,
      what: `delete ${showKey(bytes)}`,
    }, call);
    const json = jsonOf(answer);
    if (!isObject(json) || !isRev(json.rev) || typeof json.deleted !== "boolean") {
      throw badWriteAnswer(`delete ${showKey(bytes)}`);
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
    const call = newCall(options, this.#core);
    const query = `?prefix_b64=${encodeBase64Url(prefix)}&after_b64=${encodeBase64Url(after)}` +
      `&limit=${limit}${stale ? "&consistency=stale" : ""}`;
    try {
      return await listClusters(this.#sender, this.#routes.table, query, limit, call);
    } catch (error) {
      // A cluster the page asked is gone from the newer table the call took: ask that table's.
      if (!(error instanceof ClusterLeftError)) throw error;
      return await listClusters(this.#sender, this.#routes.table, query, limit, call);
    }
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
   * Every change (put and delete) to the keys starting with `prefix`, in every cluster of
   * the routing table, as they happen: each cluster's changes in rev order, clusters
   * interleaved as their changes arrive. Each cluster is watched through its leader first,
   * any node otherwise; a broken stream resumes from the last rev delivered for its
   * cluster (another node if need be), so no change is missed or repeated. `fromRevs`
   * starts clusters after given revs (e.g. those of an earlier watch); when every node of a
   * cluster no longer holds the changes after it, the iteration throws
   * {@linkcode WatchCompactedError}: read the keys again, then watch from its `rev`. Ends
   * with `break`, `return()`, or `signal` (which throws `aborted`).
   *
   * @example
   * ```ts
   * import { connect } from "./mod.ts";
   *
   * using koi = await connect("http://127.0.0.1:7000");
   * const stop = AbortSignal.timeout(60_000);
   * for await (const change of koi.watch("user:", { signal: stop })) {
   *   console.log(change.cluster, change.rev, change.type, change.keyText, change.size);
   * }
   * ```
   */
  watch(prefix: string | Uint8Array = "", options: WatchOptions = {}): AsyncIterableIterator<
    WatchEvent
  > {
    const bytes = checkBound(prefix, "prefix");
    const table = this.#routes.table;
    const fromRevs = checkFromRevs(options.fromRevs, table.clusters.map((c) => c.id));
    const user = options.signal;
    if (user !== undefined && !(user instanceof AbortSignal)) {
      throw new KoiError("bad_request", "Invalid signal: expected an AbortSignal");
    }
    const closed = this.#core.closed;
    const signal = user === undefined ? closed : AbortSignal.any([closed, user]);
    const iterator = new WatchIterator(
      signal,
      () =>
        closed.aborted
          ? new KoiError("closed", "watch: the client is closed")
          : new KoiError("aborted", "watch was aborted", { cause: user?.reason }),
    );
    for (const info of table.clusters) {
      watchCluster({
        core: this.#core,
        routes: this.#routes,
        state: this.#routes.cluster(info.id)!,
        prefix: bytes,
        from: fromRevs.get(info.id),
        sink: iterator,
      }).catch((error) => iterator.fail(error));
    }
    return iterator;
  }

  /**
   * Fetches the routing table from the admin again and uses it when its epoch is not older
   * than the current one. The client does this by itself after `421 wrong_shard`.
   */
  async refresh(options: CallOptions = {}): Promise<RoutingTable> {
    const call = newCall(options, this.#core);
    return await this.#routes.refresh(call);
  }

  /**
   * The admin's report of every cluster and node (`GET /v1/clusters`): see
   * {@linkcode deploymentStatus}. One request, no retries.
   */
  async status(options: CallOptions = {}): Promise<DeploymentStatus> {
    const call = newCall(options, this.#core);
    return await fetchDeploymentStatus(this.#core.fetcher.fetch, this.#core.admin, {
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
    this.#core.fetcher.close();
  }

  /** Closes the client (for `using`). */
  [Symbol.dispose](): void {
    this.close();
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

/** `fromRevs` of a watch: revs (integers of 0 or more) of clusters the table has. */
function checkFromRevs(fromRevs: unknown, clusters: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  if (fromRevs === undefined) return out;
  if (typeof fromRevs !== "object" || fromRevs === null || Array.isArray(fromRevs)) {
    throw new KoiError("bad_request", "Invalid fromRevs: expected an object of cluster id: rev");
  }
  for (const [cluster, rev] of Object.entries(fromRevs)) {
    if (!clusters.includes(cluster)) {
      throw new KoiError(
        "bad_request",
        `Invalid fromRevs: no cluster ${JSON.stringify(cluster)} in the routing table ` +
          `(${clusters.join(", ")})`,
      );
    }
    if (!isRev(rev) && rev !== 0) {
      throw new KoiError(
        "bad_request",
        `Invalid fromRevs.${cluster}: expected an integer of 0 or more, got ${String(rev)}`,
      );
    }
    out.set(cluster, rev as number);
  }
  return out;
}

function checkHistory(history: unknown): HistoryRecorder | undefined {
  if (history === undefined || history instanceof HistoryRecorder) return history;
  throw new KoiError("bad_request", "Invalid history: expected a HistoryRecorder");
}

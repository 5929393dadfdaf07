/**
 * The node's HTTP API (docs/api.md) as a hono app over a
 * {@linkcode NodeService}: validation of everything that enters, follower forwarding of what
 * needs the leader, and one `onError` that maps typed errors to the statuses of docs/api.md.
 *
 * @module
 */

import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import { NotLeaderError } from "../raft/mod.ts";
import type { KvValue } from "../storage/mod.ts";
import type { NodeService, NodeStatus } from "./service.ts";
import { bearerAuth } from "./_http_auth.ts";
import {
  errorResponse,
  type HttpLog,
  jsonResponse,
  MethodNotAllowedError,
  responseForError,
} from "./_http_errors.ts";
import { type ForwardOptions, forwardToLeader } from "./_http_forward.ts";
import {
  KVC_BODY_BYTES_MAX,
  KVC_READ_ANSWER_BYTES_MAX,
  KVC_READ_PATH,
  KVC_WRITE_PATH,
  routeKvConnect,
} from "./_http_kvc.ts";
import {
  routeTxn,
  TXN_BODY_BYTES_MAX,
  TXN_CHECK_PATH,
  TXN_COMMAND_PATH,
  TXN_HELD_PATH,
  TXN_KVC_PREPARE_PATH,
  TXN_READ_PATH,
  TXN_RECORDS_PATH,
} from "./_http_txn.ts";
import { encodeBase64Url, queryBound } from "./_http_keys.ts";
import { renderHttpMetrics, renderWatchMetrics } from "./_metrics.ts";
import { WATCH_PATH, watchResponse } from "./_http_watch.ts";
import type { WatchHub } from "./_watch_hub.ts";
import { ROUTE_BODY_BYTES_MAX, ROUTE_PATHS, routeResharding } from "./_http_route.ts";
import type { AnswerBytes, DirectAnswer, DirectRequest } from "../http/server.ts";
import {
  createDirectKeyHandler,
  getAnswer,
  type KeyRequest,
  KV_PATH,
  planDelete,
  planGet,
  planPut,
  responseOf,
  writeAnswer,
  type WritePlan,
} from "./_http_kv.ts";
import {
  parseLimit,
  parseMemberSpec,
  parseNodeId,
  parseQuery,
  parseStale,
  parseTransfer,
  percentDecode,
  readBody,
} from "./_http_request.ts";

/** Largest key, in UTF-8 bytes of the decoded key (docs/api.md "Limits"). */
export const KEY_BYTES_MAX = 1024;
/** Largest value, in bytes: 1 MiB (docs/api.md "Limits"). */
export const VALUE_BYTES_MAX: number = 1 << 20;
/** Largest `limit` of `GET /v1/kv`. */
export const LIST_LIMIT_MAX = 1000;
/** The `limit` of `GET /v1/kv` when absent (capped at the configured maximum). */
export const LIST_LIMIT_DEFAULT = 100;
/** Time the leader has to answer a forwarded request. */
export const FORWARD_TIMEOUT_MS_DEFAULT = 5000;
/** Largest body of a management call (`POST /v1/members`, `POST /v1/leader`). */
export const MANAGEMENT_BODY_BYTES_MAX: number = 64 * 1024;

/** Options of {@linkcode createNodeApp}. */
export interface HttpOptions {
  /** The node behind the API. */
  service: NodeService;
  /**
   * When set, management calls need `authorization: Bearer <secret>` (401 otherwise).
   * The data plane and /healthz don't.
   */
  secret?: string;
  /** Largest key in UTF-8 bytes of the decoded key; default {@linkcode KEY_BYTES_MAX}. */
  keyBytesMax?: number;
  /** Largest value in bytes; default {@linkcode VALUE_BYTES_MAX}. */
  valueBytesMax?: number;
  /** Largest `limit` of a listing; default {@linkcode LIST_LIMIT_MAX}. */
  listLimitMax?: number;
  /**
   * Largest answer of a KV Connect or snapshot read, in key and value bytes (64 more per
   * entry); default {@linkcode KVC_READ_ANSWER_BYTES_MAX}. A larger one is refused (413).
   */
  readAnswerBytesMax?: number;
  /**
   * The HTTP server's count of answer bytes its clients have not taken: read answers and
   * relayed ones are refused (503 overloaded) when they would not fit. Default: no bound
   * (for an app served without {@linkcode HttpServer}).
   */
  answers?: AnswerBytes;
  /** Sends a forwarded request to the leader; default `fetch`. */
  forward?: (url: string, init: RequestInit) => Promise<Response>;
  /** Time the leader has to answer a forwarded request; default 5000. */
  forwardTimeoutMs?: number;
  /** The HTTP server's counters for /metrics (`koi_http_<name>`), when it reports them. */
  httpStats?: () => Readonly<Record<string, number>>;
  /** The process's gauges for /metrics (`koi_process_<name>`: the event loop's lag). */
  processStats?: () => Readonly<Record<string, number>>;
  /** Where unexpected errors (answered 500) are reported; default `console.error`. */
  log?: (message: string, error: unknown) => void;
  /**
   * Addresses of the nodes config.toml knows (id -> raft and http): `POST /v1/members`
   * takes them from here when the body names only the id.
   */
  members?: ReadonlyMap<string, { readonly raft: string; readonly http: string }>;
  /** The node's change streams: serves `GET /v1/watch` when given (docs/api.md "Watch"). */
  watch?: WatchHub;
}

interface Resolved {
  readonly service: NodeService;
  readonly keyBytesMax: number;
  readonly valueBytesMax: number;
  readonly listLimitMax: number;
  readonly listLimitDefault: number;
  readonly readAnswerBytesMax: number;
  readonly answers: AnswerBytes | undefined;
  readonly forward: ForwardOptions;
  readonly log: HttpLog;
  readonly members: ReadonlyMap<string, { readonly raft: string; readonly http: string }>;
  readonly httpStats: () => Readonly<Record<string, number>>;
  readonly processStats: () => Readonly<Record<string, number>>;
  readonly watch: WatchHub | undefined;
}

const MEMBERS_PREFIX = "/v1/members/";
// `/v1/members/*` also matches `/v1/members` (hono wildcards match the bare prefix).
const MANAGEMENT_PATHS = [
  "/v1/status",
  "/v1/members/*",
  "/v1/leader",
  "/v1/snapshot",
  "/metrics",
  ...ROUTE_PATHS,
  // A transaction command's effect depends on a decision only the coordinator knows: an
  // abort sent to a secondary after the primary committed breaks atomicity. Only holders of
  // the cluster's secret (the admin's gateway) send them (docs/transactions.md).
  TXN_COMMAND_PATH,
  TXN_KVC_PREPARE_PATH,
  TXN_RECORDS_PATH,
  TXN_HELD_PATH,
];
/** Each route and the methods it serves, for 405 and OPTIONS (more specific first). */
const ROUTES: readonly (readonly [string, readonly string[]])[] = [
  [KV_PATH, ["GET", "PUT", "DELETE"]],
  ["/v1/kv/*", ["GET", "PUT", "DELETE"]],
  ["/v1/status", ["GET"]],
  ["/v1/members", ["POST"]],
  ["/v1/members/:id", ["DELETE"]],
  ["/v1/leader", ["POST"]],
  ["/v1/snapshot", ["POST"]],
  ["/metrics", ["GET"]],
  ["/healthz", ["GET"]],
  ["/v1/route", ["POST"]],
  ["/v1/route/keys", ["GET"]],
  ["/v1/route/sessions", ["GET"]],
  ["/v1/route/state", ["GET"]],
  [KVC_READ_PATH, ["POST"]],
  [KVC_WRITE_PATH, ["POST"]],
  [TXN_COMMAND_PATH, ["POST"]],
  [TXN_KVC_PREPARE_PATH, ["POST"]],
  [TXN_RECORDS_PATH, ["POST"]],
  [TXN_HELD_PATH, ["POST"]],
  [TXN_READ_PATH, ["POST"]],
  [TXN_CHECK_PATH, ["POST"]],
];
const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
const utf8Lossy = new TextDecoder("utf-8", { fatal: false });

/**
 * Creates the node's HTTP app.
 *
 * @example
 * ```ts ignore
 * const app = createNodeApp({ service, secret: config.secret });
 * Deno.serve({ hostname, port }, app.fetch);
 * ```
 */
export function createNodeApp(options: HttpOptions): Hono {
  const resolved = resolveOptions(options);
  const app = new Hono();
  app.use("*", leaderHeader(resolved.service));
  if (options.secret !== undefined) {
    const auth = bearerAuth(options.secret);
    for (const path of MANAGEMENT_PATHS) app.use(path, auth);
  }
  routeData(app, resolved);
  routeManagement(app, resolved);
  routeResharding(app, resolved.service);
  for (const [path, methods] of ROUTES) app.all(path, (c) => methodNotAllowed(c, methods));
  app.notFound((c) =>
    errorResponse(404, "not_found", `No such route: ${c.req.method} ${new URL(c.req.url).pathname}`)
  );
  app.onError((error, c) => responseForError(error, c.req.raw, resolved.log));
  return app;
}

/**
 * The direct handler of koi's HTTP server for the node (see {@linkcode createDirectKeyHandler}):
 * the key requests that need no forwarding, answered as the app made with the same `options`
 * answers them, without a fetch Request or a hono dispatch.
 */
export function createNodeDirect(
  options: HttpOptions,
): (request: DirectRequest) => Promise<DirectAnswer | undefined> | undefined {
  const resolved = resolveOptions(options);
  return createDirectKeyHandler({ ...resolved, origin: "http://node" });
}

/**
 * The most body bytes a request to the node may carry, by its raw target: what its route
 * reads (a value, a KV Connect or transaction body, a routing command; a management body for
 * anything else), so that koi's HTTP server refuses a declared length over it before reading.
 * `valueBytesMaxOption` is the app's `valueBytesMax` option.
 */
export function nodeBodyBytesMaxOf(
  valueBytesMaxOption?: number,
): (method: string, target: string) => number {
  const valueBytesMax = positiveInteger(valueBytesMaxOption, VALUE_BYTES_MAX, "valueBytesMax");
  return (method, target) => {
    // (An absolute-form target, `http://host/path`, gets the smallest limit: the app refuses it.)
    const query = target.indexOf("?");
    const path = query === -1 ? target : target.slice(0, query);
    if (method === "PUT" && (path === KV_PATH || path.startsWith(`${KV_PATH}/`))) {
      return valueBytesMax;
    }
    if (path.startsWith("/v1/kvc/")) return Math.max(KVC_BODY_BYTES_MAX, TXN_BODY_BYTES_MAX);
    if (path.startsWith("/v1/txn/")) return TXN_BODY_BYTES_MAX;
    if (path === "/v1/route") return ROUTE_BODY_BYTES_MAX;
    return MANAGEMENT_BODY_BYTES_MAX;
  };
}

function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  const resolved = value ?? fallback;
  if (!Number.isSafeInteger(resolved) || resolved < 1) {
    throw new RangeError(`Invalid HTTP option ${name}: must be a positive integer, got ${value}`);
  }
  return resolved;
}

function resolveOptions(options: HttpOptions): Resolved {
  if (options.secret === "") {
    throw new RangeError("Invalid HTTP option secret: must not be empty (omit it for no auth)");
  }
  const keyBytesMax = positiveInteger(options.keyBytesMax, KEY_BYTES_MAX, "keyBytesMax");
  const valueBytesMax = positiveInteger(options.valueBytesMax, VALUE_BYTES_MAX, "valueBytesMax");
  const listLimitMax = positiveInteger(options.listLimitMax, LIST_LIMIT_MAX, "listLimitMax");
  const readAnswerBytesMax = positiveInteger(
    options.readAnswerBytesMax,
    KVC_READ_ANSWER_BYTES_MAX,
    "readAnswerBytesMax",
  );
  const timeoutMs = positiveInteger(
    options.forwardTimeoutMs,
    FORWARD_TIMEOUT_MS_DEFAULT,
    "forwardTimeoutMs",
  );
  // The largest answer a leader legitimately relays: a value, a full listing in which JSON
  // escapes every key byte as "\u00XX" (6 chars) plus ~32 chars per item, or a KV Connect or
  // snapshot read (its entries' framing counted in the bound it is checked against).
  const answerBytesMax = Math.max(
    valueBytesMax,
    listLimitMax * (6 * keyBytesMax + 32),
    readAnswerBytesMax,
  ) + MANAGEMENT_BODY_BYTES_MAX;
  return {
    service: options.service,
    keyBytesMax,
    valueBytesMax,
    listLimitMax,
    listLimitDefault: Math.min(LIST_LIMIT_DEFAULT, listLimitMax),
    readAnswerBytesMax,
    answers: options.answers,
    forward: {
      answers: options.answers,
      service: options.service,
      forward: options.forward ?? ((url, init) => fetch(url, init)),
      timeoutMs,
      answerBytesMax,
    },
    log: options.log ?? ((message, error) => console.error(message, error)),
    members: options.members ?? new Map(),
    httpStats: options.httpStats ?? (() => ({})),
    processStats: options.processStats ?? (() => ({})),
    watch: options.watch,
  };
}

/** Adds `x-koi-leader` to every answer when a leader is known. */
function leaderHeader(service: NodeService): MiddlewareHandler {
  return async function addLeaderHeader(c, next) {
    await next();
    const leader = service.leader();
    if (leader === "") return;
    try {
      c.res.headers.set("x-koi-leader", leader);
    } catch {
      c.res = new Response(c.res.body, c.res); // immutable headers: copy the answer first
      c.res.headers.set("x-koi-leader", leader);
    }
  };
}

function methodNotAllowed(c: Context, methods: readonly string[]): Response {
  const allowed = methods.includes("GET")
    ? [...methods, "HEAD", "OPTIONS"]
    : [...methods, "OPTIONS"];
  if (c.req.method === "OPTIONS") {
    return new Response(null, { status: 204, headers: { allow: allowed.join(", ") } });
  }
  throw new MethodNotAllowedError(c.req.method, new URL(c.req.url).pathname, allowed);
}

/**
 * Runs an operation that needs the leader; on `NotLeaderError` forwards the original
 * request (with `body`, already read) and relays the leader's answer instead.
 */
async function withLeader<T>(
  c: Context,
  resolved: Resolved,
  body: Uint8Array | undefined,
  operation: () => Promise<T>,
  answer: (value: T) => Response,
): Promise<Response> {
  const signal = c.req.raw.signal;
  // A client gone (the connection closed while this request waited or ran) reads no answer:
  // neither the work nor the answer is done for it (the server sends nothing either). A flood
  // of large reads cut off by its client kept the leaders building answers for seconds after.
  if (signal.aborted) return clientGone();
  let value: T;
  try {
    value = await operation();
  } catch (error) {
    if (!(error instanceof NotLeaderError)) throw error;
    return await forwardToLeader(c.req.raw, error, body, resolved.forward);
  }
  if (signal.aborted) return clientGone();
  return answer(value);
}

/** The answer to a request whose client went (never sent: see `HttpServer`). */
function clientGone(): Response {
  return errorResponse(499, "client_gone", "The client closed the connection");
}

// ---------------------------------------------------------------------------------------
// Data plane (the key requests themselves are in _http_kv.ts, shared with the direct path)

function routeData(app: Hono, resolved: Resolved): void {
  app.get(
    KV_PATH,
    (c) =>
      new URL(c.req.url).searchParams.has("key_b64") ? getKey(c, resolved) : listKeys(c, resolved),
  );
  for (const path of [KV_PATH, "/v1/kv/*"]) {
    if (path !== KV_PATH) app.get(path, (c) => getKey(c, resolved));
    app.put(path, (c) => putKey(c, resolved));
    app.delete(path, (c) => deleteKey(c, resolved));
  }
  const deps = {
    service: resolved.service,
    readAnswerBytesMax: resolved.readAnswerBytesMax,
    answers: resolved.answers,
    withLeader: <T>(
      c: Context,
      body: Uint8Array,
      operation: () => Promise<T>,
      answer: (value: T) => Response,
    ) => withLeader(c, resolved, body, operation, answer),
  };
  routeKvConnect(app, deps);
  routeTxn(app, deps);
  const hub = resolved.watch;
  if (hub === undefined) return;
  app.get(WATCH_PATH, (c) => watchResponse(keyRequest(c), hub, resolved.keyBytesMax));
  app.all(WATCH_PATH, (c) => methodNotAllowed(c, ["GET"]));
}

function keyRequest(c: Context): KeyRequest {
  return { url: new URL(c.req.url), headers: c.req.raw.headers };
}

async function getKey(c: Context, resolved: Resolved): Promise<Response> {
  const plan = planGet(keyRequest(c), resolved);
  const answer = (found: KvValue | undefined) => responseOf(getAnswer(plan, found));
  // A stale read is served from local state by any member: never forwarded.
  if (plan.stale) return answer(await resolved.service.get(plan.key.bytes, { stale: true }));
  return await withLeader(
    c,
    resolved,
    undefined,
    () => resolved.service.get(plan.key.bytes, { stale: false }),
    answer,
  );
}

async function putKey(c: Context, resolved: Resolved): Promise<Response> {
  const request = c.req.raw;
  let value: Uint8Array | undefined;
  const plan = await planPut(keyRequest(c), resolved, async () => {
    value = await readBody(request, resolved.valueBytesMax, "Value");
    return value;
  });
  return await runWrite(c, resolved, plan, value);
}

async function deleteKey(c: Context, resolved: Resolved): Promise<Response> {
  return await runWrite(c, resolved, planDelete(keyRequest(c), resolved), undefined);
}

/** Runs a write on this node, or forwards it (with `body`, already read) to the leader. */
function runWrite(
  c: Context,
  resolved: Resolved,
  plan: WritePlan,
  body: Uint8Array | undefined,
): Promise<Response> {
  return withLeader(
    c,
    resolved,
    body,
    () => resolved.service.write(plan.command),
    (result) => responseOf(writeAnswer(plan, result)),
  );
}

async function listKeys(c: Context, resolved: Resolved): Promise<Response> {
  const query = parseQuery(new URL(c.req.url).search);
  const stale = parseStale(query);
  const binary = query.has("prefix_b64") || query.has("after_b64");
  const prefix = queryBound(query, "prefix", resolved.keyBytesMax);
  const after = queryBound(query, "after", resolved.keyBytesMax);
  const limit = parseLimit(query, {
    limitMax: resolved.listLimitMax,
    limitDefault: resolved.listLimitDefault,
  });
  // An empty `after` starts at the beginning, as no `after` does.
  const options = { prefix, limit, stale, ...(after.length === 0 ? {} : { after }) };
  const answer = (page: Awaited<ReturnType<NodeService["list"]>>) =>
    jsonResponse(200, {
      // Keys enter as UTF-8 through the HTTP paths; a foreign byte string decodes lossily.
      items: page.items.map((item) => listItem(item, binary)),
      more: page.more,
    });
  if (stale) return answer(await resolved.service.list(options));
  return await withLeader(c, resolved, undefined, () => resolved.service.list(options), answer);
}

/**
 * One listed key: its text (lossy when it is not UTF-8), plus its exact bytes as `key_b64`
 * when the listing was asked in base64url or the text cannot carry them.
 */
function listItem(
  item: { readonly key: Uint8Array; readonly rev: number },
  binary: boolean,
): { key: string; rev: number; key_b64?: string } {
  const key = utf8Lossy.decode(item.key);
  const exact = !key.includes("\uFFFD") || utf8Strict(item.key);
  if (!binary && exact) return { key, rev: item.rev };
  return { key, rev: item.rev, key_b64: encodeBase64Url(item.key) };
}

function utf8Strict(bytes: Uint8Array): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// Management

/** Exactly docs/api.md's fields, whatever else the service's object carries. */
function statusBody(status: NodeStatus): NodeStatus {
  return {
    node: status.node,
    cluster: status.cluster,
    role: status.role,
    term: status.term,
    leader: status.leader,
    commit: status.commit,
    applied: status.applied,
    snapshot: status.snapshot,
    epoch: status.epoch,
    keys: status.keys,
    bytes: status.bytes,
    members: status.members.map((m) => ({ id: m.id, voter: m.voter, match: m.match })),
    ...(status.disk === undefined ? {} : { disk: status.disk }),
    ...(status.reads === undefined ? {} : { reads: status.reads }),
    ...(status.writes === undefined ? {} : { writes: status.writes }),
    ...(status.routing === undefined ? {} : { routing: status.routing }),
  };
}

function routeManagement(app: Hono, resolved: Resolved): void {
  const { service } = resolved;
  const ok = () => jsonResponse(200, { ok: true });
  app.get("/v1/status", () => jsonResponse(200, statusBody(service.status())));
  app.post("/v1/members", async (c) => {
    const body = await readBody(c.req.raw, MANAGEMENT_BODY_BYTES_MAX, "Body");
    const member = parseMemberSpec(body, resolved.members);
    return await withLeader(c, resolved, body, () => service.addMember(member), ok);
  });
  app.delete("/v1/members/:id", async (c) => {
    const raw = new URL(c.req.url).pathname.slice(MEMBERS_PREFIX.length);
    const id = parseNodeId(percentDecode(raw, "member id"), "member id");
    return await withLeader(c, resolved, undefined, () => service.removeMember(id), ok);
  });
  app.post("/v1/leader", async (c) => {
    const body = await readBody(c.req.raw, MANAGEMENT_BODY_BYTES_MAX, "Body");
    const to = parseTransfer(body);
    return await withLeader(
      c,
      resolved,
      body,
      () => service.transferLeader(to),
      () => jsonResponse(200, { leader: to }),
    );
  });
  app.post("/v1/snapshot", async () => {
    const { index } = await service.snapshot();
    return jsonResponse(200, { index });
  });
  app.get("/metrics", () =>
    new Response(
      service.metrics() +
        renderHttpMetrics(service.nodeId, service.clusterId, resolved.httpStats()) +
        renderHttpMetrics(service.nodeId, service.clusterId, resolved.processStats(), "process") +
        (resolved.watch === undefined
          ? ""
          : renderWatchMetrics(service.nodeId, service.clusterId, resolved.watch.stats())),
      {
        status: 200,
        headers: { "content-type": METRICS_CONTENT_TYPE },
      },
    ));
  // Healthy means able to serve: state loaded and a leader known (as etcd's /health).
  app.get("/healthz", () => {
    if (!service.loaded()) {
      return errorResponse(503, "loading", `Node ${service.nodeId} has not loaded its state yet`, {
        "retry-after": "1",
      });
    }
    // A node that cannot write its data directory takes no writes and does not lead: it is
    // not healthy, even though it may still know the leader and serve stale reads.
    const disk = service.diskStatus?.();
    if (disk !== undefined && disk.state === "failed") {
      return errorResponse(
        503,
        "disk_failed",
        `Node ${service.nodeId} cannot write its data directory since ${disk.since}: ` +
          `${disk.error} (${disk.persistFailures} failed persists); it takes no writes and ` +
          `does not lead until its disk takes writes again`,
        { "retry-after": "1" },
      );
    }
    const leader = service.leader();
    if (leader === "") {
      return errorResponse(
        503,
        "no_leader",
        `Node ${service.nodeId} knows no leader of cluster ${service.clusterId}`,
        { "retry-after": "1" },
      );
    }
    return jsonResponse(200, { ok: true, leader });
  });
}

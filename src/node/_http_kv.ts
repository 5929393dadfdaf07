/**
 * The key requests of the node's HTTP API (`GET`, `PUT` and `DELETE` of `/v1/kv/{key}` and
 * `/v1/kv?key_b64=`): each parsed into a plan, run against the {@linkcode NodeService}, and
 * answered as a {@linkcode PlainAnswer}. The hono routes (src/node/http.ts) and the direct
 * path of the HTTP server ({@linkcode createDirectKeyHandler}) share them, so both answer
 * every request alike.
 *
 * @module
 */
import { NotLeaderError } from "../raft/mod.ts";
import type { KvCommand, KvResult, KvValue } from "../storage/mod.ts";
import type { DirectAnswer, DirectRequest } from "../http/server.ts";
import { BadRequestError, TooLargeError, WrongShardError } from "./errors.ts";
import type { NodeService } from "./service.ts";
import { type HttpLog, lockedMessage, lockHeaders, typedErrorResponse } from "./_http_errors.ts";
import { FORWARDED_HEADER } from "./_http_forward.ts";
import { checkNotSystem, decodeBase64Url } from "./_http_keys.ts";
import {
  checkContentLength,
  type HeaderGetter,
  keyBytes,
  parseConditions,
  parseQuery,
  parseRequestIdHeader,
  parseStale,
  percentDecode,
  show,
} from "./_http_request.ts";

/** The path of `?key_b64=` requests and listings. */
export const KV_PATH = "/v1/kv";
/** The prefix of `/v1/kv/{key}`. */
export const KV_KEY_PREFIX = "/v1/kv/";
const OCTET_STREAM = "application/octet-stream";
const JSON_TYPE = "application/json";

/** What the key requests need of the app's options. */
export interface KvOptions {
  readonly service: NodeService;
  readonly keyBytesMax: number;
  readonly valueBytesMax: number;
}

/** An answer before it becomes a fetch Response or goes straight to the socket. */
export interface PlainAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** JSON text (its content-type is in `headers`), bytes, or none. */
  readonly body: string | Uint8Array | null;
}

/** A key request, whichever way it arrived. */
export interface KeyRequest {
  readonly url: URL;
  readonly headers: HeaderGetter;
}

/** A key, as bytes and as text for messages. */
export interface Key {
  readonly bytes: Uint8Array;
  /** The key for messages: its text, or `base64url:<key_b64>` when it came as base64url. */
  readonly text: string;
}

/** The JSON error answer `{"error": {"code", "message"}}` of docs/api.md. */
export function plainError(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): PlainAnswer {
  return {
    status,
    headers: { "content-type": JSON_TYPE, ...headers },
    body: JSON.stringify({ error: { code, message } }),
  };
}

function plainJson(status: number, body: unknown): PlainAnswer {
  return { status, headers: { "content-type": JSON_TYPE }, body: JSON.stringify(body) };
}

/**
 * The key of `/v1/kv/{key}` (percent-decoded, 1..keyBytesMax bytes of UTF-8) or of
 * `/v1/kv?key_b64=` (any 1..keyBytesMax bytes, not starting with 0xFF).
 */
export function keyFromUrl(url: URL, query: Map<string, string>, keyBytesMax: number): Key {
  const b64 = query.get("key_b64");
  if (url.pathname === KV_PATH) {
    if (b64 === undefined) {
      throw new BadRequestError(
        "Missing key: use /v1/kv/{url-encoded key} or /v1/kv?key_b64=<base64url of the key>",
      );
    }
    const bytes = decodeBase64Url(b64, "key_b64");
    if (bytes.length < 1 || bytes.length > keyBytesMax) {
      throw new BadRequestError(
        `Invalid key_b64: the key must be 1 to ${keyBytesMax} bytes, got ${bytes.length}`,
      );
    }
    checkNotSystem(bytes, "key_b64");
    return { bytes, text: `base64url:${b64}` };
  }
  if (b64 !== undefined) {
    throw new BadRequestError("Invalid key: give it in the path or as key_b64, not both");
  }
  const text = percentDecode(url.pathname.slice(KV_KEY_PREFIX.length), "key");
  return { bytes: keyBytes(text, "key", { bytesMax: keyBytesMax }), text };
}

function checkOwned(service: NodeService, key: Key): void {
  if (service.owns(key.bytes)) return;
  const epoch = service.epoch();
  const owner = service.owner?.(key.bytes);
  throw new WrongShardError(
    `Wrong shard: key ${show(key.text)} does not belong to cluster ${service.clusterId} ` +
      `at routing epoch ${epoch}` + (owner === undefined ? "" : `; it belongs to cluster ${owner}`),
    epoch,
    owner,
  );
}

/** A parsed `GET` of a key. */
export interface GetPlan {
  readonly key: Key;
  readonly stale: boolean;
}

/** Parses a `GET` of a key and checks that this cluster owns it. */
export function planGet(request: KeyRequest, options: KvOptions): GetPlan {
  const query = parseQuery(request.url.search);
  const key = keyFromUrl(request.url, query, options.keyBytesMax);
  const stale = parseStale(query);
  checkOwned(options.service, key);
  return { key, stale };
}

/** The answer to a `GET` that found `found` (content-length explicit, for HEAD). */
export function getAnswer(plan: GetPlan, found: KvValue | undefined): PlainAnswer {
  if (found === undefined) {
    return plainError(404, "not_found", `Key not found: ${show(plan.key.text)}`);
  }
  return {
    status: 200,
    headers: {
      "content-type": OCTET_STREAM,
      "content-length": String(found.value.length),
      etag: `"${found.rev}"`,
    },
    body: found.value,
  };
}

/** A parsed write of a key: its command and how its success is told. */
export interface WritePlan {
  readonly key: Key;
  readonly command: KvCommand;
  readonly okBody: (rev: number, existed: readonly boolean[]) => unknown;
}

/**
 * Parses a `PUT` of a key; `readValue` reads the body once the headers passed (at most
 * `valueBytesMax` bytes, else it throws 413).
 */
export async function planPut(
  request: KeyRequest,
  options: KvOptions,
  readValue: () => Promise<Uint8Array> | Uint8Array,
): Promise<WritePlan> {
  const key = keyFromUrl(request.url, parseQuery(request.url.search), options.keyBytesMax);
  const checks = parseConditions(request.headers, key.bytes);
  const requestId = parseRequestIdHeader(request.headers);
  checkContentLength(request.headers, options.valueBytesMax, "Value");
  checkOwned(options.service, key);
  const value = await readValue();
  return {
    key,
    command: {
      ...(requestId === undefined ? {} : { requestId }),
      checks,
      mutations: [{ type: "set", key: key.bytes, value }],
    },
    okBody: (rev) => ({ rev }),
  };
}

/** Parses a `DELETE` of a key (a body, ignored, within the value limit). */
export function planDelete(request: KeyRequest, options: KvOptions): WritePlan {
  const key = keyFromUrl(request.url, parseQuery(request.url.search), options.keyBytesMax);
  const checks = parseConditions(request.headers, key.bytes);
  const requestId = parseRequestIdHeader(request.headers);
  // Its body is ignored, but one over the limit is not read at all: a request that never fully
  // arrived must not delete anything.
  checkContentLength(request.headers, options.valueBytesMax, "Body");
  checkOwned(options.service, key);
  return {
    key,
    command: {
      ...(requestId === undefined ? {} : { requestId }),
      checks,
      mutations: [{ type: "delete", key: key.bytes }],
    },
    okBody: (rev, existed) => ({ rev, deleted: existed[0] ?? false }),
  };
}

/** The answer to a write: 200 with its body, or 412 / 507 / 409 for a refused command. */
export function writeAnswer(plan: WritePlan, result: KvResult): PlainAnswer {
  const key = plan.key;
  if (result.ok) return plainJson(200, plan.okBody(result.rev, result.existed));
  if (result.code === "precondition_failed") {
    const state = result.rev === 0 ? "does not exist" : `has rev ${result.rev}`;
    return plainError(
      412,
      "precondition_failed",
      `Precondition failed: key ${show(key.text)} ${state}`,
      result.rev === 0 ? {} : { etag: `"${result.rev}"` },
    );
  }
  if (result.code === "storage_full") {
    return plainError(
      507,
      "insufficient_storage",
      `Cannot write key ${show(key.text)}: the store would exceed its limit of ` +
        `${result.bytesMax} bytes`,
    );
  }
  if (result.code === "wrong_shard") {
    // Found when the write applied: the key moved (docs/resharding.md). Nothing was applied.
    return plainError(
      421,
      "wrong_shard",
      `Key ${show(key.text)} belongs to cluster ${result.owner} (epoch ${result.epoch}); ` +
        "nothing was written",
      { "x-koi-epoch": String(result.epoch), "x-koi-owner": result.owner },
    );
  }
  if (result.code === "stale_request") {
    return plainError(
      409,
      "stale_request",
      `Stale request id: the client's last applied seq is ${result.seq}`,
    );
  }
  if (result.code === "type_mismatch") return plainError(400, "bad_request", result.message);
  if (result.code === "stale_versionstamp") {
    // The driver proposes such a write again: seeing it here is a bug, and retrying helps.
    return plainError(503, "unavailable", "The write met a newer versionstamp; retry it");
  }
  if (result.code === "locked") {
    return plainError(409, "locked", lockedMessage(result.lock), lockHeaders(result.lock));
  }
  // Routing commands answer these; a client's write never does.
  return plainError(409, result.code, `The write was refused: ${result.reason}`);
}

/** A {@linkcode PlainAnswer} as a fetch Response. */
export function responseOf(answer: PlainAnswer): Response {
  const body = answer.body;
  return new Response(
    body === null
      ? null
      : typeof body === "string"
      ? body
      : body.buffer instanceof ArrayBuffer
      ? body as Uint8Array<ArrayBuffer>
      : body.slice(),
    { status: answer.status, headers: answer.headers },
  );
}

// ---------------------------------------------------------------------------------------
// The direct path

/** Header names a direct request may carry; any other sends it through the app. */
const DIRECT_HEADERS = new Set([
  "host",
  "user-agent",
  "accept",
  "accept-encoding",
  "accept-language",
  "connection",
  "keep-alive",
  "content-length",
  "content-type",
  "if-match",
  "if-none-match",
  "x-request-id",
]);
// deno-lint-ignore no-control-regex
const BAD_VALUE = /[\x00\r\n]/;
const HTTP_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;

/**
 * The headers of `raw` (`name, value, ...`) as the app sees them (names in lower case, values
 * trimmed), or undefined when the app might see them otherwise: a name that is not one a
 * direct request may carry, a line `Headers` refuses, a repeated name or an empty value (the
 * server's copy of repeated and empty values into the app's Request joins them in its own
 * way, which the direct path does not imitate).
 */
function directHeaders(raw: readonly string[]): HeaderGetter | undefined {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    const value = raw[i + 1];
    if (!DIRECT_HEADERS.has(name) || BAD_VALUE.test(value)) return undefined;
    const trimmed = value.replace(HTTP_WHITESPACE, "");
    if (trimmed === "" || map.has(name)) return undefined;
    map.set(name, trimmed);
  }
  return { get: (name) => map.get(name.toLowerCase()) ?? null };
}

/** What the direct path needs besides the key options. */
export interface DirectOptions extends KvOptions {
  /** Where unexpected errors (answered 500) are reported. */
  readonly log: HttpLog;
  /** The origin the app's requests are built on (their URLs parse the same way). */
  readonly origin: string;
}

/**
 * The HTTP server's direct handler for the node: answers the key requests that need no
 * forwarding (reads anywhere, writes on the leader) without a fetch Request, a hono dispatch
 * or a Response, with the same answers as the app. Anything else (listings, HEAD, management,
 * an unusual header, a write on a follower, a request forwarded by another node) it leaves
 * to the app by answering undefined, which it does only before it changed anything.
 */
export function createDirectKeyHandler(
  options: DirectOptions,
): (request: DirectRequest) => Promise<DirectAnswer | undefined> | undefined {
  const service = options.service;
  return (request) => {
    const method = request.method;
    if (method !== "GET" && method !== "PUT" && method !== "DELETE") return undefined;
    const target = request.target;
    if (!target.startsWith(KV_KEY_PREFIX) && !target.startsWith(`${KV_PATH}?`)) return undefined;
    const headers = directHeaders(request.rawHeaders);
    // x-koi-forwarded is not in the allow-list; checked anyway, so that adding it there never
    // lets a forwarded request skip the app's loop check.
    if (headers === undefined || headers.get(FORWARDED_HEADER) !== null) return undefined;
    if (method !== "GET" && service.leader() !== service.nodeId) return undefined;
    let url: URL;
    try {
      url = new URL(options.origin + target);
    } catch {
      return undefined;
    }
    // Normalization may have made it another route (`%2e%2e`), or a listing.
    if (
      url.pathname === KV_PATH
        ? !url.searchParams.has("key_b64")
        : !url.pathname.startsWith(KV_KEY_PREFIX)
    ) {
      return undefined;
    }
    return answerDirect({ url, headers }, method, request.body, options);
  };
}

async function answerDirect(
  request: KeyRequest,
  method: "GET" | "PUT" | "DELETE",
  body: Uint8Array | null,
  options: DirectOptions,
): Promise<DirectAnswer | undefined> {
  let answer: PlainAnswer;
  try {
    if (method === "GET") {
      const plan = planGet(request, options);
      let found: KvValue | undefined;
      try {
        found = await options.service.get(plan.key.bytes, { stale: plan.stale });
      } catch (error) {
        if (!plan.stale && error instanceof NotLeaderError) return undefined; // the app forwards
        throw error;
      }
      answer = getAnswer(plan, found);
    } else {
      const plan = method === "PUT"
        ? await planPut(request, options, () => valueWithin(body, options.valueBytesMax))
        : planDelete(request, options);
      let result: KvResult;
      try {
        result = await options.service.write(plan.command);
      } catch (error) {
        // NodeService.write throws it only before anything was proposed (its contract): the
        // app then forwards the write to the leader.
        if (error instanceof NotLeaderError) return undefined;
        throw error;
      }
      answer = writeAnswer(plan, result);
    }
  } catch (error) {
    const typed = typedErrorResponse(error);
    if (typed === undefined) {
      options.log(`Internal error answering ${method} ${request.url.pathname}`, error);
      answer = plainError(500, "internal", "Internal error: see the node's log");
    } else {
      answer = {
        status: typed.status,
        headers: Object.fromEntries(typed.headers),
        body: await typed.text(),
      };
    }
  }
  const leader = options.service.leader();
  return {
    status: answer.status,
    headers: leader === "" ? answer.headers : { ...answer.headers, "x-koi-leader": leader },
    body: answer.body,
  };
}

/** The body the server read, within the value limit (413 beyond, as the app's reader). */
function valueWithin(body: Uint8Array | null, bytesMax: number): Uint8Array {
  const bytes = body ?? new Uint8Array(0);
  if (bytes.length > bytesMax) {
    throw new TooLargeError(`Value too large: more than the limit of ${bytesMax} bytes`);
  }
  return bytes;
}

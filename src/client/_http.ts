/** The HTTP plumbing of the client: one attempt with its own timeout, admin URLs, error bodies. */

import { readAtMost } from "./_bytes.ts";
import { ERROR_MESSAGE_CHARS_MAX } from "./_limits.ts";
import { isObject } from "./_table.ts";
import { KoiError, type KoiErrorOptions } from "./errors.ts";

/** The `fetch` the client calls (the global one, or one injected for tests). */
export type FetchLike = (input: URL, init: RequestInit) => Promise<Response>;

/** A fetch bound to its own HTTP client, and how to release that client's sockets. */
export interface Fetcher {
  readonly fetch: FetchLike;
  /** Closes the pooled keep-alive connections (no-op for an injected fetch). */
  readonly close: () => void;
}

/**
 * Idle pooled connections are dropped after this long: below the node's 5 s keep-alive
 * timeout, so a request never races a connection the node is closing.
 */
const POOL_IDLE_MS = 2_000;

/**
 * The injected fetch, or the global one on an own `Deno.HttpClient` (closed by `close`) that
 * also trusts `caCerts` (PEM texts: a deployment's own CA) for `https://` URLs.
 */
export function makeFetcher(
  injected: FetchLike | undefined,
  options: { readonly caCerts?: readonly string[] } = {},
): Fetcher {
  if (injected !== undefined) return { fetch: injected, close: () => {} };
  const caCerts = options.caCerts === undefined ? undefined : checkCaCerts(options.caCerts);
  const client = Deno.createHttpClient({
    poolIdleTimeout: POOL_IDLE_MS,
    ...(caCerts === undefined ? {} : { caCerts }),
  });
  let closed = false;
  return {
    fetch: (input, init) => fetch(input, { ...init, client }),
    close: () => {
      if (closed) return;
      closed = true;
      client.close();
    },
  };
}

function checkCaCerts(caCerts: readonly string[]): string[] {
  if (
    !Array.isArray(caCerts) ||
    caCerts.some((c) => typeof c !== "string" || !c.includes("-----BEGIN CERTIFICATE-----"))
  ) {
    throw new KoiError(
      "bad_request",
      "Invalid caCerts: expected an array of PEM certificates (-----BEGIN CERTIFICATE-----)",
    );
  }
  return [...caCerts];
}

/** The admin's base URL: `http://` is assumed when `admin` has no scheme. */
export function adminBaseUrl(admin: string | URL): URL {
  const text = admin instanceof URL ? admin.href : admin.trim();
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text) ? text : `http://${text}`;
  // The URL parser reads "host:" as the scheme's default port; it is a port left out.
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*:(?=[/?#]|$)/.test(withScheme)) {
    throw new KoiError(
      "bad_request",
      `Invalid admin URL ${JSON.stringify(String(admin))}: no port after ':'`,
    );
  }
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new KoiError("bad_request", `Invalid admin URL ${JSON.stringify(String(admin))}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new KoiError(
      "bad_request",
      `Invalid admin URL ${JSON.stringify(String(admin))}: expected http:// or https://`,
    );
  }
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  url.search = "";
  url.hash = "";
  return url;
}

/** An answer read in full. */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Uint8Array;
}

/** Why an attempt ended without an answer. */
export type AttemptFailure =
  | { readonly kind: "timeout"; readonly ms: number }
  | {
    readonly kind: "network";
    readonly refused: boolean;
    readonly message: string;
    /** A TLS or protocol mismatch (untrusted certificate, HTTP against HTTPS): no retry helps. */
    readonly tls?: boolean;
  }
  | { readonly kind: "aborted"; readonly reason: unknown }
  | { readonly kind: "no_room"; readonly message: string }
  | TooLarge;

/**
 * Room for answer bytes that a caller shares among its calls (the KV Connect gateway's reads
 * being built): an answer's bytes are taken by its declared length, before its body is read,
 * and an answer that does not fit fails its attempt (`no_room`) unread.
 */
export interface AnswerRoom {
  /** Takes `bytes`; the reason they do not fit, if they do not. */
  take(bytes: number): string | undefined;
}

/** The answer's body was over the attempt's limit: it was not read beyond it. */
export interface TooLarge {
  readonly kind: "too_large";
  /** The answer's HTTP status. */
  readonly status: number;
  /** The limit, in bytes. */
  readonly max: number;
}

/** The reason an attempt's own timer aborts it with. */
class AttemptTimeout {
  constructor(readonly ms: number) {}
}

/**
 * Sends one request and reads the whole answer, at most `maxBytes` of it, within `ms`
 * milliseconds, or until `signal` aborts. Never throws: a failure (a body over `maxBytes`
 * included, which is cancelled) is returned as an {@linkcode AttemptFailure}. With `room`,
 * the answer's bytes are taken from it first.
 */
export async function attempt(
  fetchFn: FetchLike,
  url: URL,
  init: RequestInit,
  ms: number,
  signal: AbortSignal,
  maxBytes: number,
  room?: AnswerRoom,
): Promise<Answer | AttemptFailure> {
  if (signal.aborted) return { kind: "aborted", reason: signal.reason };
  const controller = new AbortController();
  const timeout = new AttemptTimeout(ms);
  const timer = setTimeout(() => controller.abort(timeout), Math.max(0, ms));
  const onAbort = () => controller.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const response = await fetchFn(url, { ...init, signal: controller.signal });
    const tooLarge: TooLarge = { kind: "too_large", status: response.status, max: maxBytes };
    const declared = response.headers.get("content-length");
    if (Number(declared) > maxBytes) {
      response.body?.cancel().catch(() => {});
      return tooLarge;
    }
    const counted = declared !== null && /^\d+$/.test(declared);
    const refusal = counted ? room?.take(Number(declared)) : undefined;
    if (refusal !== undefined) {
      response.body?.cancel().catch(() => {});
      return { kind: "no_room", message: refusal };
    }
    // A declared length within the limit binds the body (HTTP framing: fetch fails on more),
    // so it is read in one step; reading it through a stream reader costs more than the
    // request itself. Without one (chunked), the reader stops at the limit.
    const body = response.body === null
      ? new Uint8Array(0)
      : counted
      ? new Uint8Array(await response.arrayBuffer())
      : await readAtMost(response.body, maxBytes);
    if (body === undefined) return tooLarge;
    // Without a declared length, the bytes are known once read (at most `maxBytes`).
    const late = counted ? undefined : room?.take(body.length);
    if (late !== undefined) return { kind: "no_room", message: late };
    return { status: response.status, headers: response.headers, body };
  } catch (error) {
    if (controller.signal.aborted) {
      return controller.signal.reason === timeout
        ? { kind: "timeout", ms }
        : { kind: "aborted", reason: controller.signal.reason };
    }
    const chain = causeChain(error);
    const refused = chain.some((m) => /connection refused|ECONNREFUSED|os error 111\b/i.test(m));
    const last = chain[chain.length - 1] ?? "network error";
    const tls = refused ? undefined : tlsProblem(url, last);
    if (tls !== undefined) return { kind: "network", refused, message: tls, tls: true };
    return { kind: "network", refused, message: refused ? "connection refused" : last };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  }
}

/**
 * What a TLS or protocol failure of `fetch` (its innermost message `text`) means for the
 * user, or undefined when it is none: an untrusted certificate, plain HTTP against an HTTPS
 * port, HTTPS against a plain one.
 */
function tlsProblem(url: URL, text: string): string | undefined {
  const detail = text.replace(/^.*client error \([^)]*\): /, "");
  if (/invalid peer certificate|certificate/i.test(text)) {
    return `TLS: ${url.host} presented a certificate this client does not trust (${detail}); ` +
      "give the client the deployment's CA (the caCerts option, or --ca FILE of koi client)";
  }
  if (url.protocol === "http:" && /invalid HTTP version parsed/i.test(text)) {
    return `${url.host} did not answer plain HTTP (${detail}); it may serve HTTPS: use an ` +
      "https:// URL";
  }
  if (url.protocol === "https:" && /InvalidContentType|wrong version number/i.test(text)) {
    return `${url.host} did not answer TLS (${detail}); it may serve plain HTTP: use an ` +
      "http:// URL";
  }
  return undefined;
}

/** The messages of `error` and its causes, outermost first (fetch hides the reason in `cause`). */
function causeChain(error: unknown): string[] {
  const messages: string[] = [];
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    messages.push(e instanceof Error ? e.message : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return messages;
}

/**
 * The `bad_response` error of an answer over its limit: `what` names the call (`get "k"`,
 * `Fetching the routing table`), `who` the sender.
 */
export function tooLargeError(
  what: string,
  who: string,
  failure: TooLarge,
  options: KoiErrorOptions = {},
): KoiError {
  return new KoiError(
    "bad_response",
    `${what}: ${who} answered ${failure.status} with a body over ${failure.max} bytes, the ` +
      "most the client reads of such an answer",
    options,
  );
}

/** Whether an attempt's result is an answer. */
export function isAnswer(result: Answer | AttemptFailure): result is Answer {
  return "body" in result;
}

const decoder = new TextDecoder();

/** The `{"error": {code, message}}` of an error answer (or a stand-in for a foreign body). */
export function errorOf(answer: Answer): { code: string; message: string } {
  const text = decoder.decode(answer.body);
  try {
    const json = JSON.parse(text);
    const error = isObject(json) ? json.error : undefined;
    if (isObject(error) && typeof error.code === "string") {
      return {
        code: cut(error.code, 64),
        message: cut(typeof error.message === "string" ? error.message : error.code),
      };
    }
  } catch {
    // not koi's error shape: fall through
  }
  return {
    code: `http_${answer.status}`,
    message: cut(text, 200).trim() || `HTTP ${answer.status}`,
  };
}

/** `text` cut to `max` characters (an ellipsis marks the cut). */
function cut(text: string, max = ERROR_MESSAGE_CHARS_MAX): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** The answer's JSON body, or undefined when it is not JSON. */
export function jsonOf(answer: Answer): unknown {
  try {
    return JSON.parse(decoder.decode(answer.body));
  } catch {
    return undefined;
  }
}

/** `retry-after` in milliseconds (delta-seconds only), or undefined. */
export function retryAfterMs(headers: Headers): number | undefined {
  const text = headers.get("retry-after");
  if (text === null || !/^\s*\d{1,6}\s*$/.test(text)) return undefined;
  return Number(text) * 1000;
}

/** Sleeps `ms`, or until `signal` aborts (then resolves early; the caller checks). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** A monotonic clock in milliseconds. */
export function now(): number {
  return performance.now();
}

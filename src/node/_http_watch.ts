/**
 * `GET /v1/watch` (docs/api.md "Watch"): the query (`prefix` / `prefix_b64`, `from_rev`,
 * or the `Last-Event-ID` header a browser's EventSource sends when it reconnects) parsed
 * into a watch of the node's {@linkcode WatchHub}, answered as a `text/event-stream`. The
 * HTTP server streams such answers without counting them as waiting requests and without
 * the request deadline (src/http/server.ts).
 *
 * @module
 */
import { BadRequestError } from "./errors.ts";
import { queryBound } from "./_http_keys.ts";
import { type HeaderGetter, parseQuery, show } from "./_http_request.ts";
import type { WatchHub } from "./_watch_hub.ts";

/** The watch route. */
export const WATCH_PATH = "/v1/watch";

/** The content type of a watch stream (the HTTP server streams answers of this type). */
export const EVENT_STREAM = "text/event-stream";

const REV_PATTERN = /^[0-9]{1,15}$/;

/** A parsed watch request. */
export interface WatchRequest {
  /** Only keys starting with these bytes (empty: every key). */
  readonly prefix: Uint8Array;
  /** The rev to start after; undefined: the node's current rev. */
  readonly from: number | undefined;
}

/** A rev of the query or a header, or a bad request about `what`. */
function parseRev(text: string, what: string): number {
  if (!REV_PATTERN.test(text)) {
    throw new BadRequestError(
      `Invalid ${what}: must be a revision (an integer of 0 or more), got ${show(text)}`,
    );
  }
  return Number(text);
}

/**
 * Parses a watch request. `Last-Event-ID` wins over `from_rev`: an EventSource reconnects
 * with the URL it was given (its `from_rev` too) and the id of the last message it got.
 */
export function parseWatch(url: URL, headers: HeaderGetter, keyBytesMax: number): WatchRequest {
  const query = parseQuery(url.search);
  const prefix = queryBound(query, "prefix", keyBytesMax);
  const fromText = query.get("from_rev");
  const from = fromText === undefined ? undefined : parseRev(fromText, "from_rev");
  const lastId = headers.get("last-event-id")?.trim();
  if (lastId === undefined || lastId === "") return { prefix, from };
  return { prefix, from: parseRev(lastId, "Last-Event-ID header") };
}

/** Answers a watch request: the stream, or the typed error of the hub (400, 410, 503). */
export function watchResponse(
  request: { readonly url: URL; readonly headers: HeaderGetter },
  hub: WatchHub,
  keyBytesMax: number,
): Response {
  const { prefix, from } = parseWatch(request.url, request.headers, keyBytesMax);
  const watcher = hub.open(prefix, from);
  return new Response(watcher.body, {
    status: 200,
    headers: {
      "content-type": EVENT_STREAM,
      "cache-control": "no-cache",
      // Proxies that buffer answers (nginx) would hold the changes back.
      "x-accel-buffering": "no",
    },
  });
}

/**
 * The HTTP server's wire work: reading a request body whole (within its limit and the shared
 * body budget), making the fetch Request of a `node:http` request, and writing answers.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { concat } from "./_bytes.ts";
import { writesOf } from "./_pieced.ts";

/** A request as read off the wire, for `HttpServerOptions.direct`. */
export interface DirectRequest {
  /** The method as sent. */
  readonly method: string;
  /** The raw request target (path and query, not normalized). */
  readonly target: string;
  /** The header lines as sent: name, value, name, value, ... */
  readonly rawHeaders: readonly string[];
  /** The body (null for GET and HEAD; at most `bodyBytesMax` bytes, see the limits). */
  readonly body: Uint8Array | null;
}

/** An answer of `HttpServerOptions.direct`. */
export interface DirectAnswer {
  /** The status. */
  readonly status: number;
  /** The headers (the server sets content-length to the body's length). */
  readonly headers: Readonly<Record<string, string>>;
  /** The body: bytes, text (sent as UTF-8) or none. */
  readonly body: Uint8Array | string | null;
}

/** The JSON body of an error answer. */
export function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

/**
 * The body of `req`, read before the handler runs (koi needs every body whole), at most
 * `bytesMax` bytes: the rest is discarded and the handler sees a body over its limit (413).
 * Null for a method without a body; undefined when the request ended early (the client broke
 * off or missed the request deadline, which answered 408 already).
 */
export function readRequestBody(
  req: IncomingMessage,
  bytesMax: number,
  reserve: (bytes: number) => boolean,
): Promise<Uint8Array | null | undefined | "overloaded"> {
  if (req.method === "GET" || req.method === "HEAD") return Promise.resolve(null);
  // A pipelined request that waited for the one before it may find its connection gone.
  if (req.destroyed) return Promise.resolve(undefined);
  const declared = Number(req.headers["content-length"]);
  // A declared length over the limit: the handler refuses it from the header alone.
  if (declared > bytesMax) return Promise.resolve(new Uint8Array(0));
  // Admission counted a declared length already; a chunked body takes its bytes as they come.
  const unmetered = !(declared >= 0);
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    let total = 0;
    let over = false;
    req.on("data", (chunk: Uint8Array) => {
      if (over) return;
      // One byte more than the limit at most: the handler sees the body is too large (never a
      // body cut to exactly its limit, which it would take as whole).
      const room = bytesMax + 1 - total;
      const kept = chunk.length <= room ? chunk : chunk.subarray(0, room);
      if (unmetered && !reserve(kept.length)) {
        over = true;
        chunks.length = 0;
        resolve("overloaded");
        return;
      }
      chunks.push(kept);
      total += kept.length;
      if (total > bytesMax) {
        // Too large: answered now (413), not after the rest has streamed in; the rest is never
        // read, so the connection closes after the answer (BODY_CUT).
        over = true;
        req.pause();
        resolve(concat(chunks, total));
      }
    });
    req.once("end", () => resolve(concat(chunks, total)));
    req.once("close", () => {
      if (!req.complete) resolve(undefined);
    });
    req.once("error", () => resolve(undefined));
  });
}

/** Reads `req`'s body to its end and drops it (resolves also when the request breaks off). */
export function dropBody(req: IncomingMessage): Promise<void> {
  if (req.method === "GET" || req.method === "HEAD" || req.destroyed || req.complete) {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    req.once("end", () => resolve());
    req.once("close", () => resolve());
    req.once("error", () => resolve());
    req.resume();
  });
}

/** The fetch Request of `req`, or undefined for a target or header fetch cannot carry. */
export function toRequest(
  req: IncomingMessage,
  options: { origin: string; body: Uint8Array | null; signal?: AbortSignal },
): Request | undefined {
  const target = req.url ?? "/";
  if (!target.startsWith("/")) return undefined; // absolute-form and `*`: not for this API
  const headers = new Headers();
  const raw = req.rawHeaders;
  try {
    for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
  } catch {
    return undefined;
  }
  return new Request(options.origin + target, {
    method: req.method ?? "GET",
    headers,
    body: options.body as Uint8Array<ArrayBuffer> | null,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
}

/** Answers of this content type are streamed as they come (see {@linkcode writeStream}). */
export const STREAM_CONTENT_TYPE = "text/event-stream";

/** Whether `response` is a long-lived stream (server-sent events) rather than a bounded body. */
export function isStream(response: Response): boolean {
  return response.body !== null &&
    (response.headers.get("content-type") ?? "").toLowerCase().startsWith(STREAM_CONTENT_TYPE);
}

/**
 * Writes a streamed answer chunk by chunk, taking the next chunk only once the connection
 * took the last one (node's `drain`): what waits to be sent stays in the stream's producer,
 * which bounds it. Resolves when the stream ended and the answer was ended, or the client
 * went away (the stream is then cancelled). An answer not fully sent `lingerMs` after its
 * end, or a stream that errors, closes the connection.
 */
export async function writeStream(
  res: ServerResponse,
  response: Response,
  lingerMs: number,
): Promise<void> {
  const headers: Record<string, string> = {};
  for (const [name, value] of response.headers) headers[name] = value;
  delete headers["content-length"];
  delete headers["transfer-encoding"];
  const reader = response.body!.getReader();
  if (res.destroyed) {
    await reader.cancel().catch(() => {});
    return;
  }
  res.writeHead(response.status, headers);
  res.flushHeaders(); // the client learns at once that the stream is open
  let gone = false;
  let wakeUp = () => {};
  const onClose = () => {
    gone = true;
    wakeUp();
    reader.cancel().catch(() => {});
  };
  res.once("close", onClose);
  const onDrain = () => wakeUp();
  res.on("drain", onDrain);
  // A stream that errors (aborted by its producer) must also end a wait for `drain`.
  let failed = false;
  reader.closed.catch(() => {
    failed = true;
    wakeUp();
  });
  try {
    while (!gone) {
      const next = await reader.read();
      if (next.done || gone) break;
      if (res.write(next.value) || gone) continue;
      await new Promise<void>((resolve) => {
        wakeUp = resolve;
        if (gone || failed || !res.writableNeedDrain) resolve();
      });
      wakeUp = () => {};
      if (failed) throw new Error("the stream was aborted");
    }
  } catch {
    res.destroy(); // aborted by its producer, or broken: the connection cannot go on
    return;
  } finally {
    res.off("close", onClose);
    res.off("drain", onDrain);
  }
  if (gone || res.destroyed) return;
  const linger = setTimeout(() => res.destroy(), lingerMs);
  res.once("close", () => clearTimeout(linger));
  res.once("finish", () => clearTimeout(linger));
  res.end();
}

/**
 * Writes `response`; its body is read whole (every koi answer but a stream is bounded).
 * Resolves with the bytes of body written.
 */
export async function writeResponse(
  res: ServerResponse,
  response: Response,
  head: boolean,
): Promise<number> {
  const headers: Record<string, string> = {};
  for (const [name, value] of response.headers) headers[name] = value;
  if (head || response.body === null) {
    if (response.body !== null) await response.body.cancel();
    writeAnswer(res, response.status, headers, undefined);
    return 0;
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  headers["content-length"] = String(bytes.length);
  delete headers["transfer-encoding"];
  return writeAnswer(res, response.status, headers, bytes) ? bytes.length : 0;
}

/** What {@linkcode writePieces} is told of and bound by. */
export interface PiecesWriting {
  /** The connection is closed if the answer is not all written by then (ms from now). */
  readonly deadlineMs: number;
  /** How long a wait for the client to take more may last before `onStall`, in ms. */
  readonly stallMs: number;
  /** The client has taken nothing for `stallMs`. */
  readonly onStall: () => void;
  /** It took more after a stall. */
  readonly onUnstall: () => void;
  /** The deadline passed: the connection was closed. */
  readonly onCut: () => void;
}

/**
 * Writes a pieced answer ({@linkcode piecedResponse}) write by write, each only once the
 * connection took the last (`drain`), so that no step holds the event loop longer than one
 * piece. Resolves with the body bytes written, once all are handed to the connection (or it
 * closed, or the deadline cut it).
 */
export async function writePieces(
  res: ServerResponse,
  response: Response,
  pieces: readonly Uint8Array[],
  head: boolean,
  writing: PiecesWriting,
): Promise<number> {
  const headers: Record<string, string> = {};
  for (const [name, value] of response.headers) headers[name] = value;
  delete headers["transfer-encoding"];
  await response.body?.cancel().catch(() => {}); // the pieces are written, not its stream
  if (res.destroyed) return 0;
  if (head) {
    writeAnswer(res, response.status, headers, undefined);
    return 0;
  }
  res.writeHead(response.status, headers);
  let gone = false;
  let wakeUp = () => {};
  const onGone = () => {
    gone = true;
    wakeUp();
  };
  const onDrain = () => wakeUp();
  res.once("close", onGone);
  res.on("drain", onDrain);
  const deadline = setTimeout(() => {
    writing.onCut();
    res.destroy();
    onGone();
  }, writing.deadlineMs);
  let written = 0;
  try {
    for (const piece of writesOf(pieces)) {
      if (gone || res.destroyed) return written;
      written += piece.length;
      if (res.write(piece)) continue;
      let stalled = false;
      const stallTimer = setTimeout(() => {
        stalled = true;
        writing.onStall();
      }, writing.stallMs);
      await new Promise<void>((resolve) => {
        wakeUp = resolve;
        if (gone || !res.writableNeedDrain) resolve();
      });
      wakeUp = () => {};
      clearTimeout(stallTimer);
      if (stalled) writing.onUnstall();
    }
    if (!gone && !res.destroyed) res.end();
    return written;
  } finally {
    clearTimeout(deadline);
    res.off("close", onGone);
    res.off("drain", onDrain);
  }
}

const utf8 = new TextEncoder();

/** Writes a direct handler's answer, with its content-length; returns the body bytes written. */
export function writeDirect(res: ServerResponse, answer: DirectAnswer, head: boolean): number {
  if (res.destroyed) return 0;
  const body = typeof answer.body === "string" ? utf8.encode(answer.body) : answer.body;
  // The length is always the body's own: a wrong one would break the connection's framing.
  const headers: Record<string, string> = { ...answer.headers };
  headers["content-length"] = String(body?.length ?? 0);
  res.writeHead(answer.status, headers);
  const sent = head || body === null ? undefined : body;
  res.end(sent);
  return sent?.length ?? 0;
}

/** Writes a whole answer; false when the client is gone (nothing was written). */
export function writeAnswer(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: Uint8Array | string | undefined,
): boolean {
  if (res.destroyed) return false; // the client is gone (or timed out): nobody to answer
  if (typeof body === "string") {
    headers["content-type"] = "application/json";
    headers["content-length"] = String(new TextEncoder().encode(body).length);
  }
  res.writeHead(status, headers);
  res.end(body);
  return true;
}

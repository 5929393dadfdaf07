/**
 * koi's HTTP server, for the node and the admin: `node:http` (Deno's Node-compatible server) running a fetch
 * handler (the hono app), with the limits `Deno.serve` does not offer in Deno 2.9.6: a
 * deadline for receiving a whole request (a client sending its body at 1 byte/s is cut off
 * with 408), an idle timeout for keep-alive connections, a bound on open connections (beyond
 * it a new connection gets 503 and is closed), and a shutdown that drains in-flight requests
 * until a deadline and then closes what remains. It also refuses request targets that URL
 * normalization would rewrite (`..` segments), which only the raw target shows, when the
 * caller gives a `refuseTarget` check.
 *
 * With `tls` it serves HTTPS (`node:https`) with the same limits: the bound counts raw
 * connections from their accept (TLS handshakes included, which get the headers deadline);
 * the 503 of a refused connection goes over TLS once its handshake is done (a plain-text
 * answer on the raw socket would be garbage to a TLS client), and the accept check still
 * connects over plain TCP, which is all it needs to see the accept loop alive.
 *
 * @module
 */

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { connect as netConnect, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";

/** Time a client has to send a whole request, headers and body (408 after it). */
export const HTTP_REQUEST_TIMEOUT_MS = 10_000;
/** Time a client has to send the request headers (408 after it). */
export const HTTP_HEADERS_TIMEOUT_MS = 10_000;
/** An idle keep-alive connection is closed after this long. */
export const HTTP_KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Open HTTP connections per node, at most; one more is answered 503 and closed. */
export const HTTP_CONNECTIONS_MAX = 1_024;
/**
 * How often the server checks that it still accepts connections, in milliseconds: when the
 * process runs out of file descriptors, the accept loop of Deno's `node:http` stops for good
 * without an error event, so the server connects to itself and, if that connection is not
 * accepted within {@linkcode HTTP_ACCEPT_PROBE_TIMEOUT_MS}, listens again.
 */
export const HTTP_ACCEPT_CHECK_MS = 2_000;
/** How long the self-connection of an accept check may take to be accepted. */
export const HTTP_ACCEPT_PROBE_TIMEOUT_MS = 1_000;
/** A refused connection (its 503 sent) is destroyed after this long if the peer keeps it. */
export const HTTP_REFUSED_LINGER_MS = 2_000;
/** How often the request and header deadlines are checked (their resolution). */
export const HTTP_TIMEOUT_CHECK_MS = 500;
/**
 * Bytes of a request body the server reads before the handler runs; one more byte than the
 * handler's own limit is enough for it to answer 413, so nothing beyond is ever buffered.
 */
export const HTTP_BODY_BYTES_MAX: number = (1 << 20) + 1;

/** Limits of an {@linkcode HttpServer}, each defaulting to the constant of the same name. */
export interface HttpServerLimits {
  /** See {@linkcode HTTP_REQUEST_TIMEOUT_MS}. */
  readonly requestTimeoutMs: number;
  /** See {@linkcode HTTP_HEADERS_TIMEOUT_MS}; at most `requestTimeoutMs`. */
  readonly headersTimeoutMs: number;
  /** See {@linkcode HTTP_KEEP_ALIVE_TIMEOUT_MS}. */
  readonly keepAliveTimeoutMs: number;
  /** See {@linkcode HTTP_CONNECTIONS_MAX}. */
  readonly connectionsMax: number;
  /** See {@linkcode HTTP_TIMEOUT_CHECK_MS}. */
  readonly timeoutCheckMs: number;
  /** See {@linkcode HTTP_BODY_BYTES_MAX}. */
  readonly bodyBytesMax: number;
  /** See {@linkcode HTTP_ACCEPT_CHECK_MS}; 0 turns the check off. */
  readonly acceptCheckMs: number;
}

/** The default limits. */
export const HTTP_SERVER_LIMITS: HttpServerLimits = {
  requestTimeoutMs: HTTP_REQUEST_TIMEOUT_MS,
  headersTimeoutMs: HTTP_HEADERS_TIMEOUT_MS,
  keepAliveTimeoutMs: HTTP_KEEP_ALIVE_TIMEOUT_MS,
  connectionsMax: HTTP_CONNECTIONS_MAX,
  timeoutCheckMs: HTTP_TIMEOUT_CHECK_MS,
  bodyBytesMax: HTTP_BODY_BYTES_MAX,
  acceptCheckMs: HTTP_ACCEPT_CHECK_MS,
};

/** Options of {@linkcode HttpServer.listen}. */
export interface HttpServerOptions {
  /** The address to listen on. */
  readonly hostname: string;
  /** The port (0: any free one). */
  readonly port: number;
  /** Answers a request (the hono app's `fetch`). */
  readonly fetch: (request: Request) => Response | Promise<Response>;
  /** Limits; defaults {@linkcode HTTP_SERVER_LIMITS}. */
  readonly limits?: Partial<HttpServerLimits>;
  /**
   * Checks the raw request target (before URL normalization): a reason to refuse it with
   * `400 bad_request`, or undefined to accept it.
   */
  readonly refuseTarget?: (target: string) => string | undefined;
  /** Where failures outside the handler are reported (a broken answer, a bug). */
  readonly onError?: (message: string, error: unknown) => void;
  /** Serve HTTPS with this certificate chain and key (PEM). Default: plain HTTP. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /**
   * Answers the hottest requests without the fetch Request, the app and the Response that
   * `fetch` costs (about a third of a small request's CPU here): called with every request
   * after its target passed `refuseTarget` and its body was read; undefined (at once or as
   * the promise's value) leaves the request to `fetch`.
   */
  readonly direct?: (
    request: DirectRequest,
  ) => DirectAnswer | undefined | Promise<DirectAnswer | undefined>;
}

/** A request as read off the wire, for {@linkcode HttpServerOptions.direct}. */
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

/** An answer of {@linkcode HttpServerOptions.direct}. */
export interface DirectAnswer {
  /** The status. */
  readonly status: number;
  /** The headers (the server sets content-length to the body's length). */
  readonly headers: Readonly<Record<string, string>>;
  /** The body: bytes, text (sent as UTF-8) or none. */
  readonly body: Uint8Array | string | null;
}

const HTTP_STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  408: "Request Timeout",
  431: "Request Header Fields Too Large",
  503: "Service Unavailable",
};

/** A raw HTTP/1.1 error answer that closes the connection (for sockets without a request). */
function rawErrorAnswer(status: number, code: string, message: string, extra = ""): string {
  const body = JSON.stringify({ error: { code, message } });
  return `HTTP/1.1 ${status} ${HTTP_STATUS_TEXT[status]}\r\nconnection: close\r\n` +
    `content-type: application/json\r\ncontent-length: ${
      new TextEncoder().encode(body).length
    }\r\n${extra}\r\n${body}`;
}

/** A running HTTP server. */
export class HttpServer {
  readonly #server: ReturnType<typeof createServer>;
  readonly #options: HttpServerOptions;
  readonly #limits: HttpServerLimits;
  /** Open connections (raw TCP sockets, also under TLS), for the bound and the final close. */
  readonly #sockets = new Set<Socket>();
  /**
   * With TLS: the TLS sockets of admitted connections (`req.socket` is the TLS socket, not
   * the raw one of the "connection" event), and the raw sockets still in their handshake by
   * remote address, each with whether it was refused (its 503 waits for the handshake).
   */
  readonly #secure = new Set<Socket>();
  readonly #handshaking = new Map<string, { raw: Socket; refused: boolean }>();
  /** Per connection, the end of its last request: pipelined requests run one after another. */
  readonly #lastOnSocket = new WeakMap<Socket, Promise<void>>();
  #origin = "http://127.0.0.1";
  #port = 0;
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  #accepted = 0;
  #acceptTimer: ReturnType<typeof setTimeout> | undefined;
  #relistens = 0;

  private constructor(options: HttpServerOptions) {
    this.#options = options;
    this.#limits = checkLimits({ ...HTTP_SERVER_LIMITS, ...options.limits });
    const limits = this.#limits;
    const settings = {
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: limits.timeoutCheckMs,
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => this.#inOrder(req, res);
    const tls = options.tls;
    this.#server = tls === undefined ? createServer(settings, handler) : createHttpsServer({
      ...settings,
      cert: tls.cert,
      key: tls.key,
      // The handshake comes before the headers: it gets their deadline.
      handshakeTimeout: limits.headersTimeoutMs,
    }, handler) as unknown as ReturnType<typeof createServer>;
    this.#server.on("connection", (socket: Socket) => this.#onConnection(socket));
    if (tls !== undefined) {
      this.#server.on("secureConnection", (socket: TLSSocket) => this.#onSecure(socket));
      // A failed handshake (plain HTTP on this port, an untrusted certificate at the client):
      // nothing can be answered that the client could read.
      this.#server.on("tlsClientError", (_error: Error, socket: Socket) => socket.destroy());
    }
    this.#server.on("clientError", (error: Error, socket: Socket) => onClientError(error, socket));
  }

  /** Starts listening; rejects with the listen error (e.g. EADDRINUSE) as `node:net` gives it. */
  static async listen(options: HttpServerOptions): Promise<HttpServer> {
    const server = new HttpServer(options);
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      server.#server.once("error", onError);
      server.#server.listen(options.port, options.hostname, () => {
        server.#server.off("error", onError);
        resolve();
      });
    });
    const address = server.#server.address();
    server.#port = typeof address === "object" && address !== null ? address.port : options.port;
    const host = options.hostname.includes(":") ? `[${options.hostname}]` : options.hostname;
    server.#origin = `${options.tls === undefined ? "http" : "https"}://${host}:${server.#port}`;
    server.#scheduleAcceptCheck();
    return server;
  }

  /** How often the server had to listen again because it had stopped accepting. */
  get relistens(): number {
    return this.#relistens;
  }

  #scheduleAcceptCheck(): void {
    if (this.#limits.acceptCheckMs <= 0 || this.#closing !== undefined) return;
    this.#acceptTimer = setTimeout(() => this.#checkAccepting(), this.#limits.acceptCheckMs);
  }

  /** Connects to itself; a connection not accepted in time means the accept loop died. */
  #checkAccepting(): void {
    const before = this.#accepted;
    const host = this.#options.hostname === "0.0.0.0"
      ? "127.0.0.1"
      : this.#options.hostname === "::"
      ? "::1"
      : this.#options.hostname;
    const probe = netConnect({ host, port: this.#port });
    probe.on("error", () => {}); // out of descriptors here too: the timeout decides
    this.#acceptTimer = setTimeout(() => {
      probe.destroy();
      if (this.#closing !== undefined) return;
      if (this.#accepted === before) {
        this.#relistens++;
        this.#options.onError?.(
          "The HTTP server stopped accepting connections (out of file descriptors?): " +
            "listening again",
          new Error(`${this.#sockets.size} connections open`),
        );
        this.#server.close();
        this.#server.listen(this.#port, this.#options.hostname, () => this.#scheduleAcceptCheck());
        return;
      }
      this.#scheduleAcceptCheck();
    }, HTTP_ACCEPT_PROBE_TIMEOUT_MS);
  }

  /** The bound port. */
  get port(): number {
    return this.#port;
  }

  /** Open connections right now. */
  get connections(): number {
    return this.#sockets.size;
  }

  /**
   * Stops accepting, closes idle connections, lets in-flight requests finish for up to
   * `drainMs`, then closes every connection that remains. Idempotent.
   */
  close(drainMs: number): Promise<void> {
    this.#closing ??= this.#close(drainMs);
    return this.#closing;
  }

  async #close(drainMs: number): Promise<void> {
    clearTimeout(this.#acceptTimer);
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    if (this.#inFlight > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#idle = resolve;
        timer = setTimeout(resolve, drainMs);
      });
      clearTimeout(timer);
    }
    this.#server.closeAllConnections();
    for (const socket of this.#sockets) socket.destroy(); // also the refused ones
    for (const socket of this.#secure) socket.destroy();
    for (const { raw } of this.#handshaking.values()) raw.destroy();
    await closed;
  }

  #onConnection(socket: Socket): void {
    this.#accepted++;
    const refused = this.#sockets.size >= this.#limits.connectionsMax ||
      this.#closing !== undefined;
    if (this.#options.tls !== undefined) {
      this.#onRawTls(socket, refused);
      return;
    }
    if (refused) {
      // Answered at once, before any request: a client learns why instead of seeing a reset.
      socket.end(this.#refusal());
      this.#linger(socket);
      return;
    }
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
  }

  /** The 503 of a connection over the bound (or during shutdown), with the reason. */
  #refusal(): string {
    const message = this.#closing !== undefined
      ? "The node is shutting down"
      : `Too many open connections: the limit is ${this.#limits.connectionsMax}`;
    return rawErrorAnswer(503, "overloaded", message, "retry-after: 1\r\n");
  }

  /**
   * A refused socket's descriptor must not outlive its answer for long: under a flood,
   * lingering refused sockets would use up the process's descriptors.
   */
  #linger(socket: Socket): void {
    socket.on("error", () => {});
    const linger = setTimeout(() => socket.destroy(), HTTP_REFUSED_LINGER_MS);
    socket.once("close", () => clearTimeout(linger));
  }

  /**
   * A raw connection of the HTTPS server, before its handshake. A refused one is kept (but
   * not counted, and destroyed after HTTP_REFUSED_LINGER_MS) so that its 503 can go over TLS.
   */
  #onRawTls(socket: Socket, refused: boolean): void {
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    this.#handshaking.set(key, { raw: socket, refused });
    socket.once("close", () => {
      if (this.#handshaking.get(key)?.raw === socket) this.#handshaking.delete(key);
    });
    if (refused) {
      this.#linger(socket);
      return;
    }
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
  }

  /** A connection of the HTTPS server whose handshake is done. */
  #onSecure(socket: TLSSocket): void {
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    const raw = this.#handshaking.get(key);
    this.#handshaking.delete(key);
    if (raw === undefined || raw.refused) {
      socket.on("error", () => {});
      socket.end(this.#refusal());
      this.#linger(socket);
      return;
    }
    this.#secure.add(socket);
    socket.once("close", () => this.#secure.delete(socket));
  }

  /**
   * Runs a request once the previous one on its connection has been answered: node:http hands
   * out pipelined requests at once, and a bodyless DELETE would otherwise overtake the PUT before
   * it that still reads its body, applying writes in another order than the client sent them.
   */
  #inOrder(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket as Socket;
    const before = this.#lastOnSocket.get(socket);
    const run = before === undefined
      ? this.#handle(req, res)
      : before.then(() => this.#handle(req, res));
    this.#lastOnSocket.set(socket, run);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const admitted = this.#options.tls === undefined ? this.#sockets : this.#secure;
    if (!admitted.has(req.socket as Socket)) {
      res.destroy(); // a refused connection: its 503 is already on the way
      return;
    }
    this.#inFlight++;
    try {
      // Checked on the raw target: the Request's URL is already normalized.
      const refused = this.#options.refuseTarget?.(req.url ?? "/");
      if (refused !== undefined) {
        writeAnswer(res, 400, {}, errorBody("bad_request", refused));
        return;
      }
      const body = await readRequestBody(req, this.#limits.bodyBytesMax);
      if (body === undefined) return; // the client broke off, or missed the deadline (408)
      if (this.#options.direct !== undefined) {
        const direct = await this.#options.direct({
          method: req.method ?? "GET",
          target: req.url ?? "/",
          rawHeaders: req.rawHeaders,
          body,
        });
        if (direct !== undefined) {
          writeDirect(res, direct, req.method === "HEAD");
          return;
        }
      }
      const request = toRequest(req, { origin: this.#origin, body });
      if (request === undefined) {
        writeAnswer(res, 400, {}, errorBody("bad_request", "Invalid request target or header"));
        return;
      }
      const response = await this.#options.fetch(request);
      await writeResponse(res, response, req.method === "HEAD");
    } catch (error) {
      // The app maps every error itself (onError); this is a broken answer or a bug.
      this.#options.onError?.("HTTP answer failed", error);
      if (!res.headersSent && !res.destroyed) {
        writeAnswer(res, 500, {}, errorBody("internal", "Internal error"));
      } else {
        res.destroy();
      }
    } finally {
      this.#inFlight--;
      if (this.#inFlight === 0) this.#idle?.();
    }
  }
}

function checkLimits(limits: HttpServerLimits): HttpServerLimits {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`Invalid HTTP server limit ${name}: must be a positive integer`);
    }
  }
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new RangeError("Invalid HTTP server limits: headersTimeoutMs > requestTimeoutMs");
  }
  return limits;
}

/** Answers what the parser or a deadline refused (408, 431, 400); never throws. */
function onClientError(error: Error, socket: Socket): void {
  const code = (error as { code?: string }).code;
  const message = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (code === "ECONNRESET" || !socket.writable || message?.headersSent) {
    socket.destroy();
    return;
  }
  const answer = code === "ERR_HTTP_REQUEST_TIMEOUT"
    ? rawErrorAnswer(408, "request_timeout", "The request was not received in time")
    : code === "HPE_HEADER_OVERFLOW"
    ? rawErrorAnswer(431, "too_large", "Request headers too large")
    : rawErrorAnswer(400, "bad_request", `Malformed HTTP request: ${code ?? error.message}`);
  socket.on("error", () => {});
  socket.end(answer);
}

function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

/**
 * The body of `req`, read before the handler runs (koi needs every body whole), at most
 * `bytesMax` bytes: the rest is discarded and the handler sees a body over its limit (413).
 * Null for a method without a body; undefined when the request ended early (the client broke
 * off or missed the request deadline, which answered 408 already).
 */
function readRequestBody(
  req: IncomingMessage,
  bytesMax: number,
): Promise<Uint8Array | null | undefined> {
  if (req.method === "GET" || req.method === "HEAD") return Promise.resolve(null);
  // A pipelined request that waited for the one before it may find its connection gone.
  if (req.destroyed) return Promise.resolve(undefined);
  const declared = Number(req.headers["content-length"]);
  // A declared length over the limit: the handler refuses it from the header alone.
  if (declared > bytesMax) return Promise.resolve(new Uint8Array(0));
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    let total = 0;
    req.on("data", (chunk: Uint8Array) => {
      if (total >= bytesMax) return; // discarded: the handler answers 413 from what it has
      const room = bytesMax - total;
      const kept = chunk.length <= room ? chunk : chunk.subarray(0, room);
      chunks.push(kept);
      total += kept.length;
    });
    req.once("end", () => resolve(concat(chunks, total)));
    req.once("close", () => {
      if (!req.complete) resolve(undefined);
    });
    req.once("error", () => resolve(undefined));
  });
}

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** The fetch Request of `req`, or undefined for a target or header fetch cannot carry. */
function toRequest(
  req: IncomingMessage,
  options: { origin: string; body: Uint8Array | null },
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
  });
}

/** Writes `response`; its body is read whole (every koi answer is bounded). */
async function writeResponse(
  res: ServerResponse,
  response: Response,
  head: boolean,
): Promise<void> {
  const headers: Record<string, string> = {};
  for (const [name, value] of response.headers) headers[name] = value;
  if (head || response.body === null) {
    if (response.body !== null) await response.body.cancel();
    writeAnswer(res, response.status, headers, undefined);
    return;
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  headers["content-length"] = String(bytes.length);
  delete headers["transfer-encoding"];
  writeAnswer(res, response.status, headers, bytes);
}

const utf8 = new TextEncoder();

/** Writes a direct handler's answer, with its content-length. */
function writeDirect(res: ServerResponse, answer: DirectAnswer, head: boolean): void {
  if (res.destroyed) return;
  const body = typeof answer.body === "string" ? utf8.encode(answer.body) : answer.body;
  // The length is always the body's own: a wrong one would break the connection's framing.
  const headers: Record<string, string> = { ...answer.headers };
  headers["content-length"] = String(body?.length ?? 0);
  res.writeHead(answer.status, headers);
  res.end(head || body === null ? undefined : body);
}

function writeAnswer(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: Uint8Array | string | undefined,
): void {
  if (res.destroyed) return; // the client is gone (or timed out): nobody to answer
  if (typeof body === "string") {
    headers["content-type"] = "application/json";
    headers["content-length"] = String(new TextEncoder().encode(body).length);
  }
  res.writeHead(status, headers);
  res.end(body);
}

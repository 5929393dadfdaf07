/**
 * koi's HTTP server, for the node and the admin: `node:http` (Deno's Node-compatible server) running a fetch
 * handler (the hono app), with the limits `Deno.serve` does not offer in Deno 2.9.6: a
 * deadline for receiving a whole request (a client sending its body at 1 byte/s is cut off
 * with 408), an idle timeout for keep-alive connections, a bound on open connections in all
 * and one per remote address (beyond either a new connection gets 503 and is closed), and a
 * shutdown that drains in-flight requests until a deadline and then closes what remains. It
 * also refuses request targets that URL normalization would rewrite (`..` segments), which
 * only the raw target shows, when the caller gives a `refuseTarget` check, and answers the
 * methods a fetch Request cannot carry (`TRACE`, `CONNECT`; the parser refuses `TRACK` with
 * 400) itself with `501`, without the app and without logging.
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
import { type Admitted, RequestAdmission } from "./_admission.ts";
import { remoteAddressKey } from "./_address.ts";
import {
  AnswerBytes,
  HTTP_ANSWER_COUNTED_BYTES_MIN,
  HTTP_ANSWER_STALLED_MS,
} from "./_answer_bytes.ts";
import {
  type DirectAnswer,
  type DirectRequest,
  dropBody,
  errorBody,
  isStream,
  type PiecesWriting,
  readRequestBody,
  toRequest,
  writeAnswer,
  writeDirect,
  writePieces,
  writeResponse,
  writeStream,
} from "./_wire.ts";
import { piecesOf } from "./_pieced.ts";
import {
  checkLimits,
  HTTP_ACCEPT_PROBE_TIMEOUT_MS,
  HTTP_REFUSED_LINGER_MS,
  HTTP_SERVER_LIMITS,
  HTTP_STREAM_END_LINGER_MS,
  type HttpServerLimits,
} from "./_limits.ts";
import { isUnservedMethod, onClientError, rawErrorAnswer, unservedBody } from "./_refusals.ts";

export {
  HTTP_BODY_BYTES_WAITING_MAX,
  HTTP_PIPELINE_DEPTH_MAX,
  HTTP_REQUESTS_WAITING_MAX,
} from "./_admission.ts";
export {
  AnswerBytes,
  HTTP_ANSWER_BYTES_HELD_MAX,
  HTTP_ANSWER_COUNTED_BYTES_MIN,
  HTTP_ANSWER_STALLED_MS,
} from "./_answer_bytes.ts";
export type { DirectAnswer, DirectRequest } from "./_wire.ts";
export { STREAM_CONTENT_TYPE } from "./_wire.ts";
export { PIECED_WRITE_BYTES, piecedResponse } from "./_pieced.ts";
export {
  HTTP_ACCEPT_CHECK_MS,
  HTTP_ACCEPT_PROBE_TIMEOUT_MS,
  HTTP_ANSWER_SEND_BYTES_PER_S,
  HTTP_ANSWER_SEND_MS,
  HTTP_BODY_BYTES_MAX,
  HTTP_CONNECTIONS_MAX,
  HTTP_CONNECTIONS_PER_ADDRESS_MAX,
  HTTP_HEADERS_TIMEOUT_MS,
  HTTP_KEEP_ALIVE_TIMEOUT_MS,
  HTTP_QUEUE_WAIT_MAX_MS,
  HTTP_REFUSED_LINGER_MS,
  HTTP_REQUEST_TIMEOUT_MS,
  HTTP_SERVER_LIMITS,
  HTTP_STREAM_END_LINGER_MS,
  HTTP_TIMEOUT_CHECK_MS,
} from "./_limits.ts";
export type { HttpServerLimits } from "./_limits.ts";
export { isUnservedMethod } from "./_refusals.ts";

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
   * The count of answer bytes not yet taken by their clients, shared with the app's handlers
   * that build large answers (they mark them: {@linkcode AnswerBytes.mark}). Default: one of
   * {@linkcode HTTP_ANSWER_BYTES_HELD_MAX} bytes for this server alone.
   */
  readonly answers?: AnswerBytes;
  /**
   * Checks the raw request target (before URL normalization): a reason to refuse it with
   * `400 bad_request`, or undefined to accept it.
   */
  readonly refuseTarget?: (target: string) => string | undefined;
  /**
   * The most body bytes the request to the raw target `target` takes (what its route reads;
   * at most `limits.bodyBytesMax`, which applies without it). A declared length over it is
   * answered `413 too_large` before any byte of the body is read (and an
   * `expect: 100-continue` gets that answer instead of `100 Continue`); a body without one
   * is refused as soon as it runs past.
   */
  readonly bodyBytesMaxOf?: (method: string, target: string) => number;
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

/** A running HTTP server. */
export class HttpServer {
  readonly #server: ReturnType<typeof createServer>;
  readonly #options: HttpServerOptions;
  readonly #limits: HttpServerLimits;
  /** Open connections (raw TCP sockets, also under TLS), for the bound and the final close. */
  readonly #sockets = new Set<Socket>();
  /** Open connections per remote address key ({@linkcode remoteAddressKey}), for its bound. */
  readonly #perAddress = new Map<string, number>();
  #refusedOverBound = 0;
  #refusedPerAddress = 0;
  /**
   * With TLS: the TLS sockets of admitted connections (`req.socket` is the TLS socket, not
   * the raw one of the "connection" event), and the raw sockets still in their handshake by
   * remote address and port, each with its 503 if it was refused (sent after the handshake).
   */
  readonly #secure = new Set<Socket>();
  readonly #handshaking = new Map<string, { raw: Socket; refusal: string | undefined }>();
  /** Per connection, the end of its last request: pipelined requests run one after another. */
  readonly #lastOnSocket = new WeakMap<Socket, Promise<void>>();
  readonly #admission: RequestAdmission<Socket>;
  #queueRefused = 0;
  #origin = "http://127.0.0.1";
  #port = 0;
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  #accepted = 0;
  #acceptTimer: ReturnType<typeof setTimeout> | undefined;
  #relistens = 0;
  readonly #answers: AnswerBytes;
  /** Bytes of answers sent and not yet taken, per remote address key. */
  readonly #heldBy = new Map<string, number>();
  /**
   * What gives back each counted answer of a connection, run when it closes: an answer queued
   * behind another on a pipelined connection emits neither finish nor close when the
   * connection goes.
   */
  readonly #heldOn = new WeakMap<Socket, Set<() => void>>();
  /**
   * The abort controllers of the requests a connection has in the app, all aborted when it
   * closes: a handler learns that its client is gone (`request.signal`) and builds no answer
   * nobody will read. One close listener per connection, not one per request.
   */
  readonly #abortOn = new WeakMap<Socket, Set<AbortController>>();
  #answersFullRefused = 0;
  #answersCut = 0;
  #requestsOfGoneClients = 0;
  #answersPieced = 0;

  private constructor(options: HttpServerOptions) {
    this.#options = options;
    this.#limits = checkLimits({ ...HTTP_SERVER_LIMITS, ...options.limits });
    const limits = this.#limits;
    this.#admission = new RequestAdmission(limits);
    this.#answers = options.answers ?? new AnswerBytes();
    const settings = {
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: limits.timeoutCheckMs,
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => this.#inOrder(req, res);
    const tls = options.tls;
    // Without a listener node:http answers every `expect: 100-continue` with 100 Continue:
    // one with a body over the limit is answered 413 instead, by the handler, and the client
    // need not send it.
    const checkContinue = (req: IncomingMessage, res: ServerResponse) => {
      if (!(Number(req.headers["content-length"]) > this.#bodyBytesMax(req))) {
        res.writeContinue();
      }
      handler(req, res);
    };
    this.#server = tls === undefined ? createServer(settings, handler) : createHttpsServer({
      ...settings,
      cert: tls.cert,
      key: tls.key,
      // The handshake comes before the headers: it gets their deadline.
      handshakeTimeout: limits.headersTimeoutMs,
    }, handler) as unknown as ReturnType<typeof createServer>;
    this.#server.on("checkContinue", checkContinue);
    this.#server.on("connection", (socket: Socket) => this.#onConnection(socket));
    if (tls !== undefined) {
      this.#server.on("secureConnection", (socket: TLSSocket) => this.#onSecure(socket));
      // A failed handshake (plain HTTP on this port, an untrusted certificate at the client):
      // nothing can be answered that the client could read.
      this.#server.on("tlsClientError", (_error: Error, socket: Socket) => socket.destroy());
    }
    this.#server.on("clientError", (error: Error, socket: Socket) => onClientError(error, socket));
    // node:http hands a CONNECT over to this event (without a listener it closes the socket
    // unanswered); what follows the headers would be a tunnel, so the connection ends here.
    this.#server.on("connect", (req: IncomingMessage, socket: Socket) => {
      socket.on("error", () => {});
      socket.end(
        rawErrorAnswer(501, "not_implemented", `The method ${req.method} is not served here`),
      );
      this.#linger(socket);
    });
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
    const refusal = this.#admit(socket);
    if (this.#options.tls !== undefined) {
      this.#onRawTls(socket, refusal);
      return;
    }
    if (refusal !== undefined) {
      // Answered at once, before any request: a client learns why instead of seeing a reset.
      socket.end(refusal);
      this.#linger(socket);
    }
  }

  /**
   * Counts `socket` as open (in all and for its remote address) and undefined, or the 503 of a
   * connection beyond a bound (or during shutdown), counted in the stats, for a refused one.
   */
  #admit(socket: Socket): string | undefined {
    if (this.#closing !== undefined) return this.#refusal("The node is shutting down");
    if (this.#sockets.size >= this.#limits.connectionsMax) {
      this.#refusedOverBound++;
      return this.#refusal(
        `Too many open connections: the limit is ${this.#limits.connectionsMax}`,
      );
    }
    const address = remoteAddressKey(socket.remoteAddress);
    const open = this.#perAddress.get(address) ?? 0;
    if (open >= this.#limits.connectionsPerAddressMax) {
      this.#refusedPerAddress++;
      return this.#refusal(
        `Too many open connections from ${address}: the limit is ` +
          `${this.#limits.connectionsPerAddressMax} per address`,
      );
    }
    this.#sockets.add(socket);
    this.#perAddress.set(address, open + 1);
    socket.once("close", () => {
      this.#sockets.delete(socket);
      const left = (this.#perAddress.get(address) ?? 1) - 1;
      if (left > 0) this.#perAddress.set(address, left);
      else this.#perAddress.delete(address);
    });
    return undefined;
  }

  /** The 503 of a refused connection, with the reason. */
  #refusal(message: string): string {
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
   * A raw connection of the HTTPS server, before its handshake (counted by
   * {@linkcode #admit} already). A refused one is kept (but not counted, and destroyed after
   * HTTP_REFUSED_LINGER_MS) so that its 503 can go over TLS.
   */
  #onRawTls(socket: Socket, refusal: string | undefined): void {
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    this.#handshaking.set(key, { raw: socket, refusal });
    socket.once("close", () => {
      if (this.#handshaking.get(key)?.raw === socket) this.#handshaking.delete(key);
    });
    if (refusal !== undefined) this.#linger(socket);
  }

  /** A connection of the HTTPS server whose handshake is done. */
  #onSecure(socket: TLSSocket): void {
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    const raw = this.#handshaking.get(key);
    this.#handshaking.delete(key);
    if (raw === undefined || raw.refusal !== undefined) {
      socket.on("error", () => {});
      // Without its raw socket (gone meanwhile) the connection is not counted: refused too.
      socket.end(raw?.refusal ?? this.#refusal("The connection was not admitted"));
      this.#linger(socket);
      return;
    }
    this.#secure.add(socket);
    socket.once("close", () => this.#secure.delete(socket));
  }

  /** The most body bytes `req` may carry (`bodyBytesMaxOf`, within `limits.bodyBytesMax`). */
  #bodyBytesMax(req: IncomingMessage): number {
    const of = this.#options.bodyBytesMaxOf;
    const all = this.#limits.bodyBytesMax;
    return of === undefined ? all : Math.min(all, of(req.method ?? "GET", req.url ?? "/"));
  }

  /**
   * Runs a request once the previous one on its connection has been answered: node:http hands
   * out pipelined requests at once, and a bodyless DELETE would otherwise overtake the PUT before
   * it that still reads its body, applying writes in another order than the client sent them.
   */
  #inOrder(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket as Socket;
    const declared = Number(req.headers["content-length"]);
    const bytesMax = this.#bodyBytesMax(req);
    // Over its limit the handler answers 413 from the header alone: it never holds more.
    const bytes = declared > 0 && declared <= bytesMax ? declared : 0;
    const admission = this.#admission.arrive(socket, bytes);
    if (admission === "close") {
      // Pipelined beyond what may wait: the connection goes, and with it what it queued.
      socket.destroy();
      return;
    }
    const before = this.#lastOnSocket.get(socket);
    const arrived = performance.now();
    const ticket: { admitted: Admitted } = { admitted: "admit" };
    const turn = admission === "shed"
      ? () => this.#shed(req, res)
      : () => this.#handle(req, res, arrived, bytesMax, () => this.#streaming(ticket, bytes));
    const run = (before === undefined ? turn() : before.then(turn))
      .finally(() =>
        this.#admission.leave(socket, bytes, admission === "shed" ? "shed" : ticket.admitted)
      );
    this.#lastOnSocket.set(socket, run);
  }

  /**
   * Counts an answer of `bytes` just written to `res` as held until its client took it all or
   * the connection closed; one not taken within its time ({@linkcode HTTP_ANSWER_SEND_MS})
   * closes the connection.
   */
  #sending(res: ServerResponse, socket: Socket, address: string, bytes: number): void {
    if (bytes < HTTP_ANSWER_COUNTED_BYTES_MIN || res.writableFinished || res.destroyed) return;
    if (socket.destroyed) return; // gone already: nothing will hold these bytes
    this.#answers.add(bytes);
    this.#heldBy.set(address, (this.#heldBy.get(address) ?? 0) + bytes);
    const limits = this.#limits;
    const ms = limits.answerSendMs + Math.ceil((bytes * 1000) / limits.answerSendBytesPerS);
    const timer = setTimeout(() => {
      this.#answersCut++;
      res.destroy();
      socket.destroy();
      taken();
    }, ms);
    let stalled = false;
    const stallTimer = setTimeout(() => {
      stalled = true;
      this.#answers.stall(bytes);
    }, HTTP_ANSWER_STALLED_MS);
    let done = false;
    let onSocket = this.#heldOn.get(socket);
    if (onSocket === undefined) {
      const held = new Set<() => void>();
      onSocket = held;
      this.#heldOn.set(socket, held);
      socket.once("close", () => {
        for (const give of [...held]) give();
      });
    }
    const taken = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(stallTimer);
      onSocket.delete(taken);
      if (stalled) this.#answers.unstall(bytes);
      this.#answers.release(bytes);
      const left = this.#heldBy.get(address)! - bytes;
      if (left > 0) this.#heldBy.set(address, left);
      else this.#heldBy.delete(address);
    };
    onSocket.add(taken);
    res.once("finish", taken);
    res.once("close", taken);
  }

  /**
   * How a pieced answer of `marked` bytes (counted as held while it is written) is written to
   * `res`: within the time any answer of its size has ({@linkcode HTTP_ANSWER_SEND_MS}), and
   * counted as stalled while its client takes nothing for {@linkcode HTTP_ANSWER_STALLED_MS}.
   */
  #piecesWriting(res: ServerResponse, response: Response, marked: number): PiecesWriting {
    const limits = this.#limits;
    const length = Number(response.headers.get("content-length")); // a pieced answer's total
    return {
      deadlineMs: limits.answerSendMs + Math.ceil((length * 1000) / limits.answerSendBytesPerS),
      stallMs: HTTP_ANSWER_STALLED_MS,
      onStall: () => this.#answers.stall(marked),
      onUnstall: () => this.#answers.unstall(marked),
      onCut: () => {
        this.#answersCut++;
        res.socket?.destroy();
      },
    };
  }

  /**
   * A request's answer became a long-lived stream: it no longer counts as waiting (admission)
   * nor as in flight (a shutdown does not wait for it: the connection is closed at the end of
   * the drain).
   */
  #streaming(ticket: { admitted: Admitted }, bytes: number): void {
    this.#admission.streaming(bytes);
    ticket.admitted = "streaming";
    this.#inFlight--;
    if (this.#inFlight === 0) this.#idle?.();
  }

  /**
   * Answers a shed request `503 overloaded` in its turn, at once, and drops its body as it
   * comes (an answer may precede the end of its request): the connection stays, and what is
   * pipelined behind it gets its own answers. (Whether anything is behind it cannot be told:
   * `node:http` parses a connection's requests only as it gets to them.)
   */
  #shed(req: IncomingMessage, res: ServerResponse): Promise<void> {
    void dropBody(req);
    writeAnswer(
      res,
      503,
      { "retry-after": "1" },
      errorBody("overloaded", "The node holds too many requests or request bodies: retry later"),
    );
    return Promise.resolve();
  }

  /** 503 overloaded with retry-after; the connection ends with it (its body stays unread). */
  #refuseOverloaded(res: ServerResponse, why: string): void {
    res.once("finish", () => res.socket?.end());
    writeAnswer(
      res,
      503,
      { "retry-after": "1", connection: "close" },
      errorBody("overloaded", `${why}: retry later`),
    );
  }

  /**
   * Requests refused (503) by the admission limits or because they waited too long on their
   * connection, and connections closed by the admission limits.
   */
  get admissionStats(): { shed: number; closed: number; waitedTooLong: number } {
    return { ...this.#admission.stats(), waitedTooLong: this.#queueRefused };
  }

  /** Counters and gauges for /metrics. */
  stats(): Readonly<Record<string, number>> {
    const a = this.#admission.stats();
    return {
      connections: this.#sockets.size,
      requestsWaiting: this.#admission.waiting,
      bodyBytesWaiting: this.#admission.bodyBytes,
      requestsShed: a.shed,
      requestsWaitedTooLong: this.#queueRefused,
      connectionsClosedPipelining: a.closed,
      streams: this.#admission.streams,
      connectionsRefused: this.#refusedOverBound,
      connectionsRefusedPerAddress: this.#refusedPerAddress,
      relistens: this.#relistens,
      answerBytesHeld: this.#answers.held,
      requestsRefusedAnswersHeld: this.#answersFullRefused,
      answersRefusedNoRoom: this.#answers.refused,
      answersCutUntaken: this.#answersCut,
      requestsOfGoneClients: this.#requestsOfGoneClients,
      answersPieced: this.#answersPieced,
    };
  }

  /** A controller aborted when `socket` closes (see {@linkcode #abortOn}). */
  #aborter(socket: Socket): AbortController {
    const aborter = new AbortController();
    let onSocket = this.#abortOn.get(socket);
    if (onSocket === undefined) {
      const open = new Set<AbortController>();
      onSocket = open;
      this.#abortOn.set(socket, open);
      socket.once("close", () => {
        for (const a of open) a.abort(new Error("The client closed the connection"));
        open.clear();
      });
    }
    onSocket.add(aborter);
    return aborter;
  }

  async #handle(
    req: IncomingMessage,
    res: ServerResponse,
    arrived: number,
    bytesMax: number,
    streaming: () => void,
  ): Promise<void> {
    const admitted = this.#options.tls === undefined ? this.#sockets : this.#secure;
    if (!admitted.has(req.socket as Socket)) {
      res.destroy(); // a refused connection: its 503 is already on the way
      return;
    }
    this.#inFlight++;
    let streamed = false;
    const held = { bytes: 0 }; // what a body without a declared length took of the budget
    let marked = 0; // what the app's handler counted for its answer, until it is sent
    let aborter: AbortController | undefined; // aborted if the connection closes meanwhile
    try {
      const address = remoteAddressKey(req.socket.remoteAddress);
      if (this.#answers.full && this.#heldBy.has(address)) {
        // Clients hold this much in answers they did not take: an address among them gets no
        // new work until it takes them (or its connections are cut, HTTP_ANSWER_SEND_MS);
        // other clients go on (their large answers are refused while it lasts: AnswerBytes).
        this.#answersFullRefused++;
        void dropBody(req);
        const message = `The node holds ${this.#answers.held} bytes of answers its clients ` +
          `have not taken (at most ${this.#answers.max}), ${this.#heldBy.get(address)} of ` +
          `them for this address: take them, then retry`;
        writeAnswer(res, 503, { "retry-after": "1" }, errorBody("overloaded", message));
        return;
      }
      const method = req.method ?? "GET";
      if (isUnservedMethod(method)) {
        void dropBody(req); // the connection stays: what it pipelines next gets its answer
        writeAnswer(res, 501, {}, unservedBody(method));
        return;
      }
      // Checked on the raw target: the Request's URL is already normalized.
      const refused = this.#options.refuseTarget?.(req.url ?? "/");
      if (refused !== undefined) {
        writeAnswer(res, 400, {}, errorBody("bad_request", refused));
        return;
      }
      const body = await readRequestBody(req, bytesMax, (n) => {
        if (!this.#admission.reserve(n)) return false;
        held.bytes += n;
        return true;
      });
      if (body === undefined) return; // the client broke off, or missed the deadline (408)
      const over = Number(req.headers["content-length"]) > bytesMax ||
        (body instanceof Uint8Array && body.length > bytesMax);
      if (over) {
        // A body over the limit (declared, or without a declared length and run past it): the
        // answer (413) goes at once and the rest stays unread, so the connection cannot carry
        // another request.
        // Half-closed once the answer is out, then destroyed after a linger: destroyed at
        // once, the unread rest could make the kernel reset the connection before the client
        // read its 413 (and by then `res.socket` may be detached already).
        const socket = req.socket;
        res.setHeader("connection", "close");
        res.once("finish", () => {
          socket.end();
          this.#linger(socket);
        });
        // Answered here, not by the app: what it gets of such a body is cut at the limit.
        const target = `${req.method} ${(req.url ?? "/").split("?")[0]}`;
        const message = `The request body is over the ${bytesMax} bytes that ${target} takes`;
        writeAnswer(res, 413, {}, errorBody("too_large", message));
        return;
      }
      if (body === "overloaded") {
        this.#refuseOverloaded(res, "The node holds too many request bodies");
        return;
      }
      const waited = performance.now() - arrived;
      if (waited > this.#limits.queueWaitMaxMs) {
        this.#queueRefused++;
        const message = `The request waited ${Math.round(waited)} ms behind earlier requests ` +
          `on its connection (limit ${this.#limits.queueWaitMaxMs} ms): retry later`;
        writeAnswer(res, 503, { "retry-after": "1" }, errorBody("overloaded", message));
        return;
      }
      if (req.socket.destroyed) {
        // Its client went while it waited behind earlier requests on the connection (or for
        // its body): nobody would read the answer, so the work is not done.
        this.#requestsOfGoneClients++;
        return;
      }
      if (this.#options.direct !== undefined) {
        const direct = await this.#options.direct({
          method: req.method ?? "GET",
          target: req.url ?? "/",
          rawHeaders: req.rawHeaders,
          body,
        });
        if (direct !== undefined) {
          this.#sending(res, req.socket, address, writeDirect(res, direct, req.method === "HEAD"));
          return;
        }
      }
      aborter = this.#aborter(req.socket);
      const request = toRequest(req, { origin: this.#origin, body, signal: aborter.signal });
      if (request === undefined) {
        writeAnswer(res, 400, {}, errorBody("bad_request", "Invalid request target or header"));
        return;
      }
      const response = await this.#options.fetch(request);
      if (aborter.signal.aborted) {
        // The client went while the app ran: the answer is dropped unsent (a stream's producer
        // is cancelled).
        this.#requestsOfGoneClients++;
        await response.body?.cancel().catch(() => {});
        return;
      }
      marked = this.#answers.claim(response);
      this.#answers.add(marked); // still held while it is read and written
      if (isStream(response) && req.method !== "HEAD") {
        // A watch lives as long as its client: it must neither hold a place among the waiting
        // requests nor be waited for at shutdown. (The request deadline of node:http covers
        // receiving the request only, which is over.)
        this.#admission.release(held.bytes);
        held.bytes = 0;
        streamed = true;
        streaming();
        await writeStream(res, response, HTTP_STREAM_END_LINGER_MS);
        return;
      }
      const pieces = piecesOf(response);
      const head = req.method === "HEAD";
      if (pieces !== undefined) this.#answersPieced++;
      const written = pieces === undefined
        ? await writeResponse(res, response, head)
        : await writePieces(
          res,
          response,
          pieces,
          head,
          this.#piecesWriting(res, response, marked),
        );
      this.#sending(res, req.socket, address, written);
    } catch (error) {
      // The app maps every error itself (onError); this is a broken answer or a bug.
      this.#options.onError?.("HTTP answer failed", error);
      if (!res.headersSent && !res.destroyed) {
        writeAnswer(res, 500, {}, errorBody("internal", "Internal error"));
      } else {
        res.destroy();
      }
    } finally {
      if (aborter !== undefined) this.#abortOn.get(req.socket)?.delete(aborter);
      this.#answers.release(marked);
      this.#admission.release(held.bytes);
      if (!streamed) {
        this.#inFlight--;
        if (this.#inFlight === 0) this.#idle?.();
      }
    }
  }
}

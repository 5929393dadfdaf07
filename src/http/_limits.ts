/**
 * The HTTP server's limits: every deadline and bound of {@linkcode HttpServer}, their defaults
 * and their check.
 *
 * @module
 */

import {
  HTTP_BODY_BYTES_WAITING_MAX,
  HTTP_PIPELINE_DEPTH_MAX,
  HTTP_REQUESTS_WAITING_MAX,
} from "./_admission.ts";

/** Time a client has to send a whole request, headers and body (408 after it). */
export const HTTP_REQUEST_TIMEOUT_MS = 10_000;
/** Time a client has to send the request headers (408 after it). */
export const HTTP_HEADERS_TIMEOUT_MS = 10_000;
/** An idle keep-alive connection is closed after this long. */
export const HTTP_KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Open HTTP connections per node, at most; one more is answered 503 and closed. */
export const HTTP_CONNECTIONS_MAX = 1_024;
/**
 * Open HTTP connections from one remote address (an IPv6 client by its /64, which one host
 * usually holds whole), at most; one more is answered 503 and closed, as beyond
 * {@linkcode HTTP_CONNECTIONS_MAX}. The default is the whole bound, so a node has no bound of
 * its own per address: its legitimate clients come from few addresses (a load generator or an
 * application server on one host, clients behind a NAT or a proxy, the other nodes of the
 * cluster forwarding writes to the leader, everything on loopback), and a smaller default would
 * refuse them while the node has room. The admin, whose clients are few and light, sets a
 * smaller one (`ADMIN_CONNECTIONS_PER_ADDRESS_MAX`).
 */
export const HTTP_CONNECTIONS_PER_ADDRESS_MAX = HTTP_CONNECTIONS_MAX;
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

/**
 * A request whose turn comes after it waited this long behind earlier ones on its connection
 * (pipelined) is answered `503 overloaded` with `retry-after` instead of run: its client
 * learns at once that the node is behind, rather than after every queued request ran.
 */
export const HTTP_QUEUE_WAIT_MAX_MS = 2_000;

/**
 * A streamed answer (`text/event-stream`) whose end the client has not taken this long after
 * the stream ended has its connection closed.
 */
export const HTTP_STREAM_END_LINGER_MS = 2_000;

/**
 * An answer's client has this long to take all of it, in milliseconds, plus the time its size
 * takes at {@linkcode HTTP_ANSWER_SEND_BYTES_PER_S}; then its connection is closed (what it
 * did not take would otherwise stay in memory for as long as the client keeps the connection).
 */
export const HTTP_ANSWER_SEND_MS = 10_000;
/** The slowest rate a client may take a large answer at, in bytes per second (see above). */
export const HTTP_ANSWER_SEND_BYTES_PER_S = 4 * 1024 * 1024;

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
  /** See {@linkcode HTTP_CONNECTIONS_PER_ADDRESS_MAX}. */
  readonly connectionsPerAddressMax: number;
  /** See {@linkcode HTTP_TIMEOUT_CHECK_MS}. */
  readonly timeoutCheckMs: number;
  /** See {@linkcode HTTP_BODY_BYTES_MAX}. */
  readonly bodyBytesMax: number;
  /** See {@linkcode HTTP_ACCEPT_CHECK_MS}; 0 turns the check off. */
  readonly acceptCheckMs: number;
  /** See {@linkcode HTTP_PIPELINE_DEPTH_MAX}. */
  readonly pipelineDepthMax: number;
  /** See {@linkcode HTTP_BODY_BYTES_WAITING_MAX}. */
  readonly bodyBytesWaitingMax: number;
  /** See {@linkcode HTTP_REQUESTS_WAITING_MAX}. */
  readonly requestsWaitingMax: number;
  /** See {@linkcode HTTP_QUEUE_WAIT_MAX_MS}. */
  readonly queueWaitMaxMs: number;
  /** See {@linkcode HTTP_ANSWER_SEND_MS}. */
  readonly answerSendMs: number;
  /** See {@linkcode HTTP_ANSWER_SEND_BYTES_PER_S}. */
  readonly answerSendBytesPerS: number;
}

/** The default limits. */
export const HTTP_SERVER_LIMITS: HttpServerLimits = {
  requestTimeoutMs: HTTP_REQUEST_TIMEOUT_MS,
  headersTimeoutMs: HTTP_HEADERS_TIMEOUT_MS,
  keepAliveTimeoutMs: HTTP_KEEP_ALIVE_TIMEOUT_MS,
  connectionsMax: HTTP_CONNECTIONS_MAX,
  connectionsPerAddressMax: HTTP_CONNECTIONS_PER_ADDRESS_MAX,
  timeoutCheckMs: HTTP_TIMEOUT_CHECK_MS,
  bodyBytesMax: HTTP_BODY_BYTES_MAX,
  acceptCheckMs: HTTP_ACCEPT_CHECK_MS,
  pipelineDepthMax: HTTP_PIPELINE_DEPTH_MAX,
  bodyBytesWaitingMax: HTTP_BODY_BYTES_WAITING_MAX,
  requestsWaitingMax: HTTP_REQUESTS_WAITING_MAX,
  queueWaitMaxMs: HTTP_QUEUE_WAIT_MAX_MS,
  answerSendMs: HTTP_ANSWER_SEND_MS,
  answerSendBytesPerS: HTTP_ANSWER_SEND_BYTES_PER_S,
};

/** `limits`, checked: every one a positive integer, the headers deadline within the request's. */
export function checkLimits(limits: HttpServerLimits): HttpServerLimits {
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

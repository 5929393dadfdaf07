/**
 * What the HTTP server answers without the app: methods a fetch Request cannot carry, and
 * raw answers on sockets without a request (parser errors, deadlines, refused connections).
 *
 * @module
 */

import type { Socket } from "node:net";
import { errorBody } from "./_wire.ts";

/** Reason phrases of the statuses answered raw. */
const HTTP_STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  408: "Request Timeout",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  503: "Service Unavailable",
};

/**
 * The methods the fetch `Request` constructor refuses ("Method is forbidden", compared without
 * case): `node:http` hands them over, so the server answers them itself instead of failing in
 * `new Request` (a 500 and a log line per request, which an unauthenticated flood could fill
 * the log with).
 */
const FORBIDDEN_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);
/** A method token (RFC 9110 section 5.6.2): `new Request` throws on anything else. */
const METHOD_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Whether `method` cannot be given to the app: a method `new Request` refuses. Such a method is
 * answered `501 not_implemented` (RFC 9110 section 15.6.2: the server supports it for no
 * resource) rather than `405`, which means "the route exists, not the method" and carries the
 * route's `allow`, which the server does not know.
 */
export function isUnservedMethod(method: string): boolean {
  return FORBIDDEN_METHODS.has(method.toUpperCase()) || !METHOD_TOKEN.test(method);
}

/** The body of the answer to an {@linkcode isUnservedMethod} method. */
export function unservedBody(method: string): string {
  const shown = METHOD_TOKEN.test(method) ? method : JSON.stringify(method.slice(0, 32));
  return errorBody("not_implemented", `The method ${shown} is not served here`);
}

/** A raw HTTP/1.1 error answer that closes the connection (for sockets without a request). */
export function rawErrorAnswer(status: number, code: string, message: string, extra = ""): string {
  const body = JSON.stringify({ error: { code, message } });
  return `HTTP/1.1 ${status} ${HTTP_STATUS_TEXT[status]}\r\nconnection: close\r\n` +
    `content-type: application/json\r\ncontent-length: ${
      new TextEncoder().encode(body).length
    }\r\n${extra}\r\n${body}`;
}

/** Answers what the parser or a deadline refused (408, 431, 400); never throws. */
export function onClientError(error: Error, socket: Socket): void {
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

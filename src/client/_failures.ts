/**
 * The errors a call ends with: aborted or closed, out of time or of nodes, a node's refusal,
 * a write's answer that cannot be read; and what the last failed attempt ran into.
 */

import { encodeBase64Url, showKey } from "./_bytes.ts";
import type { Call } from "./_call.ts";
import { parseEtag } from "./_checks.ts";
import type { Answer, AttemptFailure } from "./_http.ts";
import type { NodeInfo } from "./_table.ts";
import {
  KoiError,
  KoiHttpError,
  PreconditionFailedError,
  TimeoutError,
  UnavailableError,
} from "./errors.ts";

/**
 * A call addressed to a cluster by name (not by key) found that cluster gone from the table:
 * a newer table dropped it (drained and stopped). Whoever planned the call by the old table
 * plans it again by the new one.
 */
export class ClusterLeftError extends UnavailableError {
  /** Creates the error for the call `what` to cluster `cluster`. */
  constructor(what: string, cluster: string, call: Call) {
    super(`${what}: cluster ${cluster} left the routing table during the call`, {
      attempts: call.attempts,
      timeoutMs: call.timeoutMs,
      cluster,
    });
    this.name = "ClusterLeftError";
  }
}

/** What the last attempt of a call ran into, for the final error. */
export interface Last {
  readonly kind: "timeout" | "network" | "http";
  readonly cluster: string;
  readonly node: string;
  readonly text: string;
  readonly cause?: unknown;
}

/** The {@linkcode Last} of an attempt that got no answer from `node`. */
export function failureLast(failure: AttemptFailure, cluster: string, node: NodeInfo): Last {
  const who = `node ${node.id} (${node.http})`;
  if (failure.kind === "timeout") {
    return {
      kind: "timeout",
      cluster,
      node: node.id,
      text: `${who} did not answer within ${Math.ceil(failure.ms)} ms`,
    };
  }
  const message = failure.kind === "network" ? failure.message : "aborted";
  return { kind: "network", cluster, node: node.id, text: `${who}: ${message}` };
}

/**
 * Throws when `call` was aborted: code `closed` when `closed` (the client's close signal)
 * aborted, else `aborted` (with the caller's reason when its signal did).
 */
export function throwIfAborted(
  call: Call,
  what: string,
  last: Last | undefined,
  closed: AbortSignal,
): void {
  if (!call.signal.aborted) return;
  const outcomeUnknown = call.maybeApplied;
  const where = last === undefined ? {} : { cluster: last.cluster, node: last.node };
  if (closed.aborted) {
    throw new KoiError(
      "closed",
      `${what}: the client is closed` +
        (outcomeUnknown ? "; the write may or may not have been applied" : ""),
      { ...where, outcomeUnknown },
    );
  }
  if (call.userSignal?.aborted) {
    throw new KoiError(
      "aborted",
      `${what} was aborted` +
        (outcomeUnknown ? "; the write may or may not have been applied" : ""),
      { ...where, outcomeUnknown, cause: call.userSignal.reason },
    );
  }
  throw new KoiError("aborted", `${what} was aborted`, { ...where, outcomeUnknown });
}

/**
 * The error of a call whose deadline came: a timeout, its cluster unavailable, or (when the
 * cluster kept answering `409 locked`) a `locked` {@linkcode KoiHttpError}.
 */
export function deadlineError(what: string, call: Call, last: Last | undefined): KoiError {
  const options = {
    attempts: call.attempts,
    timeoutMs: call.timeoutMs,
    outcomeUnknown: call.maybeApplied,
    ...(last === undefined
      ? {}
      : { cluster: last.cluster, node: last.node, cause: last.cause ?? new Error(last.text) }),
  };
  const tries = `${call.attempts} attempt${call.attempts === 1 ? "" : "s"}`;
  const tail = (last === undefined ? "" : `; last: ${last.text}`) +
    (call.maybeApplied ? "; the write may or may not have been applied" : "");
  if (last?.cause instanceof KoiHttpError && last.cause.code === "locked") {
    // The cluster answered every time: a transaction held the key until the deadline. That is
    // no outage, and the caller can tell it from one (code, status and lock headers kept).
    return new KoiHttpError(
      "locked",
      `${what}: the key stayed locked by a transaction in flight for ${call.timeoutMs} ms ` +
        `(${tries})${tail}`,
      { ...options, status: 409, headers: last.cause.headers },
    );
  }
  if (last === undefined || last.kind === "timeout") {
    return new TimeoutError(
      `${what}: no answer within ${call.timeoutMs} ms (${tries})${tail}`,
      options,
    );
  }
  return new UnavailableError(
    `${what}: cluster ${last.cluster} unavailable for ${call.timeoutMs} ms ` +
      `(${tries})${tail}`,
    options,
  );
}

/** A node's refusal: {@linkcode PreconditionFailedError} for `412`, else a `KoiHttpError`. */
export function httpError(
  code: string,
  message: string,
  answer: Answer,
  options: { cluster: string; node: string; outcomeUnknown?: boolean },
): KoiHttpError {
  if (answer.status === 412) {
    return new PreconditionFailedError(message, parseEtag(answer.headers.get("etag")), options);
  }
  return new KoiHttpError(code, message, {
    ...options,
    status: answer.status,
    headers: answer.headers,
  });
}

/** The error of a write whose 2xx answer is not the expected JSON. */
export function badWriteAnswer(what: string): KoiError {
  return new KoiError(
    "bad_response",
    `${what}: the node's answer is not the expected JSON; the write may or may not have ` +
      "been applied",
    { outcomeUnknown: true },
  );
}

/**
 * `message` of a node with its renderings of `key` replaced by the client's
 * (`showKey`): the node knows a key sent as `key_b64` only as `base64url:<b64>`, quoted,
 * and cuts a long one short as `"base64url:<start>"... (<n> chars)`.
 */
export function withOwnKey(message: string, key: Uint8Array): string {
  const b64 = `base64url:${encodeBase64Url(key)}`;
  const own = showKey(key);
  return message
    .replace(
      /"(base64url:[A-Za-z0-9_-]*)"\.\.\. \((\d+) chars\)/g,
      (whole, start, chars) => b64.startsWith(start) && Number(chars) === b64.length ? own : whole,
    )
    .replaceAll(JSON.stringify(b64), () => own)
    .replace(new RegExp(`${b64}(?![A-Za-z0-9_-])`, "g"), () => own);
}

/** The URL of `path` on `node`; `bad_response` when its address cannot form one. */
export function nodeUrl(node: NodeInfo, path: string, cluster: string): URL {
  try {
    return new URL(`${node.url}${path}`);
  } catch (error) {
    throw new KoiError(
      "bad_response",
      `The routing table gives node ${node.id} an address that is not a URL host: ` +
        JSON.stringify(node.http),
      { cluster, node: node.id, cause: error },
    );
  }
}

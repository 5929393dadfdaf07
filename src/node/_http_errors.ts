/** Error answers of the node's HTTP API: one mapping from typed errors to docs/api.md statuses. */

import {
  MembershipChangeError,
  NotLeaderError,
  ProposalDroppedError,
  TransferLeaderError,
} from "../raft/mod.ts";
import {
  BadRequestError,
  DiskFailedError,
  LockedError,
  NoLeaderError,
  OverloadedError,
  RequestTimeoutError,
  TooLargeError,
  TooManyWatchersError,
  UnauthorizedError,
  WatchCompactedError,
  WrongShardError,
} from "./errors.ts";
import { LOCK_HEADERS, type TxnLockInfo } from "../txn/mod.ts";

/** Where unexpected errors (the 500s) are reported. */
export type HttpLog = (message: string, error: unknown) => void;

/** The method is not one the route serves (405, with `allow`). */
export class MethodNotAllowedError extends Error {
  /** The methods the route serves. */
  readonly allowed: readonly string[];
  /** Creates the error for `method` on `path`. */
  constructor(method: string, path: string, allowed: readonly string[]) {
    super(`Method not allowed: ${method} ${path}; allowed: ${allowed.join(", ")}`);
    this.name = "MethodNotAllowedError";
    this.allowed = allowed;
  }
}

/** The JSON error answer `{"error": {"code", "message"}}` of docs/api.md. */
export function errorResponse(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify({ error: { code, message } }), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** Headers that carry a lock (of a `409 locked`): the client resolves it from them. */
export { LOCK_HEADERS };

/** The headers of a `409 locked` that carry `lock`. */
export function lockHeaders(lock: TxnLockInfo): Record<string, string> {
  return {
    [LOCK_HEADERS.txn]: lock.txn,
    [LOCK_HEADERS.primary]: lock.primary,
    [LOCK_HEADERS.deadline]: String(lock.deadline),
    [LOCK_HEADERS.key]: btoa(String.fromCharCode(...lock.key)),
    [LOCK_HEADERS.write]: String(lock.write),
  };
}

/** The message of a `409 locked`. */
export function lockedMessage(lock: TxnLockInfo): string {
  return `A key is locked by transaction ${lock.txn} (primary cluster ${lock.primary}) ` +
    "in flight: retry";
}

/** `409 locked`: a key is locked by a transaction in flight (docs/transactions.md). */
export function lockedResponse(message: string, lock: TxnLockInfo): Response {
  return errorResponse(409, "locked", message, lockHeaders(lock));
}

/** A JSON answer. */
export function jsonResponse(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** Maps a thrown error to its answer; anything unexpected is logged and answers 500. */
export function responseForError(error: unknown, request: Request, log: HttpLog): Response {
  const typed = typedErrorResponse(error);
  if (typed !== undefined) return typed;
  log(`Internal error answering ${request.method} ${new URL(request.url).pathname}`, error);
  return errorResponse(500, "internal", "Internal error: see the node's log");
}

function retryAfter(seconds: number): Record<string, string> {
  return { "retry-after": String(Math.max(1, Math.ceil(seconds))) };
}

/** The answer of a typed error (docs/api.md), or undefined for an unexpected one (500). */
export function typedErrorResponse(error: unknown): Response | undefined {
  if (!(error instanceof Error)) return undefined;
  const message = error.message;
  if (error instanceof BadRequestError) return errorResponse(400, "bad_request", message);
  if (error instanceof TooLargeError) return errorResponse(413, "too_large", message);
  if (error instanceof UnauthorizedError) {
    return errorResponse(401, "unauthorized", message, {
      "www-authenticate": 'Bearer realm="koi"',
    });
  }
  if (error instanceof WrongShardError) {
    // The owner travels in a header (for clients) and in the message (for people).
    return errorResponse(421, "wrong_shard", message, {
      "x-koi-epoch": String(error.epoch),
      ...(error.owner === undefined ? {} : { "x-koi-owner": error.owner }),
    });
  }
  if (error instanceof LockedError) return lockedResponse(message, error.lock);
  if (error instanceof NoLeaderError) {
    return errorResponse(503, "no_leader", message, retryAfter(error.retryAfterSec));
  }
  if (error instanceof RequestTimeoutError) {
    // The outcome is unknown: the client retries (with its request id, writes stay idempotent).
    return errorResponse(503, "no_leader", message, retryAfter(1));
  }
  if (error instanceof DiskFailedError) {
    // A refusal at the door: nothing was proposed. Another node leads (or will) meanwhile.
    return errorResponse(503, "disk_failed", message, retryAfter(error.retryAfterSec));
  }
  if (error instanceof OverloadedError) {
    return errorResponse(503, "overloaded", message, retryAfter(error.retryAfterSec));
  }
  if (error instanceof ProposalDroppedError) {
    // The leader refuses proposals for now (transfer in progress, queue full): retry later.
    return errorResponse(503, "overloaded", message, retryAfter(1));
  }
  if (error instanceof NotLeaderError) {
    // Reaches here only when the request could not be forwarded (or must not be).
    return errorResponse(503, "no_leader", message, retryAfter(1));
  }
  if (error instanceof MembershipChangeError || error instanceof TransferLeaderError) {
    // docs/api.md names no status for these: 409 conflict, since the request is well-formed but
    // clashes with the cluster's current state (a change in progress, an unknown member...).
    return errorResponse(409, "conflict", message);
  }
  if (error instanceof WatchCompactedError) {
    // The rev to watch from again and the oldest one this node could serve travel along.
    return jsonResponse(410, {
      error: { code: "compacted", message, rev: error.rev, oldest: error.oldest },
    });
  }
  if (error instanceof TooManyWatchersError) {
    return errorResponse(503, "too_many_watchers", message, retryAfter(error.retryAfterSec));
  }
  if (error instanceof MethodNotAllowedError) {
    return errorResponse(405, "method_not_allowed", message, { allow: error.allowed.join(", ") });
  }
  return undefined;
}

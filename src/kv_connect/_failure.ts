/**
 * What a failed call of the routing client becomes for Deno's KV Connect client, which
 * retries a 5xx for ever and gives up on anything else: `503` while waiting can help (no
 * leader, a timeout, a cluster that cannot be reached, a routing change), the node's own
 * status and message for a refusal that no retry changes (a bad mutation, a limit), and for
 * a write whose outcome is unknown a `409` unless sending it again is harmless.
 *
 * @module
 */
import { KoiError, KoiHttpError } from "../client/mod.ts";
import { KvConnectError } from "./_errors.ts";

/** What the failed call was. */
export interface FailedCall {
  /** Whether a write may be sent again although it may have been applied. */
  readonly repeatable?: boolean;
}

/**
 * The {@linkcode KvConnectError} of `error` thrown by a call of the routing client; other
 * errors (a bug) are returned unchanged, for the endpoint's `500`.
 */
export function kvConnectFailure(error: unknown, call: FailedCall = {}): unknown {
  if (error instanceof KvConnectError || !(error instanceof KoiError)) return error;
  const message = error.message;
  if (error.outcomeUnknown && call.repeatable !== true) {
    // Deno's client would send it again on a 5xx: a sum could add twice, a check could fail
    // on the write's own effect. Say what is known instead.
    return new KvConnectError(
      409,
      `${message}; the atomic operation may or may not have been applied: read its keys to ` +
        "find out before you retry it",
      { cause: error },
    );
  }
  if (error instanceof KoiHttpError) {
    const status = error.status;
    if (status === 421 || status === 503 || status === 500) {
      return new KvConnectError(status === 500 ? 500 : 503, message, { cause: error });
    }
    if (status === 507) {
      return new KvConnectError(
        400,
        `${message} (the cluster is full: retrying does not help until space is freed)`,
        { cause: error },
      );
    }
    if (status === 404 && error.code === "not_found") {
      return new KvConnectError(
        404,
        `${message} (do the nodes run a koi that serves KV Connect, /v1/kvc/?)`,
        { cause: error },
      );
    }
    if (status >= 400 && status < 500) return new KvConnectError(status, message, { cause: error });
    return new KvConnectError(status >= 500 ? 503 : 500, message, { cause: error });
  }
  if (error.code === "bad_response" && /with a body over \d+ bytes/.test(message)) {
    // An answer over the gateway's limit: it would be over it again.
    return new KvConnectError(400, `${message}; read fewer entries at once`, { cause: error });
  }
  if (error.code === "bad_response") return new KvConnectError(500, message, { cause: error });
  // timeout, unavailable, closed, aborted, and a table the admin does not serve yet
  return new KvConnectError(503, message, { cause: error });
}

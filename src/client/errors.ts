/**
 * The errors of the koi client. Every error is a {@linkcode KoiError} with a stable `code`;
 * the subclasses are the cases programs branch on.
 *
 * @module
 */

/**
 * The codes a node or the admin answers with (docs/api.md, "Status codes"). `starting` is
 * the admin's answer before every cluster has a leader.
 */
export type KoiServerErrorCode =
  | "bad_request"
  | "unauthorized"
  | "not_found"
  | "method_not_allowed"
  | "not_implemented"
  | "request_timeout"
  | "stale_request"
  | "conflict"
  | "precondition_failed"
  | "too_large"
  | "wrong_shard"
  | "internal"
  | "no_leader"
  | "loading"
  | "overloaded"
  | "disk_failed"
  | "insufficient_storage"
  | "starting"
  | "compacted"
  | "too_many_watchers"
  | "slow_watcher"
  | "locked";

/**
 * The codes the client gives itself:
 *
 * - `timeout`: the call's deadline passed while an attempt was still waiting for an answer;
 * - `unavailable`: the cluster (or the admin) could not serve the call before its deadline;
 * - `closed`: the client was closed before or during the call;
 * - `aborted`: the caller's `signal` aborted the call;
 * - `bad_response`: a node or the admin answered something that breaks the contract.
 *
 * Invalid arguments (a key over 1024 bytes, a value over 1 MiB, ...) are refused before
 * anything is sent, with the code the node would answer: `bad_request` or `too_large`.
 */
export type KoiClientErrorCode = "timeout" | "unavailable" | "closed" | "aborted" | "bad_response";

/** Every code a {@linkcode KoiError} can carry; a newer server may answer others. */
export type KoiErrorCode = KoiServerErrorCode | KoiClientErrorCode;

/** Where and how an error happened, for {@linkcode KoiError}'s constructor. */
export interface KoiErrorOptions extends ErrorOptions {
  /** The cluster the call went to, if it was routed. */
  readonly cluster?: string;
  /** The node that answered last or that the last attempt went to. */
  readonly node?: string;
  /** Whether a write may have been applied although the call failed. Default false. */
  readonly outcomeUnknown?: boolean;
}

/**
 * The base of every error the client throws. Branch on `code` (stable) or on the
 * subclasses; the message says which cluster and node were involved and what happened last.
 *
 * @example
 * ```ts
 * import { connect, KoiError } from "./mod.ts";
 *
 * const koi = await connect("http://127.0.0.1:7000");
 * try {
 *   await koi.put("user:1", "Ada");
 * } catch (error) {
 *   if (error instanceof KoiError && error.outcomeUnknown) {
 *     // the write may or may not have happened: read before deciding
 *   }
 *   throw error;
 * } finally {
 *   koi.close();
 * }
 * ```
 */
export class KoiError extends Error {
  /** The stable error code (see {@linkcode KoiErrorCode}). */
  readonly code: KoiErrorCode | (string & Record<never, never>);
  /** The cluster the call was routed to, when there was one. */
  readonly cluster: string | undefined;
  /** The node that answered last (or the last attempt went to), when there was one. */
  readonly node: string | undefined;
  /**
   * True when a write (`put`, `delete`) may have been applied although the call failed: an
   * attempt timed out or failed on the network (a refused connection too: `fetch` may have
   * sent the request on a kept-alive connection first), or a node answered `503` or `500`. Reads and refused writes are always false. Retrying such a write is
   * safe only if applying it twice is; read the key to find out what happened.
   */
  readonly outcomeUnknown: boolean;

  /** Creates the error; `code` is stable, `message` is for people. */
  constructor(code: string, message: string, options: KoiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "KoiError";
    this.code = code;
    this.cluster = options.cluster;
    this.node = options.node;
    this.outcomeUnknown = options.outcomeUnknown ?? false;
  }
}

/** What {@linkcode KoiHttpError}'s constructor needs besides the code and message. */
export interface KoiHttpErrorOptions extends KoiErrorOptions {
  /** The HTTP status of the answer. */
  readonly status: number;
  /** The answer's headers (a `409 locked` carries the lock in them). */
  readonly headers?: Headers;
}

/**
 * A node or the admin answered with an error the client does not retry: `400 bad_request`,
 * `401 unauthorized`, `413 too_large`, `507 insufficient_storage`, `409 conflict`, `500
 * internal`, ... `code` is the server's code, `status` the HTTP status, the message the
 * server's message prefixed with who answered.
 */
export class KoiHttpError extends KoiError {
  /** The HTTP status of the answer. */
  readonly status: number;
  /** The answer's headers, when known. */
  readonly headers: Headers | undefined;

  /** Creates the error from an answer. */
  constructor(code: string, message: string, options: KoiHttpErrorOptions) {
    super(code, message, options);
    this.name = "KoiHttpError";
    this.status = options.status;
    this.headers = options.headers;
  }
}

/**
 * A conditional write was refused (`412 precondition_failed`): `put` with `ifRev` or
 * `ifAbsent`, or `delete` with `ifRev`, found the key in another state. Nothing was written.
 *
 * @example
 * ```ts
 * import { connect, PreconditionFailedError } from "./mod.ts";
 *
 * const koi = await connect("http://127.0.0.1:7000");
 * try {
 *   await koi.put("counter", "1", { ifAbsent: true });
 * } catch (error) {
 *   if (!(error instanceof PreconditionFailedError)) throw error;
 *   console.log(`counter exists at rev ${error.currentRev}`);
 * } finally {
 *   koi.close();
 * }
 * ```
 */
export class PreconditionFailedError extends KoiHttpError {
  /** The key's current revision (from the answer's `etag`); undefined when it is absent. */
  readonly currentRev: number | undefined;

  /** Creates the error; `currentRev` comes from the answer's `etag`. */
  constructor(message: string, currentRev: number | undefined, options: KoiErrorOptions) {
    super("precondition_failed", message, { ...options, status: 412 });
    this.name = "PreconditionFailedError";
    this.currentRev = currentRev;
  }
}

/** What {@linkcode TimeoutError} and {@linkcode UnavailableError} add. */
export interface RetryErrorOptions extends KoiErrorOptions {
  /** How many requests the call sent. */
  readonly attempts: number;
  /** The call's time budget in milliseconds. */
  readonly timeoutMs: number;
}

/**
 * The call's deadline (`timeoutMs`) passed while an attempt was still waiting for an
 * answer. For a write, `outcomeUnknown` says whether it may have been applied; `cause` is
 * the last attempt's failure.
 */
export class TimeoutError extends KoiError {
  /** How many requests the call sent. */
  readonly attempts: number;
  /** The call's time budget in milliseconds. */
  readonly timeoutMs: number;

  /** Creates the error; the message says what happened last. */
  constructor(message: string, options: RetryErrorOptions) {
    super("timeout", message, options);
    this.name = "TimeoutError";
    this.attempts = options.attempts;
    this.timeoutMs = options.timeoutMs;
  }
}

/**
 * The cluster (or the admin) could not serve the call before its deadline: it had no
 * leader or was overloaded (`503`), refused connections, or kept naming another owner. For
 * a write, `outcomeUnknown` says whether it may have been applied; `cause` is the last
 * attempt's failure (a {@linkcode KoiHttpError} for a `503`).
 */
export class UnavailableError extends KoiError {
  /** How many requests the call sent. */
  readonly attempts: number;
  /** The call's time budget in milliseconds. */
  readonly timeoutMs: number;

  /** Creates the error; the message says what happened last. */
  constructor(message: string, options: RetryErrorOptions) {
    super("unavailable", message, options);
    this.name = "UnavailableError";
    this.attempts = options.attempts;
    this.timeoutMs = options.timeoutMs;
  }
}

/** What {@linkcode WatchCompactedError}'s constructor needs besides the message. */
export interface WatchCompactedErrorOptions extends KoiErrorOptions {
  /** The cluster whose changes are gone. */
  readonly cluster: string;
  /** The cluster's current rev as its nodes reported it: watch from it after re-reading. */
  readonly rev: number;
  /** The oldest rev any node of the cluster could still watch from. */
  readonly oldest: number;
}

/**
 * `watch` cannot go on for a cluster: every node of it answered `410 compacted`, because the
 * changes after the rev it would resume from are no longer held (the watch fell too far
 * behind, or started from too old a rev). Read the keys again (`list` / `scan`), then watch
 * again with `fromRevs: { [error.cluster]: error.rev }`: every change after the read comes.
 *
 * @example
 * ```ts
 * import { connect, WatchCompactedError } from "./mod.ts";
 *
 * using koi = await connect("http://127.0.0.1:7000");
 * try {
 *   for await (const change of koi.watch("user:", { fromRevs: { a: 1 } })) console.log(change);
 * } catch (error) {
 *   if (!(error instanceof WatchCompactedError)) throw error;
 *   // re-read the keys, then watch from error.rev for error.cluster
 * }
 * ```
 */
export class WatchCompactedError extends KoiError {
  /** The cluster's current rev (the highest its nodes reported). */
  readonly rev: number;
  /** The oldest rev a watch of the cluster could start from. */
  readonly oldest: number;
  /** The cluster whose changes are gone. */
  declare readonly cluster: string;

  /** Creates the error. */
  constructor(message: string, options: WatchCompactedErrorOptions) {
    super("compacted", message, options);
    this.name = "WatchCompactedError";
    this.rev = options.rev;
    this.oldest = options.oldest;
  }
}

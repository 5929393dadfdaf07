/**
 * What the parts of one client share (the admin, the transport, the settings, the close
 * signal), and the state of one call and of one logical request.
 */

import { checkTimeout } from "./_checks.ts";
import { type AnswerRoom, type Fetcher, now } from "./_http.ts";
import type { Session } from "./_sessions.ts";
import type { CallOptions, ReadFrom } from "./_types.ts";

/** The client-wide settings, resolved. */
export interface Settings {
  readonly timeoutMs: number;
  readonly attemptTimeoutMs: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  readonly readFrom: ReadFrom;
}

/** What every part of one client uses: the admin, how to send, the settings, `close()`. */
export interface ClientCore {
  /** The admin's base URL. */
  readonly admin: URL;
  readonly fetcher: Fetcher;
  readonly settings: Settings;
  /** Aborted by the client's `close()`. */
  readonly closed: AbortSignal;
}

/** One logical request, sent as many times as the retry rules allow. */
export interface Request {
  readonly method: "GET" | "PUT" | "DELETE" | "POST";
  /** The path on the node (default `/v1/kv`); `query` follows it. */
  readonly path?: string;
  /**
   * Whether the request changes state (default: any method but GET): a write goes to the
   * leader, may be applied although no answer came, and carries the request-id session.
   */
  readonly write?: boolean;
  /** The header that carries the session's request id (default `x-request-id`). */
  readonly requestIdHeader?: string;
  /** For key requests: the key, routed by CARP. */
  readonly key?: Uint8Array;
  /** For listings: the cluster asked. */
  readonly cluster?: string;
  readonly query: string;
  readonly body?: Uint8Array;
  readonly headers: Record<string, string>;
  /** The most bytes of an answer the client reads (`*_ANSWER_BYTES_MAX` of `_limits.ts`). */
  readonly answerBytesMax: number;
  /** Room shared with other calls that the answer's bytes are taken from (none: unbounded). */
  readonly answerRoom?: AnswerRoom;
  /** For writes: the session whose id and seq every attempt carries. */
  session?: Session;
  /** For messages: `put "user:1"`. */
  readonly what: string;
}

/** One call: its deadline, its signal, and what happened so far. */
export interface Call {
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  readonly userSignal: AbortSignal | undefined;
  attempts: number;
  /** A write attempt may have been applied (sent, then no definite answer). */
  maybeApplied: boolean;
}

/** A new call of `core`'s client: its budget from `options` (else the client's), from now. */
export function newCall(options: CallOptions, core: ClientCore): Call {
  const timeoutMs = checkTimeout(options.timeoutMs, "timeoutMs") ?? core.settings.timeoutMs;
  const signals = [core.closed];
  if (options.signal !== undefined) signals.push(options.signal);
  return {
    deadline: now() + timeoutMs,
    timeoutMs,
    signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals),
    userSignal: options.signal,
    attempts: 0,
    maybeApplied: false,
  };
}

/** `promise`, or a rejection as soon as `signal` aborts (the promise itself goes on). */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * `promise`, or a rejection as soon as `call` aborts or reaches its deadline (the promise
 * itself goes on): for a wait on work shared with other calls, whose own budget may be longer.
 */
export function untilCallEnds<T>(promise: Promise<T>, call: Call): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error("the call's deadline passed")),
      Math.max(0, call.deadline - now()),
    );
  });
  return Promise.race([untilAborted(promise, call.signal), deadline]).finally(() =>
    clearTimeout(timer)
  );
}

/**
 * {@linkcode EtcdHttpTarget}: etcd through its v3 JSON gateway (`POST /v3/kv/put`,
 * `POST /v3/kv/range`, keys and values base64) with fetch over keep-alive HTTP/1.1, the same
 * transport koi's client uses, so the two differ only by the servers.
 *
 * @module
 */
import { TIMEOUT_MS_DEFAULT, VALUE_BYTES_MAX } from "../client/mod.ts";
import { VALUE_ANSWER_BYTES_MAX, WRITE_ANSWER_BYTES_MAX } from "../client/_limits.ts";
import { attempt, type FetchLike, isAnswer, jsonOf, makeFetcher } from "../client/_http.ts";
import { isObject } from "../client/_table.ts";
import { EtcdTarget, type EtcdTargetOptions, grpcKind } from "./_etcd.ts";
import type { ReadOptions } from "./_target.ts";

/** The most of a range answer read: the value in base64 (4/3 of its size) and the JSON around it. */
const RANGE_ANSWER_BYTES_MAX = Math.ceil(VALUE_BYTES_MAX / 3) * 4 + VALUE_ANSWER_BYTES_MAX -
  VALUE_BYTES_MAX;

/** A failed operation of {@linkcode EtcdHttpTarget}, with its kind for the report. */
export class EtcdHttpError extends Error {
  /** `timeout`, `unavailable`, `bad_response`, `closed`, a gRPC code's name, `http_<status>`. */
  readonly kind: string;

  /** An error of `kind`. */
  constructor(kind: string, message: string) {
    super(message);
    this.name = "EtcdHttpError";
    this.kind = kind;
  }
}

/** What {@linkcode EtcdHttpTarget.connect} takes beyond the budget (tests inject a fetch). */
export interface EtcdHttpTargetOptions extends EtcdTargetOptions {
  /** The fetch to send with; default the global one on an own `Deno.HttpClient`. */
  readonly fetch?: FetchLike;
}

/**
 * etcd over its JSON gateway: every caller shares one `Deno.HttpClient` (a keep-alive pool),
 * requests go round-robin over the endpoints, and one that cannot be reached (connection
 * refused, reset) is retried on the next endpoint while the budget lasts. A get is a range of
 * the one key with its value (`serializable` for a stale read). Answers are read up to a cap
 * (a range: a 1 MiB value in base64 and the JSON around it; anything else 64 KiB). Error
 * kinds: `timeout` (the budget ran out), `unavailable` (no endpoint could be reached:
 * refused, reset, …), the gRPC code of the gateway's error answer (`unavailable` for
 * "etcdserver: request timed out" or a lost leader, `resource_exhausted`, …), `http_<status>`
 * for another error answer, `bad_response` for an answer that is not etcd's, `closed`.
 */
export class EtcdHttpTarget extends EtcdTarget {
  readonly name = "etcd-http";
  readonly #urls: readonly URL[];
  readonly #fetch: FetchLike;
  readonly #closeFetch: () => void;
  readonly #timeoutMs: number;
  readonly #closed = new AbortController();
  #next = 0;
  #value: Uint8Array | undefined;
  #valueBase64 = "";

  private constructor(
    endpoints: readonly string[],
    fetcher: { fetch: FetchLike; close: () => void },
    timeoutMs: number,
  ) {
    super(endpoints);
    this.#urls = endpoints.map((e) => new URL(`http://${e}/`));
    this.#fetch = fetcher.fetch;
    this.#closeFetch = fetcher.close;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Connects to `endpoints` (`host:port`) and asks for a member's status (the version in the
   * report); throws an {@linkcode EtcdHttpError} when none answers within the budget.
   */
  static async connect(
    endpoints: readonly string[],
    options: EtcdHttpTargetOptions = {},
  ): Promise<EtcdHttpTarget> {
    const fetcher = makeFetcher(options.fetch);
    const target = new EtcdHttpTarget(endpoints, fetcher, options.timeoutMs ?? TIMEOUT_MS_DEFAULT);
    try {
      const status = await target.#call("maintenance/status", {}, WRITE_ANSWER_BYTES_MAX);
      if (isObject(status) && typeof status.version === "string") target.version = status.version;
      return target;
    } catch (error) {
      await target.close();
      throw error;
    }
  }

  /** An unconditional put of `value` under `key`. */
  async put(key: string, value: Uint8Array): Promise<void> {
    const body = { key: base64Key(key), value: this.#base64Value(value) };
    await this.#call("kv/put", body, WRITE_ANSWER_BYTES_MAX);
  }

  /** Reads `key` with its value: linearizable, or serializable (member-local) when `stale`. */
  async get(key: string, options: ReadOptions): Promise<boolean> {
    const body = { key: base64Key(key), serializable: options.stale };
    const range = await this.#call("kv/range", body, RANGE_ANSWER_BYTES_MAX);
    return isObject(range) && Array.isArray(range.kvs) && range.kvs.length > 0;
  }

  /** The {@linkcode EtcdHttpError}'s kind, else `other`. */
  errorKind(error: unknown): string {
    return error instanceof EtcdHttpError ? error.kind : "other";
  }

  /** Fails the calls in flight and closes the pooled connections. */
  close(): Promise<void> {
    this.#closed.abort();
    this.#closeFetch();
    return Promise.resolve();
  }

  /** The value in base64; a run writes one value over and over (never changing its bytes), so
   * the last one is kept, by identity. */
  #base64Value(value: Uint8Array): string {
    if (value !== this.#value) {
      this.#value = value;
      this.#valueBase64 = value.toBase64();
    }
    return this.#valueBase64;
  }

  /**
   * POSTs `body` to `/v3/<path>` and returns the JSON answer of a 200; the next endpoint is
   * tried when one cannot be reached, each at most once, within the budget.
   */
  async #call(path: string, body: unknown, maxBytes: number): Promise<unknown> {
    const deadline = performance.now() + this.#timeoutMs;
    const init = { method: "POST", body: JSON.stringify(body) };
    const first = this.#next;
    this.#next = (this.#next + 1) % this.#urls.length;
    let failure = new EtcdHttpError("timeout", `no answer within ${this.#timeoutMs} ms`);
    for (let i = 0; i < this.#urls.length; i++) {
      const ms = deadline - performance.now();
      if (ms <= 0) break;
      const base = this.#urls[(first + i) % this.#urls.length];
      const where = `${base.host} ${path}`;
      const result = await attempt(
        this.#fetch,
        new URL(`v3/${path}`, base),
        init,
        ms,
        this.#closed.signal,
        maxBytes,
      );
      if (isAnswer(result)) {
        const json = jsonOf(result);
        if (result.status === 200 && isObject(json)) return json;
        throw answerError(where, result.status, json);
      }
      switch (result.kind) {
        case "timeout":
          throw new EtcdHttpError("timeout", `${where}: no answer within ${this.#timeoutMs} ms`);
        case "aborted":
          throw new EtcdHttpError("closed", `${where}: the target was closed`);
        case "too_large":
          throw new EtcdHttpError(
            "bad_response",
            `${where}: answered ${result.status} with over ${result.max} bytes`,
          );
        case "network":
          failure = new EtcdHttpError("unavailable", `${where}: ${result.message}`);
      }
    }
    throw failure;
  }
}

/** The error of a non-200 answer: the gateway's `{"code", "message"}` names a gRPC code. */
function answerError(where: string, status: number, json: unknown): EtcdHttpError {
  if (isObject(json) && typeof json.code === "number") {
    const message = typeof json.message === "string" ? json.message : String(json.error);
    return new EtcdHttpError(grpcKind(json.code), `${where}: ${status} ${message.slice(0, 200)}`);
  }
  if (status === 200) return new EtcdHttpError("bad_response", `${where}: 200 without JSON`);
  return new EtcdHttpError(`http_${status}`, `${where}: ${status}`);
}

const encoder = new TextEncoder();

/** A key's UTF-8 bytes in base64, as the gateway takes them. */
function base64Key(key: string): string {
  return encoder.encode(key).toBase64();
}

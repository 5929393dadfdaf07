/**
 * A history recorder: every `get`, `put` and `delete` of the clients given one, with when it
 * was invoked and when it ended (monotonic milliseconds) and how: `ok`, `fail` (it surely
 * did not take effect) or `unknown` (a write that may have been applied, now or later). A
 * linearizability checker reads such histories (the chaos test does); an application can
 * use one to audit what its writes did under faults.
 *
 * @example
 * ```ts
 * import { connect, HistoryRecorder } from "./mod.ts";
 *
 * const history = new HistoryRecorder();
 * using koi = await connect("http://127.0.0.1:7000", { history });
 * await koi.put("k", "v");
 * for (const op of history.operations()) console.log(op.f, op.outcome, op.endMs - op.invokeMs);
 * ```
 *
 * @module
 */
import type { Consistency } from "./_types.ts";
import { KoiError } from "./errors.ts";

/** Operations a recorder keeps by default; beyond, new ones are counted as dropped. */
export const HISTORY_OPERATIONS_MAX_DEFAULT = 1_000_000;

/**
 * How an operation ended. `ok`: it succeeded. `fail`: it surely did not take effect (a
 * refused condition, a validation error, no leader before the write was sent; any failed
 * `get`, since a read changes nothing). `unknown`: a write that may have been applied,
 * then or at any later time (a timeout or a broken connection after it was sent).
 * `pending`: it has not ended yet.
 */
export type HistoryOutcome = "pending" | "ok" | "fail" | "unknown";

/** What a successful operation answered. */
export interface HistoryResult {
  /** `get`: the value read, or null when the key was absent. */
  readonly value?: Uint8Array | null;
  /** `get`: the value's revision; `put`, `delete`: the write's revision. */
  readonly rev?: number;
  /** `delete`: whether the key existed. */
  readonly deleted?: boolean;
}

/** One operation as its client saw it. */
export interface RecordedOperation {
  /** Its place in the recorder, from 0, in invocation order. */
  readonly id: number;
  /** The id of the client that ran it ({@linkcode KoiClient.clientId}). */
  readonly client: string;
  /** Which call. */
  readonly f: "get" | "put" | "delete";
  /** The key's bytes. */
  readonly key: Uint8Array;
  /** `put`: the value written. */
  readonly value?: Uint8Array;
  /** `put`, `delete`: the revision the write was conditional on. */
  readonly ifRev?: number;
  /** `put`: whether the write was conditional on the key being absent. */
  readonly ifAbsent?: boolean;
  /** `get`: its consistency. */
  readonly consistency?: Consistency;
  /** When it was invoked (`performance.now()` unless the recorder was given a clock). */
  readonly invokeMs: number;
  /** When it ended; `Infinity` while pending. */
  readonly endMs: number;
  /** How it ended. */
  readonly outcome: HistoryOutcome;
  /** What it answered, when `ok`. */
  readonly result?: HistoryResult;
  /** The {@linkcode KoiError} code, when it failed (`precondition_failed`, `timeout`, …). */
  readonly errorCode?: string;
  /** The error's message, when it failed (it names the attempts and the last answer). */
  readonly errorMessage?: string;
}

/** What the client tells the recorder about one call it starts. */
export interface HistoryInvocation {
  /** Which call. */
  readonly f: RecordedOperation["f"];
  /** The key's bytes. */
  readonly key: Uint8Array;
  /** `put`: the value. */
  readonly value?: Uint8Array;
  /** The condition's revision, if any. */
  readonly ifRev?: number;
  /** `put`: absent-only. */
  readonly ifAbsent?: boolean;
  /** `get`: consistency. */
  readonly consistency?: Consistency;
}

/** Ends one recorded operation (returned by {@linkcode HistoryRecorder.invoke}). */
export interface HistoryHandle {
  /** It succeeded with `result`. */
  ok(result: HistoryResult): void;
  /** It threw `error`: recorded as `fail` or `unknown` (see {@linkcode HistoryOutcome}). */
  threw(error: unknown): void;
}

/** Options of {@linkcode HistoryRecorder}. */
export interface HistoryRecorderOptions {
  /** Operations kept at most (default 1,000,000); later ones are only counted. */
  readonly operationsMax?: number;
  /** The monotonic clock in milliseconds (default `performance.now`). */
  readonly now?: () => number;
}

const IGNORED: HistoryHandle = Object.freeze({ ok() {}, threw() {} });

type MutableOperation = { -readonly [K in keyof RecordedOperation]: RecordedOperation[K] };

/**
 * Records the operations of every client given it in {@linkcode ConnectOptions.history}
 * (several clients may share one: their operations interleave in invocation order). Keys
 * and values are copied, so callers may reuse their buffers.
 */
export class HistoryRecorder {
  readonly #ops: MutableOperation[] = [];
  readonly #max: number;
  readonly #now: () => number;
  #dropped = 0;

  /** Creates an empty recorder. */
  constructor(options: HistoryRecorderOptions = {}) {
    const max = options.operationsMax ?? HISTORY_OPERATIONS_MAX_DEFAULT;
    if (!Number.isSafeInteger(max) || max < 0) {
      throw new KoiError(
        "bad_request",
        `Invalid operationsMax ${max}: expected a non-negative integer`,
      );
    }
    this.#max = max;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Every operation kept, in invocation order (live objects: pending ones end later). */
  operations(): readonly RecordedOperation[] {
    return this.#ops;
  }

  /** Operations not kept because the recorder was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Records that `client` starts `call`; the handle records how it ends. */
  invoke(client: string, call: HistoryInvocation): HistoryHandle {
    if (this.#ops.length >= this.#max) {
      this.#dropped++;
      return IGNORED;
    }
    const op: MutableOperation = {
      id: this.#ops.length,
      client,
      f: call.f,
      key: call.key.slice(),
      ...(call.value === undefined ? {} : { value: call.value.slice() }),
      ...(call.ifRev === undefined ? {} : { ifRev: call.ifRev }),
      ...(call.ifAbsent === undefined ? {} : { ifAbsent: call.ifAbsent }),
      ...(call.consistency === undefined ? {} : { consistency: call.consistency }),
      invokeMs: this.#now(),
      endMs: Infinity,
      outcome: "pending",
    };
    this.#ops.push(op);
    return {
      ok: (result) => {
        if (op.outcome !== "pending") return;
        op.endMs = this.#now();
        op.outcome = "ok";
        op.result = result.value instanceof Uint8Array
          ? { ...result, value: result.value.slice() }
          : result;
      },
      threw: (error) => {
        if (op.outcome !== "pending") return;
        op.endMs = this.#now();
        op.outcome = outcomeOf(op.f, error);
        if (error instanceof KoiError) op.errorCode = error.code;
        op.errorMessage = error instanceof Error ? error.message : String(error);
      },
    };
  }
}

/**
 * A read that failed changed nothing; a write failed surely only when the client says its
 * outcome is known. Anything else thrown (not a KoiError) leaves a write's fate open.
 */
function outcomeOf(f: RecordedOperation["f"], error: unknown): "fail" | "unknown" {
  if (f === "get") return "fail";
  if (error instanceof KoiError) return error.outcomeUnknown ? "unknown" : "fail";
  return "unknown";
}

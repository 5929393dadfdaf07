/**
 * The client's side of the node's transaction endpoints (docs/api.md, "Transaction
 * endpoints"): msgpack bodies of commits, aborts and forgets, of the two rounds of a snapshot
 * read, and the checked decoding of every answer (a node that answers something else is a
 * `bad_response`, never a guess).
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import type {
  KeySpan,
  ReadRange,
  SnapshotCheck,
  SnapshotPart,
  TxnAnswer,
  TxnCommand,
  TxnLockInfo,
} from "../txn/mod.ts";
import { LOCK_HEADERS, TXN_PATHS } from "../txn/mod.ts";
import { KoiError, KoiHttpError } from "./errors.ts";

/** The node path of transaction commands. */
export const TXN_COMMAND_PATH: string = TXN_PATHS.command;
/** The node path of a snapshot read's first round. */
export const TXN_READ_PATH: string = TXN_PATHS.read;
/** The node path of a snapshot read's second round. */
export const TXN_CHECK_PATH: string = TXN_PATHS.check;
/** The content type of the bodies. */
export const MSGPACK_TYPE = "application/msgpack";

const KIND = { prepare: 0, commit: 1, abort: 2, forget: 3 } as const;

/** A value read by a snapshot read, with its metadata. */
export interface ReadEntry {
  /** The key. */
  readonly key: Uint8Array;
  /** The value. */
  readonly value: Uint8Array;
  /** Its rev. */
  readonly rev: number;
  /** Its versionstamp (0: none). */
  readonly vs: number;
  /** Its value encoding (1 V8, 2 LE64, 3 bytes). */
  readonly encoding: number;
  /** When it expires (ms since 1970; 0: never). */
  readonly expireAt: number;
}

/**
 * The body of a commit, abort or forget (a prepare carries mutations, whose form its sender
 * chooses: see the gateway's).
 */
export function encodeTxnCommand(
  cmd: Exclude<TxnCommand<unknown>, { type: "prepare" }>,
): Uint8Array {
  const head = [4, KIND[cmd.type], cmd.txn, 0];
  switch (cmd.type) {
    case "commit":
      return encode([...head, cmd.after ?? null, cmd.vs ?? null]);
    case "abort":
      return encode([...head, cmd.deadline]);
    case "forget":
      return encode(head);
  }
}

/**
 * A read fence's prepare as the node's command path takes it (a fence carries no mutations,
 * so no KV Connect share: the `spans` travel after the prepare's fields).
 */
export function encodeFence(cmd: Extract<TxnCommand<unknown>, { type: "prepare" }>): Uint8Array {
  if (cmd.spans === undefined || cmd.checks.length > 0 || cmd.mutations.length > 0) {
    throw new RangeError("A fence has spans and no checks nor mutations");
  }
  return encode([
    4,
    KIND.prepare,
    cmd.txn,
    0,
    cmd.primary,
    cmd.participants,
    [],
    [],
    cmd.deadline,
    cmd.spans.map((s) => [s.start, s.end]),
  ]);
}

/** The body of a first round. */
export function encodeReadRanges(ranges: readonly ReadRange[]): Uint8Array {
  return encode(ranges.map((r) => [r.start, r.end, r.limit, r.reverse]));
}

/** The body of a second round. */
export function encodeCheck(spans: readonly KeySpan[], since: number): Uint8Array {
  return encode([spans.map((s) => [s.start, s.end]), since]);
}

function bad(what: string): never {
  throw new KoiError("bad_response", `A node's transaction answer is not ${what}`);
}

function isNat(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function decoded(bytes: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = decode(bytes);
  } catch {
    bad(what);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) bad(what);
  return v as Record<string, unknown>;
}

/** A lock from its wire form `[key, txn, primary, deadline, write]`. */
export function lockFromWire(v: unknown): TxnLockInfo {
  if (
    !Array.isArray(v) || v.length !== 5 || !(v[0] instanceof Uint8Array) ||
    typeof v[1] !== "string" || typeof v[2] !== "string" || !isNat(v[3]) ||
    typeof v[4] !== "boolean"
  ) {
    bad("a lock");
  }
  return { key: v[0], txn: v[1], primary: v[2], deadline: v[3], write: v[4] };
}

/** Decodes the answer of a transaction command. */
export function decodeTxnAnswer(bytes: Uint8Array): TxnAnswer {
  const v = decoded(bytes, "a vote or an outcome");
  if (v.vote === "yes" && isNat(v.vs)) return { vote: "yes", vs: v.vs };
  if (v.vote === "no") {
    if (v.reason === "locked") return { vote: "no", reason: "locked", lock: lockFromWire(v.lock) };
    if (v.reason === "expired" || v.reason === "busy" || v.reason === "finished") {
      return { vote: "no", reason: v.reason };
    }
    if (v.reason === "refused" && typeof v.refusal === "object" && v.refusal !== null) {
      const r = v.refusal as Record<string, unknown>;
      if (r.code === "check_failed" && isNat(r.check)) {
        return { vote: "no", reason: "refused", refusal: { code: "check_failed", check: r.check } };
      }
      if (r.code === "wrong_shard" && typeof r.owner === "string" && isNat(r.epoch)) {
        return {
          vote: "no",
          reason: "refused",
          refusal: { code: "wrong_shard", owner: r.owner, epoch: r.epoch },
        };
      }
      if (r.code === "storage_full" && isNat(r.bytesMax)) {
        return {
          vote: "no",
          reason: "refused",
          refusal: { code: "storage_full", bytesMax: r.bytesMax },
        };
      }
      if (
        r.code === "invalid" && typeof r.mutation === "number" && typeof r.message === "string"
      ) {
        return {
          vote: "no",
          reason: "refused",
          refusal: { code: "invalid", mutation: r.mutation, message: r.message },
        };
      }
    }
    bad("a vote");
  }
  if (v.state === "committed" && isNat(v.vs)) return { state: "committed", vs: v.vs };
  if (v.state === "aborted" || v.state === "unknown") return { state: v.state };
  bad("a vote or an outcome");
}

/** Decodes a first round's answer. */
export function decodePart(bytes: Uint8Array): SnapshotPart<ReadEntry> {
  const v = decoded(bytes, "a snapshot part");
  if (v.lock !== undefined) return { lock: lockFromWire(v.lock) };
  if (!isNat(v.index) || !Array.isArray(v.entries)) bad("a snapshot part");
  const entries = (v.entries as unknown[]).map((list) => {
    if (!Array.isArray(list)) bad("a snapshot part");
    return list.map((e): ReadEntry => {
      if (
        !Array.isArray(e) || e.length !== 6 || !(e[0] instanceof Uint8Array) ||
        !(e[1] instanceof Uint8Array) || !isNat(e[2]) || !isNat(e[3]) || !isNat(e[4]) ||
        !isNat(e[5])
      ) {
        bad("a snapshot entry");
      }
      return { key: e[0], value: e[1], rev: e[2], vs: e[3], encoding: e[4], expireAt: e[5] };
    });
  });
  return { index: v.index, entries };
}

/** Decodes a second round's answer. */
export function decodeCheck(bytes: Uint8Array): SnapshotCheck {
  const v = decoded(bytes, "a snapshot check");
  if (v.valid === true) return { valid: true };
  if (v.valid !== false) bad("a snapshot check");
  return v.lock === undefined ? { valid: false } : { valid: false, lock: lockFromWire(v.lock) };
}

/** The lock of a `409 locked` error, or undefined for any other error (or malformed headers). */
export function lockOfError(error: unknown): TxnLockInfo | undefined {
  if (!(error instanceof KoiHttpError) || error.status !== 409 || error.code !== "locked") {
    return undefined;
  }
  return error.headers === undefined ? undefined : lockOfHeaders(error.headers);
}

/** The lock the headers of a `409 locked` carry, or undefined when they carry none. */
export function lockOfHeaders(h: Headers): TxnLockInfo | undefined {
  const txn = h.get(LOCK_HEADERS.txn);
  const primary = h.get(LOCK_HEADERS.primary);
  const deadline = Number(h.get(LOCK_HEADERS.deadline));
  const key64 = h.get(LOCK_HEADERS.key);
  if (!txn || !primary || !Number.isSafeInteger(deadline) || key64 === null) return undefined;
  let key: Uint8Array;
  try {
    key = Uint8Array.from(atob(key64), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
  return { key, txn, primary, deadline, write: h.get(LOCK_HEADERS.write) !== "false" };
}

/** The node path of the janitor's list of decisions not forgotten. */
export const TXN_RECORDS_PATH: string = TXN_PATHS.records;
/** The node path of the janitor's question about held intents. */
export const TXN_HELD_PATH: string = TXN_PATHS.held;

/** A primary's decision not forgotten: its attempt, versionstamp and other participants. */
export interface UnforgottenDecision {
  /** The attempt. */
  readonly txn: string;
  /** The decided versionstamp. */
  readonly vs: number;
  /** The other participants. */
  readonly secondaries: readonly string[];
}

/** A prepared attempt past its deadline: its coordinator is gone. */
export interface StaleIntent {
  /** The attempt. */
  readonly txn: string;
  /** Its primary. */
  readonly primary: string;
  /** Its deadline. */
  readonly deadline: number;
}

/**
 * What keeps a cluster needed by transactions: its decisions not forgotten, and the primaries
 * of the intents it holds (a drained cluster is stopped only once none names it).
 */
export interface TxnPending {
  /** Decisions not forgotten (of any age). */
  readonly decisions: number;
  /** The primaries of every intent held. */
  readonly primaries: readonly string[];
  /**
   * The secondaries the decisions not forgotten name (empty from nodes before it was
   * answered).
   */
  readonly secondaries: readonly string[];
}

/** A records answer. */
export interface TxnRecordsAnswer {
  /** Decisions not forgotten past their deadline: the janitor's to settle. */
  readonly decisions: UnforgottenDecision[];
  /** Intents past their deadline: the janitor's to resolve. */
  readonly stale: StaleIntent[];
  /** Everything pending here (absent from nodes before it was answered). */
  readonly pending?: TxnPending;
}

/** Decodes the answer of a records request. */
export function decodeRecords(bytes: Uint8Array): TxnRecordsAnswer {
  let v: unknown;
  try {
    v = decode(bytes);
  } catch {
    bad("records");
  }
  if (typeof v !== "object" || v === null) bad("records");
  const { decisions, stale, pending } = v as {
    decisions: unknown;
    stale: unknown;
    pending?: unknown;
  };
  if (!Array.isArray(decisions) || !Array.isArray(stale)) bad("records");
  const staleOut = stale.map((r) => {
    if (
      !Array.isArray(r) || r.length !== 3 || typeof r[0] !== "string" ||
      typeof r[1] !== "string" || !isNat(r[2])
    ) {
      bad("a stale intent");
    }
    return { txn: r[0], primary: r[1], deadline: r[2] };
  });
  const decisionsOut = decisions.map((r) => {
    if (
      !Array.isArray(r) || r.length !== 3 || typeof r[0] !== "string" || !isNat(r[1]) ||
      !Array.isArray(r[2]) || !r[2].every((c: unknown) => typeof c === "string")
    ) {
      bad("a record");
    }
    return { txn: r[0], vs: r[1], secondaries: r[2] };
  });
  if (pending === undefined) return { decisions: decisionsOut, stale: staleOut };
  const names = (x: unknown): x is string[] =>
    Array.isArray(x) && x.every((c: unknown) => typeof c === "string");
  if (
    !Array.isArray(pending) || (pending.length !== 2 && pending.length !== 3) ||
    !isNat(pending[0]) || !names(pending[1]) || (pending.length === 3 && !names(pending[2]))
  ) {
    bad("pending records");
  }
  return {
    decisions: decisionsOut,
    stale: staleOut,
    pending: { decisions: pending[0], primaries: pending[1], secondaries: pending[2] ?? [] },
  };
}

/** Decodes the answer of a held request. */
export function decodeHeld(bytes: Uint8Array, n: number): boolean[] {
  let v: unknown;
  try {
    v = decode(bytes);
  } catch {
    bad("a list of booleans");
  }
  if (!Array.isArray(v) || v.length !== n || !v.every((b) => typeof b === "boolean")) {
    bad("a list of booleans");
  }
  return v;
}

/**
 * Transaction commands in the log (docs/transactions.md) and the participant's state in
 * snapshots: msgpack, validated on decode like every command (a forged entry is skipped, never
 * half-applied).
 *
 * An entry is `[4, kind, txn, at, ...]`: `at` is the versionstamp the leader chose for the entry
 * (every entry's exceeds the last one's); kind 0 prepare `[primary, participants, checks
 * [[key, vs]], mutations, deadline]`, 1 commit `[after | null, vs | null]`, 2 abort
 * `[deadline]`, 3 forget `[]`.
 *
 * @module
 */
import {
  TXN_FENCE_SPANS_MAX,
  TXN_ID_BYTES_MAX,
  type TxnCheck,
  type TxnCommand,
  type TxnParticipantState,
  type TxnSpan,
} from "../txn/mod.ts";
import { decode, encode } from "./_msgpack.ts";
import {
  CommandDecodeError,
  decodeMutation,
  encodeMutation,
  type KvMutation,
} from "./kv_command.ts";

/** The first element of a transaction entry (1 and 3: KV commands, 2: routing commands). */
export const TXN_COMMAND_VERSION = 4;

/** Participants of one transaction at most. */
export const TXN_PARTICIPANTS_MAX = 64;

/** A transaction command as the log carries it: with the entry's versionstamp. */
export interface TxnEntry {
  /** The versionstamp the leader chose for the entry. */
  readonly at: number;
  /** The command. */
  readonly cmd: TxnCommand<KvMutation>;
}

const KIND = { prepare: 0, commit: 1, abort: 2, forget: 3 } as const;

/** Whether an entry's data is a transaction command (without decoding it). */
export function isTxnCommand(data: Uint8Array): boolean {
  // A msgpack fixarray header then the positive fixint 4.
  return data.length >= 2 && (data[0] & 0xf0) === 0x90 && data[1] === TXN_COMMAND_VERSION;
}

/** Encodes a transaction command with its entry's versionstamp. */
export function encodeTxnEntry(e: TxnEntry): Uint8Array {
  const c = e.cmd;
  const head = [TXN_COMMAND_VERSION, KIND[c.type], c.txn, e.at];
  switch (c.type) {
    case "prepare":
      return encode([
        ...head,
        c.primary,
        c.participants,
        c.checks.map((k) => [k.key, k.vs]),
        c.mutations.map(encodeMutation),
        c.deadline,
        ...spansOut(c.spans),
      ]);
    case "commit":
      return encode([...head, c.after ?? null, c.vs ?? null]);
    case "abort":
      return encode([...head, c.deadline]);
    case "forget":
      return encode(head);
  }
}

/** A read fence's spans as the wire carries them (after the prepare's fields), or nothing. */
function spansOut(spans: readonly TxnSpan[] | undefined): unknown[] {
  return spans === undefined ? [] : [spans.map((s) => [s.start, s.end])];
}

/** A read fence's spans off the wire: at most `TXN_FENCE_SPANS_MAX` `[start, end]` pairs. */
function spansOf(v: unknown): TxnSpan[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > TXN_FENCE_SPANS_MAX) bad("spans");
  return v.map((x) => {
    if (
      !Array.isArray(x) || x.length !== 2 || !(x[0] instanceof Uint8Array) ||
      !(x[1] instanceof Uint8Array)
    ) {
      bad("span");
    }
    return { start: x[0], end: x[1] };
  });
}

function isNat(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function bad(what: string): never {
  throw new CommandDecodeError(what, "transaction");
}

const TXN_ID_RE = /^[A-Za-z0-9._:-]+$/;

/**
 * Checks a transaction id: 1 to {@linkcode TXN_ID_BYTES_MAX} letters, digits, `.`, `_`, `:`
 * or `-` (it travels in HTTP headers).
 */
export function isTxnId(v: unknown): v is string {
  return typeof v === "string" && v.length > 0 && v.length <= TXN_ID_BYTES_MAX &&
    TXN_ID_RE.test(v);
}

function isClusterId(v: unknown): v is string {
  return typeof v === "string" && v.length > 0 && v.length <= 256;
}

function checksOf(v: unknown): TxnCheck[] {
  if (!Array.isArray(v)) bad("checks");
  return v.map((k) => {
    if (!Array.isArray(k) || k.length !== 2 || !(k[0] instanceof Uint8Array) || !isNat(k[1])) {
      bad("check");
    }
    return { key: k[0], vs: k[1] };
  });
}

/** The fields of a prepare (in an entry or a snapshot's intent), checked but for the lists. */
function prepared(
  txn: string,
  primary: string,
  participants: string[],
  checks: unknown,
  mutations: unknown[],
  deadline: number,
  spans: unknown,
) {
  return {
    txn,
    primary,
    participants,
    checks: checksOf(checks),
    mutations: mutations.map((m) => decodeMutation(m, true)),
    deadline,
    ...(spans === undefined ? {} : { spans: spansOf(spans) }),
  };
}

/** Decodes and validates a transaction entry. */
export function decodeTxnEntry(data: Uint8Array): TxnEntry {
  const v = decode(data);
  if (!Array.isArray(v) || v[0] !== TXN_COMMAND_VERSION) bad("not a transaction command");
  const [, kind, txn, at] = v;
  if (!isTxnId(txn)) bad("transaction id");
  if (!isNat(at)) bad("versionstamp");
  switch (kind) {
    case KIND.prepare: {
      if (v.length !== 9 && v.length !== 10) bad("prepare");
      const [, , , , primary, participants, checks, mutations, deadline, spans] = v;
      if (!isClusterId(primary) || !isNat(deadline)) bad("prepare");
      if (
        !Array.isArray(participants) || participants.length > TXN_PARTICIPANTS_MAX ||
        !participants.every(isClusterId) || !participants.includes(primary)
      ) {
        bad("participants");
      }
      if (!Array.isArray(mutations)) bad("mutations");
      return {
        at,
        cmd: {
          type: "prepare",
          ...prepared(txn, primary, participants, checks, mutations, deadline, spans),
        },
      };
    }
    case KIND.commit: {
      const [, , , , after, vs] = v;
      if (v.length !== 6 || (after === null) === (vs === null)) bad("commit");
      if ((after !== null && !isNat(after)) || (vs !== null && !isNat(vs))) bad("commit");
      return {
        at,
        cmd: after !== null ? { type: "commit", txn, after } : { type: "commit", txn, vs },
      };
    }
    case KIND.abort:
      if (v.length !== 5 || !isNat(v[4])) bad("abort");
      return { at, cmd: { type: "abort", txn, deadline: v[4] } };
    case KIND.forget:
      if (v.length !== 4) bad("forget");
      return { at, cmd: { type: "forget", txn } };
    default:
      bad("kind");
  }
}

/** The participant's state as snapshot bytes. */
export function encodeTxnState(s: TxnParticipantState<KvMutation>): Uint8Array {
  return encode([
    s.intents.map((i) => [
      i.txn,
      i.primary,
      i.participants,
      i.checks.map((k) => [k.key, k.vs]),
      i.mutations.map(encodeMutation),
      i.deadline,
      i.vs,
      ...spansOut(i.spans),
    ]),
    s.outcomes.map(([txn, r]) => [
      txn,
      r.outcome.state === "committed" ? r.outcome.vs : -1,
      r.deadline,
      r.droppable,
      ...(r.secondaries === undefined ? [] : [r.secondaries]),
    ]),
  ]);
}

/** Decodes a snapshot's participant state; throws {@linkcode CommandDecodeError}. */
export function decodeTxnState(data: Uint8Array): TxnParticipantState<KvMutation> {
  const v = decode(data);
  if (!Array.isArray(v) || v.length !== 2 || !Array.isArray(v[0]) || !Array.isArray(v[1])) {
    bad("state");
  }
  const intents = v[0].map((i: unknown) => {
    if (!Array.isArray(i) || (i.length !== 7 && i.length !== 8)) bad("intent");
    const [txn, primary, participants, checks, mutations, deadline, vs, spans] = i;
    if (
      !isTxnId(txn) || !isClusterId(primary) || !Array.isArray(participants) ||
      !participants.every(isClusterId) || !Array.isArray(mutations) || !isNat(deadline) ||
      !isNat(vs)
    ) {
      bad("intent");
    }
    return { ...prepared(txn, primary, participants, checks, mutations, deadline, spans), vs };
  });
  const outcomes = v[1].map((o: unknown) => {
    if (!Array.isArray(o) || (o.length !== 4 && o.length !== 5)) bad("outcome");
    const [txn, vs, deadline, droppable, secondaries] = o;
    if (!isTxnId(txn) || typeof vs !== "number" || !isNat(deadline)) bad("outcome");
    if (typeof droppable !== "boolean" || (vs !== -1 && !isNat(vs))) bad("outcome");
    if (
      secondaries !== undefined && (!Array.isArray(secondaries) || !secondaries.every(isClusterId))
    ) {
      bad("outcome");
    }
    const outcome = vs === -1
      ? { state: "aborted" as const }
      : { state: "committed" as const, vs: vs as number };
    return [txn, {
      outcome,
      deadline,
      droppable,
      ...(secondaries === undefined ? {} : { secondaries: secondaries as string[] }),
    }] as const;
  });
  return { intents, outcomes };
}

/**
 * The application of the multi-cluster mode: each cluster holds the bank accounts it owns
 * (balance, versionstamp, and the transaction that wrote it), guarded by the real transaction
 * participant of `src/txn/`. Entries carry either a transaction command or a plain
 * single-cluster command (checks and mutations in one entry: the fast path), each with the
 * versionstamp its leader chose.
 *
 * @module
 */
import type { Entry } from "../../src/raft/mod.ts";
import {
  keyString,
  type ReadRange,
  TouchLog,
  type TxnAnswer,
  type TxnCheck,
  type TxnCommand,
  type TxnLockInfo,
  type TxnMutationShape,
  TxnParticipant,
  type TxnParticipantState,
  type TxnRefusal,
  type TxnStore,
} from "../../src/txn/mod.ts";
import { EXTENSION_TAG, type SmExtension } from "./state_machine.ts";

/** Every account starts with this balance. */
export const OPENING_BALANCE = 100;

/** A mutation: set an account's balance, naming the operation that did. */
export interface BankMutation {
  /** The account's key. */
  readonly key: Uint8Array;
  /** The new balance. */
  readonly n: number;
  /** The operation (transaction id) that wrote it. */
  readonly by: string;
}

/** An account as read. */
export interface Account {
  /** Its key. */
  readonly key: Uint8Array;
  /** Its balance. */
  readonly n: number;
  /** Its versionstamp (0: never written). */
  readonly vs: number;
  /** Who wrote it ("" when never written). */
  readonly by: string;
}

/** A plain command: checks and mutations of one cluster's keys, in one entry. */
export interface PlainCommand {
  /** The command. */
  readonly type: "plain";
  /** Checks by versionstamp. */
  readonly checks: readonly TxnCheck[];
  /** Balances to set. */
  readonly mutations: readonly BankMutation[];
}

/** What a plain command answered. */
export type PlainAnswer =
  | { readonly ok: true; readonly vs: number }
  | { readonly ok: false; readonly refusal: TxnRefusal }
  | { readonly ok: false; readonly lock: TxnLockInfo };

/** An entry's versionstamp did not exceed the cluster's last: nothing applied; propose again. */
export interface StaleAnswer {
  /** Marks it. */
  readonly stale: true;
}

/** What the extension answers a proposer. */
export type BankAnswer = TxnAnswer | PlainAnswer | StaleAnswer;

/** Versionstamp units per simulated millisecond (as in docs/kv_connect.md). */
export const VS_PER_MS = 1024;

/** The log time of a versionstamp. */
export function timeOfVs(vs: number): number {
  return Math.floor(vs / VS_PER_MS);
}

const SHAPE: TxnMutationShape<BankMutation> = {
  writeKey: (m) => m.key,
  bytes: (m) => m.key.length + 16 + m.by.length,
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** JSON with byte arrays as `{"$b": binary string}`. */
function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => x instanceof Uint8Array ? { $b: keyString(x) } : x);
}

function fromJson(s: string): unknown {
  return JSON.parse(s, (_k, x) => {
    if (x !== null && typeof x === "object" && typeof x.$b === "string") {
      const out = new Uint8Array(x.$b.length);
      for (let i = 0; i < x.$b.length; i++) out[i] = x.$b.charCodeAt(i);
      return out;
    }
    return x;
  });
}

/** The data of an entry carrying `cmd` at versionstamp `at`. */
export function encodeBankEntry(
  at: number,
  cmd: TxnCommand<BankMutation> | PlainCommand,
): Uint8Array {
  const body = encoder.encode(toJson({ at, cmd }));
  const out = new Uint8Array(body.length + 1);
  out[0] = EXTENSION_TAG;
  out.set(body, 1);
  return out;
}

interface BankState {
  readonly accounts: [string, { n: number; vs: number; by: string }][];
  readonly lastVs: number;
  readonly txn: TxnParticipantState<BankMutation>;
}

/** One replica's bank: the accounts, the participant, and its own touch log. */
export class Bank implements SmExtension, TxnStore<BankMutation> {
  readonly #accounts = new Map<string, { n: number; vs: number; by: string }>();
  readonly #owns: (key: Uint8Array) => boolean;
  /** The participant. */
  readonly txn: TxnParticipant<BankMutation>;
  /** Which keys the latest entries changed (this replica's memory only). */
  readonly touched: TouchLog;
  /** The versionstamp of the last entry (or a secondary's commit) applied. */
  lastVs = 0;
  /** Entries this replica refused to apply as garbage. */
  garbage = 0;
  #index = 0;

  /** The bank of cluster `self`, from a snapshot's `state` (undefined: new) at `applied`. */
  constructor(
    self: string,
    owns: (key: Uint8Array) => boolean,
    state: unknown,
    applied: number,
  ) {
    this.#owns = owns;
    this.txn = new TxnParticipant(self, SHAPE, timeOfVs);
    this.touched = new TouchLog(applied);
    if (state !== undefined) {
      const s = fromJson(state as string) as BankState;
      for (const [k, v] of s.accounts) this.#accounts.set(k, v);
      this.lastVs = s.lastVs;
      this.txn.importState(s.txn);
    }
  }

  /** The account at `key` as this replica holds it (an owned key never written: opening). */
  account(key: Uint8Array): Account | undefined {
    const a = this.#accounts.get(keyString(key));
    if (a !== undefined) return { key, ...a };
    return this.#owns(key) ? { key, n: OPENING_BALANCE, vs: 0, by: "" } : undefined;
  }

  /** The accounts among `keys` in `range` (the keys the workload knows), in the range's order. */
  read(range: ReadRange, keys: readonly Uint8Array[]): Account[] {
    const s = keyString(range.start);
    const e = keyString(range.end);
    const out: Account[] = [];
    const sorted = keys.filter((k) => {
      const ks = keyString(k);
      return ks >= s && ks < e;
    }).sort((a, b) => keyString(a) < keyString(b) ? -1 : 1);
    if (range.reverse) sorted.reverse();
    for (const k of sorted) {
      const a = this.account(k);
      if (a === undefined) continue;
      out.push(a);
      if (out.length >= range.limit) break;
    }
    return out;
  }

  /** TxnStore: checks by versionstamp; a balance may not go below zero. */
  evaluate(
    checks: readonly TxnCheck[],
    mutations: readonly BankMutation[],
  ): TxnRefusal | undefined {
    for (let i = 0; i < checks.length; i++) {
      const a = this.account(checks[i].key);
      if (a === undefined) return { code: "invalid", mutation: -1, message: "not this cluster's" };
      if (a.vs !== checks[i].vs) return { code: "check_failed", check: i };
    }
    for (let i = 0; i < mutations.length; i++) {
      const m = mutations[i];
      if (!this.#owns(m.key)) {
        return { code: "invalid", mutation: i, message: "not this cluster's" };
      }
      if (m.n < 0) return { code: "invalid", mutation: i, message: "a negative balance" };
    }
    return undefined;
  }

  /** TxnStore: sets the balances at `vs`. */
  apply(mutations: readonly BankMutation[], vs: number): void;
  /** SmExtension: applies an entry. */
  apply(e: Entry, data: Uint8Array): BankAnswer;
  apply(a: readonly BankMutation[] | Entry, b: number | Uint8Array): BankAnswer | void {
    if (Array.isArray(a)) return this.#set(a as readonly BankMutation[], b as number);
    return this.#applyEntry(a as Entry, b as Uint8Array);
  }

  #set(mutations: readonly BankMutation[], vs: number): void {
    for (const m of mutations) this.#accounts.set(keyString(m.key), { n: m.n, vs, by: m.by });
    if (vs > this.lastVs) this.lastVs = vs;
    this.touched.record(this.#index, mutations.map((m) => m.key));
  }

  #applyEntry(e: Entry, data: Uint8Array): BankAnswer {
    this.#index = e.index;
    let parsed: { at: number; cmd: TxnCommand<BankMutation> | PlainCommand };
    try {
      parsed = fromJson(decoder.decode(data)) as typeof parsed;
    } catch {
      this.garbage++;
      return { stale: true };
    }
    const { at, cmd } = parsed;
    if (at <= this.lastVs) return { stale: true };
    this.lastVs = at;
    if (cmd.type !== "plain") return this.txn.apply(cmd, at, this);
    const lock = this.txn.blocker(cmd.mutations.map((m) => m.key), cmd.checks.map((c) => c.key));
    if (lock !== undefined) return { ok: false, lock };
    const refusal = this.evaluate(cmd.checks, cmd.mutations);
    if (refusal !== undefined) return { ok: false, refusal };
    this.#set(cmd.mutations, at);
    return { ok: true, vs: at };
  }

  /** SmExtension: the replicated state (the touch log is this replica's own). */
  encode(): unknown {
    const s: BankState = {
      accounts: [...this.#accounts],
      lastVs: this.lastVs,
      txn: this.txn.exportState(),
    };
    return toJson(s);
  }
}

/**
 * One cluster's side of cross-cluster transactions (docs/transactions.md): the locks, the
 * prepared attempts with the mutations they keep, and the outcomes, all replicated, since
 * every change here is the application of one committed log entry. Deterministic: the time it
 * goes by is the log's (the versionstamps of the entries), never a clock.
 *
 * @module
 */
import { keyBytes, keyString } from "./_keys.ts";
import type {
  TxnAbort,
  TxnAnswer,
  TxnCheck,
  TxnCommand,
  TxnCommit,
  TxnForget,
  TxnId,
  TxnLimits,
  TxnLockInfo,
  TxnOutcome,
  TxnPrepare,
  TxnRefusal,
  TxnVote,
} from "./_types.ts";
import { DEFAULT_TXN_LIMITS, TXN_FENCE_SPANS_MAX, TXN_FENCES_MAX } from "./_types.ts";

/** What the participant needs of the store it guards. */
export interface TxnStore<M> {
  /** Evaluates the checks and validates the mutations against the current state. */
  evaluate(checks: readonly TxnCheck[], mutations: readonly M[]): TxnRefusal | undefined;
  /** Applies the mutations, in order, at versionstamp `vs` (their keys were locked since the prepare). */
  apply(mutations: readonly M[], vs: number): void;
  /**
   * Whether the primary may commit the mutations at `vs` (a key made from the versionstamp
   * must be this cluster's); otherwise it decides an abort. Absent: always.
   */
  decidable?(mutations: readonly M[], vs: number): boolean;
  /**
   * The refusal of an attempt whose participants are not all clusters this one routes to (a
   * coordinator's table from before a drain), or undefined. Absent: every attempt is admitted.
   * Once a drained cluster is stopped nothing could resolve an intent whose primary it was.
   */
  admits?(participants: readonly string[]): TxnRefusal | undefined;
}

/** How the participant sees a mutation: the key it writes, if any, and its size. */
export interface TxnMutationShape<M> {
  /** The key the mutation writes, locked from the prepare on; undefined: none known before the decision. */
  writeKey(m: M): Uint8Array | undefined;
  /** Bytes it keeps while prepared (key and value). */
  bytes(m: M): number;
}

/** A prepared attempt as kept until its decision: its prepare, and the versionstamp it prepared at. */
export interface TxnIntent<M> extends Omit<TxnPrepare<M>, "type"> {
  /** The versionstamp it prepared at. */
  readonly vs: number;
}

/** An outcome remembered: committed ones until forgotten and past their deadline, others until past it. */
export interface TxnRemembered {
  /** The outcome. */
  readonly outcome: Extract<TxnOutcome, { state: "committed" | "aborted" }>;
  /** The attempt's deadline. */
  readonly deadline: number;
  /** Whether it may go once its deadline passed (an abort, a secondary's commit, a forgotten decision). */
  readonly droppable: boolean;
  /**
   * A decision kept until forgotten: the other participants, which may still hold the
   * attempt's locks (a janitor asks them, and forgets it once none does).
   */
  readonly secondaries?: readonly string[];
}

/** The whole replicated state, for snapshots. */
export interface TxnParticipantState<M> {
  /** Prepared attempts, oldest first. */
  readonly intents: readonly TxnIntent<M>[];
  /** Remembered outcomes, oldest first. */
  readonly outcomes: readonly (readonly [TxnId, TxnRemembered])[];
}

interface Lock {
  writer: TxnId | undefined;
  readers: Set<TxnId> | undefined;
}

interface Held<M> extends TxnIntent<M> {
  readonly writeKeys: readonly string[];
  readonly readKeys: readonly string[];
  readonly bytes: number;
}

/** A read fence's span as key strings (see `keyString`), for comparisons. */
interface FenceSpan {
  readonly start: string;
  readonly end: string;
}

/** Converts a versionstamp to the log time it carries (ms): the scheme of docs/kv_connect.md. */
export type LogTimeOf = (vs: number) => number;

/**
 * The transaction state of one cluster. `apply` is called with each committed transaction
 * command in log order; plain commands ask {@linkcode blocker} first and must not apply while
 * it names a lock.
 */
export class TxnParticipant<M> {
  readonly #self: string;
  readonly #shape: TxnMutationShape<M>;
  readonly #limits: TxnLimits;
  readonly #timeOf: LogTimeOf;
  readonly #locks = new Map<string, Lock>();
  readonly #intents = new Map<TxnId, Held<M>>();
  readonly #outcomes = new Map<TxnId, TxnRemembered>();
  /** Read fences held (attempts whose prepare had `spans`), by attempt. */
  readonly #fences = new Map<TxnId, readonly FenceSpan[]>();
  /** Outcomes kept until forgotten (a primary's decisions), of {@linkcode #outcomes}. */
  #decisions = 0;
  #intentBytes = 0;
  /** Droppable outcomes dropped early because the bound was reached. */
  dropped = 0;

  /** `self`: this cluster's id; `timeOf`: the log time of a versionstamp. */
  constructor(
    self: string,
    shape: TxnMutationShape<M>,
    timeOf: LogTimeOf,
    limits: TxnLimits = DEFAULT_TXN_LIMITS,
  ) {
    this.#self = self;
    this.#shape = shape;
    this.#timeOf = timeOf;
    this.#limits = limits;
  }

  /** Prepared attempts. */
  get intents(): number {
    return this.#intents.size;
  }

  /** Locked keys. */
  get lockedKeys(): number {
    return this.#locks.size;
  }

  /** The locked keys, as binary strings (see `keyString`). */
  lockedKeyStrings(): IterableIterator<string> {
    return this.#locks.keys();
  }

  /** Remembered outcomes. */
  get outcomes(): number {
    return this.#outcomes.size;
  }

  /**
   * The lock that keeps a command writing `writeKeys` and reading `readKeys` from applying now
   * (any lock on a written key, a write lock on a read one), or undefined.
   */
  blocker(
    writeKeys: Iterable<Uint8Array>,
    readKeys: Iterable<Uint8Array> = [],
  ): TxnLockInfo | undefined {
    // The fast path of every plain command.
    if (this.#locks.size === 0 && this.#fences.size === 0) return undefined;
    for (const key of writeKeys) {
      const k = keyString(key);
      const l = this.#locks.get(k);
      if (l === undefined) {
        const fence = this.#fenceOn(k);
        if (fence !== undefined) return this.#info(key, fence, false);
        continue;
      }
      const holder = l.writer ?? l.readers!.values().next().value!;
      return this.#info(key, holder, l.writer !== undefined);
    }
    for (const key of readKeys) {
      const w = this.#locks.get(keyString(key))?.writer;
      if (w !== undefined) return this.#info(key, w, true);
    }
    return undefined;
  }

  /** Read fences held. */
  get fences(): number {
    return this.#fences.size;
  }

  /** The read fence whose spans hold the key string `k`, if any. */
  #fenceOn(k: string): TxnId | undefined {
    for (const [txn, spans] of this.#fences) {
      for (const s of spans) if (k >= s.start && k < s.end) return txn;
    }
    return undefined;
  }

  /**
   * The first write lock on a key in `[start, end)` (byte order), or undefined: a read of the
   * range must wait for it (its writer may have been decided).
   */
  writeLockIn(start: Uint8Array, end: Uint8Array): TxnLockInfo | undefined {
    if (this.#locks.size === 0) return undefined;
    const s = keyString(start);
    const e = keyString(end);
    for (const [k, l] of this.#locks) {
      if (l.writer !== undefined && k >= s && k < e) {
        return this.#info(keyBytes(k), l.writer, true);
      }
    }
    return undefined;
  }

  /** The prepared attempt `txn`, if any. */
  intent(txn: TxnId): TxnIntent<M> | undefined {
    return this.#intents.get(txn);
  }

  /**
   * Decisions of this primary not forgotten whose deadline passed before `before` (log time),
   * oldest first, at most `limit`: what a janitor settles (their coordinator is gone).
   */
  unforgotten(
    before: number,
    limit: number,
  ): { txn: TxnId; vs: number; secondaries: readonly string[] }[] {
    const out: { txn: TxnId; vs: number; secondaries: readonly string[] }[] = [];
    for (const [txn, r] of this.#outcomes) {
      if (out.length >= limit) break;
      if (r.droppable || r.deadline >= before || r.outcome.state !== "committed") continue;
      out.push({ txn, vs: r.outcome.vs, secondaries: r.secondaries ?? [] });
    }
    return out;
  }

  /**
   * What keeps this cluster needed by transactions: its decisions not yet forgotten (the
   * secondaries may still hold their intents), the secondaries those decisions name (each is
   * asked whether it still holds its intent before the decision is forgotten) and the primaries
   * of the intents it holds (they resolve them). A drained cluster is stopped only once none
   * names it.
   */
  pending(): { decisions: number; primaries: string[]; secondaries: string[] } {
    let decisions = 0;
    const secondaries = new Set<string>();
    for (const r of this.#outcomes.values()) {
      if (r.droppable || r.outcome.state !== "committed") continue;
      decisions++;
      for (const s of r.secondaries ?? []) secondaries.add(s);
    }
    const primaries = new Set<string>();
    for (const i of this.#intents.values()) primaries.add(i.primary);
    return { decisions, primaries: [...primaries].sort(), secondaries: [...secondaries].sort() };
  }

  /**
   * Prepared attempts whose deadline passed before `before` (log time), at most `limit`:
   * their coordinator is gone; a janitor resolves them at their primary.
   */
  staleIntents(before: number, limit: number): { txn: TxnId; primary: string; deadline: number }[] {
    const out: { txn: TxnId; primary: string; deadline: number }[] = [];
    for (const i of this.#intents.values()) {
      if (out.length >= limit) break;
      if (i.deadline < before) out.push({ txn: i.txn, primary: i.primary, deadline: i.deadline });
    }
    return out;
  }

  /** The outcome remembered for `txn`, if any. */
  outcome(txn: TxnId): TxnRemembered | undefined {
    return this.#outcomes.get(txn);
  }

  /**
   * Applies one transaction command of the entry at versionstamp `at` (which exceeds every
   * earlier entry's), changing `store` only when a commit applies mutations.
   */
  apply(cmd: TxnPrepare<M>, at: number, store: TxnStore<M>): TxnVote;
  /** A commit, an abort or a forget answers the outcome. */
  apply(cmd: TxnCommit | TxnAbort | TxnForget, at: number, store: TxnStore<M>): TxnOutcome;
  /** Any command. */
  apply(cmd: TxnCommand<M>, at: number, store: TxnStore<M>): TxnAnswer;
  apply(cmd: TxnCommand<M>, at: number, store: TxnStore<M>): TxnAnswer {
    this.#forgetPast(this.#timeOf(at));
    switch (cmd.type) {
      case "prepare":
        return this.#prepare(cmd, at, store);
      case "commit":
        return this.#commit(cmd, at, store);
      case "abort":
        return this.#abort(cmd);
      case "forget":
        return this.#forget(cmd);
    }
  }

  #prepare(cmd: TxnPrepare<M>, at: number, store: TxnStore<M>): TxnVote {
    const done = this.#outcomes.get(cmd.txn);
    if (done !== undefined) return { vote: "no", reason: "finished" };
    const held = this.#intents.get(cmd.txn);
    if (held !== undefined) return { vote: "yes", vs: held.vs }; // a retry: the same vote
    if (this.#timeOf(at) > cmd.deadline) return { vote: "no", reason: "expired" };
    const writeKeys: string[] = [];
    const writeBytes: Uint8Array[] = [];
    let bytes = 0;
    for (const m of cmd.mutations) {
      bytes += this.#shape.bytes(m);
      const k = this.#shape.writeKey(m);
      if (k !== undefined) {
        writeKeys.push(keyString(k));
        writeBytes.push(k);
      }
    }
    const readKeys = cmd.checks.map((c) => keyString(c.key));
    const lim = this.#limits;
    const fence = cmd.spans !== undefined;
    if (
      fence && (cmd.primary !== this.#self || cmd.checks.length > 0 ||
        cmd.mutations.length > 0 || cmd.spans!.length > TXN_FENCE_SPANS_MAX)
    ) {
      // Not a fence this protocol makes: refused whole, nothing held.
      return { vote: "no", reason: "busy" };
    }
    if (
      (fence && this.#fences.size >= TXN_FENCES_MAX) ||
      this.#intents.size >= lim.intentsMax ||
      this.#locks.size + writeKeys.length + readKeys.length > lim.lockedKeysMax ||
      this.#intentBytes + bytes > lim.intentBytesMax ||
      this.#decisions >= lim.outcomesMax
    ) {
      return { vote: "no", reason: "busy" };
    }
    const lock = this.blocker(writeBytes, cmd.checks.map((c) => c.key));
    if (lock !== undefined) return { vote: "no", reason: "locked", lock };
    const refusal = store.admits?.([cmd.primary, ...cmd.participants]) ??
      store.evaluate(cmd.checks, cmd.mutations);
    if (refusal !== undefined) return { vote: "no", reason: "refused", refusal };
    const intent: Held<M> = {
      txn: cmd.txn,
      primary: cmd.primary,
      participants: cmd.participants,
      checks: cmd.checks,
      mutations: cmd.mutations,
      deadline: cmd.deadline,
      ...(cmd.spans === undefined ? {} : { spans: cmd.spans }),
      vs: at,
      writeKeys,
      readKeys,
      bytes,
    };
    this.#hold(intent);
    return { vote: "yes", vs: at };
  }

  #commit(cmd: TxnCommit, at: number, store: TxnStore<M>): TxnOutcome {
    const held = this.#intents.get(cmd.txn);
    if (held === undefined) return this.#known(cmd.txn);
    const primary = held.primary === this.#self;
    if (primary !== (cmd.after !== undefined)) {
      // A decision sent to a secondary, or an application to the primary: not this protocol's.
      return this.#known(cmd.txn);
    }
    let vs: number;
    if (primary) {
      // The decision: past the deadline only an abort may be decided (a resolver may have
      // given up on the attempt already), and the versionstamp must exceed every prepare's.
      if (this.#timeOf(at) > held.deadline || at <= cmd.after!) return this.#abortHeld(held);
      if (store.decidable?.(held.mutations, at) === false) return this.#abortHeld(held);
      vs = at;
    } else {
      if (cmd.vs === undefined || cmd.vs <= held.vs) return this.#known(cmd.txn);
      vs = cmd.vs;
    }
    store.apply(held.mutations, vs);
    this.#release(held);
    const outcome = { state: "committed", vs } as const;
    this.#remember(cmd.txn, {
      outcome,
      deadline: held.deadline,
      droppable: !primary,
      ...(primary ? { secondaries: held.participants.filter((c) => c !== this.#self) } : {}),
    });
    return outcome;
  }

  #abort(cmd: TxnAbort): TxnOutcome {
    const held = this.#intents.get(cmd.txn);
    if (held !== undefined) return this.#abortHeld(held);
    const done = this.#outcomes.get(cmd.txn);
    if (done !== undefined) return done.outcome;
    // Never prepared here (yet): remember the abort so that a late prepare is refused.
    const outcome = { state: "aborted" } as const;
    this.#remember(cmd.txn, { outcome, deadline: cmd.deadline, droppable: true });
    return outcome;
  }

  #forget(cmd: TxnForget): TxnOutcome {
    const done = this.#outcomes.get(cmd.txn);
    if (done === undefined) return this.#known(cmd.txn);
    if (!done.droppable) {
      this.#outcomes.set(cmd.txn, { ...done, droppable: true });
      this.#decisions--;
    }
    return done.outcome;
  }

  #abortHeld(held: Held<M>): TxnOutcome {
    this.#release(held);
    const outcome = { state: "aborted" } as const;
    this.#remember(held.txn, { outcome, deadline: held.deadline, droppable: true });
    return outcome;
  }

  #known(txn: TxnId): TxnOutcome {
    return this.#outcomes.get(txn)?.outcome ?? { state: "unknown" };
  }

  #hold(intent: Held<M>): void {
    this.#intents.set(intent.txn, intent);
    if (intent.spans !== undefined) {
      this.#fences.set(
        intent.txn,
        intent.spans.map((s) => ({ start: keyString(s.start), end: keyString(s.end) })),
      );
    }
    this.#intentBytes += intent.bytes;
    for (const k of intent.writeKeys) {
      const l = this.#locks.get(k);
      if (l === undefined) this.#locks.set(k, { writer: intent.txn, readers: undefined });
      else l.writer = intent.txn; // only its own read lock can be there
    }
    for (const k of intent.readKeys) {
      let l = this.#locks.get(k);
      if (l === undefined) {
        l = { writer: undefined, readers: undefined };
        this.#locks.set(k, l);
      }
      (l.readers ??= new Set()).add(intent.txn);
    }
  }

  #release(held: Held<M>): void {
    this.#intents.delete(held.txn);
    this.#fences.delete(held.txn);
    this.#intentBytes -= held.bytes;
    for (const k of [...held.writeKeys, ...held.readKeys]) {
      const l = this.#locks.get(k);
      if (l === undefined) continue;
      if (l.writer === held.txn) l.writer = undefined;
      l.readers?.delete(held.txn);
      if (l.readers?.size === 0) l.readers = undefined;
      if (l.writer === undefined && l.readers === undefined) this.#locks.delete(k);
    }
  }

  #remember(txn: TxnId, r: TxnRemembered): void {
    const old = this.#outcomes.get(txn);
    if (old !== undefined && !old.droppable) this.#decisions--;
    this.#outcomes.delete(txn); // keep insertion order = age order
    this.#outcomes.set(txn, r);
    if (!r.droppable) this.#decisions++;
    // Full: the oldest droppable outcome goes first (an abort's marker: without it a late
    // prepare locks until its deadline, and is then resolved as aborted; safe, only slower).
    // Decisions a primary must keep are never dropped; past the bound, prepares are busy.
    if (this.#outcomes.size > this.#limits.outcomesMax) {
      for (const [t, o] of this.#outcomes) {
        if (o.droppable && t !== txn) {
          this.#outcomes.delete(t);
          this.dropped++;
          break;
        }
      }
    }
  }

  /** Drops droppable outcomes whose deadline passed, oldest first, stopping at a kept one. */
  #forgetPast(now: number): void {
    for (const [txn, r] of this.#outcomes) {
      if (r.deadline >= now) return; // deadlines are roughly in insertion order
      if (r.droppable) this.#outcomes.delete(txn);
    }
  }

  #info(key: Uint8Array, txn: TxnId, write: boolean): TxnLockInfo {
    const i = this.#intents.get(txn)!;
    return { key, txn, primary: i.primary, deadline: i.deadline, write };
  }

  /** The whole state, for a snapshot. */
  exportState(): TxnParticipantState<M> {
    return {
      intents: [...this.#intents.values()].map((h) => ({
        txn: h.txn,
        primary: h.primary,
        participants: h.participants,
        checks: h.checks,
        mutations: h.mutations,
        deadline: h.deadline,
        ...(h.spans === undefined ? {} : { spans: h.spans }),
        vs: h.vs,
      })),
      outcomes: [...this.#outcomes],
    };
  }

  /** Replaces the state with a snapshot's (the locks follow from the intents). */
  importState(state: TxnParticipantState<M>): void {
    this.#locks.clear();
    this.#intents.clear();
    this.#fences.clear();
    this.#outcomes.clear();
    this.#intentBytes = 0;
    for (const i of state.intents) {
      let bytes = 0;
      const writeKeys: string[] = [];
      for (const m of i.mutations) {
        bytes += this.#shape.bytes(m);
        const k = this.#shape.writeKey(m);
        if (k !== undefined) writeKeys.push(keyString(k));
      }
      this.#hold({ ...i, writeKeys, readKeys: i.checks.map((c) => keyString(c.key)), bytes });
    }
    this.#decisions = 0;
    for (const [txn, r] of state.outcomes) {
      this.#outcomes.set(txn, r);
      if (!r.droppable) this.#decisions++;
    }
  }
}

/**
 * The coordinator of one attempt of a cross-cluster transaction (docs/transactions.md), as a
 * step machine: it says which command to send to which cluster, and is told each answer. No
 * I/O, no clock: the client library drives it over HTTP, the simulation over its network.
 *
 * Prepare everywhere, then decide at the primary, then apply the decision at the secondaries
 * and let the primary forget. The answer is known once the primary decided; the rest happens
 * after it (a reader that meets a lock not yet released waits for it or resolves it).
 *
 * @module
 */
import type { TxnAnswer, TxnCheck, TxnCommand, TxnId, TxnLockInfo, TxnRefusal } from "./_types.ts";

/** One participant's share: its checks and mutations, in the transaction's order. */
export interface TxnShare<M> {
  /** Checks on its keys, each with its position among the transaction's checks. */
  readonly checks: readonly (TxnCheck & { readonly index: number })[];
  /** Mutations of its keys, each with its position among the transaction's mutations. */
  readonly mutations: readonly { readonly mutation: M; readonly index: number }[];
}

/** A command to send: propose `cmd` at cluster `to` and report the answer (or the failure). */
export interface TxnSend<M> {
  /** The cluster. */
  readonly to: string;
  /** The command. */
  readonly cmd: TxnCommand<M>;
}

/** How an attempt ended, for the caller. */
export type TxnAttemptResult =
  | {
    /** Committed everywhere it matters: the decision is in the primary's log. */
    readonly kind: "committed";
    /** The transaction's versionstamp. */
    readonly vs: number;
  }
  | {
    /** A check failed: nothing applied. */
    readonly kind: "check_failed";
    /** Which check, as a position among the transaction's checks. */
    readonly check: number;
  }
  | {
    /** A mutation cannot apply: nothing applied. */
    readonly kind: "invalid";
    /** Which mutation, as a position among the transaction's (-1: none in particular). */
    readonly mutation: number;
    /** What was wrong. */
    readonly message: string;
    /** The cluster that said so. */
    readonly cluster: string;
  }
  | {
    /**
     * A participant refused for a reason of its own: a key not its own (`wrong_shard`: route
     * again), or a store that would grow past its limit (`storage_full`). Nothing applied.
     */
    readonly kind: "refused";
    /** What it said. */
    readonly refusal: Extract<TxnRefusal, { code: "wrong_shard" | "storage_full" }>;
    /** The cluster that said so. */
    readonly cluster: string;
  }
  | {
    /** Another attempt holds a lock: nothing applied; wait or resolve it, then try again. */
    readonly kind: "locked";
    /** The lock and the cluster where it is. */
    readonly lock: TxnLockInfo;
    /** The cluster holding it. */
    readonly cluster: string;
  }
  | {
    /**
     * Nothing applied, and trying again may do: the deadline passed, a participant was busy,
     * or a resolver aborted the attempt before it was decided.
     */
    readonly kind: "retry";
    /** Why. */
    readonly reason: "expired" | "busy" | "aborted";
  }
  | {
    /** The primary could not be asked for the decision in time: it may have committed. */
    readonly kind: "unknown";
  };

type Phase = "prepare" | "decide" | "apply" | "abort" | "done";

/** One attempt: `start`, then `onAnswer` for each answer, until `finished`. */
export class TxnAttempt<M> {
  readonly #txn: TxnId;
  readonly #primary: string;
  readonly #deadline: number;
  readonly #shares: ReadonlyMap<string, TxnShare<M>>;
  #phase: Phase = "prepare";
  #waiting = new Set<string>();
  #maxPrepared = 0;
  #result: TxnAttemptResult | undefined;
  #vs = 0;
  /** A secondary did not confirm the decision: the primary must keep the record for resolvers. */
  #unconfirmed = false;

  /**
   * `shares`: cluster -> its share (at least two clusters: one is a plain command);
   * `primary`: one of them; `deadline`: log time (ms) after which no participant prepares and
   * the primary decides only an abort.
   */
  constructor(
    txn: TxnId,
    shares: ReadonlyMap<string, TxnShare<M>>,
    primary: string,
    deadline: number,
  ) {
    if (!shares.has(primary)) throw new RangeError(`the primary ${primary} is no participant`);
    this.#txn = txn;
    this.#shares = shares;
    this.#primary = primary;
    this.#deadline = deadline;
  }

  /** The attempt's id. */
  get txn(): TxnId {
    return this.#txn;
  }

  /** The answer for the caller, once known (before `finished`: the rest is clean-up). */
  get result(): TxnAttemptResult | undefined {
    return this.#result;
  }

  /** Whether nothing is left to send. */
  get finished(): boolean {
    return this.#phase === "done";
  }

  /** The clusters still to answer the current phase. */
  get waitingFor(): ReadonlySet<string> {
    return this.#waiting;
  }

  /** The prepares, one per participant. */
  start(): TxnSend<M>[] {
    const participants = [...this.#shares.keys()];
    const out: TxnSend<M>[] = [];
    for (const [to, share] of this.#shares) {
      out.push({
        to,
        cmd: {
          type: "prepare",
          txn: this.#txn,
          primary: this.#primary,
          participants,
          checks: share.checks.map(({ key, vs }) => ({ key, vs })),
          mutations: share.mutations.map((m) => m.mutation),
          deadline: this.#deadline,
        },
      });
    }
    this.#waiting = new Set(participants);
    return out;
  }

  /**
   * What to resend after a command to `from` failed without an answer (a timeout, a lost
   * connection): the same command (every one of them applies at most once). `gaveUp`: the
   * caller will not retry (past the deadline): the attempt ends as it must.
   */
  onFailure(from: string, cmd: TxnCommand<M>, gaveUp: boolean): TxnSend<M>[] {
    if (!this.#waiting.has(from) || !this.#matches(cmd)) return [];
    if (!gaveUp) return [{ to: from, cmd }];
    switch (this.#phase) {
      case "prepare":
        return this.#abortAll({ kind: "retry", reason: "expired" });
      case "decide":
        // The decision may be in the primary's log: say so, and leave the locks to resolvers.
        this.#result = { kind: "unknown" };
        this.#phase = "done";
        this.#waiting.clear();
        return [];
      default:
        // A resolver finishes what this attempt could not, and needs the primary's record.
        if (this.#phase === "apply") this.#unconfirmed = true;
        this.#waiting.delete(from);
        return this.#next();
    }
  }

  /**
   * `from` refused `cmd` as malformed (a 4xx, not a vote): before the decision the attempt
   * ends as invalid with `message`; later, as {@linkcode onFailure} after giving up.
   */
  onRejected(from: string, cmd: TxnCommand<M>, message: string): TxnSend<M>[] {
    if (!this.#waiting.has(from) || !this.#matches(cmd)) return [];
    if (this.#phase === "prepare") {
      return this.#abortAll({ kind: "invalid", mutation: -1, message, cluster: from });
    }
    return this.onFailure(from, cmd, true);
  }

  /** Takes the answer of `from` to `cmd`; returns what to send next. */
  onAnswer(from: string, cmd: TxnCommand<M>, answer: TxnAnswer): TxnSend<M>[] {
    if (!this.#waiting.has(from) || !this.#matches(cmd)) return []; // late or duplicate
    switch (this.#phase) {
      case "prepare":
        return this.#onVote(from, answer);
      case "decide":
        return this.#onDecision(answer);
      case "apply":
        if (!("state" in answer) || answer.state !== "committed") this.#unconfirmed = true;
        this.#waiting.delete(from);
        return this.#next();
      case "abort":
        this.#waiting.delete(from);
        return this.#next();
      case "done":
        return [];
    }
  }

  #matches(cmd: TxnCommand<M>): boolean {
    if (cmd.txn !== this.#txn) return false;
    switch (this.#phase) {
      case "prepare":
        return cmd.type === "prepare";
      case "decide":
        return cmd.type === "commit" && cmd.after !== undefined;
      case "apply":
        return cmd.type === "commit" && cmd.vs !== undefined;
      case "abort":
        return cmd.type === "abort";
      case "done":
        return false;
    }
  }

  #onVote(from: string, answer: TxnAnswer): TxnSend<M>[] {
    if (!("vote" in answer)) return []; // not an answer to a prepare
    if (answer.vote === "yes") {
      this.#waiting.delete(from);
      if (answer.vs > this.#maxPrepared) this.#maxPrepared = answer.vs;
      if (this.#waiting.size > 0) return [];
      this.#phase = "decide";
      this.#waiting = new Set([this.#primary]);
      return [{
        to: this.#primary,
        cmd: { type: "commit", txn: this.#txn, after: this.#maxPrepared },
      }];
    }
    switch (answer.reason) {
      case "locked":
        return this.#abortAll({ kind: "locked", lock: answer.lock, cluster: from });
      case "refused":
        return this.#abortAll(this.#refused(from, answer.refusal));
      case "finished": // this attempt was aborted by a resolver
        return this.#abortAll({ kind: "retry", reason: "aborted" });
      default:
        return this.#abortAll({ kind: "retry", reason: answer.reason });
    }
  }

  #refused(from: string, r: TxnRefusal): TxnAttemptResult {
    const share = this.#shares.get(from)!;
    if (r.code === "check_failed") {
      return { kind: "check_failed", check: share.checks[r.check]?.index ?? -1 };
    }
    if (r.code !== "invalid") return { kind: "refused", refusal: r, cluster: from };
    const index = r.mutation < 0 ? -1 : share.mutations[r.mutation]?.index ?? -1;
    return { kind: "invalid", mutation: index, message: r.message, cluster: from };
  }

  #onDecision(answer: TxnAnswer): TxnSend<M>[] {
    if (!("state" in answer)) return [];
    if (answer.state !== "committed") {
      // Aborted (by a resolver, or past the deadline) or unknown (aborted and forgotten).
      return this.#abortAll({ kind: "retry", reason: "aborted" });
    }
    this.#vs = answer.vs;
    this.#result = { kind: "committed", vs: answer.vs };
    this.#phase = "apply";
    const secondaries = [...this.#shares.keys()].filter((c) => c !== this.#primary);
    this.#waiting = new Set(secondaries);
    return secondaries.map((to) => ({
      to,
      cmd: { type: "commit", txn: this.#txn, vs: answer.vs },
    }));
  }

  /** Ends with `result`: aborts at every participant (a prepare may still be on its way). */
  #abortAll(result: TxnAttemptResult): TxnSend<M>[] {
    this.#result = result;
    this.#phase = "abort";
    this.#waiting = new Set(this.#shares.keys());
    return [...this.#shares.keys()].map((to) => ({
      to,
      cmd: { type: "abort", txn: this.#txn, deadline: this.#deadline },
    }));
  }

  #next(): TxnSend<M>[] {
    if (this.#waiting.size > 0) return [];
    if (this.#phase === "apply") {
      this.#phase = "done";
      // Only once every secondary applied the decision: a forgotten record past its deadline
      // goes, and a resolver that then asks the primary hears "aborted". Fire and forget: a
      // lost forget keeps the record, which costs memory, not safety.
      if (this.#unconfirmed) return [];
      return [{ to: this.#primary, cmd: { type: "forget", txn: this.#txn } }];
    }
    this.#phase = "done";
    return [];
  }

  /** The decided versionstamp (0 until committed). */
  get vs(): number {
    return this.#vs;
  }
}

/**
 * The resolution of a lock whose attempt's deadline passed (its coordinator gone, or slow):
 * ask its primary to decide abort unless it committed, then apply that outcome where the lock
 * is. Safe at any time (the primary's log orders it against the coordinator's decision);
 * done only past the deadline so that a live attempt is not aborted.
 */
export class TxnResolution<M> {
  readonly #lock: TxnLockInfo;
  readonly #at: string;
  #outcome: "committed" | "aborted" | undefined;
  #done = false;

  /** `at`: the cluster where the lock was met. */
  constructor(lock: TxnLockInfo, at: string) {
    this.#lock = lock;
    this.#at = at;
  }

  /** Whether nothing is left to send. */
  get finished(): boolean {
    return this.#done;
  }

  /** The outcome the primary gave, once it did. */
  get outcome(): "committed" | "aborted" | undefined {
    return this.#outcome;
  }

  /** The question to the primary. */
  start(): TxnSend<M>[] {
    const { txn, deadline, primary } = this.#lock;
    return [{ to: primary, cmd: { type: "abort", txn, deadline } }];
  }

  /** Takes an answer; returns what to send next. */
  onAnswer(from: string, cmd: TxnCommand<M>, answer: TxnAnswer): TxnSend<M>[] {
    if (this.#done || cmd.txn !== this.#lock.txn || !("state" in answer)) return [];
    const { txn, deadline, primary } = this.#lock;
    if (from === primary && this.#outcome === undefined && cmd.type === "abort") {
      this.#outcome = answer.state === "committed" ? "committed" : "aborted";
      if (this.#at === primary) {
        this.#done = true; // the abort itself released it, or the commit had
        return [];
      }
      return [{
        to: this.#at,
        cmd: answer.state === "committed"
          ? { type: "commit", txn, vs: answer.vs }
          : { type: "abort", txn, deadline },
      }];
    }
    if (from === this.#at && this.#outcome !== undefined) this.#done = true;
    return [];
  }
}

/**
 * The messages of koi's cross-cluster transactions (docs/transactions.md): what a coordinator
 * asks a participant cluster's log to apply, and what applying answered. Generic in the
 * mutation type `M`, which the participant never interprets: the node's state machine and the
 * simulation each bring their own.
 *
 * @module
 */

/** Identifies one attempt of a transaction: at most {@linkcode TXN_ID_BYTES_MAX} characters. */
export type TxnId = string;

/** The longest transaction id, in characters. */
export const TXN_ID_BYTES_MAX = 64;

/** A condition on one key, held from the prepare to the decision: its versionstamp (0: absent). */
export interface TxnCheck {
  /** The key. */
  readonly key: Uint8Array;
  /** The versionstamp the key must have, or 0 for "absent". */
  readonly vs: number;
}

/**
 * Phase one at one participant: lock the keys, evaluate the checks and validate the mutations
 * now, and keep the mutations until the decision. At the primary it also starts the
 * transaction's record, which the decision ends.
 */
export interface TxnPrepare<M> {
  /** The command. */
  readonly type: "prepare";
  /** The attempt. */
  readonly txn: TxnId;
  /** The cluster whose log decides (holds the transaction record). */
  readonly primary: string;
  /** Every participant cluster, the primary included (a resolver needs them). */
  readonly participants: readonly string[];
  /** The checks on this cluster's keys. */
  readonly checks: readonly TxnCheck[];
  /** The mutations of this cluster's keys, in the transaction's order. */
  readonly mutations: readonly M[];
  /**
   * Log time (ms, from the entries' versionstamps) after which this attempt can neither prepare
   * nor commit: from then on a resolver may abort it.
   */
  readonly deadline: number;
  /**
   * A read fence (a snapshot read that kept seeing changes: docs/transactions.md): key ranges
   * `[start, end)` read-locked while the attempt is held. No other attempt may write-lock, and no
   * plain command write, a key in them until it is aborted or past its deadline. A fence has no
   * checks nor mutations and is its own primary; it never commits.
   */
  readonly spans?: readonly TxnSpan[];
}

/** A key range `[start, end)` (byte order). */
export interface TxnSpan {
  /** First key (inclusive). */
  readonly start: Uint8Array;
  /** End (exclusive). */
  readonly end: Uint8Array;
}

/** Read fences held at once per cluster, at most (a prepare beyond is answered busy). */
export const TXN_FENCES_MAX = 64;
/** Spans of one read fence, at most. */
export const TXN_FENCE_SPANS_MAX = 64;

/**
 * The decision at the primary (`after` given: commit unless aborted, at a versionstamp above
 * `after`), or its application at a secondary (`vs` given: the decided versionstamp).
 */
export interface TxnCommit {
  /** The command. */
  readonly type: "commit";
  /** The attempt. */
  readonly txn: TxnId;
  /** At the primary: the greatest versionstamp any participant prepared at. */
  readonly after?: number;
  /** At a secondary: the versionstamp the primary decided. */
  readonly vs?: number;
}

/**
 * At the primary: decide abort unless already committed (what a resolver asks, answered with
 * the decision). At a secondary: release the locks (only after the primary decided abort).
 */
export interface TxnAbort {
  /** The command. */
  readonly type: "abort";
  /** The attempt. */
  readonly txn: TxnId;
  /** The attempt's deadline (kept with the outcome so that a late prepare is refused). */
  readonly deadline: number;
}

/** At the primary: every secondary applied the outcome; the record may go once its deadline passed. */
export interface TxnForget {
  /** The command. */
  readonly type: "forget";
  /** The attempt. */
  readonly txn: TxnId;
}

/** A command of the transaction protocol, carried in one Raft entry of a participant. */
export type TxnCommand<M> = TxnPrepare<M> | TxnCommit | TxnAbort | TxnForget;

/** A lock that stands in the way: who holds it and until when it may not be resolved. */
export interface TxnLockInfo {
  /** The locked key. */
  readonly key: Uint8Array;
  /** The attempt that holds it. */
  readonly txn: TxnId;
  /** That attempt's primary. */
  readonly primary: string;
  /** That attempt's deadline: once passed (log time), a resolver may abort it at its primary. */
  readonly deadline: number;
  /** Whether the holder writes the key (a read lock blocks only writers). */
  readonly write: boolean;
}

/** Why a participant's store refused a prepare (it evaluated the checks and mutations). */
export type TxnRefusal =
  | {
    /** A check did not hold. */
    readonly code: "check_failed";
    /** Which check (position in the prepare's `checks`). */
    readonly check: number;
  }
  | {
    /** A key is not this cluster's (any more): route by the owner's table, then try again. */
    readonly code: "wrong_shard";
    /** The cluster that owns it, as this one knows. */
    readonly owner: string;
    /** The routing epoch to route by. */
    readonly epoch: number;
  }
  | {
    /** Applying would make the store larger than its byte limit. */
    readonly code: "storage_full";
    /** The limit, in bytes. */
    readonly bytesMax: number;
  }
  | {
    /** A mutation cannot apply (a sum on a value that is not a u64...). */
    readonly code: "invalid";
    /** Which mutation (position in the prepare's `mutations`), -1 for none in particular. */
    readonly mutation: number;
    /** What was wrong, for the client. */
    readonly message: string;
  };

/** What a prepare answered. */
export type TxnVote =
  | {
    /** Prepared: locked, checked, kept. Applying the same prepare again answers the same. */
    readonly vote: "yes";
    /** The versionstamp of the prepare's entry: the decision's must exceed it. */
    readonly vs: number;
  }
  | {
    /** Not prepared; nothing changed. */
    readonly vote: "no";
    /** Why. */
    readonly reason: "expired" | "busy" | "finished";
  }
  | {
    /** Not prepared: another attempt holds a lock on one of the keys. */
    readonly vote: "no";
    /** Why. */
    readonly reason: "locked";
    /** The lock. */
    readonly lock: TxnLockInfo;
  }
  | {
    /** Not prepared: the store refused. */
    readonly vote: "no";
    /** Why. */
    readonly reason: "refused";
    /** What it said. */
    readonly refusal: TxnRefusal;
  };

/** What a commit, an abort or a forget answered: the attempt's outcome as this cluster knows it. */
export type TxnOutcome =
  | {
    /** Committed at `vs` (the decision, or its application here). */
    readonly state: "committed";
    /** The transaction's versionstamp. */
    readonly vs: number;
  }
  | {
    /** Aborted: none of its mutations applied anywhere. */
    readonly state: "aborted";
  }
  | {
    /** This cluster knows nothing of the attempt (never prepared here, or forgotten). */
    readonly state: "unknown";
  };

/** What applying a transaction command answered. */
export type TxnAnswer = TxnVote | TxnOutcome;

/** Limits of one participant's transaction state: prepares beyond them answer `busy`. */
export interface TxnLimits {
  /** Prepared attempts at once. */
  readonly intentsMax: number;
  /** Locked keys at once. */
  readonly lockedKeysMax: number;
  /** Bytes of kept mutations (keys and values) at once. */
  readonly intentBytesMax: number;
  /** Outcomes remembered at once (each until its deadline passed, committed ones until forgotten). */
  readonly outcomesMax: number;
}

/** The limits a node uses. */
export const DEFAULT_TXN_LIMITS: TxnLimits = {
  intentsMax: 10_000,
  lockedKeysMax: 100_000,
  intentBytesMax: 64 * 1024 * 1024,
  outcomesMax: 200_000,
};

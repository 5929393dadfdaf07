/**
 * A node's side of cross-cluster transactions (docs/transactions.md): proposing transaction
 * commands with the versionstamps their leader picks, serving the two rounds of a snapshot
 * read, and waiting, bounded, for a lock to go before a plain write or read goes on.
 *
 * @module
 */
import {
  encodeTxnEntry,
  type KvMutation,
  type KvResult,
  type KvStateMachine,
  suffixedKey,
  type TxnEntry,
} from "../storage/mod.ts";
import {
  type KeySpan,
  type ReadRange,
  serveSnapshotCheck,
  serveSnapshotRead,
  type SnapshotCheck,
  type SnapshotPart,
  type TxnAnswer,
  type TxnCommand,
  type TxnLockInfo,
} from "../txn/mod.ts";
import { BadRequestError, LockedError, RequestTimeoutError } from "./errors.ts";
import type { RangeEntry } from "./service.ts";
import {
  STAMP_ATTEMPTS_MAX,
  STAMP_TRIES_MAX,
  type VersionstampClock,
} from "./_versionstamp_clock.ts";

/**
 * How long after its deadline a decision not forgotten is handed to a janitor: its coordinator
 * had that long to apply it everywhere and forget it itself.
 */
export const JANITOR_GRACE_MS = 5_000;

/** How far ahead of the node's clock a transaction's deadline may be, in ms. */
export const TXN_DEADLINE_AHEAD_MS_MAX = 60_000;

/** How long a plain write or a read waits for a transaction's lock before answering locked. */
export const LOCK_WAIT_MS = 2_000;

/** What a janitor settles at a cluster (docs/transactions.md, "The janitor"). */
export interface TxnRecords {
  /** This primary's decisions not forgotten, past their deadline. */
  readonly decisions: readonly { txn: string; vs: number; secondaries: readonly string[] }[];
  /** Attempts prepared here whose deadline passed: their coordinator is gone. */
  readonly stale: readonly { txn: string; primary: string; deadline: number }[];
  /**
   * All its decisions not forgotten, the secondaries they name, and the primaries of every
   * intent it holds (a drain's).
   */
  readonly pending: {
    readonly decisions: number;
    readonly primaries: readonly string[];
    readonly secondaries: readonly string[];
  };
}

/** What the transaction side needs of the driver. */
export interface TxnHost {
  /** The state machine now (it is replaced when a snapshot is installed). */
  sm(): KvStateMachine;
  /** The leader's versionstamp clock. */
  readonly clock: VersionstampClock;
  /** Proposes an entry and resolves with what applying it answered (leader only). */
  propose(data: Uint8Array, what: string): Promise<unknown>;
  /** A linearizable read barrier. */
  readBarrier(): Promise<void>;
  /** Resolves once `until()` holds after an apply; rejects with a timeout after `timeoutMs`. */
  waitApplied(until: () => boolean, what: string, timeoutMs: number): Promise<void>;
  /** Whether a key is this cluster's own user key (not koi's, not another cluster's). */
  keeps(key: Uint8Array): boolean;
}

/** The node's transaction operations. */
export class TxnService {
  readonly #host: TxnHost;
  /** Transaction commands applied, and plain operations that waited for a lock. */
  readonly counters = { commands: 0, lockWaits: 0, lockedAnswers: 0 };

  /** Serves for `host`. */
  constructor(host: TxnHost) {
    this.#host = host;
  }

  /** Proposes `cmd` with a versionstamp above the cluster's last (and `after`, for a decision). */
  async command(cmd: TxnCommand<KvMutation>): Promise<TxnAnswer> {
    this.#checkTimes(cmd);
    const after = cmd.type === "commit" ? cmd.after : undefined;
    for (let attempt = 1;; attempt++) {
      const entry: TxnEntry = { at: this.#stamp(cmd, after), cmd };
      const answer = await this.#host.propose(encodeTxnEntry(entry), "The transaction command");
      const stale = answer as KvResult;
      if (stale !== undefined && "ok" in stale && !stale.ok) {
        if (stale.code === "stale_versionstamp" && attempt < STAMP_ATTEMPTS_MAX) continue;
        throw new RequestTimeoutError(`The transaction command was not applied: ${stale.code}`);
      }
      this.counters.commands++;
      return answer as TxnAnswer;
    }
  }

  /**
   * Refuses times no coordinator of koi sends: a deadline further ahead than
   * {@linkcode TXN_DEADLINE_AHEAD_MS_MAX} (it would hold locks that no one may resolve until
   * then), and a versionstamp to apply or to exceed further ahead of the clock than a caller's
   * floor may be (it would push the cluster's versionstamps to their end).
   */
  #checkTimes(cmd: TxnCommand<KvMutation>): void {
    if (cmd.type === "prepare" || cmd.type === "abort") {
      if (cmd.deadline > Date.now() + TXN_DEADLINE_AHEAD_MS_MAX) {
        throw new BadRequestError(
          `A transaction's deadline may be at most ${TXN_DEADLINE_AHEAD_MS_MAX} ms ahead`,
        );
      }
    }
    if (cmd.type === "commit") {
      const stamp = cmd.after ?? cmd.vs ?? 0;
      if (!this.#host.clock.acceptsAfter(stamp)) {
        throw new BadRequestError(`The versionstamp ${stamp} is too far ahead of the clock`);
      }
    }
  }

  /**
   * The entry's versionstamp: the clock's next above `after`; for a decision whose share has
   * versionstamped keys, the first one whose final keys this cluster owns (about one in n
   * with n clusters).
   */
  #stamp(cmd: TxnCommand<KvMutation>, after: number | undefined): number {
    const clock = this.#host.clock;
    let at = clock.next(after);
    if (cmd.type !== "commit" || after === undefined) return at;
    const intent = this.#host.sm().txn?.intent(cmd.txn);
    const prefixes = intent?.mutations.filter((m) => m.type === "set_vs").map((m) => m.key) ?? [];
    for (let tries = 1; prefixes.some((p) => !this.#host.keeps(suffixedKey(p, at))); tries++) {
      if (tries >= STAMP_TRIES_MAX) {
        throw new RequestTimeoutError(
          `No versionstamp of ${tries} tried gives the transaction's keys to this cluster`,
        );
      }
      at = clock.next(at);
    }
    return at;
  }

  /**
   * This cluster's decisions not forgotten, and the attempts prepared here, whose deadline
   * passed {@linkcode JANITOR_GRACE_MS} ago, at most `limit` of each (linearizable).
   */
  async records(limit: number): Promise<TxnRecords> {
    await this.#host.readBarrier();
    const t = this.#participant(this.#host.sm());
    const before = Date.now() - JANITOR_GRACE_MS;
    return {
      decisions: t.unforgotten(before, limit),
      stale: t.staleIntents(before, limit),
      pending: t.pending(),
    };
  }

  /** Per attempt, whether this cluster still holds its intent (linearizable). */
  async held(txns: readonly string[]): Promise<boolean[]> {
    await this.#host.readBarrier();
    const t = this.#participant(this.#host.sm());
    return txns.map((txn) => t.intent(txn) !== undefined);
  }

  /** The first round of a snapshot read: the ranges at one applied index, or a lock. */
  async part(ranges: readonly ReadRange[]): Promise<SnapshotPart<RangeEntry>> {
    await this.#host.readBarrier();
    const sm = this.#host.sm();
    return serveSnapshotRead(
      ranges,
      sm.applied,
      this.#participant(sm),
      (r) => sm.range({ ...r, keep: (k) => this.#host.keeps(k) }),
    );
  }

  /** The second round: nothing in `spans` changed after `since`, nor is write-locked. */
  async check(spans: readonly KeySpan[], since: number): Promise<SnapshotCheck> {
    await this.#host.readBarrier();
    const sm = this.#host.sm();
    return serveSnapshotCheck(spans, since, this.#participant(sm), sm.touched);
  }

  /**
   * Waits until no lock stands in the way of writing `writeKeys` and reading `readKeys`;
   * throws {@linkcode LockedError} after {@linkcode LOCK_WAIT_MS}.
   */
  async untilUnlocked(
    writeKeys: readonly Uint8Array[],
    readKeys: readonly Uint8Array[],
  ): Promise<void> {
    await this.#until(() => this.#host.sm().txn?.blocker(writeKeys, readKeys));
  }

  /** Waits until no write lock stands on a key of the ranges (a read's). */
  async untilReadable(ranges: readonly KeySpan[]): Promise<void> {
    await this.#until(() => {
      const t = this.#host.sm().txn;
      if (t === undefined || t.lockedKeys === 0) return undefined;
      for (const r of ranges) {
        const lock = t.writeLockIn(r.start, r.end);
        if (lock !== undefined) return lock;
      }
      return undefined;
    });
  }

  async #until(blocker: () => TxnLockInfo | undefined): Promise<void> {
    let lock = blocker();
    if (lock === undefined) return;
    this.counters.lockWaits++;
    try {
      await this.#host.waitApplied(() => (lock = blocker()) === undefined, "A lock", LOCK_WAIT_MS);
    } catch (e) {
      if (!(e instanceof RequestTimeoutError) || lock === undefined) throw e;
      this.counters.lockedAnswers++;
      throw new LockedError(
        `A key is locked by transaction ${lock.txn} (primary cluster ${lock.primary}), ` +
          `which did not finish in ${LOCK_WAIT_MS} ms: retry`,
        lock,
      );
    }
  }

  #participant(sm: KvStateMachine) {
    const t = sm.txn;
    if (t === undefined) throw new Error("this node's store knows no cluster id");
    return t;
  }
}

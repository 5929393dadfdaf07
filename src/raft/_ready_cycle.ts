/**
 * The ready()/advance() cycle: assembling each {@linkcode Ready} from the log, the outbox and
 * the node's state, remembering what it handed out until the driver acknowledges it, and so
 * knowing which hard state is on disk.
 *
 * @module
 */
import { assert } from "./_errors.ts";
import type { RaftLimits } from "./_options.ts";
import type { RaftLog } from "./_raft_log.ts";
import type { Applicable, Outbox, Ready } from "./_ready.ts";
import type { Entry, HardState, ReadState, SoftState } from "./_types.ts";

/** {@linkcode ReadyCycle.takeApplicable} when there is nothing (shared, never mutated). */
const NOTHING_TO_APPLY: Applicable = Object.freeze({
  committedEntries: Object.freeze([]) as readonly Entry[],
  readStates: Object.freeze([]) as readonly ReadState[],
});

/** What the last Ready handed out, to be acknowledged by advance(). */
interface HandedOut {
  readonly hardState: HardState;
  readonly lastEntry: { index: number; term: number } | undefined;
  readonly snapshotIndex: number | undefined;
}

/**
 * One node's Ready bookkeeping. At most one Ready is out at a time: the next one can only say
 * what is new once the driver acknowledged what the last one asked for.
 */
export class ReadyCycle {
  readonly #log: RaftLog;
  readonly #outbox: Outbox;
  readonly #limits: RaftLimits;
  #readStates: ReadState[] = [];
  /** What the last Ready reported, so that the next one carries only changes. */
  #prevHard: HardState;
  #prevSoft: SoftState;
  #durableHard: HardState;
  #handedOut: HandedOut | undefined;
  /** Whether the node leads now: see {@linkcode ReadyCycle.applyLimit}. */
  readonly #leading: () => boolean;

  /**
   * Starts the cycle of a node whose state on disk is `hard` and whose role is `soft`;
   * `leading` says whether the node leads now.
   */
  constructor(
    log: RaftLog,
    outbox: Outbox,
    limits: RaftLimits,
    hard: HardState,
    soft: SoftState,
    leading: () => boolean,
  ) {
    this.#log = log;
    this.#outbox = outbox;
    this.#limits = limits;
    this.#leading = leading;
    this.#prevHard = hard;
    this.#durableHard = hard;
    this.#prevSoft = soft;
  }

  /** Whether a Ready is out and not acknowledged yet. */
  get handedOut(): boolean {
    return this.#handedOut !== undefined;
  }

  /** The hard state on disk: a candidate counts its own vote only once it is durable. */
  get durableHardState(): HardState {
    return this.#durableHard;
  }

  /** Queues the answer to a read for the next Ready. */
  addReadState(read: ReadState): void {
    this.#readStates.push(read);
  }

  /**
   * Whether {@linkcode take} has something to hand out, given the node's state now and
   * whether a leader has broadcasts to flush.
   */
  hasReady(broadcastPending: boolean, hard: HardState, soft: SoftState): boolean {
    if (this.#handedOut !== undefined) return false;
    const log = this.#log;
    return this.#outbox.hasMessages(log.lastIndex()) || broadcastPending ||
      this.#readStates.length > 0 ||
      log.hasUnstableEntries() || log.hasPendingSnapshot() || this.#hasApplicableEntries() ||
      !sameHardState(hard, this.#prevHard) || !sameSoftState(soft, this.#prevSoft);
  }

  /** Hands out the next Ready, given the node's state now (broadcasts already flushed). */
  take(soft: SoftState, state: HardState): Ready {
    const log = this.#log;
    const entries = log.unstableEntries(this.#limits.persistBytesMax);
    const snapshot = log.unstableSnapshot();
    // What is on disk once this Ready is persisted. It may be only a prefix of the unstable
    // entries: the commit index on disk, the entries to apply and the acknowledgements never
    // pass it; the rest goes out with a later Ready.
    const durableLast = entries.at(-1)?.index ?? snapshot?.meta.index ?? log.stableLastIndex();
    const hard = { ...state, commit: Math.min(log.committed, durableLast) };
    const committedEntries = this.#takeCommitted();
    const rd: Ready = {
      ...(sameSoftState(soft, this.#prevSoft) ? {} : { softState: soft }),
      ...(sameHardState(hard, this.#prevHard) ? {} : { hardState: hard }),
      entries,
      ...(snapshot === undefined ? {} : { snapshot }),
      messages: this.#outbox.takeNow(),
      messagesAfterPersist: this.#outbox.takeAfterPersist(durableLast),
      committedEntries,
      readStates: this.#readStates,
    };
    this.#readStates = [];
    this.#prevHard = hard;
    this.#prevSoft = soft;
    const last = entries.at(-1);
    this.#handedOut = {
      hardState: hard,
      lastEntry: last === undefined ? undefined : { index: last.index, term: last.term },
      snapshotIndex: snapshot?.meta.index,
    };
    return rd;
  }

  /**
   * Hands out, at any time (also while a Ready is being persisted), what needs no persist of
   * its own: committed entries up to {@linkcode applyLimit}, and read answers. The driver
   * applies them at once; the next Ready carries only what comes after.
   */
  takeApplicable(): Applicable {
    // Called after every step on the node's hot path: nothing to hand out allocates nothing.
    if (this.#readStates.length === 0 && !this.#hasApplicableEntries()) return NOTHING_TO_APPLY;
    const readStates = this.#readStates;
    this.#readStates = [];
    return { committedEntries: this.#takeCommitted(), readStates };
  }

  /**
   * The last index the application may be handed. A leader applies every committed entry,
   * durable on its own disk or not (Raft dissertation §10.2.1): it counts itself in the
   * commit quorum only once its write is done, so an entry committed before that is durable on
   * a majority of the others, and the leader's own fsync stall does not hold its answers back.
   * A follower applies only what is durable here: it acknowledges only that, so nothing more is
   * committed that it holds, and waiting costs it nothing.
   */
  applyLimit(): number {
    const log = this.#log;
    return this.#leading() ? log.committed : log.stableLastIndex();
  }

  /** Whether committed entries the application may take wait to be handed out. */
  #hasApplicableEntries(): boolean {
    const log = this.#log;
    return log.hasNextCommittedEntries() && log.applied < this.applyLimit();
  }

  /**
   * Committed entries up to {@linkcode applyLimit}, marked handed out: they are applied in
   * the order they are handed out, whichever of ready() and takeApplicable() hands them.
   */
  #takeCommitted(): Entry[] {
    const log = this.#log;
    const entries = log.nextCommittedEntries(this.#limits.applyBytesMax, this.applyLimit());
    const last = entries.at(-1);
    if (last !== undefined) log.appliedTo(last.index);
    return entries;
  }

  /** The last Ready was persisted and applied: its hard state, entries and snapshot are
   * durable, its snapshot installed and its committed entries applied. */
  acknowledge(): void {
    const handed = this.#handedOut;
    assert(handed !== undefined, "advance() without ready()");
    this.#handedOut = undefined;
    this.#durableHard = handed.hardState;
    const log = this.#log;
    if (handed.snapshotIndex !== undefined) {
      log.stableSnapTo(handed.snapshotIndex);
      log.appliedTo(handed.snapshotIndex);
    }
    if (handed.lastEntry !== undefined) log.stableTo(handed.lastEntry.index, handed.lastEntry.term);
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.leader === b.leader;
}

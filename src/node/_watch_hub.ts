/**
 * The node's change streams (`GET /v1/watch`, docs/api.md "Watch"): the state machine hands
 * every applied command to {@linkcode WatchHub.applied} (entries replayed at start too), the
 * hub keeps the recent changes in its {@linkcode WatchHistory} and feeds the open
 * {@linkcode Watcher}s. A state loaded from a snapshot (at start, or installed from the
 * leader) skips changes nobody can list any more: {@linkcode WatchHub.reset} raises the
 * floor and cuts off the watchers that had not seen them. Watchers, their queues and the
 * history are bounded by the constants below.
 *
 * @module
 */
import type { KvApplied } from "../storage/mod.ts";
import { NoLeaderError, TooManyWatchersError, WatchCompactedError } from "./errors.ts";
import {
  WATCH_HISTORY_BYTES_MAX,
  WATCH_HISTORY_CHANGES_MAX,
  watchEventOf,
  WatchHistory,
} from "./_watch_history.ts";
import { type CutReason, eventMessage, Watcher } from "./_watch_stream.ts";

export {
  WATCH_HISTORY_BYTES_MAX,
  WATCH_HISTORY_CHANGES_MAX,
  WATCH_VALUE_INLINE_MAX,
} from "./_watch_history.ts";

/** Watch streams one node serves at once; one more is answered `503 too_many_watchers`. */
export const WATCHERS_MAX = 64;
/**
 * Bytes queued for one watcher and not taken by its connection yet; a watcher that would
 * queue more is cut off with `slow_watcher`.
 */
export const WATCH_PENDING_BYTES_MAX: number = 1 << 20;
/** How often an idle watcher is sent the `: keepalive` comment (a dead connection then fails). */
export const WATCH_KEEPALIVE_MS = 15_000;
/**
 * How long a watcher that was cut off (or ended at shutdown) may take to read its final
 * message before its stream is aborted and its connection closed.
 */
export const WATCH_FAREWELL_MS = 5_000;

/** Limits of a {@linkcode WatchHub}, each defaulting to the constant of the same meaning. */
export interface WatchLimits {
  /** See {@linkcode WATCHERS_MAX}. */
  readonly watchersMax: number;
  /** See {@linkcode WATCH_PENDING_BYTES_MAX}. */
  readonly pendingBytesMax: number;
  /** See {@linkcode WATCH_KEEPALIVE_MS}. */
  readonly keepaliveMs: number;
  /** See {@linkcode WATCH_FAREWELL_MS}. */
  readonly farewellMs: number;
  /** See {@linkcode WATCH_HISTORY_CHANGES_MAX}. */
  readonly historyChangesMax: number;
  /** See {@linkcode WATCH_HISTORY_BYTES_MAX}. */
  readonly historyBytesMax: number;
}

/** The default limits. */
export const WATCH_LIMITS: WatchLimits = {
  watchersMax: WATCHERS_MAX,
  pendingBytesMax: WATCH_PENDING_BYTES_MAX,
  keepaliveMs: WATCH_KEEPALIVE_MS,
  farewellMs: WATCH_FAREWELL_MS,
  historyChangesMax: WATCH_HISTORY_CHANGES_MAX,
  historyBytesMax: WATCH_HISTORY_BYTES_MAX,
};

/** What a {@linkcode WatchHub} is made with. */
export interface WatchHubOptions {
  /** This node (named in the `start` event). */
  readonly node: string;
  /** Its cluster (named in the `start` event). */
  readonly cluster: string;
  /** Limits; defaults {@linkcode WATCH_LIMITS}. */
  readonly limits?: Partial<WatchLimits>;
  /** Where a failure while recording a change is reported (it never stops the apply). */
  readonly log?: (message: string, error: unknown) => void;
}

/** See the module documentation. */
export class WatchHub {
  readonly #o: WatchHubOptions;
  readonly #limits: WatchLimits;
  readonly #history: WatchHistory;
  readonly #watchers = new Set<Watcher>();
  #keepalive: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  readonly #counters = { opened: 0, refused: 0, cutSlow: 0, cutCompacted: 0 };

  /** Creates the hub; it holds nothing until the state is loaded ({@linkcode reset}). */
  constructor(options: WatchHubOptions) {
    this.#o = options;
    this.#limits = checkLimits({ ...WATCH_LIMITS, ...options.limits });
    this.#history = new WatchHistory({
      changesMax: this.#limits.historyChangesMax,
      bytesMax: this.#limits.historyBytesMax,
    });
  }

  /** The node's current rev: its latest change, or the state it loaded when none came since. */
  get rev(): number {
    return this.#history.rev;
  }

  /** The oldest rev a watch may start from: the hub holds every change after it. */
  get floor(): number {
    return this.#history.floor;
  }

  /** Open watch streams. */
  get watchers(): number {
    return this.#watchers.size;
  }

  /** The state machine's `onApplied`: records the command's changes and feeds the watchers. */
  applied(applied: KvApplied): void {
    try {
      const event = watchEventOf(applied);
      if (event === undefined) return;
      this.#history.append(event);
      for (const watcher of [...this.#watchers]) watcher.offer(event);
    } catch (error) {
      // A bug here must not stop the apply (the state changed already): watchers would miss
      // the change, so they are cut off as compacted and the history starts over.
      this.#o.log?.("Recording a change for the watchers failed", error);
      this.#history.reset(Math.max(applied.rev, this.#history.rev));
      const compacted = this.#compacted(this.#history.floor);
      for (const watcher of [...this.#watchers]) watcher.cut("compacted", compacted);
    }
  }

  /**
   * The state was loaded from a snapshot at `rev` (at start, or installed from the leader):
   * the changes up to it are not known one by one. The history starts over at `rev`; a
   * watcher that had not seen every change up to it gets `compacted` and is closed.
   */
  reset(rev: number): void {
    const before = this.#history.rev;
    this.#history.reset(rev);
    for (const watcher of [...this.#watchers]) {
      if (watcher.position(before) < rev) watcher.cut("compacted", this.#compacted(rev));
    }
  }

  /**
   * Opens a watch of the keys starting with `prefix` from `from` (exclusive; default the
   * current rev). Throws {@linkcode WatchCompactedError} when `from` is below the floor,
   * {@linkcode TooManyWatchersError} beyond the limit, `NoLeaderError` once closed.
   */
  open(prefix: Uint8Array, from?: number): Watcher {
    if (this.#closed) throw new NoLeaderError(`Node ${this.#o.node} is shutting down`);
    const start = from ?? this.#history.rev;
    if (start < this.#history.floor) {
      throw new WatchCompactedError(
        `Cannot watch from rev ${start}: node ${this.#o.node} holds the changes after rev ` +
          `${this.#history.floor} only; read the keys again (list them) and watch from rev ` +
          `${this.#history.rev}`,
        this.#history.rev,
        this.#history.floor,
      );
    }
    if (this.#watchers.size >= this.#limits.watchersMax) {
      this.#counters.refused++;
      throw new TooManyWatchersError(
        `Node ${this.#o.node} serves ${this.#watchers.size} watch streams, its limit: retry ` +
          "later or watch through another node of the cluster",
      );
    }
    const watcher = new Watcher({
      prefix,
      from: start,
      history: this.#history,
      pendingBytesMax: this.#limits.pendingBytesMax,
      farewellMs: this.#limits.farewellMs,
      first: eventMessage(
        "start",
        { rev: start, cluster: this.#o.cluster, node: this.#o.node },
        start,
      ),
      compacted: () => this.#compacted(this.#history.floor),
      slow: () =>
        eventMessage("error", {
          code: "slow_watcher",
          message: `This watcher fell more than ${this.#limits.pendingBytesMax} bytes behind ` +
            "the changes: watch again from the id of the last message received",
        }),
      onDone: (w, cut) => this.#done(w, cut),
    });
    this.#watchers.add(watcher);
    this.#counters.opened++;
    this.#keepalive ??= setInterval(() => {
      for (const w of this.#watchers) w.keepalive();
    }, this.#limits.keepaliveMs);
    return watcher;
  }

  /** Ends every stream and refuses new ones (the node shuts down). */
  close(): void {
    this.#closed = true;
    for (const watcher of [...this.#watchers]) watcher.end();
  }

  /** Gauges and counters for /metrics (`koi_watch_<name>`). */
  stats(): Readonly<Record<string, number>> {
    let pending = 0;
    for (const w of this.#watchers) pending += w.queuedBytes;
    return {
      watchers: this.#watchers.size,
      pendingBytes: pending,
      historyChanges: this.#history.changes,
      historyBytes: this.#history.bytes,
      historyFloor: this.#history.floor,
      rev: this.#history.rev,
      openedTotal: this.#counters.opened,
      refusedTotal: this.#counters.refused,
      cutSlowTotal: this.#counters.cutSlow,
      cutCompactedTotal: this.#counters.cutCompacted,
    };
  }

  #compacted(floor: number): Uint8Array {
    return eventMessage("error", {
      code: "compacted",
      message: `Node ${this.#o.node} no longer holds the changes up to rev ${floor}: read the ` +
        `keys again (list them) and watch from rev ${this.#history.rev}`,
      rev: this.#history.rev,
      oldest: floor,
    });
  }

  #done(watcher: Watcher, cut: CutReason | undefined): void {
    this.#watchers.delete(watcher);
    if (cut === "slow_watcher") this.#counters.cutSlow++;
    if (cut === "compacted") this.#counters.cutCompacted++;
    if (this.#watchers.size === 0 && this.#keepalive !== undefined) {
      clearInterval(this.#keepalive);
      this.#keepalive = undefined;
    }
  }
}

function checkLimits(limits: WatchLimits): WatchLimits {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`Invalid watch limit ${name}: must be a positive integer`);
    }
  }
  return limits;
}

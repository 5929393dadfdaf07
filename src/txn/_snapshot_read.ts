/**
 * Consistent snapshot reads over several clusters (docs/transactions.md, "Snapshot reads"):
 * read every cluster (each a linearizable read), then ask each whether anything the answer
 * depends on changed since the index it read at, or is locked by an attempt that may have been
 * decided. When nothing did, every value read held at one instant between the two rounds:
 * the latest of the first-round reads. Otherwise read again, a bounded number of times.
 *
 * The coordinator is a step machine like {@linkcode TxnAttempt}; the serving side is a pair
 * of pure functions over a cluster's participant state, store and {@linkcode TouchLog}.
 *
 * @module
 */
import type { TxnParticipant } from "./_participant.ts";
import type { TouchLog } from "./_touch_log.ts";
import type { TxnLockInfo } from "./_types.ts";
import { justAfter } from "./_keys.ts";

/** A range to read: `[start, end)`, at most `limit` entries, in key order or reversed. */
export interface ReadRange {
  /** First key (inclusive). */
  readonly start: Uint8Array;
  /** End (exclusive). */
  readonly end: Uint8Array;
  /** Entries at most. */
  readonly limit: number;
  /** Descending key order. */
  readonly reverse: boolean;
}

/** A cluster's first-round answer: the entries of each range at one applied index, or a lock. */
export type SnapshotPart<E> =
  | {
    /** The applied index the entries are of. */
    readonly index: number;
    /** Per range, in its order. */
    readonly entries: readonly (readonly E[])[];
  }
  | {
    /** A write lock in one of the ranges: wait for it, or resolve it past its deadline. */
    readonly lock: TxnLockInfo;
  };

/** A cluster's second-round answer. */
export type SnapshotCheck =
  | { readonly valid: true }
  | {
    readonly valid: false;
    /** The lock found, if that is why. */
    readonly lock?: TxnLockInfo;
  };

/** A key range to check, `[start, end)`. */
export interface KeySpan {
  /** First key (inclusive). */
  readonly start: Uint8Array;
  /** End (exclusive). */
  readonly end: Uint8Array;
}

/** Serves a first-round read: a write lock in a range, or the entries `read` gives. */
export function serveSnapshotRead<E, M>(
  ranges: readonly ReadRange[],
  index: number,
  txns: TxnParticipant<M>,
  read: (range: ReadRange) => readonly E[],
): SnapshotPart<E> {
  for (const r of ranges) {
    const lock = txns.writeLockIn(r.start, r.end);
    if (lock !== undefined) return { lock };
  }
  return { index, entries: ranges.map(read) };
}

/** Serves a second-round check: nothing in `spans` changed after `since`, nor is write-locked. */
export function serveSnapshotCheck<M>(
  spans: readonly KeySpan[],
  since: number,
  txns: TxnParticipant<M>,
  touched: TouchLog,
): SnapshotCheck {
  for (const s of spans) {
    const lock = txns.writeLockIn(s.start, s.end);
    if (lock !== undefined) return { valid: false, lock };
    if (touched.changedSince(since, s.start, s.end) !== false) return { valid: false };
  }
  return { valid: true };
}

/** What a snapshot read asks next. */
export type SnapshotStep =
  | { readonly kind: "read"; readonly to: string; readonly ranges: readonly ReadRange[] }
  | {
    readonly kind: "check";
    readonly to: string;
    readonly spans: readonly KeySpan[];
    readonly since: number;
  }
  | {
    /** A lock stands in the way at `at`: wait (or resolve it), then call `retry(at)`. */
    readonly kind: "lock";
    readonly at: string;
    readonly lock: TxnLockInfo;
  }
  | {
    /**
     * Place a read fence on `spans` at `to` (a prepare with `spans`, its own primary), then
     * call `onFenced(to, placed)`; release it (abort) once the read is finished.
     */
    readonly kind: "fence";
    readonly to: string;
    readonly spans: readonly KeySpan[];
    /** Which fencing of the read (1, 2, ...): each is a fresh attempt, released on its own. */
    readonly attempt: number;
  };

/** Merges the clusters' entries of one range into its answer. */
export type MergeRange<E> = (
  range: ReadRange,
  parts: readonly { readonly cluster: string; readonly entries: readonly E[] }[],
) => E[];

/** Rounds of a snapshot read at most before it gives up (`contended`). */
export const SNAPSHOT_ROUNDS_MAX = 16;

/**
 * Rounds that saw a change after which a snapshot read fences its ranges (docs/transactions.md,
 * "Snapshot reads"): found by the attack, 8 transfers at a time over 40 accounts kept a read of
 * all of them seeing a change in every round, for as long as they ran (60 s).
 */
export const SNAPSHOT_FENCE_AFTER_ROUNDS = 2;

/**
 * Fencings of one read at most: a fenced round whose check still fails (a fence expired while
 * the read waited on a lock prepared before it) fences again, up to this many times.
 */
export const SNAPSHOT_FENCINGS_MAX = 3;

/** A range of the read and the clusters that may hold its keys. */
export interface PlacedRange {
  /** The range. */
  readonly range: ReadRange;
  /** The clusters to ask (every one that may own a key of it). */
  readonly clusters: readonly string[];
}

/** One snapshot read over several clusters. */
export class SnapshotRead<E extends { readonly key: Uint8Array }> {
  readonly #placed: readonly PlacedRange[];
  /** cluster -> the positions (in #placed) of the ranges asked of it, in order. */
  readonly #asked = new Map<string, number[]>();
  readonly #merge: MergeRange<E>;
  readonly #roundsMax: number;
  #round = 0;
  #parts = new Map<string, { index: number; entries: readonly (readonly E[])[] }>();
  #checked = new Set<string>();
  #phase: "read" | "check" | "fence" | "done" = "read";
  #merged: E[][] = [];
  #contended = false;
  readonly #fenceAfter: number;
  /** Fences: none asked yet, being placed (answers so far), held everywhere, or refused. */
  #fencing: "no" | "placing" | "held" | "refused" = "no";
  readonly #fenceAnswers = new Map<string, boolean>();
  #fencings = 0;

  /**
   * `placed`: the ranges, each with its clusters; `merge` combines one range's parts;
   * `fenceAfter`: rounds that saw a change before the read fences its ranges.
   */
  constructor(
    placed: readonly PlacedRange[],
    merge: MergeRange<E>,
    roundsMax = SNAPSHOT_ROUNDS_MAX,
    fenceAfter = SNAPSHOT_FENCE_AFTER_ROUNDS,
  ) {
    this.#placed = placed;
    this.#merge = merge;
    this.#roundsMax = roundsMax;
    this.#fenceAfter = fenceAfter;
    placed.forEach((p, i) => {
      for (const c of p.clusters) {
        let list = this.#asked.get(c);
        if (list === undefined) this.#asked.set(c, list = []);
        list.push(i);
      }
    });
  }

  /** Per range, the merged entries, once every check held. */
  get result(): readonly E[][] | undefined {
    return this.#phase === "done" && !this.#contended ? this.#merged : undefined;
  }

  /** Whether it gave up after `roundsMax` rounds that each saw a change. */
  get contended(): boolean {
    return this.#contended;
  }

  /** Whether nothing is left to ask. */
  get finished(): boolean {
    return this.#phase === "done";
  }

  /** Rounds begun. */
  get rounds(): number {
    return this.#round;
  }

  /** Whether the read fenced its ranges at every cluster (its last rounds ran under them). */
  get fenced(): boolean {
    return this.#fencing === "held";
  }

  /** Takes a cluster's answer to a fence: placed (a yes vote) or not (refused, failed). */
  onFenced(from: string, placed: boolean): SnapshotStep[] {
    if (this.#phase !== "fence" || !this.#asked.has(from) || this.#fenceAnswers.has(from)) {
      return [];
    }
    this.#fenceAnswers.set(from, placed);
    if (this.#fenceAnswers.size < this.#asked.size) return [];
    // Fenced everywhere: one more round, which nothing can change. Otherwise the plain rounds
    // go on (the fences placed are released by the caller all the same).
    this.#fencing = [...this.#fenceAnswers.values()].every((p) => p) ? "held" : "refused";
    return this.start();
  }

  /** The first round's reads (again, after a failed check). */
  start(): SnapshotStep[] {
    this.#round++;
    this.#parts.clear();
    this.#checked.clear();
    this.#phase = this.#asked.size === 0 ? "done" : "read";
    return [...this.#asked.keys()].map((to) => this.#read(to));
  }

  /** The read of `at` again (after a lock went away or was resolved, or a failure). */
  retry(at: string): SnapshotStep[] {
    if (this.#phase !== "read" || !this.#asked.has(at) || this.#parts.has(at)) return [];
    return [this.#read(at)];
  }

  #read(to: string): SnapshotStep {
    return { kind: "read", to, ranges: this.#asked.get(to)!.map((i) => this.#placed[i].range) };
  }

  /** Takes a cluster's first-round answer (entries per range asked of it, in order). */
  onRead(from: string, part: SnapshotPart<E>): SnapshotStep[] {
    if (this.#phase !== "read" || !this.#asked.has(from) || this.#parts.has(from)) return [];
    if ("lock" in part) return [{ kind: "lock", at: from, lock: part.lock }];
    if (part.entries.length !== this.#asked.get(from)!.length) return [this.#read(from)];
    this.#parts.set(from, part);
    if (this.#parts.size < this.#asked.size) return [];
    this.#merged = this.#mergeAll();
    if (this.#asked.size === 1) {
      this.#phase = "done"; // one linearizable read is a snapshot already
      return [];
    }
    // Checked under fences too: the check is what proves the snapshot (a fence past its
    // deadline may have been aborted by a writer while the round ran); the fences only make
    // it hold, since nothing may change what it depends on while they stand.
    this.#phase = "check";
    const steps: SnapshotStep[] = [];
    for (const [to, positions] of this.#asked) {
      const spans = positions.map((i) => spanOf(this.#placed[i].range, this.#merged[i]));
      steps.push({ kind: "check", to, spans, since: this.#parts.get(to)!.index });
    }
    return steps;
  }

  /** Takes a cluster's second-round answer. */
  onCheck(from: string, check: SnapshotCheck): SnapshotStep[] {
    if (this.#phase !== "check" || !this.#asked.has(from) || this.#checked.has(from)) return [];
    if (!check.valid) {
      if (this.#round >= this.#roundsMax) {
        this.#contended = true;
        this.#phase = "done";
        return [];
      }
      const fence = this.#fencing === "no" ||
        (this.#fencing === "held" && this.#fencings < SNAPSHOT_FENCINGS_MAX);
      if (fence && this.#round >= this.#fenceAfter) {
        // Changes in every round: fence the ranges at every cluster, then read once more.
        this.#fencing = "placing";
        this.#fencings++;
        this.#fenceAnswers.clear();
        this.#phase = "fence";
        return [...this.#asked].map(([to, positions]) => ({
          kind: "fence" as const,
          attempt: this.#fencings,
          to,
          spans: positions.map((i) => ({
            start: this.#placed[i].range.start,
            end: this.#placed[i].range.end,
          })),
        }));
      }
      const steps = this.start();
      if (check.lock === undefined) return steps;
      // Wait for (or resolve) the lock before reading there again.
      return [
        { kind: "lock", at: from, lock: check.lock },
        ...steps.filter((s) => s.kind !== "read" || s.to !== from),
      ];
    }
    this.#checked.add(from);
    if (this.#checked.size === this.#asked.size) this.#phase = "done";
    return [];
  }

  #mergeAll(): E[][] {
    const parts: { cluster: string; entries: readonly E[] }[][] = this.#placed.map(() => []);
    for (const [cluster, positions] of this.#asked) {
      const got = this.#parts.get(cluster)!.entries;
      positions.forEach((i, j) => parts[i].push({ cluster, entries: got[j] }));
    }
    return this.#placed.map((p, i) => this.#merge(p.range, parts[i]));
  }
}

/** The part of a range its merged answer depends on: all of it, or up to its last entry. */
function spanOf<E extends { readonly key: Uint8Array }>(
  r: ReadRange,
  merged: readonly E[],
): KeySpan {
  if (merged.length === 0 || merged.length < r.limit) return { start: r.start, end: r.end };
  const last = merged[merged.length - 1].key;
  return r.reverse ? { start: last, end: r.end } : { start: r.start, end: justAfter(last) };
}

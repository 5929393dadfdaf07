/**
 * Snapshots taken in the background: a copy-on-write view of the state machine is taken at
 * once (O(1)), then encoded and written in chunks while the Ready loop goes on; the storage
 * compacts the log once the snapshot is durable. One snapshot at a time; callers share it.
 */
import { type Membership, SnapshotOutOfDateError } from "../raft/mod.ts";
import type { KvLogStorage, KvStateMachine } from "../storage/mod.ts";
import { DiskFailedError, NoLeaderError } from "./errors.ts";
import { isDiskError } from "./_disk_failure.ts";
import type { NodeLog } from "./_driver_options.ts";
import { shouldSnapshot, type SnapshotPolicyLimits } from "./_snapshot_policy.ts";

/** The first pause after a snapshot failed on a disk error (doubling, see below). */
export const SNAPSHOT_RETRY_MS_MIN = 1_000;
/** The longest pause between snapshot attempts while they fail on disk errors. */
export const SNAPSHOT_RETRY_MS_MAX = 60_000;

/** What the snapshotter needs from the driver. */
export interface SnapshotHost {
  readonly storage: KvLogStorage;
  /** The current state machine (replaced when a snapshot is installed). */
  stateMachine(): KvStateMachine;
  /** Whether the node is closing: the snapshot in progress is abandoned. */
  closed(): boolean;
  /**
   * Resolves once the log on disk reaches `index` (rejects when the node closes first). A
   * leader applies entries its own write has not made durable yet (§10.2.1); a snapshot at
   * such an index can only compact the log once the entry is there.
   */
  whenDurable(index: number): Promise<void>;
  /** The error to refuse a snapshot with while the node's persists fail, else undefined. */
  diskFailed(): DiskFailedError | undefined;
  /** A storage failure that is not a disk problem (a bug): the node must stop. */
  fail(error: unknown): void;
  /** Structured log. */
  log: NodeLog;
  /** Milliseconds since the epoch (default `Date.now`): when to try again after a failure. */
  now?(): number;
}

/** Limits of background snapshots. */
export interface BackgroundSnapshotLimits extends SnapshotPolicyLimits {
  /** Bytes of one encoded chunk. */
  readonly snapshotChunkBytes: number;
}

/** Decides when to snapshot and runs one snapshot at a time in the background. */
export class BackgroundSnapshots {
  readonly #host: SnapshotHost;
  readonly #limits: BackgroundSnapshotLimits;
  #task: Promise<number> | undefined;
  /** The index of the latest snapshot taken or installed. */
  lastIndex: number;
  /** Snapshots this node took. */
  taken = 0;
  /** Snapshots that failed on a disk error (skipped, tried again later). */
  failures = 0;
  /** Consecutive failures, for the pause before the next try. */
  #failedInRow = 0;
  /** No background snapshot starts before this time (after a disk error). */
  #retryAt = -Infinity;

  /** Creates the snapshotter; `lastIndex` is the index of the snapshot on disk. */
  constructor(host: SnapshotHost, limits: BackgroundSnapshotLimits, lastIndex: number) {
    this.#host = host;
    this.#limits = limits;
    this.lastIndex = lastIndex;
  }

  /** Starts a snapshot when the policy says one is due and none is running. */
  maybe(): void {
    if (this.#task !== undefined || this.#now() < this.#retryAt) return;
    // While persists fail, a snapshot would fail too, or wait for entries to become durable.
    if (this.#host.diskFailed() !== undefined) return;
    const sm = this.#host.stateMachine();
    const due = shouldSnapshot({
      entriesSince: sm.applied - this.lastIndex,
      logBytes: this.#host.storage.logBytes(),
      keys: sm.size,
      stateBytes: sm.bytes,
    }, this.#limits);
    if (due) this.take().catch(() => {}); // failures already went to host.fail
  }

  /** Takes a snapshot at the applied index, or joins the one in progress; its index. */
  take(): Promise<number> {
    if (this.#task !== undefined) return this.#task;
    const refused = this.#host.diskFailed();
    if (refused !== undefined) return Promise.reject(refused);
    const storage = this.#host.storage;
    const sm = this.#host.stateMachine();
    const index = sm.applied;
    const current = storage.snapshot().meta.index;
    if (index <= current) return Promise.resolve(current);
    const task = this.#write(index, sm.membership, sm.snapshotView());
    this.#task = task;
    task.then(() => {}, () => {}).finally(() => {
      this.#task = undefined;
    });
    return task;
  }

  async #write(
    index: number,
    membership: Membership,
    view: ReturnType<KvStateMachine["snapshotView"]>,
  ): Promise<number> {
    const host = this.#host;
    try {
      await host.whenDurable(index);
      await host.storage.createSnapshot(index, {
        membership,
        data: untilClosed(view.encodeChunks(this.#limits.snapshotChunkBytes), host.closed),
      });
    } catch (error) {
      if (host.closed()) throw error; // abandoned by close(): its chunks are garbage
      if (error instanceof SnapshotOutOfDateError) {
        return host.storage.snapshot().meta.index; // a newer one was installed meanwhile
      }
      if (isDiskError(error)) throw this.#skip(index, error);
      host.fail(error);
      throw error;
    }
    this.lastIndex = Math.max(this.lastIndex, index);
    this.taken++;
    this.#failedInRow = 0;
    this.#retryAt = -Infinity;
    host.log("info", "took a snapshot and compacted the log", { index });
    return index;
  }

  /**
   * A snapshot failed on a disk problem: the log stays as it was (the storage switches to a
   * snapshot in one commit, and deletes the chunks it wrote later), and the next background
   * one waits a while. Answers the error to give a caller of take().
   */
  #skip(index: number, error: unknown): DiskFailedError {
    this.failures++;
    this.#failedInRow++;
    const pauseMs = Math.min(
      SNAPSHOT_RETRY_MS_MAX,
      SNAPSHOT_RETRY_MS_MIN * 2 ** Math.min(this.#failedInRow - 1, 30),
    );
    this.#retryAt = this.#now() + pauseMs;
    const message = error instanceof Error ? error.message : String(error);
    this.#host.log("warning", "Cannot take a snapshot: the disk takes no writes; trying later", {
      index,
      error: message,
      retryInMs: pauseMs,
    });
    return new DiskFailedError(
      `Cannot take a snapshot at index ${index}: this node cannot write its data directory ` +
        `(${message})`,
      { cause: error },
    );
  }

  #now(): number {
    return this.#host.now?.() ?? Date.now();
  }

  /** Resolves once the snapshot in progress (if any) ended. */
  async settled(): Promise<void> {
    await this.#task?.catch(() => {});
  }
}

/** Stops a background snapshot's chunks once the node closes. */
async function* untilClosed(
  chunks: AsyncIterable<Uint8Array>,
  closed: () => boolean,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    if (closed()) throw new NoLeaderError("Cannot finish the snapshot: the node is shutting down");
    yield chunk;
  }
}

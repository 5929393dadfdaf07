/**
 * Snapshots taken in the background: a copy-on-write view of the state machine is taken at
 * once (O(1)), then encoded and written in chunks while the Ready loop goes on; the storage
 * compacts the log once the snapshot is durable. One snapshot at a time; callers share it.
 */
import { type Membership, SnapshotOutOfDateError } from "../raft/mod.ts";
import type { KvLogStorage, KvStateMachine } from "../storage/mod.ts";
import { NoLeaderError } from "./errors.ts";
import { shouldSnapshot, type SnapshotPolicyLimits } from "./_snapshot_policy.ts";

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
  /** A storage failure: the node must stop. */
  fail(error: unknown): void;
  /** Structured log. */
  log(message: string, fields: Record<string, unknown>): void;
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

  /** Creates the snapshotter; `lastIndex` is the index of the snapshot on disk. */
  constructor(host: SnapshotHost, limits: BackgroundSnapshotLimits, lastIndex: number) {
    this.#host = host;
    this.#limits = limits;
    this.lastIndex = lastIndex;
  }

  /** Starts a snapshot when the policy says one is due and none is running. */
  maybe(): void {
    if (this.#task !== undefined) return;
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
      host.fail(error);
      throw error;
    }
    this.lastIndex = Math.max(this.lastIndex, index);
    this.taken++;
    host.log("took a snapshot and compacted the log", { index });
    return index;
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

/**
 * The simulated disk of one node, with the crash guarantees of the real storage
 * (`src/storage/kv_log_storage.ts`): a persist may be split into several commits, each of
 * which leaves a consistent log prefix; the term and vote are written with the first commit,
 * and each commit records a commit index only as far as the log written so far; a persist
 * that changes nothing but the commit index writes nothing (the commit index goes out with
 * the next write), so after a crash the commit index may lag.
 *
 * @module
 */
import {
  bootstrapStorage,
  MemoryStorage,
  type NodeId,
  type PersistBatch,
} from "../../src/raft/mod.ts";

/** One node's durable state; {@linkcode storage} is what the core reads. */
export class SimDisk {
  /** What every completed write left: the core's read view, and the state after a crash. */
  readonly storage: MemoryStorage = new MemoryStorage();
  /** The commit index actually written (the storage's may be ahead, see the module doc). */
  #durableCommit = 0;

  /** The parts of a batch a crash may cut between: the snapshot, then each entry. */
  static parts(batch: PersistBatch): number {
    return (batch.snapshot === undefined ? 0 : 1) + batch.entries.length;
  }

  /** Writes a founding member's first state (one durable step). */
  async bootstrap(voters: readonly NodeId[]): Promise<void> {
    await bootstrapStorage(this.storage, voters);
    this.#durableCommit = this.storage.hardState().commit;
  }

  /** A persist completed: all of `batch` is durable. */
  write(batch: PersistBatch): void {
    const old = this.storage.hardState();
    const hs = batch.hardState;
    const writes = batch.snapshot !== undefined || batch.entries.length > 0 ||
      (hs !== undefined && (hs.term !== old.term || hs.vote !== old.vote));
    this.storage.persist(batch);
    if (writes) this.#durableCommit = this.storage.hardState().commit;
  }

  /**
   * A crash in the middle of persisting `batch` after its first `kept` parts were written
   * (0 <= kept < parts): with at least one part, the new term and vote are on disk, and a
   * commit index no further than the written log.
   */
  writePrefix(batch: PersistBatch, kept: number): void {
    if (kept <= 0) return;
    const snapshot = batch.snapshot;
    const entries = batch.entries.slice(0, kept - (snapshot === undefined ? 0 : 1));
    const target = batch.hardState ?? this.storage.hardState();
    const written = entries.at(-1)?.index ?? snapshot?.meta.index ?? this.storage.lastIndex();
    const hardState = { ...target, commit: Math.min(target.commit, written) };
    this.storage.persist({ snapshot, entries, hardState });
    this.#durableCommit = hardState.commit;
  }

  /** The process died: what was not written is gone. Returns whether the commit went back. */
  crash(): boolean {
    const hs = this.storage.hardState();
    // At open the real storage raises the commit index to the snapshot's (committed by then).
    const commit = Math.max(this.#durableCommit, this.storage.snapshot().meta.index);
    this.#durableCommit = commit;
    if (commit === hs.commit) return false;
    this.storage.setHardState({ ...hs, commit });
    return true;
  }
}

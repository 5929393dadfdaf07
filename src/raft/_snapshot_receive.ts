/**
 * A follower's assembly of one chunked InstallSnapshot transfer.
 *
 * @module
 */
import type { SnapshotMessage } from "./_message.ts";
import type { NodeId, ReceivedSnapshot, SnapshotMeta } from "./_types.ts";

/**
 * What to do with a chunk:
 * - `append`: the next bytes of the transfer being received;
 * - `restart`: offset 0 of another transfer: it replaces the one being received;
 * - `resync`: a later chunk while nothing is being received (this node restarted, or freed the
 *   buffer): answer offset 0 so the leader starts over;
 * - `position`: a duplicate or a gap in the transfer being received: answer where it stands;
 * - `drop`: a later chunk of another transfer than the one being received. Taking it would
 *   assemble a snapshot from two transfers; answering would make that leader start over for
 *   nothing, since its chunk is stale.
 */
export type ChunkVerdict = "append" | "restart" | "resync" | "position" | "drop";

/**
 * The bytes of the one transfer being received. It is bound to everything that identifies a
 * transfer (sender, its term, the snapshot's index and term, the total length), so chunks of
 * two leaders or two snapshots never mix. The core frees it when the transfer completes, when
 * the term changes and when another node becomes leader, so an abandoned transfer holds no
 * memory.
 */
export class SnapshotReceive {
  #from: NodeId = "";
  #term = 0;
  #meta: SnapshotMeta | undefined;
  #data: Uint8Array | undefined;
  #received = 0;

  /** Whether a transfer is under way. */
  get active(): boolean {
    return this.#data !== undefined;
  }

  /** The bytes received so far of the current transfer. */
  get received(): number {
    return this.#received;
  }

  /** What to do with chunk `m`, for a receiver at term `term`; changes nothing. */
  classify(m: SnapshotMessage, term: number): ChunkVerdict {
    // A message of a higher term frees the buffer before the chunk is looked at.
    const active = this.#data !== undefined && this.#term >= Math.max(term, m.term);
    if (active && this.#isSameTransfer(m)) {
      return m.offset === this.#received ? "append" : "position";
    }
    if (m.offset === 0) return "restart";
    return active ? "drop" : "resync";
  }

  #isSameTransfer(m: SnapshotMessage): boolean {
    const meta = this.#meta!;
    return this.#from === m.from && this.#term === m.term && meta.index === m.meta.index &&
      meta.term === m.meta.term && this.#data!.length === m.total;
  }

  /**
   * Takes chunk `m` after {@linkcode classify} said `append` or `restart`. Returns the
   * snapshot once its last byte arrived (and frees the buffer), otherwise undefined.
   */
  take(m: SnapshotMessage, verdict: "append" | "restart"): ReceivedSnapshot | undefined {
    if (verdict === "restart") {
      this.#from = m.from;
      this.#term = m.term;
      this.#meta = m.meta;
      this.#data = new Uint8Array(m.total);
      this.#received = 0;
    }
    const data = this.#data!;
    data.set(m.chunk, m.offset);
    this.#received += m.chunk.length;
    if (this.#received < data.length) return undefined;
    const snapshot = { meta: this.#meta!, data };
    this.clear();
    return snapshot;
  }

  /** Frees the buffer unless it belongs to a transfer from `leader` in `term`. */
  keepOnly(leader: NodeId, term: number): void {
    if (this.#data !== undefined && (this.#from !== leader || this.#term !== term)) this.clear();
  }

  /** Frees a transfer of the snapshot at `index` (it is covered by the commit index now). */
  clearIndex(index: number): void {
    if (this.#meta?.index === index) this.clear();
  }

  /** Frees the buffer. */
  clear(): void {
    this.#from = "";
    this.#term = 0;
    this.#meta = undefined;
    this.#data = undefined;
    this.#received = 0;
  }
}

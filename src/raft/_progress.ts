import { assert } from "./_errors.ts";
import { Inflights } from "./_inflights.ts";
import type { Snapshot } from "./_types.ts";

/**
 * How the leader replicates to a follower:
 * - `probe`: one AppendEntries at a time until the match point is found;
 * - `replicate`: optimistic pipelining within the in-flight window;
 * - `snapshot`: the follower needs a snapshot; chunks are sent one at a time.
 */
export type ProgressState = "probe" | "replicate" | "snapshot";

/** The leader's view of one follower's log. */
export class Progress {
  /** The highest index known to match the leader's log. */
  match = 0;
  /** The next index to send. */
  next: number;
  /** The replication mode. */
  state: ProgressState = "probe";
  /** In `probe`: a message is out and no answer came yet. */
  probeSent = false;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** The window of AppendEntries in flight (`replicate`). */
  readonly inflights: Inflights;
  /** The snapshot being sent (`snapshot`). */
  snapshot: Snapshot | undefined;
  /** Bytes of `snapshot` the follower acknowledged holding. */
  snapshotAcked = 0;
  /** A snapshot chunk is out and no answer came yet. */
  snapshotChunkSent = false;
  /** The highest ReadIndex sequence number the follower acknowledged. */
  readSeqAcked = 0;

  /** Creates the progress of a follower whose next index to try is `next`. */
  constructor(next: number, window: { countMax: number; bytesMax: number }) {
    this.next = next;
    this.inflights = new Inflights(window.countMax, window.bytesMax);
  }

  /** Enters `probe`: send one message at a time from after the match point. */
  becomeProbe(): void {
    if (this.state === "snapshot" && this.snapshot !== undefined) {
      this.next = Math.max(this.match + 1, this.snapshot.meta.index + 1);
    } else {
      this.next = this.match + 1;
    }
    this.#enter("probe");
  }

  /** Enters `replicate`: pipeline from after the match point. */
  becomeReplicate(): void {
    this.next = this.match + 1;
    this.#enter("replicate");
  }

  /** Enters `snapshot`: the follower needs `snapshot` before any entry. */
  becomeSnapshot(snapshot: Snapshot): void {
    this.#enter("snapshot");
    this.snapshot = snapshot;
  }

  #enter(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.snapshot = undefined;
    this.snapshotAcked = 0;
    this.snapshotChunkSent = false;
    this.inflights.reset();
  }

  /** Records an acknowledgement up to `index`; returns whether the match point moved. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /** Records that entries up to `lastIndex` were sent optimistically (`replicate`). */
  sentEntries(lastIndex: number, bytes: number): void {
    if (this.state === "replicate") {
      if (lastIndex >= this.next) {
        this.inflights.add(lastIndex, bytes);
        this.next = lastIndex + 1;
      }
    } else if (this.state === "probe") {
      this.probeSent = true;
    } else {
      assert(false, "entries sent to a follower in snapshot state");
    }
  }

  /**
   * Handles a rejection of the append at `rejected`; `hint` is where to probe next. Returns
   * false when the rejection is stale (answers an older message).
   */
  maybeDecrease(rejected: number, hint: number): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.match) return false; // stale: that index was acknowledged since
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false; // stale: not the probe we sent last
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether sending further entries must wait for an answer. */
  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }
}

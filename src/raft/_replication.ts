/**
 * The leader's side of log replication: one {@linkcode Progress} per member, AppendEntries
 * within the in-flight window, chunked InstallSnapshot, and the heartbeat broadcast.
 *
 * @module
 */
import { assert } from "./_errors.ts";
import { isVoter, membersOf } from "./_membership.ts";
import type {
  AppendMessage,
  AppendResponseMessage,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  Message,
  SnapshotResponseMessage,
} from "./_message.ts";
import type { RaftLimits } from "./_options.ts";
import { Progress } from "./_progress.ts";
import { quorumActive, quorumValue } from "./_quorum.ts";
import type { ProgressStatus } from "./_ready.ts";
import type { RaftLog } from "./_raft_log.ts";
import { entryBytes } from "./_storage.ts";
import { type NodeId, readSnapshotData } from "./_types.ts";

/** What replication needs of the leader. */
export interface ReplicationHost {
  /** The leader's id. */
  readonly id: NodeId;
  /** The leader's term. */
  readonly term: number;
  /** The leader's log. */
  readonly log: RaftLog;
  /** The core's limits. */
  readonly limits: RaftLimits;
  /** Queues a message that may leave at once. */
  send(m: Message): void;
}

/** The leader's replication state; a new one for every term it leads. */
export class Replication {
  /** Per member, the leader itself included (its match is its durable last index). */
  readonly progress = new Map<NodeId, Progress>();
  /** Some follower may need entries or the commit index: send on the next flush. */
  sendPending = false;
  /** A heartbeat round is due on the next flush. */
  heartbeatPending = false;
  readonly #host: ReplicationHost;

  /** Creates the state for `host`, which leads from now on. */
  constructor(host: ReplicationHost) {
    this.#host = host;
  }

  /** Makes the progress map name exactly the members (and the leader itself). */
  sync(): void {
    const log = this.#host.log;
    const members = new Set(membersOf(log.membership()));
    members.add(this.#host.id);
    const next = log.lastIndex() + 1;
    const window = {
      countMax: this.#host.limits.inflightAppendsMax,
      bytesMax: this.#host.limits.inflightBytesMax,
    };
    for (const id of members) {
      if (!this.progress.has(id)) {
        const pr = new Progress(next, window);
        pr.recentActive = true; // a new member gets one election timeout of grace
        this.progress.set(id, pr);
      }
    }
    for (const id of [...this.progress.keys()]) {
      if (!members.has(id)) this.progress.delete(id);
    }
  }

  /** Sends entries (or an empty append, if `sendIfEmpty`) to `to`; returns whether it sent. */
  sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || to === this.#host.id) return false;
    if (pr.state === "snapshot") {
      this.#sendSnapshotChunk(to, pr);
      return false;
    }
    if (pr.isPaused()) return false;
    const { log, limits } = this.#host;
    const prevIndex = pr.next - 1;
    const prevTerm = log.term(prevIndex);
    if (prevTerm === undefined || pr.next < log.firstIndex()) {
      this.#startSnapshot(to, pr);
      return false;
    }
    const last = log.lastIndex();
    const entries = pr.next > last ? [] : log.entries(
      pr.next,
      Math.min(last + 1, pr.next + limits.appendEntriesMax),
      limits.appendBytesMax,
    );
    if (entries.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (const e of entries) bytes += entryBytes(e);
    const m: AppendMessage = {
      type: "app",
      from: this.#host.id,
      to,
      term: this.#host.term,
      index: prevIndex,
      logTerm: prevTerm,
      entries,
      commit: log.committed,
    };
    this.#host.send(m);
    pr.sentEntries(entries.at(-1)?.index ?? prevIndex, bytes);
    return entries.length > 0;
  }

  /** Sends `to` everything it lacks, as far as its window allows. */
  sendAll(to: NodeId): void {
    while (this.sendAppend(to, false));
  }

  #startSnapshot(to: NodeId, pr: Progress): void {
    if (!pr.recentActive) return; // do not ship a snapshot to a node that may be down
    const snapshot = this.#host.log.snapshot();
    assert(snapshot.meta.index > 0, "log compacted without a snapshot");
    pr.becomeSnapshot(snapshot);
    this.#sendSnapshotChunk(to, pr);
  }

  /**
   * Sends the next chunk to every follower whose transfer waits for bytes the storage did not
   * hold in memory yet (see {@linkcode SnapshotReader.read}): called when the storage says it
   * fetched some, so a transfer does not wait for the next heartbeat answer.
   */
  retrySnapshotChunks(): void {
    for (const [to, pr] of this.progress) {
      if (to !== this.#host.id && pr.state === "snapshot" && !pr.snapshotChunkSent) {
        this.#sendSnapshotChunk(to, pr);
      }
    }
  }

  #sendSnapshotChunk(to: NodeId, pr: Progress): void {
    if (pr.snapshotChunkSent) return;
    const bytes = this.#host.limits.snapshotChunkBytes;
    let chunk = readSnapshotData(pr.snapshot!.data, pr.snapshotAcked, bytes);
    const latest = chunk === null ? this.#host.log.snapshot() : undefined;
    if (latest !== undefined && latest.meta.index > pr.snapshot!.meta.index) {
      // The storage freed the bytes of the snapshot being sent, having taken a newer one: send
      // that from its start (the follower's receiver restarts at offset 0). Only then: a
      // transfer that can go on does, or frequent snapshots would restart it for ever.
      pr.becomeSnapshot(latest);
      chunk = readSnapshotData(latest.data, 0, bytes);
    }
    // Not in memory yet: the storage fetches it; retrySnapshotChunks() (once it did) or the
    // follower's next heartbeat answer retries.
    if (chunk === undefined || chunk === null) return;
    const snapshot = pr.snapshot!;
    const offset = pr.snapshotAcked;
    this.#host.send({
      type: "snap",
      from: this.#host.id,
      to,
      term: this.#host.term,
      meta: snapshot.meta,
      offset,
      total: snapshot.data.length,
      chunk,
    });
    pr.snapshotChunkSent = true;
  }

  /**
   * Handles an AppendEntries answer from a member; returns whether its match point moved (the
   * leader then tries to commit and sends what follows).
   */
  onAppendResponse(m: AppendResponseMessage): boolean {
    const pr = this.progress.get(m.from)!;
    pr.recentActive = true;
    if (m.reject) {
      let hint = m.rejectHint;
      if (m.logTerm > 0) hint = this.#host.log.findConflictByTerm(m.rejectHint, m.logTerm)[0];
      if (pr.maybeDecrease(m.index, hint)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return false;
    }
    if (m.index < pr.match) return false; // stale
    const updated = pr.maybeUpdate(m.index);
    if (pr.state === "probe") {
      pr.becomeReplicate();
    } else if (pr.state === "snapshot") {
      if (pr.match < pr.snapshot!.meta.index) return updated;
      pr.becomeReplicate();
    } else {
      pr.inflights.freeLE(m.index);
    }
    return updated;
  }

  /** Handles a heartbeat answer; returns whether it acknowledged a later read round. */
  onHeartbeatResponse(m: HeartbeatResponseMessage): boolean {
    const pr = this.progress.get(m.from)!;
    pr.recentActive = true;
    pr.probeSent = false;
    if (pr.state === "snapshot") {
      // No chunk answer for a heartbeat round: the chunk was likely lost; resend it.
      pr.snapshotChunkSent = false;
      this.#sendSnapshotChunk(m.from, pr);
    } else if (pr.match < this.#host.log.lastIndex()) {
      // The follower answers heartbeats but not appends: some were lost. Free one slot of a
      // full window so an append goes out; a gap makes the follower reject it and we probe.
      if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
      this.sendAppend(m.from, true);
    }
    if (m.readSeq <= pr.readSeqAcked) return false;
    pr.readSeqAcked = m.readSeq;
    return true;
  }

  /** Handles a snapshot chunk answer: sends the next chunk or resends from its offset. */
  onSnapshotResponse(m: SnapshotResponseMessage): void {
    const pr = this.progress.get(m.from)!;
    pr.recentActive = true;
    if (pr.state !== "snapshot" || pr.snapshot!.meta.index !== m.snapIndex) return;
    if (m.offset > pr.snapshot!.data.length) return;
    pr.snapshotAcked = m.offset;
    pr.snapshotChunkSent = false;
    if (m.offset < pr.snapshot!.data.length) this.#sendSnapshotChunk(m.from, pr);
  }

  /** The highest index a quorum holds (the leader counting only what is durable on it). */
  quorumMatch(): number {
    return quorumValue(this.#host.log.membership(), (id) => this.progress.get(id)?.match ?? 0);
  }

  /** The latest read round a quorum acknowledged; the leader itself is at `seq`. */
  quorumReadRound(seq: number): number {
    return quorumValue(
      this.#host.log.membership(),
      (id) => (id === this.#host.id ? seq : this.progress.get(id)?.readSeqAcked ?? 0),
    );
  }

  /**
   * Check-quorum: whether a quorum was heard from since the last round; starts a new round.
   * A leader that was not heard back from steps down (§6.2).
   */
  checkQuorum(): boolean {
    const active = (id: NodeId) =>
      id === this.#host.id || this.progress.get(id)?.recentActive === true;
    if (!quorumActive(this.#host.log.membership(), active)) return false;
    for (const pr of this.progress.values()) pr.recentActive = false;
    return true;
  }

  /** A voter that holds the whole log, to hand leadership to. */
  caughtUpVoter(): NodeId | undefined {
    const last = this.#host.log.lastIndex();
    return this.#host.log.membership().voters.find((id) => this.progress.get(id)?.match === last);
  }

  /** One row per member, sorted by id, for the status. */
  status(): ProgressStatus[] {
    const membership = this.#host.log.membership();
    const rows: ProgressStatus[] = [];
    for (const [id, pr] of this.progress) {
      rows.push({
        id,
        voter: isVoter(membership, id),
        match: pr.match,
        next: pr.next,
        state: pr.state,
      });
    }
    return rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Turns pending broadcasts into messages (done lazily so one turn sends one batch). */
  flush(readSeq: number): void {
    const { id, log } = this.#host;
    if (this.heartbeatPending) {
      this.heartbeatPending = false;
      for (const [to, pr] of this.progress) {
        if (to === id) continue;
        const m: HeartbeatMessage = {
          type: "heartbeat",
          from: id,
          to,
          term: this.#host.term,
          // Every index up to the follower's match is the leader's: it may commit up to there.
          commit: Math.min(pr.match, log.committed),
          readSeq,
        };
        this.#host.send(m);
      }
    }
    if (this.sendPending) {
      this.sendPending = false;
      for (const to of this.progress.keys()) {
        if (to !== id && this.sendAppend(to, true)) this.sendAll(to);
      }
    }
  }
}

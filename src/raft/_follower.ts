/**
 * A follower's side of replication: AppendEntries, heartbeats and InstallSnapshot chunks from
 * the leader of its term, after {@linkcode checkMessage} accepted them.
 *
 * @module
 */
import { assert } from "./_errors.ts";
import type { AppendMessage, HeartbeatMessage, Message, SnapshotMessage } from "./_message.ts";
import type { RaftLog } from "./_raft_log.ts";
import type { SnapshotReceive } from "./_snapshot_receive.ts";
import type { NodeId, ReceivedSnapshot } from "./_types.ts";

/** A message without the fields the sender fills in (its id and term). */
export type Outgoing = DistributiveOmit<Message, "from" | "term">;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** What the follower's handlers need. */
export interface FollowerHost {
  /** The follower's log. */
  readonly log: RaftLog;
  /** The snapshot being received. */
  readonly snapshotReceive: SnapshotReceive;
  /** The follower's term. */
  readonly term: number;
  /** Queues a message of the follower's id and term. */
  send(m: Outgoing): void;
}

/** AppendEntries: append what is new and acknowledge, or reject with a fast back-off hint. */
export function handleAppend(host: FollowerHost, m: AppendMessage): void {
  const { log } = host;
  if (m.index < log.committed) {
    sendAppendResponse(host, m.from, log.committed);
    return;
  }
  // m.index >= commit: every entry it carries lies after the commit index, so a conflict
  // never replaces a committed entry (the log's assertion cannot fire on a peer's message).
  const lastNew = log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
  if (lastNew !== undefined) {
    sendAppendResponse(host, m.from, lastNew);
    return;
  }
  // Fast back-off: skip every index whose term is above the leader's term at m.index.
  const [hint, hintTerm] = log.findConflictByTerm(Math.min(m.index, log.lastIndex()), m.logTerm);
  host.send({
    type: "appResp",
    to: m.from,
    index: m.index,
    reject: true,
    rejectHint: hint,
    logTerm: hintTerm,
  });
}

function sendAppendResponse(host: FollowerHost, to: NodeId, index: number): void {
  host.send({ type: "appResp", to, index, reject: false, rejectHint: 0, logTerm: 0 });
}

/** A heartbeat: commit what the leader says matches, and echo the read round. */
export function handleHeartbeat(host: FollowerHost, m: HeartbeatMessage): void {
  // The leader sends min(our match, its commit): every index up to it matches the leader.
  // checkMessage dropped a commit beyond our last index.
  host.log.commitTo(m.commit);
  host.send({ type: "heartbeatResp", to: m.from, readSeq: m.readSeq });
}

/** One InstallSnapshot chunk; the last one installs the snapshot. */
export function handleSnapshot(host: FollowerHost, m: SnapshotMessage): void {
  const { log, snapshotReceive: rcv } = host;
  if (m.meta.index <= log.committed) {
    rcv.clearIndex(m.meta.index);
    sendAppendResponse(host, m.from, log.committed);
    return;
  }
  const verdict = rcv.classify(m, host.term);
  switch (verdict) {
    case "resync": // we lost the start (restarted, or the buffer was freed): begin again
      return sendSnapshotResponse(host, m, 0);
    case "position": // a duplicate or a gap: say where we are
      return sendSnapshotResponse(host, m, rcv.received);
    case "drop":
      assert(false, "a snapshot chunk of another transfer passed the check");
      return;
  }
  const snapshot = rcv.take(m, verdict);
  if (snapshot === undefined) sendSnapshotResponse(host, m, rcv.received);
  else restore(host, snapshot, m.from);
}

function sendSnapshotResponse(host: FollowerHost, m: SnapshotMessage, offset: number): void {
  host.send({ type: "snapResp", to: m.from, snapIndex: m.meta.index, offset });
}

function restore(host: FollowerHost, snapshot: ReceivedSnapshot, from: NodeId): void {
  const { log } = host;
  const { index, term } = snapshot.meta;
  if (log.matchTerm(index, term)) {
    // The log already holds the snapshot's last entry: just commit up to it.
    log.commitTo(index);
    sendAppendResponse(host, from, log.committed);
    return;
  }
  log.restore(snapshot);
  sendAppendResponse(host, from, log.lastIndex());
}

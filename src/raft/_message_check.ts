/**
 * Validation of peer messages before the core acts on them. Nothing a peer sends may reach an
 * assertion of the core or half-apply: {@linkcode checkShape} rejects what no correct peer
 * builds (wrong types, negative or fractional numbers, entries that are not contiguous, terms
 * above the message's own), and the core adds the checks that need its state before it
 * changes anything. {@linkcode DropCounter} counts what was dropped, by reason.
 *
 * @module
 */
import { isVoter } from "./_membership.ts";
import {
  type AppendMessage,
  type HeartbeatMessage,
  type Message,
  MESSAGE_TYPES,
  type MessageType,
  type ReadIndexResponseMessage,
  type SnapshotMessage,
} from "./_message.ts";
import type { RaftLimits } from "./_options.ts";
import type { RaftLog } from "./_raft_log.ts";
import type { ChunkVerdict } from "./_snapshot_receive.ts";
import { type Entry, type Membership, type NodeId, NONE, type Role } from "./_types.ts";

/** Why the core dropped a peer's message without acting on it. */
export type DropReason =
  /** Not a well-formed message: a field has the wrong type or an impossible number. */
  | "malformed"
  /** A `type` the core does not know. */
  | "unknownType"
  /** Addressed to another node. */
  | "wrongRecipient"
  /** Claims to come from this node itself. */
  | "fromSelf"
  /** An answer or request from a node the leader does not replicate to, or a vote from a
   * non-voter. */
  | "notMember"
  /** Well-formed but impossible content: an acknowledgement beyond the log, a read round
   * from the future, entries of a term above the message's, snapshot bytes past its end. */
  | "inconsistent"
  /** AppendEntries, heartbeat, snapshot or TimeoutNow from a second leader of the same term. */
  | "secondLeader"
  /** A heartbeat commit index beyond this node's last index: this node lost its log. */
  | "commitBeyondLog"
  /** AppendEntries whose previous entry is one of our committed entries, with another term:
   * the leader's log and our committed prefix diverged, which Raft rules out (forged
   * messages, or a disk that lost or changed entries). */
  | "divergedCommit"
  /** A snapshot larger than `snapshotBytesMax`. */
  | "snapshotTooLarge"
  /** A snapshot chunk of another transfer than the one being received. */
  | "snapshotChunk"
  /** A ReadIndex answer this node did not ask for, or from another leader or term. */
  | "unrequestedRead"
  /** A forwarded ReadIndex request while `readsPendingMax` reads wait at the leader. */
  | "readsPendingFull";

/** Every {@linkcode DropReason}, for counters and metrics. */
export const DROP_REASONS: readonly DropReason[] = [
  "malformed",
  "unknownType",
  "wrongRecipient",
  "fromSelf",
  "notMember",
  "inconsistent",
  "secondLeader",
  "commitBeyondLog",
  "divergedCommit",
  "snapshotTooLarge",
  "snapshotChunk",
  "unrequestedRead",
  "readsPendingFull",
];

/** The messages a node dropped, by reason. */
export class DropCounter {
  readonly #counts = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<
    DropReason,
    number
  >;
  readonly #onDrop: ((reason: DropReason, message: unknown) => void) | undefined;

  /** Counts drops; `onDrop`, if given, hears of each one (so the driver can log it). */
  constructor(onDrop: ((reason: DropReason, message: unknown) => void) | undefined) {
    this.#onDrop = onDrop;
  }

  /** Counts `message` as dropped for `reason`, then tells `onDrop`. */
  count(reason: DropReason, message: unknown): void {
    this.#counts[reason]++;
    this.#onDrop?.(reason, message);
  }

  /** The counts so far, as a frozen copy. */
  counts(): Readonly<Record<DropReason, number>> {
    return Object.freeze({ ...this.#counts });
  }
}

const TYPES = new Set<string>(MESSAGE_TYPES);

/** A log position or term: a non-negative safe integer. */
function isIndex(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

function isId(x: unknown): x is string {
  return typeof x === "string" && x !== "";
}

function isIdList(x: unknown): x is string[] {
  if (!Array.isArray(x)) return false;
  for (let i = 0; i < x.length; i++) {
    if (!isId(x[i]) || (i > 0 && !(x[i - 1] < x[i]))) return false; // sorted and unique
  }
  return true;
}

/** A membership as the core builds them: sorted unique lists, learners disjoint from voters. */
export function isMembership(x: unknown): x is Membership {
  if (typeof x !== "object" || x === null) return false;
  const m = x as Record<string, unknown>;
  if (!isIdList(m.voters) || !isIdList(m.outgoing) || !isIdList(m.learners)) return false;
  const voters = new Set([...m.voters, ...m.outgoing]);
  return m.learners.every((id) => !voters.has(id));
}

function isEntry(x: unknown): x is Entry {
  if (typeof x !== "object" || x === null) return false;
  const e = x as Record<string, unknown>;
  if (!isIndex(e.term) || e.term < 1 || !isIndex(e.index) || e.index < 1) return false;
  if (!(e.data instanceof Uint8Array)) return false;
  if (e.type === "normal") return true;
  // The core never plans a membership without voters (planChange refuses it).
  return e.type === "config" && isMembership(e.membership) && e.membership.voters.length > 0;
}

/**
 * Checks what can be checked without the receiver's state. Returns why the message must be
 * dropped, or undefined when it is well-formed.
 */
export function checkShape(x: unknown): DropReason | undefined {
  if (typeof x !== "object" || x === null) return "malformed";
  const m = x as Record<string, unknown>;
  if (typeof m.type !== "string" || !TYPES.has(m.type)) return "unknownType";
  if (!isId(m.from) || !isId(m.to) || !isIndex(m.term)) return "malformed";
  switch (m.type as MessageType) {
    case "app":
      return checkAppend(m);
    case "appResp":
      if (!isIndex(m.index) || typeof m.reject !== "boolean") return "malformed";
      if (!isIndex(m.rejectHint) || !isIndex(m.logTerm)) return "malformed";
      // A rejection hints at or before the probed index, with a term of the responder's log.
      if (m.reject && (m.rejectHint > m.index || m.logTerm > m.term)) return "inconsistent";
      return undefined;
    case "vote":
    case "preVote":
      if (!isIndex(m.index) || !isIndex(m.logTerm) || typeof m.transfer !== "boolean") {
        return "malformed";
      }
      // The candidate's last entry is not of a later term than the one it campaigns in.
      if (m.logTerm > m.term) return "inconsistent";
      if ((m.index === 0) !== (m.logTerm === 0)) return "inconsistent";
      return undefined;
    case "voteResp":
    case "preVoteResp":
      return typeof m.reject === "boolean" ? undefined : "malformed";
    case "heartbeat":
      return isIndex(m.commit) && isIndex(m.readSeq) ? undefined : "malformed";
    case "heartbeatResp":
      return isIndex(m.readSeq) ? undefined : "malformed";
    case "snap":
      return checkSnapshotChunk(m);
    case "snapResp":
      return isIndex(m.snapIndex) && isIndex(m.offset) ? undefined : "malformed";
    case "timeoutNow":
      return undefined;
    case "readIndex":
      return typeof m.context === "string" ? undefined : "malformed";
    case "readIndexResp":
      return typeof m.context === "string" && isIndex(m.index) ? undefined : "malformed";
  }
}

function checkAppend(m: Record<string, unknown>): DropReason | undefined {
  if (!isIndex(m.index) || !isIndex(m.logTerm) || !isIndex(m.commit)) return "malformed";
  if (!Array.isArray(m.entries)) return "malformed";
  const term = m.term as number;
  if (m.logTerm > term || (m.index === 0) !== (m.logTerm === 0)) return "inconsistent";
  let prevTerm = m.logTerm;
  for (let i = 0; i < m.entries.length; i++) {
    const e: unknown = m.entries[i];
    if (!isEntry(e)) return "malformed";
    // Contiguous after (index, logTerm), terms never decreasing and never above the leader's.
    if (e.index !== m.index + 1 + i || e.term < prevTerm || e.term > term) return "inconsistent";
    prevTerm = e.term;
  }
  return undefined;
}

function checkSnapshotChunk(m: Record<string, unknown>): DropReason | undefined {
  const meta = m.meta as Record<string, unknown> | null;
  if (typeof meta !== "object" || meta === null) return "malformed";
  if (!isIndex(meta.index) || !isIndex(meta.term) || !isMembership(meta.membership)) {
    return "malformed";
  }
  if (!isIndex(m.offset) || !isIndex(m.total) || !(m.chunk instanceof Uint8Array)) {
    return "malformed";
  }
  if (meta.index < 1 || meta.term < 1 || meta.term > (m.term as number)) return "inconsistent";
  if (meta.membership.voters.length === 0) return "inconsistent"; // a leader is among them
  if (m.offset + m.chunk.length > m.total) return "inconsistent";
  return undefined;
}

/** What {@linkcode checkMessage} needs to know of the receiver; it changes nothing. */
export interface MessageView {
  /** The receiver. */
  readonly id: NodeId;
  /** Its term. */
  readonly term: number;
  /** Its role. */
  readonly role: Role;
  /** The leader it follows in this term, or NONE. */
  readonly lead: NodeId;
  /** Its log. */
  readonly log: RaftLog;
  /** Its limits. */
  readonly limits: RaftLimits;
  /** Leader: whether it replicates to `id`. */
  isMember(id: NodeId): boolean;
  /** Leader: its latest heartbeat round. */
  readonly readSeq: number;
  /** Leader: the reads waiting. */
  readonly readsWaiting: number;
  /** Follower: what the snapshot receive would do with a chunk. */
  snapshotVerdict(m: SnapshotMessage): ChunkVerdict;
  /** Follower: whether a read answer matches a read it forwarded. */
  isForwardedRead(m: ReadIndexResponseMessage): boolean;
}

/**
 * Why the receiver must drop `m`, or undefined to process it. It looks at everything before
 * the receiver changes anything (its term included), so a dropped message never half-applies.
 */
export function checkMessage(m: Message, view: MessageView): DropReason | undefined {
  const shape = checkShape(m);
  if (shape !== undefined) return shape;
  if (m.to !== view.id) return "wrongRecipient";
  if (m.from === view.id) return "fromSelf";
  // A message of an earlier term is answered with our term or ignored; its content unused.
  if (m.term < view.term) return undefined;
  const sameTerm = m.term === view.term;
  switch (m.type) {
    case "app":
    case "heartbeat":
    case "snap":
    case "timeoutNow":
      // One leader per term: a second one is a peer's bug, not a reason to stop.
      if (sameTerm && (view.role === "leader" || (view.lead !== NONE && m.from !== view.lead))) {
        return "secondLeader";
      }
      if (m.type === "heartbeat") return checkHeartbeat(m, view);
      if (m.type === "app") return checkAppendPrevious(m, view);
      if (m.type === "snap") return checkSnapshot(m, view);
      return undefined;
    case "appResp":
    case "heartbeatResp":
    case "snapResp":
    case "readIndex":
      return sameTerm && view.role === "leader" ? checkLeaderInput(m, view) : undefined;
    case "voteResp":
    case "preVoteResp": {
      const counted = sameTerm || (m.type === "preVoteResp" && !m.reject);
      const campaigning = view.role === "candidate" || view.role === "preCandidate";
      if (counted && campaigning && !isVoter(view.log.membership(), m.from)) return "notMember";
      return undefined;
    }
    case "readIndexResp":
      return view.isForwardedRead(m) ? undefined : "unrequestedRead";
    default:
      return undefined;
  }
}

/**
 * The leader sends min(our match, its commit), and our match is an index we acknowledged as
 * durable. A commit beyond our last index means this node lost entries it acknowledged (a
 * wiped or lying disk). Clamping would commit our entries up to there, which need not be the
 * leader's: drop it; the node needs to be removed and added back.
 */
function checkHeartbeat(m: HeartbeatMessage, view: MessageView): DropReason | undefined {
  return m.commit > view.log.lastIndex() ? "commitBeyondLog" : undefined;
}

/**
 * Leader completeness: every committed entry is in the leader's log. An append whose previous
 * entry is committed here with another term proves our log and the leader's diverged; the
 * usual answer ("I hold everything up to my commit index") would make the leader believe we
 * match and leave this node silently stuck. Drop it and count it, so it shows.
 */
function checkAppendPrevious(m: AppendMessage, view: MessageView): DropReason | undefined {
  if (m.index > view.log.committed) return undefined;
  const term = view.log.term(m.index);
  return term !== undefined && term !== m.logTerm ? "divergedCommit" : undefined;
}

function checkSnapshot(m: SnapshotMessage, view: MessageView): DropReason | undefined {
  if (m.meta.index <= view.log.committed) return undefined; // answered with the commit index
  if (m.total > view.limits.snapshotBytesMax) return "snapshotTooLarge";
  return view.snapshotVerdict(m) === "drop" ? "snapshotChunk" : undefined;
}

function checkLeaderInput(m: Message, view: MessageView): DropReason | undefined {
  if (!view.isMember(m.from)) return "notMember";
  switch (m.type) {
    case "appResp":
      return !m.reject && m.index > view.log.lastIndex() ? "inconsistent" : undefined;
    case "heartbeatResp":
      return m.readSeq > view.readSeq ? "inconsistent" : undefined;
    case "readIndex":
      return view.readsWaiting >= view.limits.readsPendingMax ? "readsPendingFull" : undefined;
    default:
      return undefined;
  }
}

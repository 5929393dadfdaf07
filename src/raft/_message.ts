import type { Entry, NodeId, SnapshotMeta } from "./_types.ts";

/** Fields every Raft message carries. */
interface MessageBase {
  /** The sender. */
  readonly from: NodeId;
  /** The receiver. */
  readonly to: NodeId;
  /** The sender's term (for `preVote`, the term it would campaign in). */
  readonly term: number;
}

/** AppendEntries: entries following (`index`, `logTerm`), and the leader's commit index. */
export interface AppendMessage extends MessageBase {
  readonly type: "app";
  /** Index of the entry just before `entries`. */
  readonly index: number;
  /** Term of the entry at `index`. */
  readonly logTerm: number;
  /** Entries to append, contiguous from `index + 1`; may be empty (commit update or probe). */
  readonly entries: readonly Entry[];
  /** The leader's commit index. */
  readonly commit: number;
}

/** Answer to {@linkcode AppendMessage} (also sent after a snapshot is installed). */
export interface AppendResponseMessage extends MessageBase {
  readonly type: "appResp";
  /** Accepted: the last index now known to match the leader. Rejected: the probed index. */
  readonly index: number;
  /** True when the entry at the probed index did not match. */
  readonly reject: boolean;
  /** Rejected: the highest index that may match (fast back-off). */
  readonly rejectHint: number;
  /** Rejected: the term at `rejectHint` in the follower's log (0 when unknown). */
  readonly logTerm: number;
}

/** RequestVote or its pre-vote probe. */
export interface VoteMessage extends MessageBase {
  readonly type: "vote" | "preVote";
  /** The candidate's last log index. */
  readonly index: number;
  /** The term of the candidate's last log entry. */
  readonly logTerm: number;
  /** Campaign started by a leadership transfer: it overrides leader leases. */
  readonly transfer: boolean;
}

/** Answer to {@linkcode VoteMessage}. */
export interface VoteResponseMessage extends MessageBase {
  readonly type: "voteResp" | "preVoteResp";
  /** True when the vote is refused. */
  readonly reject: boolean;
}

/** Leader heartbeat; also confirms leadership for pending ReadIndex requests. */
export interface HeartbeatMessage extends MessageBase {
  readonly type: "heartbeat";
  /** `min(match of the receiver, leader commit)`: always safe for the receiver to commit. */
  readonly commit: number;
  /** The leader's highest ReadIndex sequence number at the time of sending. */
  readonly readSeq: number;
}

/** Answer to {@linkcode HeartbeatMessage}. */
export interface HeartbeatResponseMessage extends MessageBase {
  readonly type: "heartbeatResp";
  /** Echo of the heartbeat's `readSeq`. */
  readonly readSeq: number;
}

/** One chunk of an InstallSnapshot transfer. */
export interface SnapshotMessage extends MessageBase {
  readonly type: "snap";
  /** The snapshot being sent. */
  readonly meta: SnapshotMeta;
  /** Byte offset of `chunk` in the snapshot data. */
  readonly offset: number;
  /** Total length of the snapshot data in bytes. */
  readonly total: number;
  /** The bytes `[offset, offset + chunk.length)` of the snapshot data. */
  readonly chunk: Uint8Array;
}

/** Acknowledges snapshot chunks: the receiver holds the first `offset` bytes. */
export interface SnapshotResponseMessage extends MessageBase {
  readonly type: "snapResp";
  /** The `meta.index` of the snapshot being received. */
  readonly snapIndex: number;
  /** How many bytes of it the receiver holds: the offset of the next chunk it wants. */
  readonly offset: number;
}

/** Tells the leadership transfer target to campaign at once. */
export interface TimeoutNowMessage extends MessageBase {
  readonly type: "timeoutNow";
}

/** A follower forwards a linearizable read request to the leader. */
export interface ReadIndexMessage extends MessageBase {
  readonly type: "readIndex";
  /** The request's context, echoed in the answer. */
  readonly context: string;
}

/** The leader's answer to {@linkcode ReadIndexMessage}. */
export interface ReadIndexResponseMessage extends MessageBase {
  readonly type: "readIndexResp";
  /** The request's context. */
  readonly context: string;
  /** The read index: serve the read once applied reaches it. */
  readonly index: number;
}

/** Every message one Raft node sends another. */
export type Message =
  | AppendMessage
  | AppendResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | SnapshotMessage
  | SnapshotResponseMessage
  | TimeoutNowMessage
  | ReadIndexMessage
  | ReadIndexResponseMessage;

/** The `type` of a {@linkcode Message}. */
export type MessageType = Message["type"];

/** Every message type, for validation at the network boundary. */
export const MESSAGE_TYPES: readonly MessageType[] = [
  "app",
  "appResp",
  "vote",
  "preVote",
  "voteResp",
  "preVoteResp",
  "heartbeat",
  "heartbeatResp",
  "snap",
  "snapResp",
  "timeoutNow",
  "readIndex",
  "readIndexResp",
];

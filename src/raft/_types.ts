/** Identifier of a Raft member: unique across the deployment and never reused. */
export type NodeId = string;

/** "No node": no vote cast, no leader known. */
export const NONE: NodeId = "";

/** The kind of a log entry. */
export type EntryType = "normal" | "config";

/**
 * The voters and learners of a cluster. `outgoing` is non-empty only while the cluster is in
 * a joint configuration (C_old,new): then decisions need a majority of `voters` *and* of
 * `outgoing`. Learners receive the log but never vote and never count toward a majority.
 */
export interface Membership {
  /** Voters of the (incoming) configuration, sorted. */
  readonly voters: readonly NodeId[];
  /** Voters of the outgoing configuration while joint, sorted; empty otherwise. */
  readonly outgoing: readonly NodeId[];
  /** Non-voting members, sorted; disjoint from `voters` and `outgoing`. */
  readonly learners: readonly NodeId[];
}

/** One entry of the replicated log. */
export interface Entry {
  /** Term of the leader that created the entry. */
  readonly term: number;
  /** Position in the log, from 1. */
  readonly index: number;
  /** `normal` carries an application command; `config` a new membership. */
  readonly type: EntryType;
  /**
   * `normal`: the application's command (empty for the leader's no-op).
   * `config`: opaque application context (e.g. the addresses of an added member).
   */
  readonly data: Uint8Array;
  /** The full membership that takes effect when this entry is appended (`config` only). */
  readonly membership?: Membership;
}

/** The state that must be durable before any message that depends on it is sent. */
export interface HardState {
  /** The latest term this node has seen. */
  readonly term: number;
  /** The candidate this node voted for in `term`, or {@linkcode NONE}. */
  readonly vote: NodeId;
  /** The highest log index known to be committed. */
  readonly commit: number;
}

/** Describes a snapshot: the log prefix up to `index` folded into the state machine. */
export interface SnapshotMeta {
  /** The last log index the snapshot includes. */
  readonly index: number;
  /** The term of the entry at `index`. */
  readonly term: number;
  /** The membership in effect at `index`. */
  readonly membership: Membership;
}

/**
 * A snapshot's bytes kept outside memory (on disk), read a piece at a time. A storage hands
 * one out so that a large state is not held twice in memory (once live, once encoded).
 */
export interface SnapshotReader {
  /** The snapshot's length in bytes. */
  readonly length: number;
  /**
   * The bytes `[offset, offset + bytes)` (cut at the end); undefined when they are not in
   * memory yet: the reader then fetches them and the caller asks again later (the leader does
   * when the driver calls `Raft.snapshotBytesFetched()`, or at the follower's next heartbeat
   * answer); null when they are gone for good (a newer
   * snapshot replaced this one). Never throws; the caller may hand the answer on.
   */
  read(offset: number, bytes: number): Uint8Array | undefined | null;
  /** The same bytes as `read`, waiting for them (for callers that may wait; the core never does). */
  load(offset: number, bytes: number): Promise<Uint8Array>;
}

/** A snapshot's serialized state: in memory, or behind a {@linkcode SnapshotReader}. */
export type SnapshotData = Uint8Array | SnapshotReader;

/** A state machine snapshot: its metadata and the application's serialized state. */
export interface Snapshot {
  /** Which log prefix the snapshot replaces. */
  readonly meta: SnapshotMeta;
  /**
   * The application's serialized state machine. A snapshot received from a leader, and one
   * given to `createSnapshot`, is a Uint8Array; a storage may answer `snapshot()` with a
   * reader instead.
   */
  readonly data: SnapshotData;
}

/** A snapshot with its bytes in memory: what a follower receives, installs and persists. */
export interface ReceivedSnapshot extends Snapshot {
  /** The application's serialized state machine. */
  readonly data: Uint8Array;
}

/**
 * The bytes `[offset, offset + bytes)` of `data`: undefined while a reader fetches them, null
 * when they are gone (see {@linkcode SnapshotReader.read}).
 */
export function readSnapshotData(
  data: SnapshotData,
  offset: number,
  bytes: number,
): Uint8Array | undefined | null {
  return data instanceof Uint8Array
    ? data.subarray(offset, offset + bytes)
    : data.read(offset, bytes);
}

/** The result of a linearizable read request: serve it once `applied >= index`. */
export interface ReadState {
  /** The context the read was requested with. */
  readonly context: string;
  /** The commit index at the time the leader received the request. */
  readonly index: number;
}

/** The role of a node. */
export type Role = "follower" | "preCandidate" | "candidate" | "leader";

/** Volatile state worth reporting to the application when it changes. */
export interface SoftState {
  /** The current role. */
  readonly role: Role;
  /** The leader this node follows (itself when leader), or {@linkcode NONE}. */
  readonly leader: NodeId;
}

/** The hard state of a node that has never run. */
export const EMPTY_HARD_STATE: HardState = { term: 0, vote: NONE, commit: 0 };

/** The membership of a node that has not joined any cluster yet. */
export const EMPTY_MEMBERSHIP: Membership = { voters: [], outgoing: [], learners: [] };

import { assert } from "./_errors.ts";
import type { DropReason } from "./_message_check.ts";
import type { Storage } from "./_storage.ts";
import type { NodeId } from "./_types.ts";

/** How to build a Raft node. Limits left out take the defaults of {@linkcode RAFT_LIMITS}. */
export interface RaftOptions {
  /** This node's id. */
  readonly id: NodeId;
  /** The durable state to start from; the core only reads it. */
  readonly storage: Storage;
  /** Election timeout in ticks: the lower bound, and the leader lease of check-quorum. */
  readonly electionTicks: number;
  /** Each election timeout is drawn uniformly from `[electionTicks, electionTicksMax)`;
   * default `2 * electionTicks`. */
  readonly electionTicksMax?: number;
  /** Heartbeat interval in ticks; must be less than `electionTicks`. */
  readonly heartbeatTicks: number;
  /** Injected randomness: returns a uniform number in `[0, 1)`. */
  readonly random: () => number;
  /** The last index the application applied before a restart (default: the snapshot's). */
  readonly applied?: number;
  /** Probe with a pre-vote before disrupting the cluster with a new term (default true). */
  readonly preVote?: boolean;
  /** A leader steps down when it has not heard from a quorum for an election timeout, and
   * followers ignore votes while they hear from a leader (default true). */
  readonly checkQuorum?: boolean;
  /** Limits; each defaults to the value in {@linkcode RAFT_LIMITS}. */
  readonly limits?: Partial<RaftLimits>;
  /**
   * Called for every peer message the core drops (after counting it), so the driver can log
   * it; rate-limit there, a faulty peer may send many. Must not throw.
   */
  readonly onDrop?: (reason: DropReason, message: unknown) => void;
}

/** Every limit of the core, named after what it bounds. */
export interface RaftLimits {
  /** Entry bytes in one AppendEntries message (at least one entry is always sent). */
  readonly appendBytesMax: number;
  /** Entries in one AppendEntries message. */
  readonly appendEntriesMax: number;
  /** AppendEntries messages in flight to one follower. */
  readonly inflightAppendsMax: number;
  /** Bytes of AppendEntries in flight to one follower. */
  readonly inflightBytesMax: number;
  /** Bytes the leader accepts into its log before they commit; more proposals are refused. */
  readonly uncommittedBytesMax: number;
  /** Bytes of committed entries handed to the application in one Ready. */
  readonly applyBytesMax: number;
  /** Bytes of snapshot data in one InstallSnapshot chunk. */
  readonly snapshotChunkBytes: number;
  /** Largest snapshot a follower accepts (it is assembled in memory). */
  readonly snapshotBytesMax: number;
  /** ReadIndex requests waiting at the leader. */
  readonly readsPendingMax: number;
  /** Entry bytes one Ready hands out to persist (at least one entry), so a persist is short. */
  readonly persistBytesMax: number;
}

/** The default limits. */
export const RAFT_LIMITS: RaftLimits = {
  appendBytesMax: 1 << 20,
  appendEntriesMax: 512,
  inflightAppendsMax: 64,
  inflightBytesMax: 16 << 20,
  uncommittedBytesMax: 64 << 20,
  applyBytesMax: 4 << 20,
  snapshotChunkBytes: 1 << 20,
  snapshotBytesMax: 4 * 2 ** 30,
  readsPendingMax: 16_384,
  persistBytesMax: 4 << 20,
};

/** Validates options and fills in defaults. */
export function resolveOptions(
  options: RaftOptions,
): Required<Omit<RaftOptions, "limits" | "onDrop">> & {
  limits: RaftLimits;
  onDrop: RaftOptions["onDrop"];
} {
  const limits = { ...RAFT_LIMITS, ...options.limits };
  assert(options.id !== "", "node id must not be empty");
  assert(
    Number.isInteger(options.heartbeatTicks) && options.heartbeatTicks >= 1,
    "heartbeatTicks must be an integer >= 1",
  );
  assert(
    Number.isInteger(options.electionTicks) && options.electionTicks > options.heartbeatTicks,
    "electionTicks must be an integer > heartbeatTicks",
  );
  const electionTicksMax = options.electionTicksMax ?? 2 * options.electionTicks;
  assert(
    // A span of one tick gives every node the same timeout: candidates in lockstep can
    // split the vote forever.
    Number.isInteger(electionTicksMax) && electionTicksMax >= options.electionTicks + 2,
    "electionTicksMax must be an integer >= electionTicks + 2",
  );
  for (const [name, value] of Object.entries(limits)) {
    assert(Number.isInteger(value) && value >= 1, `limit ${name} must be an integer >= 1`);
  }
  return {
    id: options.id,
    storage: options.storage,
    electionTicks: options.electionTicks,
    electionTicksMax,
    heartbeatTicks: options.heartbeatTicks,
    random: options.random,
    applied: options.applied ?? 0,
    preVote: options.preVote ?? true,
    checkQuorum: options.checkQuorum ?? true,
    limits,
    onDrop: options.onDrop,
  };
}

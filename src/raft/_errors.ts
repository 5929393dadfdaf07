import type { NodeId } from "./_types.ts";

/** A broken invariant of the core: the process must stop; never catch and ignore it. */
export class RaftInvariantError extends Error {
  /** Creates the error with the violated invariant's description. */
  constructor(message: string) {
    super(`Raft invariant violated: ${message}`);
    this.name = "RaftInvariantError";
  }
}

/** Throws {@linkcode RaftInvariantError} when `condition` is false. Stays on in production. */
export function assert(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new RaftInvariantError(typeof message === "string" ? message : message());
  }
}

/** The request needs the leader and this node is not it; `leader` is the hint, if known. */
export class NotLeaderError extends Error {
  /** The leader this node knows of, or "" when none. */
  readonly leader: NodeId;
  /** Creates the error for node `id` with the leader hint. */
  constructor(id: NodeId, leader: NodeId) {
    super(
      leader === ""
        ? `Cannot serve the request: node ${id} is not the leader and knows no leader`
        : `Cannot serve the request: node ${id} is not the leader; the leader is ${leader}`,
    );
    this.name = "NotLeaderError";
    this.leader = leader;
  }
}

/** The leader refuses a proposal for now: retry later (transfer in progress, queue full). */
export class ProposalDroppedError extends Error {
  /** Creates the error with the reason. */
  constructor(message: string) {
    super(message);
    this.name = "ProposalDroppedError";
  }
}

/** A membership change that is invalid or cannot be made now. */
export class MembershipChangeError extends Error {
  /** Creates the error with the reason. */
  constructor(message: string) {
    super(message);
    this.name = "MembershipChangeError";
  }
}

/** A leadership transfer that cannot be made. */
export class TransferLeaderError extends Error {
  /** Creates the error with the reason. */
  constructor(message: string) {
    super(message);
    this.name = "TransferLeaderError";
  }
}

/** The requested log index lies before the first index: it was compacted into a snapshot. */
export class CompactedError extends Error {
  /** Creates the error for `index` below `firstIndex`. */
  constructor(index: number, firstIndex: number) {
    super(`Cannot read log index ${index}: compacted; the log starts at ${firstIndex}`);
    this.name = "CompactedError";
  }
}

/** The requested log index lies after the last index. */
export class UnavailableError extends Error {
  /** Creates the error for `index` above `lastIndex`. */
  constructor(index: number, lastIndex: number) {
    super(`Cannot read log index ${index}: not yet in the log; the last index is ${lastIndex}`);
    this.name = "UnavailableError";
  }
}

/** A snapshot older than the one the storage holds. */
export class SnapshotOutOfDateError extends Error {
  /** Creates the error for a snapshot at `index` when the storage has one at `current`. */
  constructor(index: number, current: number) {
    super(`Cannot apply snapshot at index ${index}: the storage holds one at ${current}`);
    this.name = "SnapshotOutOfDateError";
  }
}

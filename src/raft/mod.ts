/**
 * The Raft core: a pure, deterministic state machine (no I/O, no clock, no ambient
 * randomness). Drive it with {@linkcode Raft.tick}, {@linkcode Raft.step} and the proposal
 * methods; do what each {@linkcode Ready} asks, then call {@linkcode Raft.advance}.
 *
 * @module
 */
export { Raft } from "./raft.ts";
export type { Applicable, ProgressStatus, Proposed, RaftStatus, Ready } from "./raft.ts";
export { RAFT_LIMITS } from "./_options.ts";
export type { RaftLimits, RaftOptions } from "./_options.ts";
export { MemoryStorage } from "./memory_storage.ts";
export { bootstrapStorage } from "./_bootstrap.ts";
export { ENTRY_OVERHEAD_BYTES, entryBytes } from "./_storage.ts";
export type { InitialState, LogStorage, PersistBatch, Storage } from "./_storage.ts";
export { isJoint, isVoter, membersOf, planChange } from "./_membership.ts";
export type { MembershipChange } from "./_membership.ts";
export { MESSAGE_TYPES } from "./_message.ts";
export { DROP_REASONS } from "./_message_check.ts";
export type { DropReason } from "./_message_check.ts";
export type * from "./_message.ts";
export {
  assert,
  CompactedError,
  MembershipChangeError,
  NotLeaderError,
  ProposalDroppedError,
  RaftInvariantError,
  SnapshotOutOfDateError,
  TransferLeaderError,
  UnavailableError,
} from "./_errors.ts";
export { EMPTY_HARD_STATE, EMPTY_MEMBERSHIP, NONE, readSnapshotData } from "./_types.ts";
export type {
  Entry,
  EntryType,
  HardState,
  Membership,
  NodeId,
  ReadState,
  ReceivedSnapshot,
  Role,
  Snapshot,
  SnapshotData,
  SnapshotMeta,
  SnapshotReader,
  SoftState,
} from "./_types.ts";

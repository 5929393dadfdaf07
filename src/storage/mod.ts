/**
 * Durable state of a node: the Raft log, hard state and snapshots in one Deno.Kv file
 * ({@linkcode KvLogStorage}), the replicated key-value state machine
 * ({@linkcode KvStateMachine}), which lives in memory and is rebuilt from the snapshot and the
 * committed log at start, with copy-on-write snapshot views ({@linkcode KvSnapshotView}), and
 * the data directory's lock ({@linkcode lockDataDir}).
 *
 * @module
 */
export {
  GARBAGE_DELETES_PER_COMMIT,
  KvLogStorage,
  SNAPSHOT_CHUNKS_PER_COMMIT,
} from "./kv_log_storage.ts";
export type { KvLogStorageOptions, KvLogStorageStats, SnapshotData } from "./kv_log_storage.ts";
export type { BeforeCommitHook } from "./_commit_plan.ts";
export {
  decodeMemberContext,
  encodeMemberContext,
  KvStateMachine,
  REQUEST_IDS_MAX,
  STATE_BYTES_MAX,
} from "./kv_state_machine.ts";
export type {
  KvApplied,
  KvStateMachineOptions,
  KvValue,
  MemberAddress,
} from "./kv_state_machine.ts";
export { KvSnapshotView, SNAPSHOT_ENCODE_CHUNK_BYTES } from "./kv_snapshot_view.ts";
export { DECODE_SLICE_MS, SNAPSHOT_VERSION } from "./_sm_snapshot.ts";
export {
  CommandDecodeError,
  decodeCommand,
  encodeCommand,
  parseRequestId,
  ValueEncoding,
} from "./kv_command.ts";
export type {
  KvCheck,
  KvCommand,
  KvEffect,
  KvMutation,
  KvNumericOp,
  KvResult,
} from "./kv_command.ts";
export {
  numericResult,
  suffixedKey,
  timeOfVersionstamp,
  VERSIONSTAMP_BYTES,
  versionstampAt,
  versionstampBytes,
  versionstampFromBytes,
  versionstampHex,
  VS_PER_MS,
} from "./_versionstamp.ts";
export {
  decodeRouteCommand,
  encodeRouteCommand,
  isRouteCommand,
  ROUTE_COMMAND_VERSION,
  stagedKeyFromWire,
  stagedKeyToWire,
} from "./route_command.ts";
export type { KeyMeta, RouteCommand, SessionRecord, StagedKey } from "./route_command.ts";
export { PairDigest, SESSIONS_PER_COMMAND_MAX } from "./_route_apply.ts";
export { RoutingState } from "./_routing_state.ts";
export type { Cursor, MoveState, Ownership, RoutingSpec, TableSpec } from "./_routing_state.ts";
export { StorageCorruptError } from "./_codec.ts";
export {
  decodeTxnEntry,
  decodeTxnState,
  encodeTxnEntry,
  encodeTxnState,
  isTxnCommand,
  isTxnId,
  TXN_COMMAND_VERSION,
  TXN_PARTICIPANTS_MAX,
} from "./txn_command.ts";
export type { TxnEntry } from "./txn_command.ts";
export {
  CHUNK_BYTES,
  KV_COMMIT_BYTES_MAX,
  KV_MUTATIONS_MAX,
  KV_VALUE_BYTES_MAX,
} from "./_commit_plan.ts";
export {
  DataDirLockedError,
  DataDirUnwritableError,
  LOCK_FILE,
  lockDataDir,
  PROBE_FILE,
  probeWritable,
} from "./data_dir.ts";
export type { DataDirLock } from "./data_dir.ts";

/**
 * Durable state of a node: the Raft log, hard state and snapshots in one Deno.Kv file
 * ({@linkcode KvLogStorage}), and the replicated key-value state machine
 * ({@linkcode KvStateMachine}), which lives in memory and is rebuilt from the snapshot and the
 * committed log at start.
 *
 * @module
 */
export { KvLogStorage } from "./kv_log_storage.ts";
export type { KvLogStorageStats } from "./kv_log_storage.ts";
export {
  decodeMemberContext,
  encodeMemberContext,
  KvStateMachine,
  REQUEST_IDS_MAX,
  STATE_BYTES_MAX,
} from "./kv_state_machine.ts";
export type { KvStateMachineOptions, KvValue, MemberAddress } from "./kv_state_machine.ts";
export { CommandDecodeError, decodeCommand, encodeCommand, parseRequestId } from "./kv_command.ts";
export type { KvCheck, KvCommand, KvMutation, KvResult } from "./kv_command.ts";
export { StorageCorruptError } from "./_codec.ts";
export {
  CHUNK_BYTES,
  KV_COMMIT_BYTES_MAX,
  KV_MUTATIONS_MAX,
  KV_VALUE_BYTES_MAX,
} from "./_commit_plan.ts";

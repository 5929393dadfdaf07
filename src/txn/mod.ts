/**
 * Cross-cluster transactions (docs/transactions.md): the participant state each cluster's log
 * applies, the coordinator of an attempt and of a lock's resolution, and consistent snapshot
 * reads over several clusters. Pure: no I/O, no clock, no randomness.
 *
 * @module
 */
export * from "./_types.ts";
export { justAfter, keyBytes, keyString, prefixEnd } from "./_keys.ts";
export {
  type LogTimeOf,
  type TxnIntent,
  type TxnMutationShape,
  TxnParticipant,
  type TxnParticipantState,
  type TxnRemembered,
  type TxnStore,
} from "./_participant.ts";
export {
  TxnAttempt,
  type TxnAttemptResult,
  TxnResolution,
  type TxnSend,
  type TxnShare,
} from "./_attempt.ts";
export { TOUCH_BYTES_MAX, TOUCH_ENTRIES_MAX, TouchLog } from "./_touch_log.ts";
export {
  type KeySpan,
  type MergeRange,
  type PlacedRange,
  type ReadRange,
  serveSnapshotCheck,
  serveSnapshotRead,
  SNAPSHOT_FENCE_AFTER_ROUNDS,
  SNAPSHOT_ROUNDS_MAX,
  type SnapshotCheck,
  type SnapshotPart,
  SnapshotRead,
  type SnapshotStep,
} from "./_snapshot_read.ts";
export { LOCK_HEADERS, TXN_PATHS } from "./_wire.ts";

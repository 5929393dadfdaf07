/**
 * What other layers of koi use from the client beyond its public API (`mod.ts`): raw POSTs
 * to the cluster that owns a key or to a named cluster, with the client's routing, retries
 * and request-id sessions. The KV Connect gateway forwards its protobuf bodies with them.
 *
 * @module
 */
export { rawCallsOf } from "./client.ts";
export { RAW_REQUEST_ID_HEADER, type RawAnswer, RawCalls, type RawPost } from "./_raw.ts";
export { compareBytes, equalBytes } from "./_bytes.ts";
export { ClusterLeftError } from "./_failures.ts";
export type { AnswerRoom } from "./_http.ts";
export {
  decodeCheck,
  decodeHeld,
  decodePart,
  decodeRecords,
  decodeTxnAnswer,
  encodeCheck,
  encodeFence,
  encodeReadRanges,
  encodeTxnCommand,
  lockOfError,
  MSGPACK_TYPE,
  type ReadEntry,
  TXN_CHECK_PATH,
  TXN_COMMAND_PATH,
  TXN_HELD_PATH,
  TXN_READ_PATH,
  TXN_RECORDS_PATH,
  type UnforgottenDecision,
} from "./_txn_wire.ts";
export { type JanitorTransport, sweepDecisions, type SweepReport } from "./_txn_janitor.ts";
export {
  resolveLock,
  runTransaction,
  snapshotRead,
  SYSTEM_TXN_CLOCK,
  TXN_TIMINGS,
  type TxnClock,
  type TxnPlan,
  TxnRejectedError,
  type TxnRun,
  type TxnTimings,
  type TxnTransport,
} from "./_txn.ts";

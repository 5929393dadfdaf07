/**
 * The koi routing client: {@linkcode connect} fetches the CARP routing table from the
 * admin; the {@linkcode KoiClient} it returns sends each key request to the leader of the
 * owning cluster, retries `503`, timeouts, broken connections and `421 wrong_shard` within
 * each call's deadline, and makes retried writes idempotent with request-id sessions.
 * docs/client.md describes it in full.
 *
 * @example
 * ```ts
 * import { connect } from "./mod.ts";
 *
 * using koi = await connect("http://127.0.0.1:7000");
 * await koi.put("user:1", "Ada");
 * console.log(await koi.getText("user:1")); // { value: "Ada", rev: … }
 * ```
 *
 * @module
 */
export { connect, KoiClient } from "./client.ts";
export {
  ATTEMPT_TIMEOUT_MS_DEFAULT,
  KEY_BYTES_MAX,
  LIST_LIMIT_DEFAULT,
  LIST_LIMIT_MAX,
  TIMEOUT_MS_DEFAULT,
  VALUE_BYTES_MAX,
} from "./_limits.ts";
export type * from "./_types.ts";
export type { ClusterInfo, NodeInfo, RoutingTable } from "./_table.ts";
export { deploymentStatus } from "./_status.ts";
export { HISTORY_OPERATIONS_MAX_DEFAULT, HistoryRecorder } from "./history.ts";
export type {
  HistoryHandle,
  HistoryInvocation,
  HistoryOutcome,
  HistoryRecorderOptions,
  HistoryResult,
  RecordedOperation,
} from "./history.ts";
export type {
  AdminClusterReport,
  AdminNodeReport,
  DeploymentStatus,
  DeploymentStatusOptions,
  NodeStatus,
} from "./_status.ts";
export {
  KoiError,
  KoiHttpError,
  PreconditionFailedError,
  TimeoutError,
  UnavailableError,
  WatchCompactedError,
} from "./errors.ts";
export type {
  KoiClientErrorCode,
  KoiErrorCode,
  KoiErrorOptions,
  KoiHttpErrorOptions,
  KoiServerErrorCode,
  RetryErrorOptions,
  WatchCompactedErrorOptions,
} from "./errors.ts";

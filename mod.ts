/**
 * koi: a sharded, Raft-replicated key-value store for Deno.
 *
 * This module is koi's library face:
 *
 * - **The routing client.** {@linkcode connect} fetches the CARP routing table from the
 *   admin and returns a {@linkcode KoiClient}: `get`, `getText`, `put`, `delete`, `list`,
 *   `scan`, `where`, `refresh`, `status`, `close`. Each key goes to the leader of the
 *   cluster that owns it; `503`, timeouts, broken connections and `421 wrong_shard` are
 *   retried within each call's deadline, and retried writes are applied at most once
 *   (request-id sessions). Failures are {@linkcode KoiError}s with a stable `code`.
 *   docs/client.md describes it in full.
 * - **CARP routing.** {@linkcode CarpTable} answers which cluster owns a key, exactly as
 *   every client, node and admin of koi computes it (docs/carp.md).
 * - **The configuration.** {@linkcode loadConfig} and {@linkcode parseConfig} read and
 *   validate `config.toml`.
 *
 * @example Connect, write, read, compare-and-set, list
 * ```ts
 * import { connect, PreconditionFailedError } from "./mod.ts";
 *
 * using koi = await connect("http://127.0.0.1:7000");
 * const { rev } = await koi.put("user:1", "Ada");
 * console.log(await koi.getText("user:1")); // { value: "Ada", rev }
 * try {
 *   await koi.put("user:1", "Bob", { ifRev: rev - 1 });
 * } catch (error) {
 *   if (!(error instanceof PreconditionFailedError)) throw error;
 *   console.log(`changed meanwhile: rev ${error.currentRev}`);
 * }
 * for await (const item of koi.scan({ prefix: "user:" })) console.log(item.keyText, item.rev);
 * ```
 *
 * @example Route without a deployment
 * ```ts
 * import { CarpTable } from "./mod.ts";
 *
 * const table = new CarpTable({
 *   scheme: "carp64",
 *   epoch: 1,
 *   members: [{ id: "a", loadFactor: 1 }, { id: "b", loadFactor: 2 }],
 * });
 * table.owner("user:42"); // "a" or "b", the same everywhere
 * ```
 *
 * @module
 */

// The routing client.
export {
  ATTEMPT_TIMEOUT_MS_DEFAULT,
  connect,
  deploymentStatus,
  HISTORY_OPERATIONS_MAX_DEFAULT,
  HistoryRecorder,
  KEY_BYTES_MAX,
  KoiClient,
  KoiError,
  KoiHttpError,
  LIST_LIMIT_DEFAULT,
  LIST_LIMIT_MAX,
  PreconditionFailedError,
  TIMEOUT_MS_DEFAULT,
  TimeoutError,
  UnavailableError,
  VALUE_BYTES_MAX,
  WatchCompactedError,
} from "./src/client/mod.ts";
export type {
  AdminClusterReport,
  AdminNodeReport,
  CallOptions,
  ClusterInfo,
  ConnectOptions,
  Consistency,
  DeleteOptions,
  DeleteResult,
  DeploymentStatus,
  DeploymentStatusOptions,
  GetOptions,
  GetResult,
  GetTextResult,
  HistoryHandle,
  HistoryInvocation,
  HistoryOutcome,
  HistoryRecorderOptions,
  HistoryResult,
  KeyRoute,
  KoiClientErrorCode,
  KoiErrorCode,
  KoiErrorOptions,
  KoiHttpErrorOptions,
  KoiServerErrorCode,
  ListItem,
  ListOptions,
  ListPage,
  NodeInfo,
  NodeStatus,
  PutOptions,
  PutResult,
  ReadFrom,
  RecordedOperation,
  RetryErrorOptions,
  RoutingTable,
  ScanOptions,
  WatchCompactedErrorOptions,
  WatchEvent,
  WatchOptions,
} from "./src/client/mod.ts";

// CARP routing.
export {
  CARP64_SEED_HI,
  CARP64_SEED_LO,
  carp64Combine,
  carp64KeyHash,
  carp64MemberHash,
  carp64Score,
  CARP_MIX,
  CARP_SCHEMES,
  carpCombine,
  CarpConfigError,
  carpHashBytes,
  carpHashString,
  carpMemberHash,
  carpMultipliers,
  CarpTable,
  carpTableFromConfig,
  hex64,
  murmur3x86_32,
} from "./src/carp/mod.ts";
export type {
  CarpMember,
  CarpRoutingConfig,
  CarpScheme,
  CarpTableOptions,
  Hash64,
} from "./src/carp/mod.ts";

// The configuration.
export {
  ConfigError,
  findNode,
  loadConfig,
  loadTlsFiles,
  parseConfig,
  tlsHostsOf,
} from "./src/config/mod.ts";
export type {
  ClusterConfig,
  HostPort,
  KoiConfig,
  KvConnectConfig,
  LoadTlsOptions,
  NodeConfig,
  ParseConfigOptions,
  RoutingScheme,
  TlsFiles,
  TlsHost,
  TlsMaterial,
} from "./src/config/mod.ts";

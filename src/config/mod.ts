/**
 * The deployment description: loads `config.toml`, validates every field, and returns
 * typed, fully resolved settings (defaults filled in, data paths absolute).
 *
 * Every problem is a {@link ConfigError} whose `field` is the TOML path of the culprit
 * (`clusters[1].nodes[0].raft`) and whose message names the field and the bad value.
 *
 * @example
 * ```ts
 * import { findNode, loadConfig } from "./mod.ts";
 *
 * const config = await loadConfig("config.toml");
 * const { node, cluster } = findNode(config, "a1");
 * console.log(node.raft.text, node.dataDir, cluster.loadFactor, config.routing.scheme);
 * ```
 *
 * @module
 */

export { ConfigError } from "./_error.ts";
export { parseHostPort } from "./_host_port.ts";
export {
  encodeSupervisedStart,
  readSupervisedStart,
  SUPERVISED_LINE_BYTES_MAX,
  SUPERVISED_START_TIMEOUT_MS,
  type SupervisedStart,
} from "./_supervised.ts";
export {
  needsGeneratedSecret,
  readSecretFile,
  SECRET_FILE_BYTES_MAX,
  secretsEqual,
  withDefaultSecret,
} from "./_secret.ts";
export {
  loadTlsFiles,
  type LoadTlsOptions,
  TLS_CHAIN_CERTIFICATES_MAX,
  TLS_FILE_BYTES_MAX,
  type TlsHost,
  tlsHostsOf,
} from "./_tls.ts";
export {
  findNode,
  loadConfig,
  loadConfigSource,
  parseConfig,
  type ParseConfigOptions,
} from "./_load.ts";
export {
  ADMIN_DATA_DEFAULT,
  type ClusterConfig,
  CLUSTERS_MIN,
  ELECTION_TIMEOUT_HEARTBEATS_MIN,
  ELECTION_TIMEOUT_MS_DEFAULT,
  ELECTION_TIMEOUT_MS_MAX,
  ELECTION_TIMEOUT_MS_MIN,
  HEARTBEAT_MS_DEFAULT,
  HEARTBEAT_MS_MAX,
  HEARTBEAT_MS_MIN,
  HOSTNAME_CHARS_MAX,
  type HostPort,
  ID_CHARS_MAX,
  ID_PATTERN,
  type KoiConfig,
  KV_CONNECT_TOKEN_CHARS_MAX,
  KV_CONNECT_TOKEN_CHARS_MIN,
  KV_CONNECT_TOKENS_MAX,
  type KvConnectConfig,
  LOAD_FACTOR_DEFAULT,
  type NodeConfig,
  NODES_PER_CLUSTER_MIN,
  PORT_MAX,
  PORT_MIN,
  ROUTING_EPOCH_DEFAULT,
  ROUTING_SCHEME_DEFAULT,
  ROUTING_SCHEMES,
  type RoutingScheme,
  SECRET_CHARS_MIN,
  type TlsFiles,
  type TlsMaterial,
} from "./_schema.ts";

/**
 * koi: a sharded, Raft-replicated key-value store for Deno.
 *
 * This module is the library face of koi: the configuration loader and types today; the
 * routing client and the CARP functions as they land.
 *
 * @module
 */
export { ConfigError, findNode, loadConfig, parseConfig } from "./src/config/mod.ts";
export type {
  ClusterConfig,
  HostPort,
  KoiConfig,
  NodeConfig,
  ParseConfigOptions,
  RoutingScheme,
} from "./src/config/mod.ts";

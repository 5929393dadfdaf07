/**
 * KV Connect, the protocol of `Deno.openKv(url)`, for koi: the data-path codec
 * (`datapath.proto`), the endpoint handler, the gateway that serves it from a deployment's
 * clusters, and its `Deno.serve` listener. docs/kv_connect.md describes what is served.
 *
 * @module
 */
export * from "./_datapath.ts";
export { KvConnectError } from "./_errors.ts";
export {
  KV_CONNECT_BODY_BYTES_MAX,
  KV_CONNECT_KEEPALIVE_MS,
  KV_CONNECT_RANGES_MAX,
  KV_CONNECT_READ_ENTRIES_MAX,
  KV_CONNECT_VERSIONS,
  type KvConnectBackend,
  kvConnectHandler,
  type KvConnectOptions,
  type KvWatch,
  type KvWatchNext,
} from "./_handler.ts";
export {
  GATEWAY_CALL_TIMEOUT_MS,
  type GatewayOptions,
  isPointRange,
  KvConnectGateway,
  NODE_ATOMIC_WRITE_PATH,
  NODE_RANGES_PER_READ_MAX,
  NODE_READ_ANSWER_BYTES_MAX,
  NODE_SNAPSHOT_READ_PATH,
  NODE_WRITE_ANSWER_BYTES_MAX,
} from "./_gateway.ts";
export {
  KV_CONNECT_WATCH_KEYS_MAX,
  KV_CONNECT_WATCH_POLL_MS,
  KV_CONNECT_WATCH_READ_MS,
  KV_CONNECT_WATCHES_MAX,
  type WatchHubOptions,
} from "./_watch_hub.ts";
export {
  KV_CONNECT_BODY_MS,
  KV_CONNECT_DRAIN_MS,
  KV_CONNECT_REQUEST_MS,
  KV_CONNECT_REQUESTS_MAX,
  KV_CONNECT_UNSENT_BYTES_MAX,
  type KvConnectListener,
  type KvConnectListenOptions,
  listenKvConnect,
} from "./_listener.ts";
export {
  HighestVersionstamp,
  VERSIONSTAMP_BYTES,
  versionstampHex,
  versionstampValue,
} from "./_versionstamp.ts";

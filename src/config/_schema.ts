/**
 * The validated shape of `config.toml` and every limit the loader checks.
 *
 * All limits live here, named with their unit last, so that the loader, its error messages
 * and the layers that use the values agree on one number.
 */

/**
 * How keys are spread over clusters: `"carp"` is exact draft-vinod-carp-v1-03, `"carp64"`
 * (the default) koi's improved variant.
 */
export type RoutingScheme = "carp" | "carp64";

/** The routing schemes `routing.scheme` accepts. */
export const ROUTING_SCHEMES: readonly RoutingScheme[] = ["carp", "carp64"];

/** The routing scheme used when `routing.scheme` is absent. */
export const ROUTING_SCHEME_DEFAULT: RoutingScheme = "carp64";

/** A validated `"host:port"` address. */
export interface HostPort {
  /** The host as written, without the brackets of an IPv6 address. */
  host: string;
  /** The port, 1..65535. */
  port: number;
  /** "host:port" as written */
  text: string;
}

/** One Raft member, with every timing value resolved (node > cluster > defaults > built-in). */
export interface NodeConfig {
  /** The node id, unique across the whole file. */
  id: string;
  /** The id of the cluster this node belongs to. */
  clusterId: string;
  /** The Raft peer protocol's TCP address. */
  raft: HostPort;
  /** The node's HTTP API address. */
  http: HostPort;
  /** absolute path of the data directory (resolved against the config file's folder) */
  dataDir: string;
  /**
   * `join = true`: the node does not found the cluster; it starts empty and waits until a
   * member adds it (`POST /v1/members`). Founding members are the nodes without `join`.
   */
  join: boolean;
  /** Election timeout range `[min, max]` in milliseconds; each timeout is drawn from it. */
  electionTimeoutMs: readonly [number, number];
  /** Interval between the leader's heartbeats, in milliseconds. */
  heartbeatMs: number;
  /** The cluster secret (peers prove it in the hello; management needs it as a bearer token). */
  secret?: string;
  /**
   * With `[tls]`: the node's TLS files (its HTTP API is HTTPS, its peer port mutual TLS);
   * absent without `[tls]`.
   */
  tls?: TlsFiles;
}

/**
 * Where the TLS files of a node or the admin are (absolute paths, resolved against the
 * config file's folder) and the fields that named them, for errors at start-up.
 */
export interface TlsFiles {
  /** The deployment's CA certificates (PEM): what the other side's certificate must chain to. */
  readonly ca: string;
  /** The certificate chain (PEM) this node or the admin presents. */
  readonly cert: string;
  /** Its private key (PEM). */
  readonly key: string;
  /** The TOML paths that gave `ca`, `cert` and `key`. */
  readonly fields: { readonly ca: string; readonly cert: string; readonly key: string };
}

/** The contents of {@linkcode TlsFiles}, read and checked: PEM texts. */
export interface TlsMaterial {
  /** The CA certificates that verify the other side. */
  readonly ca: string;
  /** The certificate chain presented. */
  readonly cert: string;
  /** Its private key. */
  readonly key: string;
}

/** One Raft cluster: a CARP member holding a share of the keys. */
export interface ClusterConfig {
  /** The cluster id: the CARP member name, hashed exactly as written. */
  id: string;
  /** Relative share of keys (CARP load factor), finite and > 0. */
  loadFactor: number;
  /** The cluster's members, in file order. */
  nodes: NodeConfig[];
}

/** A validated deployment description. */
export interface KoiConfig {
  /** absolute path of the file it was loaded from ("" when parsed from a string) */
  path: string;
  /** The admin's settings. */
  admin: {
    /** The admin's HTTP address. */
    http: HostPort;
    /**
     * absolute path of the admin's state directory (`admin.data`, default `data/admin`
     * resolved against the config file's folder): its lock and the generated secret
     */
    dataDir: string;
    /** With `[tls]`: the admin's TLS files (its HTTP API is HTTPS). */
    tls?: TlsFiles;
  };
  /** How keys are routed to clusters. */
  routing: {
    /** The routing scheme. */
    scheme: RoutingScheme;
    /** Version of the routing table; bump it whenever clusters or load factors change. */
    epoch: number;
  };
  /** The clusters, in file order. */
  clusters: ClusterConfig[];
  /**
   * `[kv_connect]`: the admin serves KV Connect (what `Deno.openKv(url)` speaks) on `listen`;
   * absent without the table (KV Connect off).
   */
  kvConnect?: KvConnectConfig;
}

/** `[kv_connect]`: the admin's KV Connect listener. */
export interface KvConnectConfig {
  /** The listener's address. */
  listen: HostPort;
  /**
   * The access tokens a client may present (`DENO_KV_ACCESS_TOKEN`); absent: the admin
   * generates one on first start and keeps it in its state directory.
   */
  tokens?: readonly string[];
}

/** `admin.data` when absent, relative to the config file's folder. */
export const ADMIN_DATA_DEFAULT = "data/admin";

/** The routing epoch when `routing.epoch` is absent. */
export const ROUTING_EPOCH_DEFAULT = 1;

/** Election timeout range `[min, max]` in milliseconds when no level of the file sets one. */
export const ELECTION_TIMEOUT_MS_DEFAULT: readonly [number, number] = Object.freeze(
  [300, 600] as const,
);
/** Heartbeat interval in milliseconds when no level of the file sets one. */
export const HEARTBEAT_MS_DEFAULT = 75;
/** CARP load factor of a cluster without `load_factor`. */
export const LOAD_FACTOR_DEFAULT = 1.0;

/** Smallest allowed election timeout minimum, in milliseconds. */
export const ELECTION_TIMEOUT_MS_MIN = 10;
/** Largest allowed election timeout (minimum or maximum), in milliseconds. */
export const ELECTION_TIMEOUT_MS_MAX = 600_000;
/** Smallest allowed heartbeat interval, in milliseconds. */
export const HEARTBEAT_MS_MIN = 1;
/** Largest allowed heartbeat interval, in milliseconds. */
export const HEARTBEAT_MS_MAX = 60_000;
/**
 * The election timeout minimum must be at least this many heartbeat intervals, so that a
 * follower hears at least one heartbeat before it times out.
 */
export const ELECTION_TIMEOUT_HEARTBEATS_MIN = 2;

/** Shortest allowed cluster secret, in characters: it authenticates peers. */
export const SECRET_CHARS_MIN = 16;
/** Longest allowed cluster or node id, in characters. */
export const ID_CHARS_MAX = 64;
/** A cluster or node id: 1..64 of [A-Za-z0-9_.-], starting with a letter or digit. */
export const ID_PATTERN: RegExp = new RegExp(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,${ID_CHARS_MAX - 1}}$`);

/** Shortest allowed KV Connect access token (`kv_connect.tokens`), in characters. */
export const KV_CONNECT_TOKEN_CHARS_MIN = 16;
/** Longest allowed KV Connect access token, in characters (it travels in a header). */
export const KV_CONNECT_TOKEN_CHARS_MAX = 1024;
/** Most access tokens `kv_connect.tokens` may list. */
export const KV_CONNECT_TOKENS_MAX = 64;

/** Lowest allowed TCP port. */
export const PORT_MIN = 1;
/** Highest allowed TCP port. */
export const PORT_MAX = 65_535;
/** Longest allowed hostname, in characters (RFC 1123). */
export const HOSTNAME_CHARS_MAX = 253;

/** Fewest clusters a file may describe. */
export const CLUSTERS_MIN = 1;
/** Fewest nodes a cluster may have. */
export const NODES_PER_CLUSTER_MIN = 1;

/** Checks that the built-in defaults obey the limits above; runs once when the module loads. */
function assertLimits(): void {
  const [min, max] = ELECTION_TIMEOUT_MS_DEFAULT;
  const ok = HEARTBEAT_MS_MIN <= HEARTBEAT_MS_DEFAULT && HEARTBEAT_MS_DEFAULT <= HEARTBEAT_MS_MAX &&
    ELECTION_TIMEOUT_MS_MIN <= min && min < max && max <= ELECTION_TIMEOUT_MS_MAX &&
    min >= ELECTION_TIMEOUT_HEARTBEATS_MIN * HEARTBEAT_MS_DEFAULT &&
    ELECTION_TIMEOUT_MS_MIN >= ELECTION_TIMEOUT_HEARTBEATS_MIN * HEARTBEAT_MS_MIN &&
    LOAD_FACTOR_DEFAULT > 0 && ROUTING_SCHEMES.includes(ROUTING_SCHEME_DEFAULT);
  if (!ok) throw new Error("Config limits are inconsistent: a built-in default breaks a limit");
}

assertLimits();

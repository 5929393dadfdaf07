/**
 * Validation of a parsed `config.toml`: pure, apart from resolving data paths.
 *
 * Every problem is a {@link ConfigError} whose `field` is the TOML path of the culprit and
 * whose message starts "Invalid config field <path>: ". Validation goes on after a problem
 * wherever the rest does not depend on the bad value, so a file with three mistakes reports
 * all three at once (one ConfigError listing them in `problems`).
 */

import { resolve } from "node:path";
import { ConfigError } from "./_error.ts";
import { addressKey, parseHostPort } from "./_host_port.ts";
import {
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
  ROUTING_EPOCH_DEFAULT,
  ROUTING_SCHEME_DEFAULT,
  ROUTING_SCHEMES,
  type RoutingScheme,
  SECRET_CHARS_MIN,
} from "./_schema.ts";
import { show } from "./_show.ts";
import { readOwnTls, readTlsTable, TLS_FIELDS, type TlsDefaults } from "./_tls.ts";

/** Where relative data paths resolve and which file the values came from. */
export interface ValidateOptions {
  /** The folder relative `data` paths are resolved against. */
  baseDir: string;
  /** The absolute path of the file, or "" when the text did not come from a file. */
  path: string;
}

type Table = Record<string, unknown>;

const TOP_FIELDS = ["admin", "routing", "cluster_defaults", "clusters", "tls", "kv_connect"];
const KV_CONNECT_FIELDS = ["listen", "tokens"];
const ADMIN_FIELDS = ["http", "data", "tls_cert", "tls_key"];
const ROUTING_FIELDS = ["scheme", "epoch"];
const DEFAULTS_FIELDS = ["election_timeout_ms", "heartbeat_ms", "secret"];
const CLUSTER_FIELDS = [
  "id",
  "load_factor",
  "nodes",
  "election_timeout_ms",
  "heartbeat_ms",
  "secret",
];
const NODE_FIELDS = [
  "id",
  "raft",
  "http",
  "data",
  "join",
  "election_timeout_ms",
  "heartbeat_ms",
  "tls_cert",
  "tls_key",
];

const ID_RULE =
  `must be 1..${ID_CHARS_MAX} characters of [A-Za-z0-9_.-] starting with a letter or digit`;
const HEARTBEAT_RULE =
  `must be an integer number of milliseconds between ${HEARTBEAT_MS_MIN} and ${HEARTBEAT_MS_MAX}`;
const ELECTION_RULE = "must be [min, max], two integer numbers of milliseconds";

/** A value together with the field it came from; `level` orders precedence (node is highest). */
interface Sourced<T> {
  value: T;
  field: string;
  level: number;
}

/** The timing and secret in force at one level of the file. */
interface Inherited {
  election: Sourced<readonly [number, number]>;
  heartbeat: Sourced<number>;
  secret?: string;
}

const LEVEL_BUILT_IN = 0;
const LEVEL_DEFAULTS = 1;
const LEVEL_CLUSTER = 2;
const LEVEL_NODE = 3;

/** Values that must be unique, each mapped to the field that first used it. */
interface Seen {
  clusterIds: Map<string, string>;
  nodeIds: Map<string, string>;
  addresses: Map<string, string>;
  dataDirs: Map<string, string>;
}

/** The problems found so far by the running {@link validateConfig} (it is synchronous). */
let problems: ConfigError[] = [];

/**
 * Runs `read`; a ConfigError it throws is recorded and `fallback` returned instead, so that
 * validation goes on with the fields that do not depend on this one.
 */
function attempt<T>(read: () => T, fallback: T): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(error);
    return fallback;
  }
}

/** Validates the parsed TOML document `raw` and returns the configuration it describes. */
export function validateConfig(raw: unknown, options: ValidateOptions): KoiConfig {
  const outer = problems;
  problems = [];
  try {
    const config = validateRoot(raw, options);
    if (problems.length === 1) throw problems[0];
    if (problems.length > 1) throw ConfigError.combine(problems);
    return config;
  } finally {
    problems = outer;
  }
}

function validateRoot(raw: unknown, options: ValidateOptions): KoiConfig {
  const root = expectTable(raw, "config");
  checkFields(root, "", TOP_FIELDS);
  const seen: Seen = {
    clusterIds: new Map(),
    nodeIds: new Map(),
    addresses: new Map(),
    dataDirs: new Map(),
  };
  const baseDir = resolve(options.baseDir);
  const tls = attempt(() => {
    if (root.tls === undefined) return undefined;
    const table = expectTable(root.tls, "tls");
    checkFields(table, "tls", TLS_FIELDS);
    return readTlsTable(table, baseDir);
  }, null); // null: [tls] is there but invalid (reported), so its users are not blamed too
  const admin = attempt(() => {
    const admin = expectTable(required(root.admin, "admin", "must be a table ([admin])"), "admin");
    checkFields(admin, "admin", ADMIN_FIELDS);
    const http = attempt(() => readAddress(admin.http, "admin.http", seen), undefined);
    const dataDir = attempt(
      () =>
        readDataDir(admin.data ?? ADMIN_DATA_DEFAULT, "admin.data", {
          baseDir,
          seen,
          defaults: builtInDefaults(),
          tls,
        }),
      "",
    );
    const own = attempt(() => readOwnTls(admin, "admin", { tls, baseDir }), undefined);
    return { http: http as HostPort, dataDir, ...(own === undefined ? {} : { tls: own }) };
  }, { http: undefined as unknown as HostPort, dataDir: "" });
  const kvConnect = attempt(() => readKvConnect(root.kv_connect, seen), undefined);
  const routing = attempt(() => readRouting(root.routing), {
    scheme: ROUTING_SCHEME_DEFAULT,
    epoch: ROUTING_EPOCH_DEFAULT,
  });
  const defaults = attempt(() => readDefaults(root.cluster_defaults), builtInDefaults());
  const rawClusters = readTableArray(root.clusters, "clusters", {
    min: CLUSTERS_MIN,
    what: "[[clusters]]",
  });
  const clusters = rawClusters.map((cluster, i) =>
    attempt(
      () => readCluster(cluster, `clusters[${i}]`, { defaults, seen, baseDir, tls }),
      undefined as unknown as ClusterConfig,
    )
  );
  return {
    path: options.path,
    admin,
    routing,
    clusters,
    ...(kvConnect === undefined ? {} : { kvConnect }),
  };
}

/** `[kv_connect]`: `listen` (required, an address like the others) and optional `tokens`. */
function readKvConnect(raw: unknown, seen: Seen): KvConnectConfig | undefined {
  if (raw === undefined) return undefined;
  const table = expectTable(raw, "kv_connect");
  checkFields(table, "kv_connect", KV_CONNECT_FIELDS);
  const listen = attempt(() => readAddress(table.listen, "kv_connect.listen", seen), undefined);
  const tokens = attempt(() => readTokens(table.tokens), undefined);
  if (listen === undefined) throw problems.pop()!; // reported; the section stands for nothing
  return { listen, ...(tokens === undefined ? {} : { tokens }) };
}

/** `kv_connect.tokens`: 1..64 distinct strings of 16..1024 characters without whitespace. */
function readTokens(value: unknown): readonly string[] | undefined {
  if (value === undefined) return undefined;
  const rule = `must be an array of 1 to ${KV_CONNECT_TOKENS_MAX} access tokens (strings)`;
  // Never echoed, not even when it is not an array: a single token given as a string is the
  // usual mistake, and error messages end up in logs.
  if (!Array.isArray(value)) {
    const got = typeof value === "string" ? "one string" : typeof value;
    fail("kv_connect.tokens", `${rule}, got ${got}`);
  }
  const items = value as unknown[];
  if (items.length === 0 || items.length > KV_CONNECT_TOKENS_MAX) {
    fail("kv_connect.tokens", `${rule}, got ${items.length}`);
  }
  const first = new Map<string, string>();
  return items.map((token, i) =>
    attempt(() => {
      const field = `kv_connect.tokens[${i}]`;
      // A token is never echoed: error messages end up in logs.
      if (typeof token !== "string") {
        fail(field, `must be a string, got ${Array.isArray(token) ? "an array" : typeof token}`);
      }
      const chars = [...token].length;
      if (chars < KV_CONNECT_TOKEN_CHARS_MIN || chars > KV_CONNECT_TOKEN_CHARS_MAX) {
        fail(
          field,
          `must be ${KV_CONNECT_TOKEN_CHARS_MIN} to ${KV_CONNECT_TOKEN_CHARS_MAX} characters, ` +
            `because it authenticates clients, got ${chars} characters`,
        );
      }
      // deno-lint-ignore no-control-regex
      if (/[\s\x00-\x1f\x7f]/.test(token)) {
        fail(field, "must have no whitespace or control characters (it is sent in a header)");
      }
      claim(first, token, { field, what: "access token" });
      return token;
    }, "")
  );
}

function readRouting(raw: unknown): { scheme: RoutingScheme; epoch: number } {
  if (raw === undefined) return { scheme: ROUTING_SCHEME_DEFAULT, epoch: ROUTING_EPOCH_DEFAULT };
  const routing = expectTable(raw, "routing");
  checkFields(routing, "routing", ROUTING_FIELDS);
  const epoch = attempt(() => {
    const value = routing.epoch ?? ROUTING_EPOCH_DEFAULT;
    if (!isInteger(value) || value < 1) {
      fail("routing.epoch", `must be an integer >= 1, got ${show(routing.epoch)}`);
    }
    return value as number;
  }, ROUTING_EPOCH_DEFAULT); // a bad epoch does not hide a bad scheme
  const scheme = routing.scheme;
  if (scheme === undefined) return { scheme: ROUTING_SCHEME_DEFAULT, epoch };
  if (!ROUTING_SCHEMES.includes(scheme as RoutingScheme)) {
    const allowed = ROUTING_SCHEMES.map((s) => `"${s}"`).join(" or ");
    fail("routing.scheme", `must be ${allowed}, got ${show(scheme)}`);
  }
  return { scheme: scheme as RoutingScheme, epoch };
}

function builtInDefaults(): Inherited {
  return {
    election: { value: ELECTION_TIMEOUT_MS_DEFAULT, field: "", level: LEVEL_BUILT_IN },
    heartbeat: { value: HEARTBEAT_MS_DEFAULT, field: "", level: LEVEL_BUILT_IN },
  };
}

function readDefaults(raw: unknown): Inherited {
  const builtIn = builtInDefaults();
  if (raw === undefined) return builtIn;
  const table = expectTable(raw, "cluster_defaults");
  checkFields(table, "cluster_defaults", DEFAULTS_FIELDS);
  return readLevel(table, "cluster_defaults", { inherited: builtIn, level: LEVEL_DEFAULTS });
}

interface ClusterContext {
  defaults: Inherited;
  seen: Seen;
  baseDir: string;
  /** What `[tls]` sets; undefined without it, null when it is invalid (reported already). */
  tls: TlsDefaults | undefined | null;
}

function readCluster(raw: unknown, field: string, context: ClusterContext): ClusterConfig {
  const table = expectTable(raw, field);
  checkFields(table, field, CLUSTER_FIELDS);
  const id = attempt(() => {
    const id = readId(table.id, `${field}.id`);
    claim(context.seen.clusterIds, id, { field: `${field}.id`, what: `cluster id "${id}"` });
    return id;
  }, "");
  const loadFactor = attempt(
    () => readLoadFactor(table.load_factor, `${field}.load_factor`),
    LOAD_FACTOR_DEFAULT,
  );
  const inherited = attempt(
    () => readLevel(table, field, { inherited: context.defaults, level: LEVEL_CLUSTER }),
    context.defaults,
  );
  const rawNodes = readTableArray(table.nodes, `${field}.nodes`, {
    min: NODES_PER_CLUSTER_MIN,
    what: "[[clusters.nodes]]",
  });
  const before = problems.length;
  const nodes = rawNodes.map((node, i) =>
    attempt(
      () => readNode(node, `${field}.nodes[${i}]`, { ...context, clusterId: id, inherited }),
      undefined as unknown as NodeConfig,
    )
  );
  // Only about nodes that were read: a bad `join` must not also count as "every node joins".
  if (problems.length === before && nodes.every((n) => n.join)) {
    fail(
      `${field}.nodes`,
      "every node has join = true, so no node can found the cluster; at least one must not join",
    );
  }
  return { id, loadFactor, nodes };
}

interface NodeContext extends ClusterContext {
  clusterId: string;
  inherited: Inherited;
}

function readNode(raw: unknown, field: string, context: NodeContext): NodeConfig {
  const table = expectTable(raw, field);
  const before = problems.length;
  if (table.secret !== undefined) {
    const cluster = field.slice(0, field.lastIndexOf(".nodes["));
    attempt(() =>
      fail(
        `${field}.secret`,
        `a node cannot have its own secret: every node of a cluster must share one, ` +
          `so set it on ${cluster} or in cluster_defaults`,
      ), undefined);
  }
  // The other fields are checked either way: every problem is listed at once.
  const { secret: _secret, ...others } = table;
  checkFields(others, field, NODE_FIELDS);
  const id = attempt(() => {
    const id = readId(table.id, `${field}.id`);
    claim(context.seen.nodeIds, id, { field: `${field}.id`, what: `node id "${id}"` });
    return id;
  }, "");
  const raft = attempt(() => readAddress(table.raft, `${field}.raft`, context.seen), undefined);
  const http = attempt(() => readAddress(table.http, `${field}.http`, context.seen), undefined);
  const dataDir = attempt(() => readDataDir(table.data, `${field}.data`, context), "");
  const join: unknown = table.join ?? false;
  if (typeof join !== "boolean") {
    attempt(() => fail(`${field}.join`, `must be true or false, got ${show(join)}`), undefined);
  }
  const own = attempt(
    () => readLevel(table, field, { inherited: context.inherited, level: LEVEL_NODE }),
    undefined,
  );
  if (own !== undefined) attempt(() => checkTiming(own), undefined);
  const tls = attempt(
    () => readOwnTls(table, field, { tls: context.tls, baseDir: context.baseDir }),
    undefined,
  );
  if (problems.length > before || raft === undefined || http === undefined || own === undefined) {
    // Reported already; the caller's fallback stands in for this node.
    throw problems.pop()!;
  }
  const node: NodeConfig = {
    id,
    clusterId: context.clusterId,
    raft,
    http,
    dataDir,
    join: join as boolean,
    electionTimeoutMs: own.election.value,
    heartbeatMs: own.heartbeat.value,
  };
  if (own.secret !== undefined) node.secret = own.secret;
  if (tls !== undefined) node.tls = tls;
  return node;
}

/** Reads the overrides one level sets (`election_timeout_ms`, `heartbeat_ms`, `secret`). */
function readLevel(
  table: Table,
  field: string,
  options: { inherited: Inherited; level: number },
): Inherited {
  const at = (key: string) => `${field}.${key}`;
  const { inherited, level } = options;
  const result: Inherited = { ...inherited };
  if (table.election_timeout_ms !== undefined) {
    const f = at("election_timeout_ms");
    result.election = { value: readElection(table.election_timeout_ms, f), field: f, level };
  }
  if (table.heartbeat_ms !== undefined) {
    const f = at("heartbeat_ms");
    result.heartbeat = { value: readHeartbeat(table.heartbeat_ms, f), field: f, level };
  }
  if (level !== LEVEL_NODE && table.secret !== undefined) {
    result.secret = readSecret(table.secret, at("secret"));
  }
  return result;
}

/** A follower must hear at least one heartbeat before its election timer can fire. */
function checkTiming(values: Inherited): void {
  const { election, heartbeat } = values;
  const [min, max] = election.value;
  if (min >= ELECTION_TIMEOUT_HEARTBEATS_MIN * heartbeat.value) return;
  // Blame the most specific of the two: that is where the conflicting value was introduced.
  const field = heartbeat.level > election.level ? heartbeat.field : election.field;
  const from = (s: Sourced<unknown>) => s.level === LEVEL_BUILT_IN ? "built-in default" : s.field;
  fail(
    field,
    `the election timeout min must be at least ${ELECTION_TIMEOUT_HEARTBEATS_MIN} × ` +
      `heartbeat_ms, so that a follower hears at least one heartbeat before it times out, ` +
      `got election_timeout_ms [${min}, ${max}] (${from(election)}) with heartbeat_ms ` +
      `${heartbeat.value} (${from(heartbeat)})`,
  );
}

function readElection(value: unknown, field: string): readonly [number, number] {
  if (!Array.isArray(value) || value.length !== 2) {
    fail(field, `${ELECTION_RULE}, got ${show(value)}`);
  }
  const [min, max] = value as unknown[];
  for (const [name, bound] of [["min", min], ["max", max]] as const) {
    if (!isInteger(bound)) {
      fail(field, `${name} must be an integer number of milliseconds, got ${show(value)}`);
    }
  }
  const [lo, hi] = [min as number, max as number];
  if (lo < ELECTION_TIMEOUT_MS_MIN || lo > ELECTION_TIMEOUT_MS_MAX) {
    fail(
      field,
      `min must be between ${ELECTION_TIMEOUT_MS_MIN} and ${ELECTION_TIMEOUT_MS_MAX}, ` +
        `got ${show(value)}`,
    );
  }
  if (hi <= lo) fail(field, `max must be greater than min, got ${show(value)}`);
  if (hi > ELECTION_TIMEOUT_MS_MAX) {
    fail(field, `max must be at most ${ELECTION_TIMEOUT_MS_MAX}, got ${show(value)}`);
  }
  return [lo, hi];
}

function readHeartbeat(value: unknown, field: string): number {
  if (!isInteger(value) || value < HEARTBEAT_MS_MIN || value > HEARTBEAT_MS_MAX) {
    fail(field, `${HEARTBEAT_RULE}, got ${show(value)}`);
  }
  return value;
}

function readSecret(value: unknown, field: string): string {
  // The value itself is never echoed: error messages end up in logs.
  if (typeof value !== "string") {
    fail(field, `must be a string, got ${Array.isArray(value) ? "an array" : typeof value}`);
  }
  const secret = value;
  if (secret.length < SECRET_CHARS_MIN) {
    fail(
      field,
      `must be at least ${SECRET_CHARS_MIN} characters, because it authenticates peers and ` +
        `management calls, got ${secret.length} characters`,
    );
  }
  return secret;
}

function readLoadFactor(value: unknown, field: string): number {
  if (value === undefined) return LOAD_FACTOR_DEFAULT;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    fail(field, `must be a finite number > 0, got ${show(value)}`);
  }
  return value as number;
}

function readId(value: unknown, field: string): string {
  const id = required(value, field, ID_RULE);
  if (typeof id !== "string" || !ID_PATTERN.test(id)) fail(field, `${ID_RULE}, got ${show(id)}`);
  return id;
}

function readAddress(value: unknown, field: string, seen: Seen): HostPort {
  const rule = `must be a "host:port" string`;
  const text = required(value, field, rule);
  if (typeof text !== "string") fail(field, `${rule}, got ${show(text)}`);
  const address = parseHostPort(text, field);
  claim(seen.addresses, addressKey(address), { field, what: `address "${address.text}"` });
  return address;
}

function readDataDir(value: unknown, field: string, context: ClusterContext): string {
  const rule = "must be a non-empty path (relative to the config file's folder)";
  const data = required(value, field, rule);
  if (typeof data !== "string" || data.trim() === "" || data.includes("\0")) {
    fail(field, `${rule}, got ${show(data)}`);
  }
  const dataDir = resolve(context.baseDir, data);
  // Two nodes sharing one Deno.Kv file would corrupt it.
  claim(context.seen.dataDirs, dataDir, { field, what: `data directory "${dataDir}"` });
  return dataDir;
}

/** Records that `field` uses `key`; throws when another field used it first. */
function claim(seen: Map<string, string>, key: string, owner: { field: string; what: string }) {
  const first = seen.get(key);
  if (first !== undefined) {
    fail(owner.field, `duplicate ${owner.what}, already used by ${first}`);
  }
  seen.set(key, owner.field);
}

function readTableArray(
  value: unknown,
  field: string,
  options: { min: number; what: string },
): unknown[] {
  const rule = `must be an array of tables (${options.what}) with at least ${options.min} entry`;
  const array = required(value, field, rule);
  if (!Array.isArray(array)) fail(field, `${rule}, got ${show(array)}`);
  const items = array as unknown[];
  if (items.length < options.min) fail(field, `${rule}, got ${items.length}`);
  return items;
}

/** Reports each field outside `allowed`, naming the path and the allowed fields. */
function checkFields(table: Table, field: string, allowed: readonly string[]): void {
  for (const key of Object.keys(table)) {
    if (allowed.includes(key)) continue;
    const path = field === "" ? tomlKey(key) : `${field}.${tomlKey(key)}`;
    const where = field === "" ? "at the top level" : `in ${field}`;
    attempt(
      () => fail(path, `unknown field; the fields allowed ${where} are ${allowed.join(", ")}`),
      undefined,
    );
  }
}

function expectTable(value: unknown, field: string): Table {
  if (!isTable(value)) fail(field, `must be a table, got ${show(value)}`);
  return value as Table;
}

function required(value: unknown, field: string, rule: string): unknown {
  if (value === undefined) fail(field, `missing; it ${rule}`);
  return value;
}

function isTable(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Date);
}

function isInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value);
}

/** A key as TOML would write it in a dotted path: bare when it can be, quoted otherwise. */
function tomlKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
}

function fail(field: string, problem: string): never {
  throw new ConfigError(field, `Invalid config field ${field}: ${problem}`);
}

import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ConfigError,
  ELECTION_TIMEOUT_HEARTBEATS_MIN,
  ELECTION_TIMEOUT_MS_DEFAULT,
  ELECTION_TIMEOUT_MS_MAX,
  ELECTION_TIMEOUT_MS_MIN,
  findNode,
  HEARTBEAT_MS_DEFAULT,
  HEARTBEAT_MS_MAX,
  HEARTBEAT_MS_MIN,
  type KoiConfig,
  loadConfig,
  parseConfig,
  parseHostPort,
} from "./mod.ts";
import { ADMIN, BASE_DIR, clusterToml, MINIMAL, nodeToml, parse } from "./_test_util.ts";

const REPO_DIR = fileURLToPath(new URL("../../", import.meta.url));
const SECRET = "0123456789abcdef-cluster";

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "koi_config_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function loadError(path: string): Promise<ConfigError> {
  try {
    await loadConfig(path);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  assert.fail(`expected a ConfigError loading ${path}`);
}

Deno.test("the repository's config.toml loads: clusters a, b, c of 3 nodes, carp64", async () => {
  const path = join(REPO_DIR, "config.toml");
  const config = await loadConfig(path);
  assert.equal(config.path, path);
  assert.equal(config.admin.http.text, "127.0.0.1:7000");
  assert.deepEqual(config.admin.http, { host: "127.0.0.1", port: 7000, text: "127.0.0.1:7000" });
  assert.equal(config.routing.scheme, "carp64");
  assert.deepEqual(config.clusters.map((c) => c.id), ["a", "b", "c"]);
  for (const cluster of config.clusters) {
    assert.equal(cluster.loadFactor, 1);
    assert.deepEqual(cluster.nodes.map((n) => n.id), [1, 2, 3].map((i) => `${cluster.id}${i}`));
    for (const node of cluster.nodes) {
      assert.equal(node.clusterId, cluster.id);
      assert.equal(node.dataDir, join(REPO_DIR, "data", node.id));
      assert.ok(node.dataDir.startsWith("/"), node.dataDir);
      assert.deepEqual(node.electionTimeoutMs, [300, 600]);
      assert.equal(node.heartbeatMs, 75);
      assert.equal(node.secret, undefined);
    }
  }
  const a1 = config.clusters[0].nodes[0];
  assert.deepEqual(a1.raft, { host: "127.0.0.1", port: 7101, text: "127.0.0.1:7101" });
  assert.deepEqual(a1.http, { host: "127.0.0.1", port: 7151, text: "127.0.0.1:7151" });
});

Deno.test("loadConfig takes a relative path; data dirs resolve against the file folder", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(join(dir, "etc"));
    const path = join(dir, "etc", "koi.toml");
    await Deno.writeTextFile(path, MINIMAL.replace(`"data/a1"`, `"../var/a1"`));
    const config = await loadConfig(relative(Deno.cwd(), path));
    assert.equal(config.path, path);
    assert.equal(config.clusters[0].nodes[0].dataDir, join(dir, "var", "a1"));
  });
});

Deno.test("defaults: scheme carp64, load factor 1, [300, 600] ms, 75 ms, no secret", () => {
  assert.deepEqual(ELECTION_TIMEOUT_MS_DEFAULT, [300, 600]);
  assert.equal(HEARTBEAT_MS_DEFAULT, 75);
  const config = parse(MINIMAL);
  assert.equal(config.path, "");
  assert.equal(config.routing.scheme, "carp64");
  assert.equal(config.clusters[0].loadFactor, 1);
  const node = config.clusters[0].nodes[0];
  assert.deepEqual(node.electionTimeoutMs, ELECTION_TIMEOUT_MS_DEFAULT);
  assert.equal(node.heartbeatMs, HEARTBEAT_MS_DEFAULT);
  assert.equal("secret" in node, false);
  assert.equal(node.dataDir, join(BASE_DIR, "data", "a1"));
  assert.equal(parse(ADMIN + "[routing]\n" + MINIMAL.slice(ADMIN.length)).routing.scheme, "carp64");
});

Deno.test("the built-in defaults obey the limits", () => {
  const [min, max] = ELECTION_TIMEOUT_MS_DEFAULT;
  assert.ok(ELECTION_TIMEOUT_MS_MIN <= min && min < max && max <= ELECTION_TIMEOUT_MS_MAX);
  assert.ok(HEARTBEAT_MS_MIN <= HEARTBEAT_MS_DEFAULT && HEARTBEAT_MS_DEFAULT <= HEARTBEAT_MS_MAX);
  assert.ok(min >= ELECTION_TIMEOUT_HEARTBEATS_MIN * HEARTBEAT_MS_DEFAULT);
});

Deno.test("parseConfig records the path it is given", () => {
  const config = parseConfig(MINIMAL, { baseDir: BASE_DIR, path: "/etc/koi/config.toml" });
  assert.equal(config.path, "/etc/koi/config.toml");
});

Deno.test("precedence: node value > cluster value > cluster_defaults > built-in default", () => {
  const text = ADMIN +
    `[cluster_defaults]\nelection_timeout_ms = [400, 800]\nheartbeat_ms = 50\n` +
    `secret = "${SECRET}"\n` +
    clusterToml("a", [
      nodeToml("a1", 1), // everything from cluster_defaults
      nodeToml("a2", 2, "heartbeat_ms = 20"), // own heartbeat, inherited election
      nodeToml("a3", 3, "election_timeout_ms = [200, 300]"), // own election
    ]) +
    clusterToml("b", [
      nodeToml("b1", 4), // everything from cluster b
      nodeToml("b2", 5, "election_timeout_ms = [1000, 2000]\nheartbeat_ms = 100"),
    ], `election_timeout_ms = [500, 900]\nheartbeat_ms = 60\nsecret = "b-${SECRET}"`) +
    clusterToml("c", [nodeToml("c1", 6)], "heartbeat_ms = 40"); // election from defaults
  const config = parse(text);
  const timing = (id: string) => {
    const { node } = findNode(config, id);
    return [node.electionTimeoutMs, node.heartbeatMs, node.secret];
  };
  assert.deepEqual(timing("a1"), [[400, 800], 50, SECRET]);
  assert.deepEqual(timing("a2"), [[400, 800], 20, SECRET]);
  assert.deepEqual(timing("a3"), [[200, 300], 50, SECRET]);
  assert.deepEqual(timing("b1"), [[500, 900], 60, `b-${SECRET}`]);
  assert.deepEqual(timing("b2"), [[1000, 2000], 100, `b-${SECRET}`]);
  assert.deepEqual(timing("c1"), [[400, 800], 40, SECRET]);
});

Deno.test("precedence: a cluster's values without cluster_defaults override the built-ins", () => {
  const config = parse(
    ADMIN + clusterToml("a", [nodeToml("a1", 1)], "heartbeat_ms = 100\nload_factor = 2.5"),
  );
  const cluster = config.clusters[0];
  assert.equal(cluster.loadFactor, 2.5);
  assert.equal(cluster.nodes[0].heartbeatMs, 100);
  assert.deepEqual(cluster.nodes[0].electionTimeoutMs, ELECTION_TIMEOUT_MS_DEFAULT);
});

Deno.test("loadConfig: a missing file is a ConfigError on field config, naming it", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "absent.toml");
    const error = await loadError(path);
    assert.equal(error.field, "config");
    assert.equal(error.name, "ConfigError");
    assert.ok(error.message.includes(path), error.message);
    assert.ok(error.message.includes("no such file"), error.message);
    assert.ok(error.cause instanceof Deno.errors.NotFound);
  });
});

Deno.test("loadConfig: an unreadable file (a directory) is a ConfigError naming it", async () => {
  await withTempDir(async (dir) => {
    const error = await loadError(dir);
    assert.equal(error.field, "config");
    assert.ok(error.message.startsWith(`Cannot read config file ${dir}: `), error.message);
  });
});

Deno.test("loadConfig: a TOML syntax error names the file, line and column", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "bad.toml");
    await Deno.writeTextFile(path, `${ADMIN}\n[[clusters]]\nid = "a\n`);
    const error = await loadError(path);
    assert.equal(error.field, "config");
    assert.ok(error.message.includes(path), error.message);
    assert.ok(error.message.includes("line 5, column"), error.message);
  });
});

Deno.test("a TOML syntax error is a ConfigError on field config with line and column", () => {
  for (
    const [text, line] of [
      [`${ADMIN}x =\n`, 3],
      [`${ADMIN}[admin]\n`, 3], // a table defined twice
      [`[admin]\nhttp = "127.0.0.1:7000"\nhttp = "127.0.0.1:7001"\n`, 3],
      [`__proto__ = 1\n`, 1],
    ] as const
  ) {
    let error: unknown;
    try {
      parse(text);
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof ConfigError, `no ConfigError for ${text}`);
    assert.equal(error.field, "config");
    assert.match(error.message, /^Invalid config: TOML syntax error at line \d+, column \d+: /);
    assert.ok(error.message.includes(`line ${line},`), error.message);
  }
});

Deno.test("findNode returns the node and its cluster", () => {
  const config = parse(
    ADMIN + clusterToml("a", [nodeToml("a1", 1)]) +
      clusterToml("b", [nodeToml("b1", 2), nodeToml("b2", 3)]),
  );
  const { node, cluster } = findNode(config, "b2");
  assert.equal(node.id, "b2");
  assert.equal(node.raft.port, 7103);
  assert.equal(cluster.id, "b");
  assert.equal(cluster, config.clusters[1]);
});

Deno.test("findNode: an unknown id is a ConfigError on field id listing the known ids", () => {
  const config: KoiConfig = parse(
    ADMIN + clusterToml("a", [nodeToml("a1", 1)]) + clusterToml("b", [nodeToml("b1", 2)]),
  );
  assert.throws(() => findNode(config, "z9"), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.field, "id");
    assert.ok(error.message.includes(`"z9"`), error.message);
    assert.ok(error.message.includes("a1, b1"), error.message);
    return true;
  });
});

Deno.test("ConfigError is an Error with name ConfigError, field and cause", () => {
  const cause = new Error("inner");
  const error = new ConfigError("clusters[0].id", "Invalid config field clusters[0].id: x", {
    cause,
  });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "ConfigError");
  assert.equal(error.field, "clusters[0].id");
  assert.equal(error.cause, cause);
});

Deno.test("parseHostPort is exported for addresses that arrive at run time", () => {
  assert.deepEqual(parseHostPort("[::1]:7000", "raft"), {
    host: "::1",
    port: 7000,
    text: "[::1]:7000",
  });
  assert.throws(() => parseHostPort("::1:7000", "raft"), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.field, "raft");
    assert.equal(
      error.message,
      `Invalid config field raft: an IPv6 host must be in brackets, as in "[::1]:7000", ` +
        `got "::1:7000"`,
    );
    return true;
  });
});

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ADMIN,
  assertConfigError,
  BASE_DIR,
  clusterToml,
  configError,
  MINIMAL,
  nodeToml,
  parse,
} from "./_test_util.ts";

const SECRET = "0123456789abcdef";
const NODE_A1 = nodeToml("a1", 1);

/** MINIMAL with `cluster_defaults` set to `body`. */
function withDefaults(body: string): string {
  return ADMIN + `[cluster_defaults]\n${body}\n` + clusterToml("a", [NODE_A1]);
}

/** A one-node file whose cluster has `extra` and whose node has `nodeExtra`. */
function withCluster(extra: string, nodeExtra = ""): string {
  return ADMIN + clusterToml("a", [nodeToml("a1", 1, nodeExtra)], extra);
}

/** A one-node file whose node's `key` is the TOML value `value`. */
function withNodeField(key: string, value: string): string {
  const node = nodeToml("a1", 1).replace(new RegExp(`^${key} = .*$`, "m"), `${key} = ${value}`);
  return ADMIN + clusterToml("a", [node]);
}

// admin

Deno.test("admin: the table is required", () => {
  assertConfigError(clusterToml("a", [NODE_A1]), "admin", "missing", "[admin]");
  assertConfigError(`admin = "127.0.0.1:7000"\n` + clusterToml("a", [NODE_A1]), "admin", "table");
});

Deno.test("admin: http is required and must be host:port", () => {
  assertConfigError(`[admin]\n` + clusterToml("a", [NODE_A1]), "admin.http", "missing");
  assertConfigError(MINIMAL.replace(`"127.0.0.1:7000"`, "7000"), "admin.http", "got 7000");
});

// routing

Deno.test("routing.scheme: carp or carp64, default carp64", () => {
  const rest = MINIMAL.slice(ADMIN.length);
  assert.equal(parse(ADMIN + `[routing]\nscheme = "carp"\n` + rest).routing.scheme, "carp");
  assert.equal(parse(ADMIN + `[routing]\nscheme = "carp64"\n` + rest).routing.scheme, "carp64");
  assertConfigError(
    ADMIN + `[routing]\nscheme = "rendezvous"\n` + rest,
    "routing.scheme",
    `"carp" or "carp64"`,
    `got "rendezvous"`,
  );
  assertConfigError(ADMIN + `[routing]\nscheme = 1\n` + rest, "routing.scheme", "got 1");
  assertConfigError(ADMIN + `routing = "carp"\n` + rest, "admin.routing", "unknown field");
  assertConfigError(`routing = "carp"\n` + MINIMAL, "routing", "must be a table");
});

// clusters

Deno.test("clusters: required, an array of tables with at least one cluster", () => {
  assertConfigError(ADMIN, "clusters", "missing", "[[clusters]]");
  assertConfigError(`clusters = []\n` + ADMIN, "clusters", "at least 1", "got 0");
  assertConfigError(ADMIN + `[clusters]\nid = "a"\n`, "clusters", "array of tables", "a table");
  assertConfigError(`clusters = [1]\n` + ADMIN, "clusters[0]", "must be a table, got 1");
});

Deno.test("clusters[i].nodes: required, an array of tables with at least one node", () => {
  assertConfigError(ADMIN + clusterToml("a", []), "clusters[0].nodes", "missing");
  assertConfigError(ADMIN + clusterToml("a", [], "nodes = []"), "clusters[0].nodes", "got 0");
  assertConfigError(
    ADMIN + clusterToml("a", [NODE_A1]) + clusterToml("b", [], `nodes = "b1"`),
    "clusters[1].nodes",
    `got "b1"`,
  );
});

Deno.test("clusters[i].load_factor: a finite number > 0, default 1, integers fine", () => {
  assert.equal(parse(withCluster("load_factor = 2")).clusters[0].loadFactor, 2);
  assert.equal(parse(withCluster("load_factor = 0.25")).clusters[0].loadFactor, 0.25);
  const field = "clusters[0].load_factor";
  assertConfigError(
    withCluster("load_factor = 0"),
    field,
    "Invalid config field clusters[0].load_factor: must be a finite number > 0, got 0",
  );
  assertConfigError(withCluster("load_factor = -1.5"), field, "got -1.5");
  assertConfigError(withCluster("load_factor = nan"), field, "got nan");
  assertConfigError(withCluster("load_factor = inf"), field, "got inf");
  assertConfigError(withCluster(`load_factor = "2"`), field, `got "2"`);
  assertConfigError(withCluster(`load_factor = true`), field, `got true`);
});

// nodes

Deno.test("nodes: id, raft, http and data are required strings", () => {
  for (const key of ["id", "raft", "http", "data"]) {
    const node = nodeToml("a1", 1).replace(new RegExp(`^${key} = .*\n`, "m"), "");
    assertConfigError(ADMIN + clusterToml("a", [node]), `clusters[0].nodes[0].${key}`, "missing");
    assertConfigError(withNodeField(key, "[]"), `clusters[0].nodes[0].${key}`, "got []");
  }
  assertConfigError(withNodeField("raft", "7101"), "clusters[0].nodes[0].raft", "got 7101");
  assertConfigError(withNodeField("data", `""`), "clusters[0].nodes[0].data", `got ""`);
});

Deno.test("nodes: a node-level secret is an error explaining it belongs to the cluster", () => {
  assertConfigError(
    withCluster("", `secret = "${SECRET}"`),
    "clusters[0].nodes[0].secret",
    "every node of a cluster must share one",
    "clusters[0]",
    "cluster_defaults",
  );
});

// ids

Deno.test("ids: 1..64 chars of [A-Za-z0-9_.-] starting with a letter or digit", () => {
  const ok = ["a", "A9", "0", "shard_1.eu-west", "x".repeat(64)];
  for (const id of ok) {
    assert.equal(parse(ADMIN + clusterToml(id, [nodeToml(id, 1)])).clusters[0].id, id);
  }
  const bad = ["", "-a", "_a", ".a", "a b", "a/b", "é", "x".repeat(65)];
  for (const id of bad) {
    assertConfigError(
      ADMIN + clusterToml(id, [NODE_A1]),
      "clusters[0].id",
      "[A-Za-z0-9_.-]",
      `got ${JSON.stringify(id).slice(0, 40)}`,
    );
    assertConfigError(
      ADMIN + clusterToml("a", [nodeToml("a1", 1), nodeToml(id, 2)]),
      "clusters[0].nodes[1].id",
      "starting with a letter or digit",
    );
  }
  assertConfigError(
    ADMIN + clusterToml("a", [NODE_A1]).replace(`id = "a"\n`, ""),
    "clusters[0].id",
  );
  assertConfigError(withNodeField("id", "1"), "clusters[0].nodes[0].id", "got 1");
});

Deno.test("ids: node ids are unique across the whole file, naming both places", () => {
  assertConfigError(
    ADMIN + clusterToml("a", [nodeToml("n1", 1)]) + clusterToml("b", [nodeToml("n1", 2)]),
    "clusters[1].nodes[0].id",
    `duplicate node id "n1"`,
    "clusters[0].nodes[0].id",
  );
  // A node may share its cluster's id: they are different kinds of names.
  assert.equal(parse(ADMIN + clusterToml("a", [nodeToml("a", 1)])).clusters[0].nodes[0].id, "a");
});

Deno.test("ids: cluster ids are unique, naming both places", () => {
  assertConfigError(
    ADMIN + clusterToml("a", [nodeToml("a1", 1)]) + clusterToml("a", [nodeToml("a2", 2)]),
    "clusters[1].id",
    `duplicate cluster id "a"`,
    "clusters[0].id",
  );
});

// addresses

Deno.test("addresses: IPv4, bracketed IPv6 or hostname, then a port 1..65535", () => {
  const node = (raft: string) =>
    parse(withNodeField("raft", JSON.stringify(raft))).clusters[0].nodes[0].raft;
  assert.deepEqual(node("[::1]:7000"), { host: "::1", port: 7000, text: "[::1]:7000" });
  assert.deepEqual(node("koi-a1.example.com:1"), {
    host: "koi-a1.example.com",
    port: 1,
    text: "koi-a1.example.com:1",
  });
  assert.equal(node("10.0.0.255:65535").port, 65535);
  assert.equal(node("localhost:7101").host, "localhost");
  const field = "clusters[0].nodes[0].raft";
  const bad: [string, string][] = [
    ["127.0.0.1", `must be "host:port"`],
    ["127.0.0.1:", "the port must be an integer between 1 and 65535"],
    ["127.0.0.1:0", "between 1 and 65535"],
    ["127.0.0.1:65536", "between 1 and 65535"],
    ["127.0.0.1:70x", "between 1 and 65535"],
    ["127.0.0.1:-1", "between 1 and 65535"],
    [":7000", "the host is missing"],
    ["::1:7000", "in brackets"],
    ["[::1]7000", `must be "[ipv6]:port"`],
    ["[::g]:7000", "is not an IPv6 address"],
    ["[127.0.0.1]:7000", "is not an IPv6 address"],
    ["256.0.0.1:7000", "is not an IPv4 address"],
    ["1.2.3:7000", "is not an IPv4 address"],
    ["01.2.3.4:7000", "is not an IPv4 address"],
    ["-koi:7000", "is not a valid hostname"],
    ["koi..a:7000", "is not a valid hostname"],
    ["ko i:7000", "is not a valid hostname"],
    [`${"a".repeat(64)}:7000`, "is not a valid hostname"],
  ];
  for (const [raft, problem] of bad) {
    assertConfigError(withNodeField("raft", JSON.stringify(raft)), field, problem, `got "${raft}"`);
  }
  assertConfigError(withNodeField("http", `"127.0.0.1"`), "clusters[0].nodes[0].http", "host:port");
});

Deno.test("addresses: every address in the file is distinct, naming both places", () => {
  assertConfigError(
    withNodeField("http", `"127.0.0.1:7000"`),
    "clusters[0].nodes[0].http",
    `duplicate address "127.0.0.1:7000"`,
    "already used by admin.http",
  );
  assertConfigError(
    withNodeField("http", `"127.0.0.1:7101"`),
    "clusters[0].nodes[0].http",
    "already used by clusters[0].nodes[0].raft",
  );
  const b1 = nodeToml("b1", 2).replace(`raft = "127.0.0.1:7102"`, `raft = "127.0.0.1:7201"`);
  assertConfigError(
    ADMIN + clusterToml("a", [NODE_A1]) + clusterToml("b", [b1]),
    "clusters[1].nodes[0].raft",
    "already used by clusters[0].nodes[0].http",
  );
  // Same host spelled differently: case and IPv6 forms are compared canonically.
  const ipv6 = nodeToml("a2", 2).replace(`raft = "127.0.0.1:7102"`, `raft = "[0:0::1]:7102"`);
  const first = NODE_A1.replace(`raft = "127.0.0.1:7101"`, `raft = "[::1]:7102"`);
  assertConfigError(ADMIN + clusterToml("a", [first, ipv6]), "clusters[0].nodes[1].raft");
  const upper = nodeToml("a2", 2).replace(`127.0.0.1:7102`, `KOI.local:7102`);
  const lower = NODE_A1.replace(`127.0.0.1:7101`, `koi.local:7102`);
  assertConfigError(ADMIN + clusterToml("a", [lower, upper]), "clusters[0].nodes[1].raft");
});

// data dirs

Deno.test("data dirs: resolved against the base folder, distinct after resolution", () => {
  const absolute = parse(withNodeField("data", `"/var/lib/koi/a1"`));
  assert.equal(absolute.clusters[0].nodes[0].dataDir, "/var/lib/koi/a1");
  assert.equal(parse(MINIMAL).clusters[0].nodes[0].dataDir, join(BASE_DIR, "data/a1"));
  const a2 = nodeToml("a2", 2).replace(`"data/a2"`, `"./data/x/../a1/"`);
  assertConfigError(
    ADMIN + clusterToml("a", [NODE_A1, a2]),
    "clusters[0].nodes[1].data",
    `duplicate data directory "${join(BASE_DIR, "data", "a1")}"`,
    "already used by clusters[0].nodes[0].data",
  );
  const b1 = nodeToml("b1", 2).replace(`"data/b1"`, `"${BASE_DIR}/data/a1"`);
  assertConfigError(
    ADMIN + clusterToml("a", [NODE_A1]) + clusterToml("b", [b1]),
    "clusters[1].nodes[0].data",
    "clusters[0].nodes[0].data",
  );
});

// numbers

Deno.test("heartbeat_ms: an integer in [1, 60000] at every level", () => {
  assert.equal(parse(withDefaults("heartbeat_ms = 1")).clusters[0].nodes[0].heartbeatMs, 1);
  const cases: [string, string][] = [
    ["0", "got 0"],
    ["60001", "got 60001"],
    ["1.5", "got 1.5"],
    [`"75"`, `got "75"`],
    ["nan", "got nan"],
    ["[75]", "got [75]"],
  ];
  for (const [value, got] of cases) {
    const rule = "must be an integer number of milliseconds between 1 and 60000";
    assertConfigError(
      withDefaults(`heartbeat_ms = ${value}`),
      "cluster_defaults.heartbeat_ms",
      rule,
      got,
    );
    assertConfigError(withCluster(`heartbeat_ms = ${value}`), "clusters[0].heartbeat_ms", got);
    assertConfigError(
      withCluster("", `heartbeat_ms = ${value}`),
      "clusters[0].nodes[0].heartbeat_ms",
      got,
    );
  }
});

Deno.test("election_timeout_ms: [min, max] integers, 10 <= min < max <= 600000", () => {
  const node = (value: string) =>
    parse(withCluster("", `election_timeout_ms = ${value}`)).clusters[0].nodes[0];
  assert.deepEqual(node("[150, 151]").electionTimeoutMs, [150, 151]);
  assert.deepEqual(node("[599999, 600000]").electionTimeoutMs, [599999, 600000]);
  const cases: [string, string][] = [
    ["300", "must be [min, max], two integer numbers of milliseconds, got 300"],
    ["[300]", "got [300]"],
    ["[300, 600, 900]", "got [300, 600, 900]"],
    [`"300-600"`, `got "300-600"`],
    ["[300.5, 600]", "min must be an integer number of milliseconds, got [300.5, 600]"],
    ["[300, nan]", "max must be an integer number of milliseconds, got [300, nan]"],
    [`[300, "600"]`, `max must be an integer`],
    ["[9, 600]", "min must be between 10 and 600000, got [9, 600]"],
    ["[600, 600]", "max must be greater than min, got [600, 600]"],
    ["[600, 300]", "max must be greater than min"],
    ["[300, 600001]", "max must be at most 600000, got [300, 600001]"],
    ["[600001, 600002]", "min must be between 10 and 600000"],
  ];
  for (const [value, problem] of cases) {
    for (
      const [text, field] of [
        [withDefaults(`election_timeout_ms = ${value}`), "cluster_defaults.election_timeout_ms"],
        [withCluster(`election_timeout_ms = ${value}`), "clusters[0].election_timeout_ms"],
        [
          withCluster("", `election_timeout_ms = ${value}`),
          "clusters[0].nodes[0].election_timeout_ms",
        ],
      ]
    ) {
      assertConfigError(text, field, problem);
    }
  }
});

Deno.test("election_timeout_ms min must be ≥ 2 × heartbeat_ms, blaming the latest level", () => {
  const hears = "so that a follower hears at least one heartbeat before it times out";
  // Exactly twice is fine.
  const ok = parse(withCluster("election_timeout_ms = [150, 300]")).clusters[0].nodes[0];
  assert.deepEqual([ok.electionTimeoutMs, ok.heartbeatMs], [[150, 300], 75]);
  // The election timeout set below the built-in heartbeat.
  assertConfigError(
    withCluster("election_timeout_ms = [149, 300]"),
    "clusters[0].election_timeout_ms",
    hears,
    "got election_timeout_ms [149, 300] (clusters[0].election_timeout_ms)",
    "heartbeat_ms 75 (built-in default)",
  );
  // A node's heartbeat too slow for the cluster_defaults election timeout.
  assertConfigError(
    ADMIN + `[cluster_defaults]\nelection_timeout_ms = [300, 600]\n` +
      clusterToml("a", [NODE_A1, nodeToml("a2", 2, "heartbeat_ms = 151")]),
    "clusters[0].nodes[1].heartbeat_ms",
    hears,
    "(cluster_defaults.election_timeout_ms)",
    "heartbeat_ms 151 (clusters[0].nodes[1].heartbeat_ms)",
  );
  // Both in cluster_defaults: blame the election timeout.
  assertConfigError(
    withDefaults("election_timeout_ms = [100, 200]\nheartbeat_ms = 60"),
    "cluster_defaults.election_timeout_ms",
    hears,
  );
  // A node's own election timeout against its cluster's heartbeat.
  assertConfigError(
    withCluster("heartbeat_ms = 100", "election_timeout_ms = [199, 400]"),
    "clusters[0].nodes[0].election_timeout_ms",
    "heartbeat_ms 100 (clusters[0].heartbeat_ms)",
  );
});

Deno.test("secret: a string of at least 16 characters, never echoed", () => {
  const ok = parse(withDefaults(`secret = "${SECRET}"`));
  assert.equal(ok.clusters[0].nodes[0].secret, SECRET);
  const short = SECRET.slice(1);
  for (
    const [text, field] of [
      [withDefaults(`secret = "${short}"`), "cluster_defaults.secret"],
      [withCluster(`secret = "${short}"`), "clusters[0].secret"],
    ]
  ) {
    assertConfigError(text, field, "at least 16 characters", "authenticates peers", "got 15");
    assert.ok(!configError(text).message.includes(short), "the secret leaked into the message");
  }
  assertConfigError(withCluster(`secret = ""`), "clusters[0].secret", "got 0 characters");
  assertConfigError(withCluster(`secret = 1234567890123456`), "clusters[0].secret", "a string");
  assertConfigError(withDefaults(`secret = ["${SECRET}"]`), "cluster_defaults.secret", "a string");
});

// unknown fields

Deno.test("unknown fields anywhere are errors naming the path and the allowed fields", () => {
  const cases: [string, string, string][] = [
    [`[cluster]\nid = "a"\n` + MINIMAL, "cluster", "admin, routing, cluster_defaults, clusters"],
    [`port = 1\n` + MINIMAL, "port", "at the top level"],
    [MINIMAL.replace("[admin]\n", `[admin]\nraft = "127.0.0.1:7001"\n`), "admin.raft", "http"],
    [
      ADMIN + `[routing]\nschema = "carp"\n` + MINIMAL.slice(ADMIN.length),
      "routing.schema",
      "scheme",
    ],
    [
      withDefaults("load_factor = 1"),
      "cluster_defaults.load_factor",
      "election_timeout_ms, heartbeat_ms, secret",
    ],
    [
      withCluster("replicas = 3"),
      "clusters[0].replicas",
      "id, load_factor, nodes, election_timeout_ms, heartbeat_ms, secret",
    ],
    [
      withCluster("", "voter = true"),
      "clusters[0].nodes[0].voter",
      "id, raft, http, data, join, election_timeout_ms, heartbeat_ms",
    ],
    [
      withCluster("", "load_factor = 2"),
      "clusters[0].nodes[0].load_factor",
      "in clusters[0].nodes[0]",
    ],
    [withCluster(`"odd key" = 1`), `clusters[0]."odd key"`, "unknown field"],
  ];
  for (const [text, field, allowed] of cases) {
    assertConfigError(text, field, "unknown field", allowed);
  }
});

Deno.test("wrong types are errors naming the field", () => {
  assertConfigError(
    `cluster_defaults = 1\n` + MINIMAL,
    "cluster_defaults",
    "must be a table, got 1",
  );
  assertConfigError(`clusters = "a"\n` + ADMIN, "clusters", `got "a"`);
  assertConfigError(`clusters = [[1]]\n` + ADMIN, "clusters[0]", "must be a table, got [1]");
  assertConfigError(
    ADMIN + clusterToml("a", [], `nodes = [{ id = "a1" }, 2]`),
    "clusters[0].nodes[0].raft",
    "missing",
  );
  assertConfigError(
    withNodeField("data", "1979-05-27"),
    "clusters[0].nodes[0].data",
    "got a date",
  );
});

Deno.test("a file with three mistakes lists all three at once", () => {
  const text = ADMIN +
    clusterToml("a", [
      nodeToml("a1", 1, "heartbeat_ms = 0"),
      nodeToml("a2", 2).replace(`raft = "127.0.0.1:7102"`, `raft = "127.0.0.1:99999"`),
      nodeToml("a3", 3, "colour = 1"),
    ]);
  const error = configError(text);
  assert.deepEqual(error.problems.map((p) => p.field), [
    "clusters[0].nodes[0].heartbeat_ms",
    "clusters[0].nodes[1].raft",
    "clusters[0].nodes[2].colour",
  ]);
  assert.match(error.message, /^Invalid config: 3 problems:\n {2}- Invalid config field /);
  for (const p of error.problems) assert.ok(error.message.includes(p.message), p.message);
});

Deno.test("a node's own secret does not hide its other mistakes, nor a bad epoch a bad scheme", () => {
  const text = ADMIN + `[routing]\nepoch = 0\nscheme = "fnv"\n` +
    clusterToml("a", [nodeToml("a1", 1, `secret = "0123456789abcdef"\ncolour = 1`)]);
  const error = configError(text);
  assert.deepEqual(error.problems.map((p) => p.field), [
    "routing.epoch",
    "routing.scheme",
    "clusters[0].nodes[0].secret",
    "clusters[0].nodes[0].colour",
  ]);
});

/**
 * Every malformed config.toml a property test can make from a valid one (a field of the wrong
 * type or out of range, a required field missing, an unknown field) is a ConfigError that names
 * the field by its TOML path, never another exception and never a config that loads.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify } from "smol-toml";
import { ConfigError } from "./_error.ts";
import { parseConfig } from "./_load.ts";
import { BASE_DIR } from "./_test_util.ts";

type Doc = Record<string, unknown>;

/** A valid deployment: 2 clusters of 3 nodes, with defaults, a secret and TLS. */
function validDoc(): Doc {
  let port = 7100;
  const node = (id: string) => ({
    id,
    raft: `127.0.0.1:${port++}`,
    http: `127.0.0.1:${port++}`,
    data: `data/${id}`,
  });
  const doc: Doc = {
    tls: { ca: "tls/ca.pem", cert: "tls/node.pem", key: "tls/node.key" },
    admin: { http: "127.0.0.1:7000", tls_cert: "tls/admin.pem", tls_key: "tls/admin.key" },
    cluster_defaults: {
      election_timeout_ms: [300, 600],
      heartbeat_ms: 75,
      secret: "0123456789abcdef0123",
    },
    kv_connect: {
      listen: "127.0.0.1:7001",
      tokens: ["kv-token-0123456789", "kv-token-abcdefghij"],
    },
    clusters: ["a", "b"].map((c) => ({
      id: c,
      load_factor: 1,
      nodes: [1, 2, 3].map((i) => node(`${c}${i}`)),
    })),
  };
  // One node with its own certificate, the others with [tls]'s.
  Object.assign(((doc.clusters as Doc[])[1].nodes as Doc[])[1], {
    tls_cert: "tls/b2.pem",
    tls_key: "tls/b2.key",
  });
  return doc;
}

/** Where a field lives: a path of keys and indexes, and its TOML path as errors name it. */
type Path = (string | number)[];

function tomlPath(path: Path): string {
  return path.map((p, i) => typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`).join("");
}

function parentOf(doc: Doc, path: Path): Record<string | number, unknown> {
  let at: unknown = doc;
  for (const p of path.slice(0, -1)) at = (at as Record<string | number, unknown>)[p];
  return at as Record<string | number, unknown>;
}

/** Leaf fields with values each of which is invalid there. */
const BAD_VALUES: [Path, unknown[]][] = [
  [["admin", "http"], [42, "", "no-port", "127.0.0.1:0", "127.0.0.1:70000", true]],
  [["cluster_defaults", "heartbeat_ms"], [0, -5, 60_001, 1.5, "75"]],
  [["cluster_defaults", "election_timeout_ms"], [[600, 300], [5, 10], "300", [300], 7]],
  [["cluster_defaults", "secret"], ["short", 12, ""]],
  [["clusters", 0, "id"], ["", "bad id", "-a", 7, "x".repeat(65)]],
  [["clusters", 1, "load_factor"], [0, -1, "1", Number.POSITIVE_INFINITY]],
  [["clusters", 0, "nodes", 1, "id"], ["", "b1", "a 2", 3]],
  [["clusters", 1, "nodes", 0, "raft"], ["x", 5, "127.0.0.1:7101", ""]],
  [["clusters", 1, "nodes", 2, "http"], ["host:", ":80", 8080]],
  [["clusters", 0, "nodes", 0, "data"], ["", 1, "data/a2"]],
  [["clusters", 0, "nodes", 2, "join"], ["yes", 1]],
  [["tls", "ca"], ["", 1, ["ca.pem"], "\0"]],
  [["tls", "cert"], ["", false]],
  [["tls", "key"], [" ", 7]],
  [["admin", "tls_cert"], ["", 2]],
  [["clusters", 1, "nodes", 1, "tls_cert"], ["", 3, { path: "x" }]],
  [["clusters", 1, "nodes", 1, "tls_key"], ["", true]],
  [["kv_connect", "listen"], [7001, "", "127.0.0.1", "127.0.0.1:7000", "[::1:7001"]],
  [["kv_connect", "tokens"], ["kv-token-0123456789", [], 5, { a: 1 }]],
  [["kv_connect", "tokens", 1], ["short", 16, "has whitespace inside", "x".repeat(1025), ""]],
];

/** Fields that may not be left out. */
const REQUIRED: Path[] = [
  ["admin", "http"],
  ["clusters", 0, "id"],
  ["clusters", 1, "nodes", 1, "id"],
  ["clusters", 0, "nodes", 0, "raft"],
  ["clusters", 1, "nodes", 2, "http"],
  ["tls", "ca"],
  // Either half of a pair alone is an error naming the missing half.
  ["tls", "cert"],
  ["admin", "tls_key"],
  ["clusters", 1, "nodes", 1, "tls_cert"],
  ["clusters", 1, "nodes", 1, "tls_key"],
  ["kv_connect", "listen"],
];

/** Every field name of the format (an "unknown" field is none of these). */
const KNOWN = new Set([
  "http",
  "data",
  "id",
  "raft",
  "join",
  "load_factor",
  "nodes",
  "election_timeout_ms",
  "heartbeat_ms",
  "secret",
  "tls",
  "ca",
  "cert",
  "key",
  "tls_cert",
  "tls_key",
  "listen",
  "tokens",
]);

/** Tables that refuse a field they do not know. */
const TABLES: Path[] = [
  ["tls"],
  ["admin"],
  ["cluster_defaults"],
  ["clusters", 0],
  ["clusters", 1, "nodes", 0],
  ["kv_connect"],
];

const mutation = fc.oneof(
  fc.constantFrom(...BAD_VALUES).chain(([path, values]) =>
    fc.constantFrom(...values).map((value) => ({ kind: "bad", path, value }))
  ),
  fc.constantFrom(...REQUIRED).map((path) => ({ kind: "missing", path, value: undefined })),
  fc.tuple(fc.constantFrom(...TABLES), fc.stringMatching(/^[a-z][a-z_]{0,12}$/))
    .filter(([, name]) => !KNOWN.has(name))
    .map(([table, name]) => ({ kind: "unknown", path: [...table, name], value: 1 })),
);

Deno.test("config property: the valid base loads", () => {
  const config = parseConfig(stringify(validDoc()), { baseDir: BASE_DIR });
  assert.equal(config.clusters.length, 2);
});

Deno.test("config property: every single malformed field is a ConfigError naming its TOML path", () => {
  fc.assert(
    fc.property(mutation, ({ kind, path, value }) => {
      const doc = validDoc();
      const parent = parentOf(doc, path);
      const last = path.at(-1)!;
      if (kind === "missing") delete parent[last];
      else parent[last] = value;
      let error: unknown;
      try {
        parseConfig(stringify(doc), { baseDir: BASE_DIR });
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof ConfigError, `${kind} ${tomlPath(path)}: ${error}`);
      const fields = [error.field, ...error.problems.map((p) => p.field)];
      const where = tomlPath(path);
      // A duplicate names either copy; everything else names exactly the field changed.
      assert.ok(
        fields.some((f) => f === where || f.startsWith(`${where}.`) || f.startsWith(`${where}[`)) ||
          /duplicate|already|same/i.test(error.message),
        `${kind} ${where} = ${JSON.stringify(value)}: named ${fields.join(", ")}: ${error.message}`,
      );
    }),
    { numRuns: 500 },
  );
});

Deno.test("config property: random text is a ConfigError or a valid config, never another error", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (text) => {
      try {
        parseConfig(text, { baseDir: BASE_DIR });
      } catch (e) {
        assert.ok(e instanceof ConfigError, `${JSON.stringify(text)}: ${e}`);
      }
    }),
    { numRuns: 500 },
  );
});

/**
 * Layering check run by `deno task test`.
 *
 * - `src/raft/`, `src/carp/` and `src/txn/` are pure: they import only files of their own folder and use
 *   no `Deno.*`, timers, clock, `Math.random` or `crypto` (randomness and time are injected).
 * - Imports between layers go one way only (see the README, "Layout"): each layer lists the layers it
 *   may import; anything else is a violation.
 *
 * Exits 1 with one line per violation.
 *
 * @module
 */

const ROOT = new URL("../src/", import.meta.url);

/** Which other layers each layer of `src/` may import. */
const ALLOWED_IMPORTS: Record<string, readonly string[]> = {
  raft: [],
  carp: [],
  config: [],
  // cross-cluster transactions: the participant, the coordinators, snapshot reads (pure)
  txn: [],
  storage: ["raft", "carp", "txn"],
  // KV Connect (Deno.openKv(url)): the wire format, the endpoint, and the admin's gateway,
  // which reaches the clusters through the routing client
  kv_connect: ["config", "client", "txn"],
  net: ["raft", "config"],
  // the hardened HTTP server both the node and the admin serve with
  http: [],
  // kv_connect: the node's /v1/kvc/ endpoints speak its codec
  node: ["raft", "storage", "net", "config", "carp", "http", "kv_connect", "txn"],
  client: ["carp", "config", "txn"],
  admin: ["config", "carp", "client", "storage", "http", "kv_connect", "txn"],
  // the load generator: drives a deployment through the client, never a node's internals
  bench: ["client", "carp", "config"],
  // the command line: every mode, so any layer but raft internals through their mod.ts
  cli: [
    "config",
    "carp",
    "client",
    "admin",
    "node",
    "storage",
    "net",
    "raft",
    "http",
    "bench",
    "txn",
  ],
};

/** Layers that must stay free of I/O, clocks and ambient randomness. */
const PURE_LAYERS = new Set(["raft", "carp", "txn"]);

/** Forbidden in pure layers: pattern and the reason printed. */
const IMPURE_PATTERNS: readonly [RegExp, string][] = [
  [/\bDeno\s*\./, "uses Deno.*"],
  [/\bset(Timeout|Interval|Immediate)\s*\(/, "uses a timer"],
  [/\bqueueMicrotask\s*\(/, "schedules work"],
  [/\bDate\s*\.\s*now\b|\bnew\s+Date\b/, "reads the clock"],
  [/\bperformance\s*\.\s*now\b/, "reads the clock"],
  [/\bMath\s*\.\s*random\b/, "uses Math.random"],
  [/\bcrypto\b/, "uses crypto"],
  [/\bfetch\s*\(/, "does I/O"],
];

const IMPORT_RE =
  /(?:^|\n)\s*(?:import|export)\b[^;]*?[\s}*]from\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']\s*\)/g;

/** Strips comments so that documentation may mention forbidden names. */
function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

async function* walk(dir: URL): AsyncGenerator<URL> {
  try {
    await Deno.stat(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return; // a fresh clone before src/ has files
    throw error;
  }
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* walk(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}

function layerOf(url: URL): string | undefined {
  if (!url.href.startsWith(ROOT.href)) return undefined;
  return url.href.slice(ROOT.href.length).split("/")[0];
}

/** Returns the violations of one file of `src/` (given its URL and its source text). */
export function checkFile(file: URL, source: string): string[] {
  const layer = layerOf(file)!;
  const rel = file.href.slice(ROOT.href.length);
  const problems: string[] = [];
  const code = stripComments(source);
  const isTest = rel.endsWith("_test.ts");
  for (const match of code.matchAll(IMPORT_RE)) {
    const spec = match[1] ?? match[2];
    if (spec.startsWith("./") || spec.startsWith("../")) {
      const target = layerOf(new URL(spec, file));
      if (target === undefined) {
        problems.push(`src/${rel}: imports ${spec} from outside src/`);
      } else if (target !== layer && !(ALLOWED_IMPORTS[layer] ?? []).includes(target)) {
        problems.push(`src/${rel}: layer ${layer} must not import layer ${target} (${spec})`);
      }
    } else if (PURE_LAYERS.has(layer) && !isTest) {
      problems.push(`src/${rel}: pure layer ${layer} imports package ${spec}`);
    }
  }
  if (PURE_LAYERS.has(layer) && !isTest) {
    for (const [pattern, why] of IMPURE_PATTERNS) {
      if (pattern.test(code)) problems.push(`src/${rel}: pure layer ${layer} ${why}`);
    }
  }
  if (!(layer in ALLOWED_IMPORTS)) problems.push(`src/${rel}: unknown layer ${layer}`);
  return problems;
}

/** The URL of a file of `src/` given its path below `src/` (for tests). */
export function srcFile(path: string): URL {
  return new URL(path, ROOT);
}

if (import.meta.main) {
  const problems: string[] = [];
  for await (const file of walk(ROOT)) {
    problems.push(...checkFile(file, await Deno.readTextFile(file)));
  }
  if (problems.length > 0) {
    for (const p of problems.sort()) console.error(p);
    console.error(`layering check: ${problems.length} violation(s)`);
    Deno.exit(1);
  }
  console.log("layering check: ok");
}

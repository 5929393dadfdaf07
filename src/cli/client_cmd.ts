/**
 * `koi client`: get / put / del / list / where / status through the routing client
 * (`src/client/`). Exit codes: 0 done, 1 failure, 2 usage error, 3 key not found, 4 condition
 * not met (docs/client.md).
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  connect,
  type DeploymentStatus,
  deploymentStatus,
  KEY_BYTES_MAX,
  type KoiClient,
  KoiError,
  KoiHttpError,
  LIST_LIMIT_MAX,
  type ListItem,
  PreconditionFailedError,
  VALUE_BYTES_MAX,
} from "../client/mod.ts";
import { decodeBase64Url, encodeBase64Url, utf8Exact } from "../client/_bytes.ts";
import { UsageError } from "./_common.ts";

/** The admin URL when neither `--admin` nor `KOI_ADMIN` gives one. */
export const DEFAULT_ADMIN = "http://127.0.0.1:7000";

/** Exit code: the key does not exist (`get`). */
export const EXIT_NOT_FOUND = 3;
/** Exit code: the condition of `put --if-rev/--if-absent` or `del --if-rev` was not met. */
export const EXIT_CONDITION_FAILED = 4;

const COMMON_OPTIONS = `Options of every command:
      --admin <url>     the admin's URL or host:port (default: $KOI_ADMIN, else
                        ${DEFAULT_ADMIN})
      --timeout <ms>    each call's time budget, retries included (default: 10000)
      --json            print JSON instead of text (for scripts)
  -h, --help            show the command's help`;

const EXIT_CODES =
  `Exit codes: 0 done, 1 failure (unavailable, timeout, refused by a node; a write whose
outcome is unknown says so), 2 usage error (also a key over 1024 bytes or a value over
1 MiB), 3 key not found (get), 4 condition not met (put --if-rev/--if-absent, del --if-rev).`;

/** The usage of `koi client`. */
export const CLIENT_USAGE = `Usage: koi client <command> [arguments] [options]

Talks to a koi deployment the way the library does: fetches the routing table from the
admin, sends each key to the leader of the cluster that owns it, and retries 503s,
timeouts, broken connections and wrong-shard answers within --timeout. Keys and values
given as arguments are UTF-8 text (--b64: keys as base64url). A key or value that starts
with "-" goes after "--", which ends the flags: koi client put --if-absent -- -k -1.

Commands:
  get <key>             print a key's value (raw bytes on stdout)
  put <key> [<value>]   write a value (from stdin when <value> is absent)
  del <key>             delete a key
  list                  list the keys of every cluster, in byte order
  where <key>           which cluster owns a key, its nodes and leader
  status                one table of every cluster and node, from the admin

${COMMON_OPTIONS}

koi client <command> --help shows each command's options.

${EXIT_CODES}`;

const GET_USAGE = `Usage: koi client get <key> [--stale] [--b64] [--json] [options]

Prints the value of <key> to stdout as raw bytes (no newline added, except on a terminal).
The read is linearizable (the leader confirms it is current) unless --stale.

Options:
      --stale           let any node of the cluster answer from its own state (works
                        without a leader; may miss recent writes)
      --b64             <key> is base64url (RFC 4648 §5): any bytes
      --json            print {"key", "key_b64", "rev", "value_b64"} and "value" (the text)
                        when the value is valid UTF-8

${COMMON_OPTIONS}

Exit codes: 0 found, 1 failure, 2 usage error, 3 key not found ("koi: key ... not found"
on stderr, nothing on stdout).`;

const PUT_USAGE =
  `Usage: koi client put <key> [<value>] [--if-rev <rev> | --if-absent] [--b64] [--json] [options]

Writes <value> (UTF-8 text) under <key>, or, without <value>, the bytes read from stdin
(at most 1 MiB). Prints the new revision. Retries carry the same request id, so the write
is applied at most once.

Options:
      --if-rev <rev>    write only if the key exists with exactly this revision
      --if-absent       write only if the key does not exist
      --b64             <key> is base64url (the value stays text or stdin bytes)
      --json            print {"rev": n}

${COMMON_OPTIONS}

Exit codes: 0 written, 1 failure (a write whose outcome is unknown says "may or may not
have been applied"), 2 usage error, 4 condition not met (stderr names the current rev).`;

const DEL_USAGE = `Usage: koi client del <key> [--if-rev <rev>] [--b64] [--json] [options]

Deletes <key>. Deleting an absent key is not an error (it prints "absent"); it is still a
write with a revision.

Options:
      --if-rev <rev>    delete only if the key exists with exactly this revision
      --b64             <key> is base64url
      --json            print {"rev": n, "deleted": bool}

${COMMON_OPTIONS}

Exit codes: 0 done, 1 failure, 2 usage error, 4 condition not met.`;

const LIST_USAGE =
  `Usage: koi client list [--prefix <p>] [--after <key>] [--limit <n>] [--all] [--stale] [--b64] [--json] [options]

Lists the keys of every cluster, merged in byte order, one per line (a key that is not
printable UTF-8 prints as base64url:<key>). Without --all it prints one page; when more
keys follow, stderr says how to go on.

Options:
      --prefix <p>      only keys starting with <p>
      --after <key>     only keys after <key> (the last key of the previous page)
      --limit <n>       keys per page, 1 .. ${LIST_LIMIT_MAX} (default: 100)
      --all             every matching key, page after page
      --stale           let any node of each cluster answer
      --b64             --prefix and --after are base64url, and keys print as base64url
      --json            print {"items": [{"key", "key_b64", "rev", "cluster"}], "more",
                        "next_b64"}

${COMMON_OPTIONS}

Exit codes: 0 done, 1 failure (any cluster unavailable), 2 usage error.`;

const WHERE_USAGE = `Usage: koi client where <key> [--b64] [--json] [options]

Prints which cluster owns <key> under the admin's routing table (CARP), the cluster's
nodes, and the leader the admin knows. Asks the admin only, no node.

Options:
      --b64             <key> is base64url
      --json            print {"key", "key_b64", "cluster", "leader", "nodes", "epoch",
                        "scheme"}

${COMMON_OPTIONS}

Exit codes: 0 done, 1 failure (admin unreachable), 2 usage error.`;

const STATUS_USAGE = `Usage: koi client status [--json] [options]

Prints one table of every cluster and node as the admin sees them (GET /v1/clusters):
role, the leader each node knows, term, commit and applied index, keys, pid and restarts;
a node the admin cannot reach shows why. Works while clusters are unhealthy (no routing
table needed). --json prints the admin's JSON.

${COMMON_OPTIONS}

Exit codes: 0 the admin answered (healthy or not: see the first line or "healthy"),
1 failure (admin unreachable), 2 usage error.`;

const USAGES: Record<string, string> = {
  get: GET_USAGE,
  put: PUT_USAGE,
  del: DEL_USAGE,
  list: LIST_USAGE,
  where: WHERE_USAGE,
  status: STATUS_USAGE,
};

/** The usage of the `koi client` subcommand named in `args`, if there is one. */
export function clientUsageFor(args: readonly string[]): string | undefined {
  return Object.hasOwn(USAGES, args[0] ?? "") ? USAGES[args[0]] : undefined;
}

const COMMON_FLAGS = {
  admin: { type: "string" },
  timeout: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** Runs `koi client <args>`; returns the exit code. */
export async function clientCommand(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case undefined:
    case "-h":
    case "--help":
    case "help":
      console.log(CLIENT_USAGE);
      return 0;
    case "get":
      return await getCommand(rest);
    case "put":
      return await putCommand(rest);
    case "del":
      return await delCommand(rest);
    case "list":
      return await listCommand(rest);
    case "where":
      return await whereCommand(rest);
    case "status":
      return await statusCommand(rest);
    default:
      if (command.startsWith("-")) {
        throw new UsageError(`Missing command before ${command}: koi client <command> [options]`);
      }
      throw new UsageError(`Unknown client command: ${command}`);
  }
}

// ---------------------------------------------------------------------------------------
// Commands

async function getCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    stale: { type: "boolean" },
    b64: { type: "boolean" },
  });
  if (values.help) return help(GET_USAGE);
  const key = keyArgument(positionals, 1, "get <key>", values.b64);
  return await withClient(values, async (koi) => {
    const hit = await koi.get(key, values.stale ? { consistency: "stale" } : {});
    if (hit === null) {
      console.error(`koi: key ${printable(key)} not found`);
      return EXIT_NOT_FOUND;
    }
    if (values.json) {
      const text = utf8Exact(hit.value);
      printJson({
        key: utf8Exact(key) ?? null,
        key_b64: encodeBase64Url(key),
        rev: hit.rev,
        ...(text === undefined ? {} : { value: text }),
        value_b64: encodeBase64Url(hit.value),
      });
    } else {
      await writeAll(hit.value);
      // On a terminal, end the line so the prompt does not stick to the value.
      if (Deno.stdout.isTerminal() && hit.value.at(-1) !== 0x0a) await writeAll(NEWLINE);
    }
    return 0;
  });
}

async function putCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    "if-rev": { type: "string" },
    "if-absent": { type: "boolean" },
    b64: { type: "boolean" },
  });
  if (values.help) return help(PUT_USAGE);
  if (positionals.length < 1) throw new UsageError("Missing argument: put <key> [<value>]");
  if (positionals.length > 2) {
    throw new UsageError(`Unexpected argument: ${positionals[2]} (put takes <key> [<value>])`);
  }
  const key = keyArgument(positionals.slice(0, 1), 1, "put <key>", values.b64);
  const ifRev = revFlag(values["if-rev"], "--if-rev");
  if (ifRev !== undefined && values["if-absent"]) {
    throw new UsageError("Give --if-rev or --if-absent, not both");
  }
  const value = positionals.length === 2
    ? new TextEncoder().encode(positionals[1])
    : await readStdin(VALUE_BYTES_MAX);
  checkValue(value);
  return await withClient(values, async (koi) => {
    const { rev } = await koi.put(key, value, {
      ...(ifRev === undefined ? {} : { ifRev }),
      ...(values["if-absent"] ? { ifAbsent: true } : {}),
    });
    if (values.json) printJson({ rev });
    else console.log(`rev ${rev}`);
    return 0;
  });
}

async function delCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    "if-rev": { type: "string" },
    b64: { type: "boolean" },
  });
  if (values.help) return help(DEL_USAGE);
  const key = keyArgument(positionals, 1, "del <key>", values.b64);
  const ifRev = revFlag(values["if-rev"], "--if-rev");
  return await withClient(values, async (koi) => {
    const { rev, deleted } = await koi.delete(key, ifRev === undefined ? {} : { ifRev });
    if (values.json) printJson({ rev, deleted });
    else console.log(`${deleted ? "deleted" : "absent"}, rev ${rev}`);
    return 0;
  });
}

async function listCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    prefix: { type: "string" },
    after: { type: "string" },
    limit: { type: "string" },
    all: { type: "boolean" },
    stale: { type: "boolean" },
    b64: { type: "boolean" },
  });
  if (values.help) return help(LIST_USAGE);
  if (positionals.length > 0) {
    throw new UsageError(`Unexpected argument: ${positionals[0]} (list takes only flags)`);
  }
  const bound = (text: string | undefined, flag: string) => {
    if (text === undefined) return undefined;
    const bytes = values.b64 ? b64Argument(text, flag) : new TextEncoder().encode(text);
    if (bytes.length > KEY_BYTES_MAX) {
      throw new UsageError(`Invalid ${flag}: over ${KEY_BYTES_MAX} bytes (${bytes.length})`);
    }
    return bytes;
  };
  const prefix = bound(values.prefix, "--prefix");
  const after = bound(values.after, "--after");
  const limit = values.limit === undefined
    ? 100
    : intFlag(values.limit, "--limit", 1, LIST_LIMIT_MAX);
  return await withClient(values, async (koi) => {
    const stale = values.stale ? { consistency: "stale" as const } : {};
    const show = (item: ListItem) => (values.b64 ? encodeBase64Url(item.key) : lineKey(item.key));
    const json = (item: ListItem) => ({
      key: item.keyText,
      key_b64: encodeBase64Url(item.key),
      rev: item.rev,
      cluster: item.cluster,
    });
    if (values.all) {
      const items: ReturnType<typeof json>[] = [];
      for await (
        const item of koi.scan({
          pageSize: limit,
          ...stale,
          ...(prefix ? { prefix } : {}),
          ...(after ? { after } : {}),
        })
      ) {
        if (values.json) items.push(json(item));
        else console.log(show(item));
      }
      if (values.json) printJson({ items, more: false });
      return 0;
    }
    const page = await koi.list({
      limit,
      ...stale,
      ...(prefix ? { prefix } : {}),
      ...(after ? { after } : {}),
    });
    if (values.json) {
      printJson({
        items: page.items.map(json),
        more: page.more,
        ...(page.next === undefined ? {} : { next_b64: encodeBase64Url(page.next) }),
      });
      return 0;
    }
    for (const item of page.items) console.log(show(item));
    if (page.more && page.next !== undefined) {
      const text = printableText(page.next);
      const next = values.b64 || text === undefined
        ? `--b64 --after ${encodeBase64Url(page.next)}`
        : `--after ${shellQuote(text)}`;
      console.error(`koi: more keys follow; go on with ${next} (or --all)`);
    }
    return 0;
  });
}

async function whereCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { b64: { type: "boolean" } });
  if (values.help) return help(WHERE_USAGE);
  const key = keyArgument(positionals, 1, "where <key>", values.b64);
  return await withClient(values, (koi) => {
    const route = koi.where(key);
    if (values.json) {
      printJson({
        key: utf8Exact(key) ?? null,
        key_b64: encodeBase64Url(key),
        cluster: route.cluster,
        leader: route.leader?.id ?? null,
        nodes: route.nodes,
        epoch: koi.epoch,
        scheme: koi.table.scheme,
      });
      return Promise.resolve(0);
    }
    const lines = [
      `key      ${printable(key)}`,
      `cluster  ${route.cluster} (routing epoch ${koi.epoch}, scheme ${koi.table.scheme})`,
      `leader   ${
        route.leader === undefined ? "unknown" : `${route.leader.id} ${route.leader.http}`
      }`,
      ...route.nodes.map((n, i) => `${i === 0 ? "nodes   " : "        "} ${n.id} ${n.http}`),
    ];
    console.log(lines.join("\n"));
    return Promise.resolve(0);
  });
}

async function statusCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {});
  if (values.help) return help(STATUS_USAGE);
  if (positionals.length > 0) {
    throw new UsageError(`Unexpected argument: ${positionals[0]} (status takes only flags)`);
  }
  const admin = adminFlag(values.admin);
  const timeoutMs = values.timeout === undefined ? 10_000 : timeoutFlag(values.timeout);
  const status = await deploymentStatus(admin, { timeoutMs });
  if (values.json) printJson(status);
  else console.log(formatStatus(status));
  return 0;
}

// ---------------------------------------------------------------------------------------
// The status table

/** The `koi client status` table of a `/v1/clusters` answer. */
export function formatStatus(status: DeploymentStatus): string {
  const headers = [
    "CLUSTER",
    "NODE",
    "HTTP",
    "ROLE",
    "LEADER",
    "TERM",
    "COMMIT",
    "APPLIED",
    "KEYS",
    "PID",
    "RESTARTS",
  ];
  const numeric = new Set(["TERM", "COMMIT", "APPLIED", "KEYS", "PID", "RESTARTS"]);
  const anyError = status.clusters.some((c) => c.nodes.some((n) => !n.reachable || n.error));
  if (anyError) headers.push("ERROR");
  const rows: string[][] = [];
  for (const cluster of status.clusters) {
    for (const node of cluster.nodes) {
      const s = node.status;
      const cell = (v: unknown) => (v === undefined || v === null || v === "" ? "-" : String(v));
      const row = [
        cluster.id,
        node.id,
        node.http,
        s === null ? "unreachable" : s.role,
        cell(s?.leader),
        cell(s?.term),
        cell(s?.commit),
        cell(s?.applied),
        cell(s?.keys),
        cell(node.pid),
        cell(node.restarts),
      ];
      if (anyError) row.push(node.error || (node.reachable ? "" : "unreachable"));
      rows.push(row);
    }
  }
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = "+" + widths.map((w) => "-".repeat(w + 2)).join("+") + "+";
  const format = (cells: string[], header: boolean) =>
    "| " +
    cells.map((c, i) =>
      !header && numeric.has(headers[i]) ? c.padStart(widths[i]) : c.padEnd(widths[i])
    ).join(" | ") +
    " |";
  const leaderless = status.clusters.filter((c) => c.leader === "").map((c) => c.id);
  const summary = `routing epoch ${status.epoch}, scheme ${status.scheme}, ` +
    (status.healthy
      ? "healthy"
      : `NOT healthy${leaderless.length ? `: no leader in ${leaderless.join(", ")}` : ""}`);
  return [
    summary,
    line,
    format(headers, true),
    line,
    ...rows.map((r) => format(r, false)),
    line,
  ].join("\n");
}

// ---------------------------------------------------------------------------------------
// Flags and arguments

type FlagSpec = Record<string, { type: "string" | "boolean"; short?: string }>;

function parse(args: string[], flags: FlagSpec) {
  const { values, positionals } = parseArgs({
    args,
    options: { ...COMMON_FLAGS, ...flags },
    strict: true,
    allowPositionals: true,
  });
  return {
    values: values as Record<string, string | boolean | undefined> & {
      admin?: string;
      timeout?: string;
      json?: boolean;
      help?: boolean;
      b64?: boolean;
      stale?: boolean;
      all?: boolean;
      prefix?: string;
      after?: string;
      limit?: string;
      "if-rev"?: string;
      "if-absent"?: boolean;
    },
    positionals,
  };
}

function help(usage: string): number {
  console.log(usage);
  return 0;
}

function keyArgument(
  positionals: string[],
  count: number,
  shape: string,
  b64: boolean | undefined,
): Uint8Array {
  if (positionals.length < count) throw new UsageError(`Missing argument: ${shape}`);
  if (positionals.length > count) {
    throw new UsageError(`Unexpected argument: ${positionals[count]} (${shape})`);
  }
  const text = positionals[0];
  const key = b64 ? b64Argument(text, "<key>") : new TextEncoder().encode(text);
  if (key.length < 1 || key.length > KEY_BYTES_MAX) {
    throw new UsageError(`Invalid <key>: must be 1 to ${KEY_BYTES_MAX} bytes, got ${key.length}`);
  }
  if (key[0] === 0xff) {
    throw new UsageError("Invalid <key>: keys starting with byte 0xFF are reserved for koi");
  }
  return key;
}

function b64Argument(text: string, what: string): Uint8Array {
  const bytes = decodeBase64Url(text);
  if (bytes === undefined) {
    throw new UsageError(`Invalid ${what}: ${JSON.stringify(text)} is not base64url (RFC 4648 §5)`);
  }
  return bytes;
}

function checkValue(value: Uint8Array): void {
  if (value.length > VALUE_BYTES_MAX) {
    throw new UsageError(
      `Invalid value: over ${VALUE_BYTES_MAX} bytes (1 MiB), the largest value koi stores`,
    );
  }
}

function intFlag(text: string, flag: string, min: number, max: number): number {
  const n = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`Invalid ${flag}: ${text}; expected an integer from ${min} to ${max}`);
  }
  return n;
}

function revFlag(text: string | undefined, flag: string): number | undefined {
  return text === undefined ? undefined : intFlag(text, flag, 1, Number.MAX_SAFE_INTEGER);
}

function timeoutFlag(text: string): number {
  return intFlag(text, "--timeout", 1, 2_147_483_647);
}

function adminFlag(flag: string | undefined): string {
  if (flag !== undefined) {
    if (flag.trim() === "") throw new UsageError("Invalid --admin: expected a URL or host:port");
    return flag;
  }
  try {
    const env = Deno.env.get("KOI_ADMIN");
    if (env !== undefined && env.trim() !== "") return env;
  } catch {
    // no env permission: the default
  }
  return DEFAULT_ADMIN;
}

/**
 * Connects with the common flags, runs `body`, closes the client. Arguments the library
 * refuses before sending (a bad key or value) are usage errors; a failed condition exits 4.
 */
async function withClient(
  values: { admin?: string; timeout?: string },
  body: (koi: KoiClient) => Promise<number>,
): Promise<number> {
  const admin = adminFlag(values.admin);
  const timeoutMs = values.timeout === undefined ? undefined : timeoutFlag(values.timeout);
  let koi: KoiClient | undefined;
  try {
    koi = await connect(admin, timeoutMs === undefined ? {} : { timeoutMs });
    return await body(koi);
  } catch (error) {
    if (error instanceof PreconditionFailedError) {
      const current = error.currentRev === undefined
        ? "the key does not exist"
        : `the key has rev ${error.currentRev}`;
      console.error(`koi: condition not met: ${current}`);
      return EXIT_CONDITION_FAILED;
    }
    if (
      error instanceof KoiError && !(error instanceof KoiHttpError) &&
      (error.code === "bad_request" || error.code === "too_large")
    ) {
      throw new UsageError(error.message);
    }
    throw error;
  } finally {
    koi?.close();
  }
}

// ---------------------------------------------------------------------------------------
// Output

function printJson(value: unknown): void {
  console.log(JSON.stringify(value));
}

const NEWLINE = new Uint8Array([0x0a]);

async function writeAll(bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await Deno.stdout.write(bytes.subarray(written));
}

/** The key as text when it is UTF-8 without control characters (one line), else undefined. */
function printableText(key: Uint8Array): string | undefined {
  const text = utf8Exact(key);
  // deno-lint-ignore no-control-regex
  return text === undefined || /[\x00-\x1f\x7f]/.test(text) ? undefined : text;
}

/** A key for a message: quoted text when printable, else `base64url:<b64>`. */
function printable(key: Uint8Array): string {
  const text = printableText(key);
  return text === undefined ? `base64url:${encodeBase64Url(key)}` : JSON.stringify(text);
}

/** A key on a line of its own: the text when printable, else `base64url:<b64>`. */
function lineKey(key: Uint8Array): string {
  return printableText(key) ?? `base64url:${encodeBase64Url(key)}`;
}

function shellQuote(text: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

async function readStdin(max: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = Deno.stdin.readable.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.length;
      if (total > max) {
        throw new UsageError(
          `Invalid value: stdin holds over ${max} bytes (1 MiB), the largest value koi stores`,
        );
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/**
 * `koi client`: get / put / del / list / watch / where / status through the routing client
 * (`src/client/`). Exit codes: 0 done, 1 failure, 2 usage error, 3 key not found, 4 condition
 * not met (docs/client.md).
 *
 * @module
 */
import {
  connect,
  deploymentStatus,
  KEY_BYTES_MAX,
  type KoiClient,
  KoiError,
  KoiHttpError,
  LIST_LIMIT_MAX,
  type ListItem,
  PreconditionFailedError,
  VALUE_BYTES_MAX,
  type WatchEvent,
} from "../client/mod.ts";
import { encodeBase64Url, utf8Exact } from "../client/_bytes.ts";
import { isParseArgsError, UsageError } from "./_common.ts";
import {
  adminFlag,
  b64Argument,
  caFlag,
  checkValue,
  DEFAULT_ADMIN,
  intFlag,
  keyArgument,
  parse,
  readValueFromStdin,
  revFlag,
  timeoutFlag,
} from "./_client_args.ts";
import {
  formatStatus,
  lineKey,
  NEWLINE,
  printable,
  printableText,
  printJson,
  printLines,
  shellQuote,
  StdoutClosed,
  terminalSafe,
  writeAll,
} from "./_client_format.ts";
import {
  CLIENT_USAGE,
  clientUsageFor,
  DEL_USAGE,
  GET_USAGE,
  help,
  LIST_USAGE,
  PUT_USAGE,
  STATUS_USAGE,
  WATCH_USAGE,
  WHERE_USAGE,
} from "./_client_usage.ts";

export { CLIENT_USAGE, clientUsageFor, DEFAULT_ADMIN, formatStatus };

/** Exit code: the key does not exist (`get`). */
export const EXIT_NOT_FOUND = 3;
/** Exit code: the condition of `put --if-rev/--if-absent` or `del --if-rev` was not met. */
export const EXIT_CONDITION_FAILED = 4;

/** `koi client watch` prints a value as text when it is printable UTF-8 of at most this many bytes. */
export const WATCH_TEXT_BYTES_MAX = 256;

/**
 * Runs `koi client <args>`; returns the exit code. A failure prints `koi: <message>` with
 * the control characters of what servers said escaped; a stdout closed by its reader ends
 * the command quietly with exit 0. Usage errors are thrown (the caller prints the usage).
 */
export async function clientCommand(args: string[]): Promise<number> {
  try {
    return await runCommand(args);
  } catch (error) {
    if (error instanceof StdoutClosed) return 0;
    if (error instanceof UsageError || isParseArgsError(error)) throw error;
    console.error(`koi: ${terminalSafe(error instanceof Error ? error.message : String(error))}`);
    return 1;
  }
}

async function runCommand(args: string[]): Promise<number> {
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
    case "watch":
      return await watchCommand(rest);
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
      await printJson({
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
    : await readValueFromStdin(VALUE_BYTES_MAX);
  checkValue(value);
  return await withClient(values, async (koi) => {
    const { rev } = await koi.put(key, value, {
      ...(ifRev === undefined ? {} : { ifRev }),
      ...(values["if-absent"] ? { ifAbsent: true } : {}),
    });
    if (values.json) await printJson({ rev });
    else await printLines([`rev ${rev}`]);
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
    if (values.json) await printJson({ rev, deleted });
    else await printLines([`${deleted ? "deleted" : "absent"}, rev ${rev}`]);
    return 0;
  });
}

async function listCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    prefix: { type: "string" },
    after: { type: "string" },
    "after-b64": { type: "string" },
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
    return checkBound(
      values.b64 ? b64Argument(text, flag) : new TextEncoder().encode(text),
      flag,
    );
  };
  if (values.after !== undefined && values["after-b64"] !== undefined) {
    throw new UsageError("Give --after or --after-b64, not both");
  }
  const prefix = bound(values.prefix, "--prefix");
  const after = values["after-b64"] === undefined
    ? bound(values.after, "--after")
    : checkBound(b64Argument(values["after-b64"], "--after-b64"), "--after-b64");
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
        else await printLines([show(item)]);
      }
      if (values.json) await printJson({ items, more: false });
      return 0;
    }
    const page = await koi.list({
      limit,
      ...stale,
      ...(prefix ? { prefix } : {}),
      ...(after ? { after } : {}),
    });
    if (values.json) {
      await printJson({
        items: page.items.map(json),
        more: page.more,
        ...(page.next === undefined ? {} : { next_b64: encodeBase64Url(page.next) }),
      });
      return 0;
    }
    await printLines(page.items.map(show));
    if (page.more && page.next !== undefined) {
      // --after-b64 does not depend on --b64, and "=" keeps a bound that starts with "-"
      // from reading as a flag: the hint works added to the same command line.
      const text = printableText(page.next);
      const next = values.b64 || text === undefined
        ? `--after-b64=${encodeBase64Url(page.next)}`
        : `--after=${shellQuote(text)}`;
      console.error(`koi: more keys follow; go on with ${next} (or --all)`);
    }
    return 0;
  });
}

async function watchCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    "from-rev": { type: "string", multiple: true },
    b64: { type: "boolean" },
  });
  if (values.help) return help(WATCH_USAGE);
  if (positionals.length > 1) {
    throw new UsageError(`Unexpected argument: ${positionals[1]} (watch takes one <prefix>)`);
  }
  const text = positionals[0] ?? "";
  const prefix = checkBound(
    values.b64 ? b64Argument(text, "<prefix>") : new TextEncoder().encode(text),
    "<prefix>",
  );
  const fromRevs: Record<string, number> = {};
  for (const flag of values["from-rev"] ?? []) {
    const match = /^([^=]+)=([0-9]{1,15})$/.exec(flag);
    if (match === null) {
      throw new UsageError(`Invalid --from-rev: ${flag} (expected CLUSTER=REV, e.g. a=42)`);
    }
    if (Object.hasOwn(fromRevs, match[1])) {
      throw new UsageError(`Invalid --from-rev: cluster ${match[1]} given twice`);
    }
    fromRevs[match[1]] = Number(match[2]);
  }
  return await withClient(values, async (koi) => {
    // Ctrl-C ends the watch: a normal end, exit 0.
    const stop = new AbortController();
    const onInterrupt = () => stop.abort();
    Deno.addSignalListener("SIGINT", onInterrupt);
    try {
      for await (const change of koi.watch(prefix, { fromRevs, signal: stop.signal })) {
        if (values.json) await printJson(watchJson(change));
        else await printLines([watchLine(change, values.b64 === true)]);
      }
    } catch (error) {
      if (!(stop.signal.aborted && error instanceof KoiError && error.code === "aborted")) {
        throw error;
      }
    } finally {
      Deno.removeSignalListener("SIGINT", onInterrupt);
    }
    return 0;
  });
}

/** `<cluster> <rev> put <key> <value or its size>` / `<cluster> <rev> delete <key>`. */
function watchLine(change: WatchEvent, b64: boolean): string {
  const key = b64 ? encodeBase64Url(change.key) : lineKey(change.key);
  const head = `${change.cluster} ${change.rev} ${change.type} ${key}`;
  if (change.type === "delete") return head;
  const text = change.value !== undefined && change.value.length <= WATCH_TEXT_BYTES_MAX
    ? printableText(change.value)
    : undefined;
  return `${head} ${text ?? `<${change.size} bytes>`}`;
}

function watchJson(change: WatchEvent): Record<string, unknown> {
  const text = change.value === undefined ? undefined : utf8Exact(change.value);
  return {
    cluster: change.cluster,
    rev: change.rev,
    type: change.type,
    key: utf8Exact(change.key) ?? null,
    key_b64: encodeBase64Url(change.key),
    ...(change.type === "put"
      ? {
        ...(text === undefined ? {} : { value: text }),
        ...(change.value === undefined ? {} : { value_b64: encodeBase64Url(change.value) }),
        size: change.size,
      }
      : {}),
  };
}

async function whereCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { b64: { type: "boolean" } });
  if (values.help) return help(WHERE_USAGE);
  const key = keyArgument(positionals, 1, "where <key>", values.b64);
  return await withClient(values, async (koi) => {
    const route = koi.where(key);
    if (values.json) {
      await printJson({
        key: utf8Exact(key) ?? null,
        key_b64: encodeBase64Url(key),
        cluster: route.cluster,
        leader: route.leader?.id ?? null,
        nodes: route.nodes,
        epoch: koi.epoch,
        scheme: koi.table.scheme,
      });
      return 0;
    }
    const lines = [
      `key      ${printable(key)}`,
      `cluster  ${route.cluster} (routing epoch ${koi.epoch}, scheme ${koi.table.scheme})`,
      `leader   ${
        route.leader === undefined ? "unknown" : `${route.leader.id} ${route.leader.http}`
      }`,
      ...route.nodes.map((n, i) => `${i === 0 ? "nodes   " : "        "} ${n.id} ${n.http}`),
    ];
    await printLines(lines);
    return 0;
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
  const caCerts = await caFlag(values.ca);
  const status = await deploymentStatus(admin, {
    timeoutMs,
    ...(caCerts === undefined ? {} : { caCerts }),
  });
  if (values.json) await printJson(status);
  else await printLines([formatStatus(status)]);
  return 0;
}

/** A listing bound of `flag`: a usage error when it is over a key's length. */
function checkBound(bytes: Uint8Array, flag: string): Uint8Array {
  if (bytes.length > KEY_BYTES_MAX) {
    throw new UsageError(`Invalid ${flag}: over ${KEY_BYTES_MAX} bytes (${bytes.length})`);
  }
  return bytes;
}

/**
 * Connects with the common flags, runs `body`, closes the client. Arguments the library
 * refuses before sending (a bad key or value) are usage errors; a failed condition exits 4.
 */
async function withClient(
  values: { admin?: string; timeout?: string; ca?: string },
  body: (koi: KoiClient) => Promise<number>,
): Promise<number> {
  const admin = adminFlag(values.admin);
  const timeoutMs = values.timeout === undefined ? undefined : timeoutFlag(values.timeout);
  const caCerts = await caFlag(values.ca);
  let koi: KoiClient | undefined;
  try {
    koi = await connect(admin, {
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      ...(caCerts === undefined ? {} : { caCerts }),
    });
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

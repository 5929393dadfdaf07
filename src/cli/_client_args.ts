/**
 * The arguments of `koi client` commands: flag parsing, keys and values given on the command
 * line or stdin, the admin URL and the timeout.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { KEY_BYTES_MAX, VALUE_BYTES_MAX } from "../client/mod.ts";
import { decodeBase64Url, readAtMost } from "../client/_bytes.ts";
import { UsageError } from "./_common.ts";

/** The admin URL when neither `--admin` nor `KOI_ADMIN` gives one. */
export const DEFAULT_ADMIN = "http://127.0.0.1:7000";

const COMMON_FLAGS = {
  admin: { type: "string" },
  ca: { type: "string" },
  timeout: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** A command's own flags, for node:util `parseArgs`. */
export type FlagSpec = Record<
  string,
  { type: "string" | "boolean"; short?: string; multiple?: boolean }
>;

/** The flags of the client commands, by name, as `parse` gives them. */
export interface ClientFlags {
  admin?: string;
  ca?: string;
  timeout?: string;
  json?: boolean;
  help?: boolean;
  b64?: boolean;
  stale?: boolean;
  all?: boolean;
  prefix?: string;
  after?: string;
  "after-b64"?: string;
  limit?: string;
  "if-rev"?: string;
  "if-absent"?: boolean;
  "from-rev"?: string[];
}

/** A command's arguments, parsed: its flags and its positional arguments. */
export interface ParsedArgs {
  readonly values: Record<string, string | boolean | string[] | undefined> & ClientFlags;
  readonly positionals: string[];
}

/** Parses a command's `args`: the common flags and the command's own `flags`, strictly. */
export function parse(args: string[], flags: FlagSpec): ParsedArgs {
  const { values, positionals } = parseArgs({
    args,
    options: { ...COMMON_FLAGS, ...flags },
    strict: true,
    allowPositionals: true,
  });
  return {
    values: values as ParsedArgs["values"],
    positionals,
  };
}

/** The one `<key>` of `positionals` (UTF-8, or base64url with `--b64`), checked like the library does. */
export function keyArgument(
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

/** `text` decoded as base64url (RFC 4648 §5); a usage error naming `what` when it is not. */
export function b64Argument(text: string, what: string): Uint8Array {
  const bytes = decodeBase64Url(text);
  if (bytes === undefined) {
    throw new UsageError(`Invalid ${what}: ${JSON.stringify(text)} is not base64url (RFC 4648 §5)`);
  }
  return bytes;
}

/** A usage error when `value` is over the largest value koi stores. */
export function checkValue(value: Uint8Array): void {
  if (value.length > VALUE_BYTES_MAX) {
    throw new UsageError(
      `Invalid value: over ${VALUE_BYTES_MAX} bytes (1 MiB), the largest value koi stores`,
    );
  }
}

/** The integer `text` of `flag`, from `min` to `max`. */
export function intFlag(text: string, flag: string, min: number, max: number): number {
  const n = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`Invalid ${flag}: ${text}; expected an integer from ${min} to ${max}`);
  }
  return n;
}

/** A revision flag (`--if-rev`): an integer >= 1, or undefined when not given. */
export function revFlag(text: string | undefined, flag: string): number | undefined {
  return text === undefined ? undefined : intFlag(text, flag, 1, Number.MAX_SAFE_INTEGER);
}

/** `--timeout`: milliseconds, 1 to the largest timer. */
export function timeoutFlag(text: string): number {
  return intFlag(text, "--timeout", 1, 2_147_483_647);
}

/** The admin URL: `--admin`, else `$KOI_ADMIN`, else {@linkcode DEFAULT_ADMIN}. */
export function adminFlag(flag: string | undefined): string {
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

/** Largest `--ca` file read, in bytes: a CA bundle is a few KiB. */
export const CA_FILE_BYTES_MAX = 1 << 20;

/**
 * The certificates of `--ca <file>` (default `$KOI_CA`), PEM, for an `https://` deployment
 * with its own CA; undefined when neither is given. A usage error names an unreadable file
 * or one without a certificate.
 */
export async function caFlag(flag: string | undefined): Promise<string[] | undefined> {
  let path = flag;
  if (path === undefined) {
    try {
      path = Deno.env.get("KOI_CA");
    } catch {
      // no env permission: none
    }
    if (path === undefined || path.trim() === "") return undefined;
  }
  if (path.trim() === "") throw new UsageError("Invalid --ca: expected a PEM file");
  let text: string;
  try {
    const { size } = await Deno.stat(path);
    if (size > CA_FILE_BYTES_MAX) {
      throw new UsageError(`Invalid --ca ${path}: over ${CA_FILE_BYTES_MAX} bytes`);
    }
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const why = error instanceof Deno.errors.NotFound ? "no such file" : (error as Error).message;
    throw new UsageError(`Invalid --ca ${path}: cannot read it: ${why}`);
  }
  const certificates = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  if (certificates === null) {
    throw new UsageError(
      `Invalid --ca ${path}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)`,
    );
  }
  return certificates;
}

/**
 * The value of `put` from stdin: all of it, at most `max` bytes. A usage error when stdin is
 * a terminal, closed (`<&-`: the runtime then stands /dev/null in for it, opened read-write,
 * which Linux lets us see) or cannot be read (`0>file`), rather than an empty value. An
 * empty stdin that is open (`</dev/null`, `printf '' |`) gives the empty value.
 */
export async function readValueFromStdin(max: number): Promise<Uint8Array> {
  const missing = (why: string) =>
    new UsageError(`Missing <value>: ${why}; give it as an argument or on stdin`);
  if (Deno.stdin.isTerminal()) throw missing("stdin is a terminal");
  if (stdinClosed()) throw missing("stdin is closed");
  let value: Uint8Array | undefined;
  try {
    value = await readAtMost(Deno.stdin.readable, max);
  } catch (error) {
    throw missing(`stdin cannot be read (${error instanceof Error ? error.message : error})`);
  }
  if (value === undefined) {
    throw new UsageError(
      `Invalid value: stdin holds over ${max} bytes (1 MiB), the largest value koi stores`,
    );
  }
  return value;
}

/**
 * Whether fd 0 was closed when the process started. The runtime opens /dev/null read-write
 * in place of a closed standard fd; a shell's `</dev/null` opens it read-only. Only Linux
 * shows the difference (`/proc/self/fdinfo/0`); elsewhere a closed stdin reads as empty.
 */
function stdinClosed(): boolean {
  if (Deno.build.os !== "linux") return false;
  try {
    // Not granted: do not prompt for it.
    if (Deno.permissions.querySync({ name: "read", path: "/proc/self" }).state !== "granted") {
      return false;
    }
    if (Deno.readLinkSync("/proc/self/fd/0") !== "/dev/null") return false;
    const flags = /^flags:\s*([0-7]+)$/m.exec(Deno.readTextFileSync("/proc/self/fdinfo/0"));
    return flags !== null && (parseInt(flags[1], 8) & 3) === 2; // O_ACCMODE is O_RDWR
  } catch {
    return false; // no /proc, or no read permission: cannot tell
  }
}

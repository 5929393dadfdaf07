/** Parsing and validation of what enters through HTTP: keys, headers, queries, bodies. */

import { ConfigError, ID_PATTERN, parseHostPort } from "../config/mod.ts";
import type { KvCheck } from "../storage/mod.ts";
import { parseRequestId } from "../storage/mod.ts";
import { BadRequestError, TooLargeError } from "./errors.ts";
import type { MemberSpec } from "./service.ts";

const utf8Encoder = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });
const SHOWN_CHARS_MAX = 64;

/** `text` quoted for an error message, cut short when long. */
export function show(text: string): string {
  return text.length <= SHOWN_CHARS_MAX
    ? JSON.stringify(text)
    : `${JSON.stringify(text.slice(0, SHOWN_CHARS_MAX))}... (${text.length} chars)`;
}

/** Percent-decodes `raw`; malformed escapes or invalid UTF-8 are a bad request about `what`. */
export function percentDecode(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new BadRequestError(`Invalid ${what}: malformed percent-encoding in ${show(raw)}`);
  }
}

/** The UTF-8 bytes of `text`, 1..bytesMax of them (0 allowed when `emptyOk`). */
export function keyBytes(
  text: string,
  what: string,
  options: { bytesMax: number; emptyOk?: boolean },
): Uint8Array {
  const bytes = utf8Encoder.encode(text);
  const min = options.emptyOk ? 0 : 1;
  if (bytes.length < min || bytes.length > options.bytesMax) {
    throw new BadRequestError(
      `Invalid ${what}: must be ${min} to ${options.bytesMax} bytes of UTF-8, got ${bytes.length}`,
    );
  }
  return bytes;
}

/**
 * The query string as a map. Names and values are percent-decoded (`+` is a space, as in
 * forms); a malformed escape or a repeated name is a bad request.
 */
export function parseQuery(search: string): Map<string, string> {
  const query = new Map<string, string>();
  const text = search.startsWith("?") ? search.slice(1) : search;
  if (text === "") return query;
  for (const part of text.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const rawName = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? "" : part.slice(eq + 1);
    const name = percentDecode(rawName.replaceAll("+", " "), "query parameter name");
    const value = percentDecode(rawValue.replaceAll("+", " "), `query parameter ${show(name)}`);
    if (query.has(name)) {
      throw new BadRequestError(`Invalid query: parameter ${show(name)} appears more than once`);
    }
    query.set(name, value);
  }
  return query;
}

/** `?consistency=`: `stale` reads local state; absent or `linearizable` is the default. */
export function parseStale(query: Map<string, string>): boolean {
  const consistency = query.get("consistency");
  if (consistency === undefined || consistency === "linearizable") return false;
  if (consistency === "stale") return true;
  throw new BadRequestError(
    `Invalid consistency: must be "stale" or "linearizable", got ${show(consistency)}`,
  );
}

/** `?limit=`: an integer 1..limitMax; `limitDefault` when absent. */
export function parseLimit(
  query: Map<string, string>,
  options: { limitMax: number; limitDefault: number },
): number {
  const text = query.get("limit");
  if (text === undefined) return options.limitDefault;
  const limit = /^[0-9]{1,15}$/.test(text) ? Number(text) : NaN;
  if (!(limit >= 1 && limit <= options.limitMax)) {
    throw new BadRequestError(
      `Invalid limit: must be an integer from 1 to ${options.limitMax}, got ${show(text)}`,
    );
  }
  return limit;
}

const ETAG_PATTERN = /^"([1-9][0-9]{0,14})"$/;

/** What the parsers read of a request's headers: `Headers.get`. */
export interface HeaderGetter {
  /** The value of header `name` (repeated ones joined by ", "), or null. */
  get(name: string): string | null;
}

/** The checks of `if-match: "<rev>"` (key has rev) or `if-none-match: *` (key is absent). */
export function parseConditions(headers: HeaderGetter, key: Uint8Array): KvCheck[] {
  const ifMatch = headers.get("if-match");
  const ifNoneMatch = headers.get("if-none-match");
  if (ifMatch !== null && ifNoneMatch !== null) {
    throw new BadRequestError(
      "Invalid conditional headers: use if-match or if-none-match, not both",
    );
  }
  if (ifMatch !== null) {
    const match = ETAG_PATTERN.exec(ifMatch.trim());
    if (match === null) {
      throw new BadRequestError(
        `Invalid if-match header: must be a quoted revision such as "\\"42\\"", got ${
          show(ifMatch)
        }`,
      );
    }
    return [{ key, rev: Number(match[1]) }];
  }
  if (ifNoneMatch !== null) {
    if (ifNoneMatch.trim() !== "*") {
      throw new BadRequestError(
        `Invalid if-none-match header: only "*" is supported, got ${show(ifNoneMatch)}`,
      );
    }
    return [{ key, rev: 0 }];
  }
  return [];
}

/** `x-request-id: <client-id>:<seq>` (client id 1..128 chars, seq digits), if present. */
export function parseRequestIdHeader(headers: HeaderGetter): string | undefined {
  const id = headers.get("x-request-id");
  if (id === null) return undefined;
  if (parseRequestId(id) === undefined) {
    throw new BadRequestError(
      `Invalid x-request-id header: must be "<client-id>:<seq>" with a client id of 1 to 128 ` +
        `chars and a seq of 1 to 15 digits, got ${show(id)}`,
    );
  }
  return id;
}

/** Refuses a body whose declared `content-length` exceeds `bytesMax`, before reading it. */
export function checkContentLength(
  headers: HeaderGetter,
  bytesMax: number,
  what: string,
): void {
  const text = headers.get("content-length");
  if (text === null) return;
  if (!/^[0-9]{1,15}$/.test(text.trim())) {
    throw new BadRequestError(`Invalid content-length header: ${show(text)}`);
  }
  const length = Number(text.trim());
  if (length > bytesMax) {
    throw new TooLargeError(`${what} too large: ${length} bytes, the limit is ${bytesMax}`);
  }
}

/**
 * The body of `message` (a request or an answer), at most `bytesMax` bytes, else
 * `tooLarge()` is thrown. A declared `content-length` within the limit binds the body (HTTP
 * framing: a peer cannot send more under it), so such a body is read in one step: through a
 * stream reader it costs more than the rest of the request. Without one it is read as a
 * stream that stops at the limit ({@linkcode readLimited}).
 */
export async function readMessageBody(
  message: Request | Response,
  bytesMax: number,
  tooLarge: (bytes: number) => Error,
): Promise<Uint8Array> {
  if (message.body === null) return new Uint8Array(0);
  const declared = message.headers.get("content-length");
  if (declared === null || !/^[0-9]{1,15}$/.test(declared)) {
    return await readLimited(message.body, bytesMax, tooLarge);
  }
  if (Number(declared) > bytesMax) {
    message.body.cancel().catch(() => {});
    throw tooLarge(Number(declared));
  }
  const bytes = new Uint8Array(await message.arrayBuffer());
  if (bytes.length > bytesMax) throw tooLarge(bytes.length); // only a broken transport
  return bytes;
}

/**
 * Reads a stream to its end, but stops (and cancels it) as soon as it exceeds `bytesMax`:
 * a client never makes the node buffer more than the limit.
 */
export async function readLimited(
  stream: ReadableStream<Uint8Array> | null,
  bytesMax: number,
  tooLarge: (bytes: number) => Error,
): Promise<Uint8Array> {
  if (stream === null) return new Uint8Array(0);
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > bytesMax) {
      reader.cancel().catch(() => {}); // the answer does not wait for the peer
      throw tooLarge(total);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/** `bytes` as a fetch body (which must not sit on a shared buffer): copied only if it does. */
export function bodyOf(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? bytes as Uint8Array<ArrayBuffer> : bytes.slice();
}

/** The request body, at most `bytesMax` bytes (413 beyond, 400 when the client breaks off). */
export async function readBody(
  request: Request,
  bytesMax: number,
  what: string,
): Promise<Uint8Array> {
  checkContentLength(request.headers, bytesMax, what);
  const tooLarge = () =>
    new TooLargeError(`${what} too large: more than the limit of ${bytesMax} bytes`);
  try {
    return await readMessageBody(request, bytesMax, tooLarge);
  } catch (error) {
    if (error instanceof TooLargeError) throw error;
    throw new BadRequestError(`Cannot read the request body: ${String(error)}`);
  }
}

/** A JSON object body with only `fields` (each optional here; callers check types). */
export function parseJsonObject(
  body: Uint8Array,
  fields: readonly string[],
): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(utf8Strict.decode(body));
  } catch (error) {
    throw new BadRequestError(`Invalid JSON body: ${error instanceof Error ? error.message : ""}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new BadRequestError("Invalid JSON body: must be an object");
  }
  const record = value as Record<string, unknown>;
  for (const name of Object.keys(record)) {
    if (!fields.includes(name)) {
      throw new BadRequestError(
        `Invalid JSON body: unknown field ${show(name)}; known: ${fields.join(", ")}`,
      );
    }
  }
  return record;
}

/** What a JSON value is, for messages: "no value", "null", "array", or its `typeof`. */
function kindOf(value: unknown): string {
  if (value === undefined) return "no value";
  if (value === null) return "null";
  return Array.isArray(value) ? "array" : typeof value;
}

/** A node id (`[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`) from `field`. */
export function parseNodeId(value: unknown, field: string): string {
  if (typeof value !== "string" || !ID_PATTERN.test(value)) {
    throw new BadRequestError(
      `Invalid ${field}: must be a node id matching ${ID_PATTERN.source}, got ${
        typeof value === "string" ? show(value) : kindOf(value)
      }`,
    );
  }
  return value;
}

function parseAddress(value: unknown, field: string): string {
  if (typeof value !== "string") {
    throw new BadRequestError(
      `Invalid ${field}: must be a "host:port" string, got ${kindOf(value)}`,
    );
  }
  try {
    return parseHostPort(value, field).text;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const reason = error.message.replace(`Invalid config field ${field}: `, "");
    throw new BadRequestError(`Invalid ${field}: ${reason}`);
  }
}

/**
 * The body of `POST /v1/members`: `{"id", "raft"?, "http"?, "voter"?}`. The addresses may be
 * left out for a node config.toml knows (`known`); `voter` defaults to false (a learner).
 */
export function parseMemberSpec(
  body: Uint8Array,
  known: ReadonlyMap<string, { readonly raft: string; readonly http: string }> = new Map(),
): MemberSpec {
  const record = parseJsonObject(body, ["id", "raft", "http", "voter"]);
  const id = parseNodeId(record.id, "id");
  const configured = known.get(id);
  const address = (field: "raft" | "http") => {
    if (record[field] !== undefined) {
      const given = parseAddress(record[field], field);
      // An address that contradicts config.toml would send the cluster's traffic for this
      // member somewhere else; the file is the single source of the deployment's addresses.
      if (configured !== undefined && given !== configured[field]) {
        throw new BadRequestError(
          `Invalid ${field}: node ${id} is in config.toml with ${field} ${configured[field]}, ` +
            `got ${given}; leave "${field}" out (it is taken from config.toml) or fix config.toml`,
        );
      }
      return given;
    }
    if (configured !== undefined) return configured[field];
    throw new BadRequestError(
      `Invalid ${field}: missing, and node ${id} is not in config.toml; give its "raft" and ` +
        `"http" addresses`,
    );
  };
  const raft = address("raft");
  const http = address("http");
  const voter = record.voter ?? false;
  if (typeof voter !== "boolean") {
    throw new BadRequestError(`Invalid voter: must be true or false, got ${kindOf(voter)}`);
  }
  return { id, raft, http, voter };
}

/** The body of `POST /v1/leader`: `{"to": id}`. */
export function parseTransfer(body: Uint8Array): string {
  return parseNodeId(parseJsonObject(body, ["to"]).to, "to");
}

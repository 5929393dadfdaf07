/**
 * The KV Connect endpoint as a fetch handler over a backend: the metadata exchange (access
 * tokens in, expiring data-path tokens out), then `snapshot_read`, `atomic_write` and `watch`
 * on the data path `<base>/v3`. Deno's built-in client speaks HTTP/2 with prior knowledge over
 * `http://`, which `Deno.serve` accepts (node:http does not), so this handler is meant for a
 * `Deno.serve` listener of its own (`_listener.ts`).
 *
 * Deno's client retries a 5xx for ever and gives up on a 4xx, showing the body: refusals are
 * 4xx with a text body that says why, and 5xx means "a retry can help".
 *
 * @module
 */
import type { AnswerRoom } from "../client/internal.ts";
import { secretsEqual } from "../config/mod.ts";
import { DataTokens } from "./_data_token.ts";
import {
  type AtomicWrite,
  type AtomicWriteOutput,
  DatapathDecodeError,
  decodeAtomicWrite,
  decodeSnapshotRead,
  decodeWatch,
  encodeAtomicWriteOutput,
  encodeSnapshotReadOutput,
  encodeWatchOutput,
  type KvEntry,
  type ReadRange,
  SnapshotReadStatus,
} from "./_datapath.ts";
import { KvConnectError } from "./_errors.ts";

/** What a watch's `next()` gives: its keys' entries, nothing for now, or its end. */
export type KvWatchNext =
  | { readonly kind: "entries"; readonly entries: readonly (KvEntry | undefined)[] }
  | { readonly kind: "idle" }
  | { readonly kind: "end" };

/** One open watch of a backend. */
export interface KvWatch {
  /**
   * The first call: every key's entry (undefined: absent). Later calls: every key's entry
   * again once one of them changed. `idle` when `signal` aborted first (the endpoint then
   * sends a keep-alive and asks again); `end` once the backend ends the watch.
   */
  next(signal: AbortSignal): Promise<KvWatchNext>;
  /** Ends the watch (the client went away). */
  close(): void;
}

/** What the endpoint reads from and writes to; it throws {@linkcode KvConnectError} to refuse. */
export interface KvConnectBackend {
  /**
   * The entries of each range (start inclusive, end exclusive), in order, at most `limit`;
   * the nodes' answers take their bytes from `room` as they come.
   */
  read(ranges: readonly ReadRange[], signal: AbortSignal, room?: AnswerRoom): Promise<KvEntry[][]>;
  /** Applies `write` (decoded from `body`, which may be passed on as is). */
  write(write: AtomicWrite, body: Uint8Array, signal: AbortSignal): Promise<AtomicWriteOutput>;
  /** Opens a watch of `keys`. */
  watch(keys: readonly Uint8Array[]): KvWatch;
}

/** Options of {@linkcode kvConnectHandler}. */
export interface KvConnectOptions {
  /** The access tokens a client may present (`DENO_KV_ACCESS_TOKEN`); at least one. */
  readonly accessTokens: readonly string[];
  /** The database's id (a UUID), the same for every metadata answer. */
  readonly databaseId: string;
  /** The path the endpoint is served under (e.g. `/kv`; "" for the root). */
  readonly basePath: string;
  /** How long a data-path token lives, in milliseconds (default one hour). */
  readonly tokenTtlMs?: number;
  /** A watch stream's keep-alive interval, in ms (default {@linkcode KV_CONNECT_KEEPALIVE_MS}). */
  readonly keepAliveMs?: number;
  /** The clock (ms since 1970). */
  readonly now?: () => number;
  /** Told of an error that became a `500` (a bug). */
  /** Default {@linkcode KV_CONNECT_READ_BUILD_BYTES_MAX}. */
  readonly readBuildBytesMax?: number;
  readonly onError?: (message: string, error: unknown) => void;
}

/** Largest request body, in bytes (Deno's client sends at most 800 KiB of mutations). */
export const KV_CONNECT_BODY_BYTES_MAX = 1 << 20;
/** Ranges one `snapshot_read` may ask for. */
export const KV_CONNECT_RANGES_MAX = 64;
/** Entries one `snapshot_read` may ask for: the sum of its ranges' limits (Deno's own rule). */
export const KV_CONNECT_READ_ENTRIES_MAX = 1000;
/**
 * Bytes the reads being built may take in all, at most: each reserves, before anything is
 * read, twice the largest answer its ranges could have with Deno's values (the gateway holds
 * the nodes' answers and the merged one), at most {@linkcode KV_CONNECT_READ_RESERVE_BYTES_MAX};
 * the nodes' answers take what they need beyond that
 * (koi's values reach 1 MiB) as they come. All is given back once the answer is handed to the
 * listener (which bounds answers not yet sent). A read that does not fit: `503` at once
 * (Deno's client retries); one that could not fit alone: `400`.
 */
export const KV_CONNECT_READ_BUILD_BYTES_MAX = 256 * 1024 * 1024;
/** The most bytes one entry of an answer takes (Deno's largest key and value, and room). */
const ENTRY_BYTES_MAX = 2070 + 65_536 + 64;
/**
 * What one read reserves up front at most; the nodes' answers take the rest by their declared
 * lengths as they come. Found by the attack: a list with batchSize 1000 reserved 135 MB (for
 * 1000 values of 64 KiB), so a second one anywhere in the gateway got 503 even when the values
 * were tiny, and a slow (fenced) read held the others back for seconds.
 */
export const KV_CONNECT_READ_RESERVE_BYTES_MAX = 16 * 1024 * 1024;
/** A watch stream sends a zero-length frame after this long without news, in milliseconds. */
export const KV_CONNECT_KEEPALIVE_MS = 5_000;
/** The protocol versions served; the newest one the client supports is chosen. */
export const KV_CONNECT_VERSIONS: readonly number[] = [2, 3];

function error(status: number, message: string): Response {
  return new Response(message, { status, headers: { "content-type": "text/plain" } });
}

function bearer(req: Request): string {
  const auth = req.headers.get("authorization") ?? "";
  return /^bearer /i.test(auth) ? auth.slice(7).trim() : "";
}

/** The body, at most {@linkcode KV_CONNECT_BODY_BYTES_MAX} bytes, read until `signal` aborts. */
async function body(req: Request, signal: AbortSignal): Promise<Uint8Array | Response> {
  const declared = Number(req.headers.get("content-length") ?? 0);
  if (declared > KV_CONNECT_BODY_BYTES_MAX) return error(413, "Request body too large");
  // Read in chunks up to the limit: an HTTP/2 body need not declare its length.
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body?.getReader();
  if (reader !== undefined) {
    const onAbort = () => reader.cancel().catch(() => {});
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        const chunk = await reader.read().catch(() => undefined);
        if (signal.aborted) return error(408, "The request body did not arrive in time");
        if (chunk === undefined) return error(400, "The request body broke off");
        const { done, value } = chunk;
        if (done) break;
        size += value.length;
        if (size > KV_CONNECT_BODY_BYTES_MAX) {
          await reader.cancel().catch(() => {});
          return error(413, "Request body too large");
        }
        chunks.push(value);
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) (bytes.set(c, at), at += c.length);
  return bytes;
}

/** A frame of a watch stream: u32 little-endian length, then the message. */
function frame(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + message.length);
  new DataView(out.buffer).setUint32(0, message.length, true);
  out.set(message, 4);
  return out;
}

const PROTOBUF = { "content-type": "application/x-protobuf" };

/**
 * A fetch handler serving KV Connect under `options.basePath`; undefined for other paths.
 * `signal` (the listener's deadline) bounds reading the body and the backend's work; a watch
 * stream outlives it.
 */
export function kvConnectHandler(
  backend: KvConnectBackend,
  options: KvConnectOptions,
): (req: Request, signal?: AbortSignal) => Promise<Response | undefined> {
  if (options.accessTokens.length === 0) throw new RangeError("KV Connect needs an access token");
  const now = options.now ?? Date.now;
  const ttl = options.tokenTtlMs ?? 3_600_000;
  const keepAliveMs = options.keepAliveMs ?? KV_CONNECT_KEEPALIVE_MS;
  const dataTokens = DataTokens.create(options.accessTokens, options.databaseId);
  const base = options.basePath.replace(/\/+$/, "");
  const dataPath = `${base}/v3`;

  const metadata = async (req: Request, signal: AbortSignal): Promise<Response> => {
    const presented = bearer(req);
    if (!options.accessTokens.some((t) => secretsEqual(t, presented))) {
      return error(401, "Unknown access token (DENO_KV_ACCESS_TOKEN)");
    }
    const raw = await body(req, signal);
    if (raw instanceof Response) return raw;
    let supported: unknown;
    try {
      supported = JSON.parse(new TextDecoder().decode(raw)).supportedVersions;
    } catch {
      return error(400, "The metadata request is not JSON");
    }
    const version = Array.isArray(supported)
      ? Math.max(...KV_CONNECT_VERSIONS.filter((v) => supported.includes(v)))
      : -Infinity;
    if (!Number.isFinite(version)) {
      return error(400, `No common protocol version (koi serves ${KV_CONNECT_VERSIONS})`);
    }
    const expiresAt = now() + ttl;
    const accessToken = options.accessTokens.find((t) => secretsEqual(t, presented))!;
    return Response.json({
      version,
      databaseId: options.databaseId,
      endpoints: [{ url: dataPath, consistency: "strong" }],
      token: await (await dataTokens).issue(accessToken, expiresAt),
      expiresAt: new Date(expiresAt).toISOString(),
    });
  };

  const buildBytesMax = options.readBuildBytesMax ?? KV_CONNECT_READ_BUILD_BYTES_MAX;
  let building = 0;
  const snapshotRead = async (raw: Uint8Array, signal: AbortSignal): Promise<Response> => {
    const read = decodeSnapshotRead(raw);
    if (read.ranges.length > KV_CONNECT_RANGES_MAX) {
      return error(400, `At most ${KV_CONNECT_RANGES_MAX} ranges per read`);
    }
    const entries = read.ranges.reduce((n, r) => n + r.limit, 0);
    if (read.ranges.some((r) => r.limit < 1) || entries > KV_CONNECT_READ_ENTRIES_MAX) {
      return error(
        400,
        `A read asks for 1 or more entries per range and at most ${KV_CONNECT_READ_ENTRIES_MAX} ` +
          `in all, got ${read.ranges.map((r) => r.limit).join(" + ")}`,
      );
    }
    // Deno's values are at most 64 KiB, so a read of them fits what it reserves up front;
    // values written through koi's own API may reach 1 MiB: the nodes' answers take what is
    // over the reservation as they come (by their declared lengths, before their bodies are
    // read), and a read that finds no room fails 503 (Deno's client retries).
    let reserved = Math.min(
      2 * entries * ENTRY_BYTES_MAX,
      KV_CONNECT_READ_RESERVE_BYTES_MAX,
      buildBytesMax,
    );
    if (building + reserved > buildBytesMax) {
      return error(
        503,
        `Busy: the reads being built may take ${building} bytes of at most ${buildBytesMax}`,
      );
    }
    building += reserved;
    let used = 0;
    let tooLarge: string | undefined;
    let ended = false;
    const room: AnswerRoom = {
      take(bytes) {
        // A read that failed ends before all its requests to nodes have: what they bring
        // later must not count (its reservation is given back once).
        if (ended) return "The read has ended";
        // A node's answer, and as much again for the answer merged from it.
        const need = used + 2 * bytes - reserved;
        if (need > 0 && reserved + need > buildBytesMax) {
          tooLarge = `The read's answers would take ${used + 2 * bytes} bytes to build, more ` +
            `than the gateway's ${buildBytesMax}: read fewer entries at once`;
          return tooLarge;
        }
        if (need > 0 && building + need > buildBytesMax) {
          return `Busy: the reads being built take ${building} bytes of at most ` +
            `${buildBytesMax}, and this one needs ${need} more`;
        }
        if (need > 0) {
          building += need;
          reserved += need;
        }
        used += 2 * bytes;
        return undefined;
      },
    };
    let values;
    try {
      values = await backend.read(read.ranges, signal, room);
    } catch (e) {
      // Asking again would not fit any better: Deno's client must not retry.
      if (tooLarge !== undefined) throw new KvConnectError(400, tooLarge);
      throw e;
    } finally {
      ended = true;
      building -= reserved;
    }
    return new Response(
      encodeSnapshotReadOutput({
        ranges: values.map((v) => ({ values: v })),
        readDisabled: false,
        readIsStronglyConsistent: true,
        status: SnapshotReadStatus.SUCCESS,
      }) as BodyInit,
      { headers: PROTOBUF },
    );
  };

  const atomicWrite = async (raw: Uint8Array, signal: AbortSignal): Promise<Response> => {
    const write = decodeAtomicWrite(raw);
    if (write.enqueues > 0) {
      return error(
        400,
        "Queues are not supported: enqueue and listenQueue are not part of KV Connect",
      );
    }
    const out = await backend.write(write, raw, signal);
    return new Response(encodeAtomicWriteOutput(out) as BodyInit, { headers: PROTOBUF });
  };

  const watch = (raw: Uint8Array): Response => {
    const { keys } = decodeWatch(raw);
    const open = backend.watch(keys);
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const keepAlive = new AbortController();
        const timer = setTimeout(() => keepAlive.abort(), keepAliveMs);
        let next: KvWatchNext;
        try {
          next = await open.next(keepAlive.signal);
        } catch (error) {
          // The stream breaks (Deno's client opens a new watch); this one is closed.
          open.close();
          options.onError?.("KV Connect watch failed", error);
          controller.error(error);
          return;
        } finally {
          clearTimeout(timer);
        }
        try {
          if (next.kind === "end") {
            open.close();
            controller.close();
          } else if (next.kind === "idle") controller.enqueue(new Uint8Array(4));
          else {
            // Every key with changed = true, unchanged ones too: Deno 2.9.6's client reads a
            // key sent with changed = false as absent. It drops entries whose versionstamp
            // it has already seen, so a key that did not change shows no change.
            const message = encodeWatchOutput({
              status: SnapshotReadStatus.SUCCESS,
              keys: next.entries.map((entry) => ({ changed: true, entryIfChanged: entry })),
            });
            controller.enqueue(frame(message));
          }
        } catch {
          open.close(); // the stream was cancelled meanwhile
        }
      },
      cancel() {
        open.close();
      },
    }, { highWaterMark: 0 });
    return new Response(stream, { headers: { "content-type": "application/octet-stream" } });
  };

  return async (req, signal = new AbortController().signal) => {
    const path = new URL(req.url).pathname;
    if (path !== base && path !== `${base}/` && !path.startsWith(`${dataPath}/`)) return undefined;
    if (req.method !== "POST") return error(405, "KV Connect takes POST");
    if (!path.startsWith(`${dataPath}/`)) return await metadata(req, signal);
    if (!(await (await dataTokens).verify(bearer(req), now()))) {
      return error(401, "Unknown or expired token");
    }
    if (req.headers.get("x-denokv-database-id") !== options.databaseId) {
      return error(400, "Wrong x-denokv-database-id");
    }
    const op = path.slice(dataPath.length + 1);
    if (op !== "snapshot_read" && op !== "atomic_write" && op !== "watch") {
      return error(404, `No KV Connect operation ${op}`);
    }
    const raw = await body(req, signal);
    if (raw instanceof Response) return raw;
    try {
      // A read stops when its client goes away (a write runs to its end: stopping it halfway
      // would only leave locks for others to resolve).
      if (op === "snapshot_read") {
        return await snapshotRead(raw, AbortSignal.any([signal, req.signal]));
      }
      if (op === "atomic_write") return await atomicWrite(raw, signal);
      return watch(raw);
    } catch (e) {
      if (e instanceof DatapathDecodeError) return error(400, e.message);
      if (e instanceof KvConnectError) return error(e.status, e.message);
      options.onError?.(`KV Connect ${op} failed`, e);
      return error(500, `KV Connect ${op} failed: ${e instanceof Error ? e.message : e}`);
    }
  };
}

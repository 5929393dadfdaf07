/**
 * The KV Connect endpoint as a fetch handler over a backend (the serving part of issue 15,
 * first step): the metadata exchange and `snapshot_read`. Deno's built-in client speaks
 * HTTP/2 with prior knowledge over `http://`, which `Deno.serve` accepts (node:http does not),
 * so this handler is meant for a `Deno.serve` listener of its own. Writes and watches are not
 * served yet (`400`: the client gives up on a 4xx and retries a 5xx for ever).
 *
 * @module
 */
import { secretsEqual } from "../config/mod.ts";
import {
  DatapathDecodeError,
  decodeSnapshotRead,
  encodeSnapshotReadOutput,
  type KvEntry,
  type ReadRange,
  SnapshotReadStatus,
} from "./_datapath.ts";

/** What the endpoint reads from. */
export interface KvConnectBackend {
  /** The entries of each range (start inclusive, end exclusive), in order, at most `limit`. */
  read(ranges: readonly ReadRange[]): Promise<KvEntry[][]>;
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
  /** The clock (ms since 1970). */
  readonly now?: () => number;
}

/** Largest request body, in bytes (Deno's client sends at most 800 KiB of mutations). */
export const KV_CONNECT_BODY_BYTES_MAX = 1 << 20;
/** Ranges one `snapshot_read` may ask for. */
export const KV_CONNECT_RANGES_MAX = 64;
/** The protocol versions served; the newest one the client supports is chosen. */
export const KV_CONNECT_VERSIONS: readonly number[] = [2, 3];

function error(status: number, message: string): Response {
  return new Response(message, { status, headers: { "content-type": "text/plain" } });
}

function bearer(req: Request): string {
  const auth = req.headers.get("authorization") ?? "";
  return /^bearer /i.test(auth) ? auth.slice(7).trim() : "";
}

async function body(req: Request): Promise<Uint8Array | Response> {
  const declared = Number(req.headers.get("content-length") ?? 0);
  if (declared > KV_CONNECT_BODY_BYTES_MAX) return error(413, "Request body too large");
  // Read in chunks up to the limit: an HTTP/2 body need not declare its length.
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req.body ?? []) {
    size += chunk.length;
    if (size > KV_CONNECT_BODY_BYTES_MAX) {
      await req.body?.cancel().catch(() => {});
      return error(413, "Request body too large");
    }
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) (bytes.set(c, at), at += c.length);
  return bytes;
}

/** A fetch handler serving KV Connect under `options.basePath`; undefined for other paths. */
export function kvConnectHandler(
  backend: KvConnectBackend,
  options: KvConnectOptions,
): (req: Request) => Promise<Response | undefined> {
  if (options.accessTokens.length === 0) throw new RangeError("KV Connect needs an access token");
  const now = options.now ?? Date.now;
  const ttl = options.tokenTtlMs ?? 3_600_000;
  /** Data-path tokens handed out, with when they expire. */
  const tokens = new Map<string, number>();
  const base = options.basePath.replace(/\/+$/, "");
  const dataPath = `${base}/v3`;
  return async (req) => {
    const path = new URL(req.url).pathname;
    if (path !== base && path !== `${base}/` && !path.startsWith(`${dataPath}/`)) return undefined;
    if (req.method !== "POST") return error(405, "KV Connect takes POST");
    if (!path.startsWith(`${dataPath}/`)) {
      if (!options.accessTokens.some((t) => secretsEqual(t, bearer(req)))) {
        return error(401, "Unknown access token (DENO_KV_ACCESS_TOKEN)");
      }
      const raw = await body(req);
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
      for (const [t, until] of tokens) if (until <= now()) tokens.delete(t);
      const token = crypto.randomUUID().replaceAll("-", "") +
        crypto.randomUUID().replaceAll("-", "");
      const expiresAt = now() + ttl;
      tokens.set(token, expiresAt);
      return Response.json({
        version,
        databaseId: options.databaseId,
        endpoints: [{ url: dataPath, consistency: "strong" }],
        token,
        expiresAt: new Date(expiresAt).toISOString(),
      });
    }
    const presented = bearer(req);
    const until = tokens.get(presented);
    if (until === undefined || until <= now()) return error(401, "Unknown or expired token");
    if (req.headers.get("x-denokv-database-id") !== options.databaseId) {
      return error(400, "Wrong x-denokv-database-id");
    }
    const op = path.slice(dataPath.length + 1);
    // A 4xx: Deno's client retries a 5xx for ever, and gives up on a 4xx.
    if (op !== "snapshot_read") return error(400, `koi does not serve ${op} yet`);
    const raw = await body(req);
    if (raw instanceof Response) return raw;
    let read;
    try {
      read = decodeSnapshotRead(raw);
    } catch (e) {
      if (e instanceof DatapathDecodeError) return error(400, e.message);
      throw e;
    }
    if (read.ranges.length > KV_CONNECT_RANGES_MAX) {
      return error(400, `At most ${KV_CONNECT_RANGES_MAX} ranges per read`);
    }
    const values = await backend.read(read.ranges);
    return new Response(
      encodeSnapshotReadOutput({
        ranges: values.map((v) => ({ values: v })),
        readDisabled: false,
        readIsStronglyConsistent: true,
        status: SnapshotReadStatus.SUCCESS,
      }) as BodyInit,
      { headers: { "content-type": "application/x-protobuf" } },
    );
  };
}

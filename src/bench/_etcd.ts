/**
 * What the two etcd drivers of `koi bench load` share: the endpoint list of `--etcd`, the one
 * pseudo-cluster an etcd cluster is to the report, and the error kinds of gRPC status codes
 * (etcd's gRPC API and its JSON gateway answer with the same codes).
 *
 * @module
 */
import type { LoadTarget, ReadOptions } from "./_target.ts";

/** The partition name of every key: etcd is one Raft group, so the report has one row. */
export const ETCD_CLUSTER = "etcd";

/** etcd's own default client URL, the default of `--etcd`. */
export const ETCD_DEFAULT_ENDPOINT = "127.0.0.1:2379";

/** What an etcd driver's `connect` needs. */
export interface EtcdTargetOptions {
  /** Each operation's budget, retries included; also how long the first status call may take. */
  readonly timeoutMs?: number;
}

/**
 * The `host:port` of each client URL of `text`, comma-separated (`127.0.0.1:2379,
 * http://127.0.0.1:22379`; `http://` is assumed, https is not supported); throws a
 * TypeError saying what is wrong.
 */
export function parseEtcdEndpoints(text: string): string[] {
  const parts = text.split(",").map((p) => p.trim());
  if (parts.every((p) => p === "")) throw new TypeError("expected host:port[,host:port…]");
  return parts.filter((p) => p !== "").map((part) => {
    const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(part) ? part : `http://${part}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      throw new TypeError(`${JSON.stringify(part)} is not host:port`);
    }
    if (url.protocol !== "http:") {
      throw new TypeError(`${JSON.stringify(part)}: only http:// endpoints are supported`);
    }
    const bare = url.pathname === "/" && url.search === "" && url.hash === "" &&
      url.username === "" && url.password === "";
    if (!bare || url.port === "") {
      throw new TypeError(`${JSON.stringify(part)} is not host:port`);
    }
    return url.host;
  });
}

/** gRPC status codes 0 … 16 by their kind in the report (2, UNKNOWN, is `other`). */
const GRPC_KINDS = [
  "ok",
  "cancelled",
  "other",
  "invalid_argument",
  "timeout",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
] as const;

/** The report's kind of gRPC status `code` (`unavailable` for 14, `timeout` for 4), else `other`. */
export function grpcKind(code: unknown): string {
  return typeof code === "number" && Number.isInteger(code) ? GRPC_KINDS[code] ?? "other" : "other";
}

/**
 * An etcd cluster under load, whatever the API: one pseudo-cluster, and the details of the
 * endpoints it was given and the server version the first status call returned.
 */
export abstract class EtcdTarget implements LoadTarget {
  /** `etcd-grpc` or `etcd-http`. */
  abstract readonly name: string;
  /** The one pseudo-cluster, {@linkcode ETCD_CLUSTER}. */
  readonly clusters: readonly string[] = [ETCD_CLUSTER];
  /** The server's version, as its status answered (set by `connect`). */
  protected version = "unknown";
  readonly #endpoints: string;

  /** A target of `endpoints` (host:port). */
  protected constructor(endpoints: readonly string[]) {
    this.#endpoints = endpoints.join(",");
  }

  /** The endpoints (comma-separated) and the server version. */
  get details(): Readonly<Record<string, string | number>> {
    return { endpoints: this.#endpoints, version: this.version };
  }

  /** Every key is in {@linkcode ETCD_CLUSTER}. */
  clusterOf(_key: string): string {
    return ETCD_CLUSTER;
  }

  /** An unconditional put. */
  abstract put(key: string, value: Uint8Array): Promise<void>;
  /** A linearizable range of one key, or a serializable one for `stale`. */
  abstract get(key: string, options: ReadOptions): Promise<boolean>;
  /** The error's kind. */
  abstract errorKind(error: unknown): string;
  /** Releases the connections. */
  abstract close(): Promise<void>;
}

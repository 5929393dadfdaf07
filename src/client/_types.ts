/** The client's public option and result types. */

import type { NodeInfo } from "./_table.ts";
import type { HistoryRecorder } from "./history.ts";

/** How a read is served: by the leader (`linearizable`, the default) or any node (`stale`). */
export type Consistency = "linearizable" | "stale";

/**
 * Which members serve reads: `any` spreads them over the cluster's members in turn (a
 * follower confirms a linearizable read with its leader first, Raft's ReadIndex, so it is
 * as current as the leader's, one hop later); `leader` sends every read to the leader.
 */
export type ReadFrom = "any" | "leader";

/** Options of {@linkcode connect}. */
export interface ConnectOptions {
  /**
   * Each call's time budget in milliseconds, retries included (default 10,000). A call
   * that cannot finish in time throws {@linkcode TimeoutError} or
   * {@linkcode UnavailableError}; every call may override it.
   */
  readonly timeoutMs?: number;
  /** How long `connect` waits for the admin's table, retries included. Default: `timeoutMs`. */
  readonly connectTimeoutMs?: number;
  /**
   * One request's time budget (default 5,000 ms, capped by what the call has left): a node
   * that does not answer in time is left for another node of its cluster.
   */
  readonly attemptTimeoutMs?: number;
  /**
   * Which members serve reads and listings (default `any`: spread over the members, so that
   * reads do not all load the leader; see {@linkcode ReadFrom}). Writes always go to the
   * leader.
   */
  readonly readFrom?: ReadFrom;
  /** The first retry waits up to this long (full jitter), doubling per retry. Default 25. */
  readonly retryBaseMs?: number;
  /** No retry waits longer than this (full jitter), apart from `retry-after`. Default 1,000. */
  readonly retryMaxMs?: number;
  /**
   * A readable prefix of the client's request ids (default `koi`): sessions are named
   * `<clientId>-<16 random hex digits>-<n>`, so two clients never share one.
   */
  readonly clientId?: string;
  /** Aborts `connect` (not the client's later calls). */
  readonly signal?: AbortSignal;
  /**
   * Records every `get`, `put` and `delete` (invocation, end, outcome) into this recorder,
   * e.g. for a linearizability check; several clients may share one. Default: none.
   */
  readonly history?: HistoryRecorder;
  /**
   * Certificates (PEM texts) to trust for `https://` admins and nodes, besides the system's:
   * the deployment's CA when config.toml has `[tls]`. E.g.
   * `caCerts: [await Deno.readTextFile("tls/ca.pem")]`. Ignored with `fetch`.
   */
  readonly caCerts?: readonly string[];
  /**
   * The `fetch` to send requests with (for tests or a custom transport). By default the
   * client uses the global `fetch` on its own `Deno.HttpClient`, which `close()` releases.
   */
  readonly fetch?: (input: URL, init: RequestInit) => Promise<Response>;
}

/** What every call accepts. */
export interface CallOptions {
  /** This call's time budget in milliseconds, retries included (default: the client's). */
  readonly timeoutMs?: number;
  /** Aborts the call; it then throws a {@linkcode KoiError} with code `aborted`. */
  readonly signal?: AbortSignal;
}

/** Options of {@linkcode KoiClient.get}. */
export interface GetOptions extends CallOptions {
  /** `linearizable` (default: the leader confirms it is current) or `stale` (any node). */
  readonly consistency?: Consistency;
}

/** Options of {@linkcode KoiClient.put}. */
export interface PutOptions extends CallOptions {
  /** Write only if the key exists with exactly this revision (`if-match`). */
  readonly ifRev?: number;
  /** Write only if the key is absent (`if-none-match: *`). Not together with `ifRev`. */
  readonly ifAbsent?: boolean;
}

/** Options of {@linkcode KoiClient.delete}. */
export interface DeleteOptions extends CallOptions {
  /** Delete only if the key exists with exactly this revision (`if-match`). */
  readonly ifRev?: number;
}

/** Options of {@linkcode KoiClient.list}. */
export interface ListOptions extends CallOptions {
  /** Only keys starting with these bytes (a string is UTF-8). Default: every key. */
  readonly prefix?: string | Uint8Array;
  /** Only keys strictly after this one in byte order: pass the previous page's `next`. */
  readonly after?: string | Uint8Array;
  /** The page size, 1..1000 (default 100). */
  readonly limit?: number;
  /** `linearizable` (default) or `stale` (any node of each cluster). */
  readonly consistency?: Consistency;
}

/** Options of {@linkcode KoiClient.scan}: those of `list`, with `pageSize` for `limit`. */
export interface ScanOptions extends Omit<ListOptions, "limit"> {
  /** Keys fetched per page, 1..1000 (default 100). Each page is one call with its own budget. */
  readonly pageSize?: number;
}

/** A value and its revision. */
export interface GetResult {
  /** The value's bytes. */
  readonly value: Uint8Array;
  /** The Raft log index of the write that set it: grows with every write of the key. */
  readonly rev: number;
}

/** A value decoded as UTF-8, and its revision. */
export interface GetTextResult {
  /** The value as text (invalid UTF-8 becomes U+FFFD). */
  readonly value: string;
  /** The value's revision. */
  readonly rev: number;
}

/** The answer to a put. */
export interface PutResult {
  /** The key's new revision. */
  readonly rev: number;
}

/** The answer to a delete. */
export interface DeleteResult {
  /** The revision of the delete (a delete is a write, also of an absent key). */
  readonly rev: number;
  /** Whether the key existed. */
  readonly deleted: boolean;
}

/** One listed key. */
export interface ListItem {
  /** The key's exact bytes. */
  readonly key: Uint8Array;
  /** The key as text (invalid UTF-8 becomes U+FFFD). */
  readonly keyText: string;
  /** The key's revision. */
  readonly rev: number;
  /** The cluster that holds it. */
  readonly cluster: string;
}

/** One page of keys, merged over every cluster in byte order. */
export interface ListPage {
  /** Up to `limit` keys in unsigned byte order. */
  readonly items: readonly ListItem[];
  /** True when further keys match: ask again with `after: page.next`. */
  readonly more: boolean;
  /** The last key of this page, when `more` is true. */
  readonly next?: Uint8Array;
}

/** Where a key lives: its cluster, that cluster's nodes and the leader the client knows. */
export interface KeyRoute {
  /** The owning cluster's id. */
  readonly cluster: string;
  /** The cluster's nodes, in config order. */
  readonly nodes: readonly NodeInfo[];
  /** The leader the client currently sends to, when it knows one. */
  readonly leader: NodeInfo | undefined;
}

/** Options of {@linkcode KoiClient.watch}. */
export interface WatchOptions {
  /**
   * Per cluster id, the rev to watch from (exclusive): changes after it come first. A
   * cluster left out is watched from the moment its first stream opens.
   */
  readonly fromRevs?: Readonly<Record<string, number>>;
  /** Aborts the watch: every connection closes and the iteration throws `aborted`. */
  readonly signal?: AbortSignal;
}

/** One change that {@linkcode KoiClient.watch} delivers. */
export interface WatchEvent {
  /** The cluster that holds the key. */
  readonly cluster: string;
  /** The rev of the write (all changes of one write share it); grows per cluster. */
  readonly rev: number;
  /** What happened to the key. */
  readonly type: "put" | "delete";
  /** The key's exact bytes. */
  readonly key: Uint8Array;
  /** The key as text (invalid UTF-8 becomes U+FFFD). */
  readonly keyText: string;
  /** A put's value, when it is at most 64 KiB; read a larger one with `get`. */
  readonly value?: Uint8Array;
  /** A put's value size in bytes; 0 for a delete. */
  readonly size: number;
}

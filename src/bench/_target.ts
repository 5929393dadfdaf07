/**
 * What a load run drives: the {@linkcode LoadTarget} interface, one store behind it, and
 * {@linkcode KoiTarget}, koi through its routing client. etcd's drivers (`_etcd_grpc.ts`,
 * `_etcd_http.ts`) implement the same interface; the runner knows only the interface.
 *
 * @module
 */
import { connect, type KoiClient, KoiError } from "../client/mod.ts";

/** How a read is sent. */
export interface ReadOptions {
  /** Whether a stale read (any replica, from its own state) is good enough. */
  readonly stale: boolean;
}

/**
 * A store under load. Operations throw on failure; {@linkcode LoadTarget.errorKind} names
 * the failure for the report, so each store keeps its own error vocabulary.
 */
export interface LoadTarget {
  /** The store's name in the report: `koi`, `etcd-grpc`, `etcd-http`. */
  readonly name: string;
  /** What the report says about the deployment (admin URL, routing epoch, …). */
  readonly details: Readonly<Record<string, string | number>>;
  /** The store's partitions (koi: its clusters; a store with one group: one name). */
  readonly clusters: readonly string[];
  /** The partition that serves `key`, one of {@linkcode LoadTarget.clusters}. */
  clusterOf(key: string): string;
  /** Writes `value` under `key`, unconditionally. */
  put(key: string, value: Uint8Array): Promise<void>;
  /** Reads `key`; true when it exists. */
  get(key: string, options: ReadOptions): Promise<boolean>;
  /** A short stable name of what `error` (thrown by put or get) is: `timeout`, `unavailable`, … */
  errorKind(error: unknown): string;
  /** Releases connections; operations in flight fail. */
  close(): Promise<void>;
}

/** What {@linkcode KoiTarget.connect} needs. */
export interface KoiTargetOptions {
  /** Each operation's budget, retries included (the client's `timeoutMs`); also how long to wait for the routing table. */
  readonly timeoutMs?: number;
}

/**
 * koi through one {@linkcode KoiClient}: every operation of every concurrent caller shares
 * its routing table, leader cache and connection pool, as an application's would, so the
 * run measures CARP routing and leader caching too. Error kinds are the client's
 * `KoiError` codes (`timeout`, `unavailable`, `precondition_failed`, …); anything else is
 * `other`.
 */
export class KoiTarget implements LoadTarget {
  readonly name = "koi";
  readonly #client: KoiClient;

  /** Wraps a connected client; {@linkcode KoiTarget.close} closes it. */
  constructor(client: KoiClient) {
    this.#client = client;
  }

  /** Connects to the deployment whose admin is `admin`; throws the client's error when it cannot. */
  static async connect(admin: string, options: KoiTargetOptions = {}): Promise<KoiTarget> {
    const timeout = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
    return new KoiTarget(await connect(admin, { clientId: "koi-bench", ...timeout }));
  }

  /** The admin URL, routing epoch and scheme. */
  get details(): Readonly<Record<string, string | number>> {
    const table = this.#client.table;
    return { admin: this.#client.adminUrl.href, epoch: table.epoch, scheme: table.scheme };
  }

  /** The cluster ids of the routing table, in config order. */
  get clusters(): readonly string[] {
    return this.#client.table.clusters.map((c) => c.id);
  }

  /** The cluster CARP routes `key` to. */
  clusterOf(key: string): string {
    return this.#client.where(key).cluster;
  }

  /** An unconditional put. */
  async put(key: string, value: Uint8Array): Promise<void> {
    await this.#client.put(key, value);
  }

  /** A linearizable get, or `consistency: "stale"`. */
  async get(key: string, options: ReadOptions): Promise<boolean> {
    const hit = await this.#client.get(key, options.stale ? { consistency: "stale" } : {});
    return hit !== null;
  }

  /** The KoiError code, or `other`. */
  errorKind(error: unknown): string {
    return error instanceof KoiError ? error.code : "other";
  }

  /** Closes the client. */
  close(): Promise<void> {
    this.#client.close();
    return Promise.resolve();
  }
}

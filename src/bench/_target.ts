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
  /**
   * Writes `value` under `key` and a partner key in one atomic write: the partner of the
   * same cluster (`one`) or of another (`cross`). Absent: the store has no transactions.
   */
  transact?(key: string, partner: "one" | "cross", value: Uint8Array): Promise<void>;
  /** A short stable name of what `error` (thrown by put or get) is: `timeout`, `unavailable`, … */
  errorKind(error: unknown): string;
  /** Releases connections; operations in flight fail. */
  close(): Promise<void>;
}

/** What {@linkcode KoiTarget.connect} needs. */
export interface KoiTargetOptions {
  /** Each operation's budget, retries included (the client's `timeoutMs`); also how long to wait for the routing table. */
  readonly timeoutMs?: number;
  /**
   * The deployment's KV Connect URL (`http://127.0.0.1:7001/kv`): transactions are sent as
   * `Deno.Kv` atomic operations through it, with `DENO_KV_ACCESS_TOKEN` (docs/kv_connect.md).
   */
  readonly kvConnect?: string;
}

/** A Deno KV key of one string part: its tuple encoding (0x02, UTF-8, 0x00). */
function tupleBytes(part: string): Uint8Array {
  const text = new TextEncoder().encode(part);
  const out = new Uint8Array(text.length + 2);
  out[0] = 0x02;
  out.set(text, 1);
  return out;
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
  readonly #kvConnect: string | undefined;
  #kv: Promise<Deno.Kv> | undefined;

  /** Wraps a connected client; {@linkcode KoiTarget.close} closes it. */
  constructor(client: KoiClient, kvConnect?: string) {
    this.#client = client;
    this.#kvConnect = kvConnect;
  }

  /** Connects to the deployment whose admin is `admin`; throws the client's error when it cannot. */
  static async connect(admin: string, options: KoiTargetOptions = {}): Promise<KoiTarget> {
    const timeout = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
    const client = await connect(admin, { clientId: "koi-bench", ...timeout });
    return new KoiTarget(client, options.kvConnect);
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

  /**
   * `kv.atomic().set([key], value).set([partner], value).commit()` through KV Connect, the
   * partner being the first `<key>.<i>` whose Deno KV key CARP routes to the same cluster as
   * `[key]` (`one`) or to another (`cross`).
   */
  async transact(key: string, partner: "one" | "cross", value: Uint8Array): Promise<void> {
    if (this.#kvConnect === undefined) {
      throw new KoiError("bad_request", "Transactions need the KV Connect URL (--kv-connect)");
    }
    const kv = await (this.#kv ??= Deno.openKv(this.#kvConnect));
    const home = this.#client.where(tupleBytes(key)).cluster;
    let other: string | undefined;
    for (let i = 0; other === undefined && i < 10_000; i++) {
      const cluster = this.#client.where(tupleBytes(`${key}.${i}`)).cluster;
      if ((cluster === home) === (partner === "one")) other = `${key}.${i}`;
    }
    if (other === undefined) throw new KoiError("bad_request", `No ${partner} partner of ${key}`);
    const done = await kv.atomic().set([key], value).set([other], value).commit();
    if (!done.ok) throw new KoiError("conflict", `The atomic write of ${key} was refused`);
  }

  /** The KoiError code, `kv_connect` for a KV Connect failure, or `other`. */
  errorKind(error: unknown): string {
    if (error instanceof KoiError) return error.code;
    return error instanceof Error && /KV Connect/.test(error.message) ? "kv_connect" : "other";
  }

  /** Closes the client (and the KV Connect database). */
  async close(): Promise<void> {
    this.#client.close();
    (await this.#kv?.catch(() => undefined))?.close();
  }
}

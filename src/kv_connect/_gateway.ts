/**
 * The KV Connect backend of a koi deployment: the admin's gateway between Deno's client and
 * the clusters, over the routing client's raw POSTs (its CARP table, retries, leader hints,
 * `421` re-routing and deadlines) to every node's `/v1/kvc/snapshot_read` and
 * `/v1/kvc/atomic_write` (docs/kv_connect.md).
 *
 * - A point read (a range of one key: end = start + 0x00) goes to the key's owner; point
 *   reads of one cluster travel in one request. Any other range goes to every cluster at once
 *   (`limit` entries each), merged in key order.
 * - A write goes to the one cluster that owns its keys (refused, unsent, when they span
 *   clusters), with a request id (at most once across the client's retries) and the largest
 *   versionstamp seen (`x-koi-after-vs`).
 * - Watches poll strong reads of their keys ({@linkcode WatchHub}).
 *
 * @module
 */
import { type KoiClient, KoiHttpError } from "../client/mod.ts";
import {
  type AnswerRoom,
  lockOfError,
  type RawCalls,
  rawCallsOf,
  resolveLock,
  runTransaction,
  snapshotRead,
  sweepDecisions,
  type SweepReport,
  SYSTEM_TXN_CLOCK,
  TxnRejectedError,
  type TxnTimings,
} from "../client/internal.ts";
import { gatewayTransport, splitWrite, stampBytes, TXN_CALL_TIMEOUT_MS } from "./_gateway_txn.ts";
import {
  type AtomicWrite,
  type AtomicWriteOutput,
  AtomicWriteStatus,
  DatapathDecodeError,
  decodeAtomicWriteOutput,
  decodeSnapshotReadOutput,
  encodeSnapshotRead,
  isPointRange,
  type KvEntry,
  type Mutation,
  type ReadRange,
  SnapshotReadStatus,
} from "./_datapath.ts";
import { KvConnectError } from "./_errors.ts";

export { isPointRange } from "./_datapath.ts";
import { kvConnectFailure } from "./_failure.ts";
import { mergeRange } from "./_merge.ts";
import { HighestVersionstamp } from "./_versionstamp.ts";
import { WatchHub, type WatchHubOptions } from "./_watch_hub.ts";
import { isRepeatable, spansClusters, writeTarget } from "./_write_route.ts";
import type { KvConnectBackend, KvWatch } from "./_handler.ts";

/** The node endpoint of reads. */
export const NODE_SNAPSHOT_READ_PATH = "/v1/kvc/snapshot_read";
/** The node endpoint of writes. */
export const NODE_ATOMIC_WRITE_PATH = "/v1/kvc/atomic_write";
/**
 * Ranges one request to a node carries, at most (Deno's own client sends at most 10 per
 * read); more are split over several requests.
 */
export const NODE_RANGES_PER_READ_MAX = 10;
/**
 * The largest answer to a read the gateway takes from a node, in bytes: 1,000 entries (the
 * most one read may ask for) of Deno's largest key and value (2 KiB, 64 KiB), and room. A
 * larger one (values written through koi's own API may reach 1 MiB) is refused with a 400.
 */
export const NODE_READ_ANSWER_BYTES_MAX = 80 * 1024 * 1024;
/** The largest answer to a write the gateway takes from a node, in bytes. */
export const NODE_WRITE_ANSWER_BYTES_MAX = 64 * 1024;
/**
 * One read's or write's time budget through the routing client, retries included, in
 * milliseconds: below the listener's deadline, so the gateway answers (503) before it.
 */
export const GATEWAY_CALL_TIMEOUT_MS = 10_000;

/** How often the janitor sweeps the primaries' decisions not forgotten, in ms. */
export const JANITOR_SWEEP_MS = 5_000;

/** Options of {@linkcode KvConnectGateway}. */
export interface GatewayOptions {
  /**
   * Connects the routing client (to the admin's own table). Called on the first request,
   * and again after it failed; the gateway closes the client.
   */
  readonly connect: (signal: AbortSignal) => Promise<KoiClient>;
  /** Each call's budget through the client, in ms (default {@linkcode GATEWAY_CALL_TIMEOUT_MS}). */
  readonly timeoutMs?: number;
  /** Default {@linkcode NODE_READ_ANSWER_BYTES_MAX}. */
  readonly readAnswerBytesMax?: number;
  /** Default {@linkcode NODE_RANGES_PER_READ_MAX}. */
  readonly rangesPerReadMax?: number;
  /** The watches' polling and bounds. */
  readonly watch?: WatchHubOptions;
  /** The secret of a cluster's nodes, which transaction commands need (none: nodes ask none). */
  readonly secretOf?: (cluster: string) => string | undefined;
}

const PROTOBUF = { "content-type": "application/x-protobuf" };

/** `items` in chunks of at most `size`. */
function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The KV Connect backend over a koi deployment's clusters. */
export class KvConnectGateway implements KvConnectBackend {
  readonly #options: GatewayOptions;
  readonly #closer = new AbortController();
  readonly #hub: WatchHub;
  #client: Promise<KoiClient> | undefined;
  /** The routing table of the last call (the watches group their keys by it). */
  #tableNow: RawCalls["table"] | undefined;
  readonly #txnIds = new TxnIds();
  readonly #txnCounters = {
    attempts: 0,
    committed: 0,
    resolved: 0,
    rolledForward: 0,
    forgotten: 0,
  };
  #janitor: ReturnType<typeof setInterval> | undefined;
  #sweeping = false;
  /** The largest versionstamp of any answer: every write is sent after it. */
  readonly highest: HighestVersionstamp = new HighestVersionstamp();

  /** A gateway that connects its routing client with `options.connect` when first needed. */
  constructor(options: GatewayOptions) {
    this.#options = options;
    this.#hub = new WatchHub((ranges, signal) => this.read(ranges, signal), {
      // One read per cluster and round: a cluster that fails holds up only its keys' watches.
      groupOf: (key) => this.#tableNow?.carp.owner(key) ?? "",
      ...options.watch,
    });
  }

  /** Watches open now. */
  get watches(): number {
    return this.#hub.watches;
  }

  /** The entries of each range, in order; see the module comment. */
  async read(
    ranges: readonly ReadRange[],
    signal: AbortSignal,
    room?: AnswerRoom,
  ): Promise<KvEntry[][]> {
    for (let tries = 1;; tries++) {
      const raw = await this.#raw(signal);
      const table = raw.table;
      const owner = (key: Uint8Array) => table.carp.owner(key);
      const all = table.clusters.map((c) => c.id);
      const placed = ranges.map((range) => ({
        range,
        clusters: isPointRange(range) ? [owner(range.start)] : all,
      }));
      // A read that failed while the client took a newer table (a cluster it asked answered
      // nothing and was dropped: drained and stopped) is planned again by that table.
      const replan = () => tries < 3 && raw.table.epoch > table.epoch && !signal.aborted;
      if (new Set(placed.flatMap((p) => p.clusters)).size <= 1) {
        try {
          return await this.#withLocks(
            raw,
            signal,
            () => this.#readOne(raw, ranges, signal, room),
          );
        } catch (error) {
          if (replan()) continue;
          throw error;
        }
      }
      // Several clusters: one consistent snapshot of them all (docs/transactions.md).
      try {
        const out = await snapshotRead<Mutation, KvEntry>(
          placed,
          (range, parts) => mergeRange(parts, range, owner),
          this.#transport(raw, signal, room),
          SYSTEM_TXN_CLOCK,
          this.#timings,
        );
        for (const list of out) for (const e of list) this.highest.note(e.versionstamp);
        return out;
      } catch (error) {
        if (error instanceof TxnRejectedError && error.status === 421) {
          // A key moved (docs/resharding.md): read by the new table; while keys move, each
          // point finds its owner and the read is one per cluster, not one snapshot.
          if (tries < 2) {
            await this.#refresh(raw, signal);
            continue;
          }
          return await this.#withLocks(
            raw,
            signal,
            () => this.#readOne(raw, ranges, signal, room),
          );
        }
        if (replan()) continue;
        throw this.#txnFailure(error);
      }
    }
  }

  /** A read of each cluster on its own (one cluster's keys, or keys moving). */
  async #readOne(
    raw: RawCalls,
    ranges: readonly ReadRange[],
    signal: AbortSignal,
    room?: AnswerRoom,
  ): Promise<KvEntry[][]> {
    const table = raw.table;
    const owner = (key: Uint8Array) => table.carp.owner(key);
    const max = this.#options.rangesPerReadMax ?? NODE_RANGES_PER_READ_MAX;
    const results: KvEntry[][] = ranges.map(() => []);
    const points = new Map<string, number[]>();
    const scans: number[] = [];
    ranges.forEach((range, i) => {
      if (isPointRange(range)) {
        const cluster = owner(range.start);
        points.set(cluster, [...points.get(cluster) ?? [], i]);
      } else scans.push(i);
    });
    // One failure fails the read: the other requests are stopped.
    const stop = new AbortController();
    const all = AbortSignal.any([signal, stop.signal]);
    const jobs: Promise<void>[] = [];
    const job = (work: Promise<void>) =>
      jobs.push(work.catch((error) => {
        stop.abort();
        throw error;
      }));
    for (const [cluster, indexes] of points) {
      for (const chunk of chunks(indexes, max)) {
        job(
          this.#points(raw, cluster, chunk.map((i) => ranges[i]), all, room).then((out) => {
            chunk.forEach((i, j) => (results[i] = out[j]));
          }),
        );
      }
    }
    // Every cluster's entries of every scan range, merged once all have answered.
    const scanned = scans.map(() =>
      table.clusters.map((c) => ({ cluster: c.id, entries: [] as KvEntry[] }))
    );
    for (const [c, info] of table.clusters.entries()) {
      for (const chunk of chunks(scans.map((i, s) => [i, s] as const), max)) {
        job(
          this.#readChunk(raw, { cluster: info.id }, chunk.map(([i]) => ranges[i]), all, room)
            .then(
              (out) => chunk.forEach(([, s], j) => (scanned[s][c].entries = out[j])),
            ),
        );
      }
    }
    try {
      await Promise.all(jobs);
    } catch (error) {
      throw kvConnectFailure(error);
    }
    scans.forEach((i, s) => (results[i] = mergeRange(scanned[s], ranges[i], owner)));
    return results;
  }

  /** Applies `write` (whose encoding is `body`) on the cluster owning its keys. */
  async write(
    write: AtomicWrite,
    body: Uint8Array,
    signal: AbortSignal,
  ): Promise<AtomicWriteOutput> {
    if (write.enqueues > 0) {
      throw new KvConnectError(
        400,
        "Queues are not supported: enqueue and listenQueue are not part of KV Connect",
      );
    }
    const raw = await this.#raw(signal);
    const table = raw.table;
    const owner = (key: Uint8Array) => table.carp.owner(key);
    if (spansClusters(write, owner)) return await this.#crossWrite(write, signal);
    const target = writeTarget(write, owner, owner(new Uint8Array()));
    return await this.#withLocks(
      raw,
      signal,
      () => this.#writeOne(write, body, raw, target, signal),
    );
  }

  /** A write of one cluster's keys (see {@linkcode write}). */
  async #writeOne(
    write: AtomicWrite,
    body: Uint8Array,
    raw: RawCalls,
    target: ReturnType<typeof writeTarget>,
    signal: AbortSignal,
  ): Promise<AtomicWriteOutput> {
    let answer;
    try {
      answer = await raw.write({
        path: NODE_ATOMIC_WRITE_PATH,
        body,
        ...(target.key === undefined ? { cluster: target.cluster } : { key: target.key }),
        headers: { ...PROTOBUF, "x-koi-after-vs": this.highest.header },
        answerBytesMax: NODE_WRITE_ANSWER_BYTES_MAX,
        what: `atomic_write of cluster ${target.cluster}`,
      }, { signal, timeoutMs: this.#timeoutMs });
    } catch (error) {
      throw kvConnectFailure(error, { repeatable: isRepeatable(write) });
    }
    let out: AtomicWriteOutput;
    try {
      out = decodeAtomicWriteOutput(answer.body);
    } catch (error) {
      if (!(error instanceof DatapathDecodeError)) throw error;
      throw new KvConnectError(
        isRepeatable(write) ? 500 : 409,
        `atomic_write of cluster ${target.cluster}: the node's answer is not an ` +
          `AtomicWriteOutput (${error.message}); the write may or may not have been applied`,
      );
    }
    if (out.status === AtomicWriteStatus.SUCCESS) this.highest.note(out.versionstamp);
    return out;
  }

  /**
   * An atomic write whose keys belong to several clusters: a cross-cluster transaction
   * (docs/transactions.md), tried again with a fresh table after a participant said a key is
   * not its own.
   */
  async #crossWrite(write: AtomicWrite, signal: AbortSignal): Promise<AtomicWriteOutput> {
    for (let tries = 1;; tries++) {
      const raw = await this.#raw(signal);
      const table = raw.table;
      const plan = splitWrite(write, (key) => table.carp.owner(key));
      let run;
      try {
        run = await runTransaction(
          plan,
          () => this.#txnIds.next(),
          this.#transport(raw, signal),
          SYSTEM_TXN_CLOCK,
          this.#timings,
        );
      } catch (error) {
        throw this.#txnFailure(error, write);
      }
      this.#txnCounters.attempts += run.attempts;
      this.#txnCounters.resolved += run.resolved;
      const r = run.result;
      switch (r.kind) {
        case "committed":
          this.#txnCounters.committed++;
          this.highest.note(stampBytes(r.vs));
          return {
            status: AtomicWriteStatus.SUCCESS,
            versionstamp: stampBytes(r.vs),
            failedChecks: [],
          };
        case "check_failed":
          return {
            status: AtomicWriteStatus.CHECK_FAILURE,
            versionstamp: new Uint8Array(0),
            failedChecks: [r.check],
          };
        case "invalid":
          throw new KvConnectError(
            400,
            `${r.mutation >= 0 ? `Mutation ${r.mutation}: ` : ""}${r.message} (cluster ` +
              `${r.cluster}; nothing was written)`,
          );
        case "refused":
          if (r.refusal.code === "wrong_shard" && tries < 3) {
            await this.#refresh(raw, signal); // the table changed: split by the new one
            continue;
          }
          throw new KvConnectError(
            r.refusal.code === "storage_full" ? 400 : 503,
            r.refusal.code === "storage_full"
              ? `Cluster ${r.cluster} is full (limit ${r.refusal.bytesMax} bytes): nothing ` +
                "was written; retrying does not help until space is freed"
              : `Cluster ${r.cluster} no longer owns a key of the write: nothing was written`,
          );
        case "locked":
        case "retry": {
          const why = r.kind === "retry" && r.reason === "busy"
            ? `a cluster had too many transactions in flight`
            : r.kind === "retry" && r.reason === "expired"
            ? "its attempts did not finish in their time (a cluster slow or unreachable)"
            : "it kept conflicting with other transactions";
          throw new KvConnectError(
            503,
            `The atomic operation did not commit in ${this.#timings.totalMs} ms ` +
              `(${run.attempts} attempts): ${why}; nothing was written`,
          );
        }
        case "unknown":
          throw new KvConnectError(
            isRepeatable(write) ? 503 : 409,
            `The atomic operation's decision could not be learned from cluster ` +
              `${plan.primary}: it may or may not have been applied; read its keys to find out`,
          );
      }
    }
  }

  /**
   * Runs `op`; after `409 locked` (a transaction in flight held a key for longer than the
   * node waits), resolves the lock once its deadline passed, and runs it again, within the
   * call's budget.
   */
  async #withLocks<T>(raw: RawCalls, signal: AbortSignal, op: () => Promise<T>): Promise<T> {
    const endAt = Date.now() + this.#timeoutMs;
    for (let n = 1;; n++) {
      try {
        return await op();
      } catch (error) {
        const cause = error instanceof KvConnectError ? error.cause : error;
        const lock = lockOfError(cause);
        if (lock === undefined || Date.now() >= endAt) throw error;
        const at = raw.table.carp.owner(lock.key);
        if (lock.deadline < Date.now()) {
          this.#txnCounters.resolved++;
          await resolveLock(lock, at, this.#transport(raw, signal), SYSTEM_TXN_CLOCK, endAt);
        } else {
          await new Promise((r) => setTimeout(r, Math.min(200, 10 * n)));
        }
      }
    }
  }

  /** Fetches the routing table again (after a participant said a key is not its own). */
  async #refresh(raw: RawCalls, signal: AbortSignal): Promise<void> {
    try {
      await raw.refresh({ signal, timeoutMs: this.#timeoutMs });
    } catch (error) {
      throw kvConnectFailure(error);
    }
  }

  /** What a failure of a transaction's or snapshot read's driver becomes. */
  #txnFailure(error: unknown, write?: AtomicWrite): unknown {
    if (error instanceof TxnRejectedError) {
      return new KvConnectError(error.status === 421 ? 503 : error.status, error.message);
    }
    return kvConnectFailure(error, write === undefined ? {} : { repeatable: isRepeatable(write) });
  }

  /** Transactions run: attempts, commits, locks resolved, the janitor's work. */
  get transactions(): Readonly<
    {
      attempts: number;
      committed: number;
      resolved: number;
      rolledForward: number;
      forgotten: number;
    }
  > {
    return this.#txnCounters;
  }

  /** A watch of `keys` (see {@linkcode WatchHub.open}). */
  watch(keys: readonly Uint8Array[]): KvWatch {
    return this.#hub.open(keys);
  }

  /**
   * One sweep of the janitor (docs/transactions.md, "Resolution"): decisions whose
   * coordinator is gone are applied where their intents are still held, then forgotten.
   */
  async sweep(signal: AbortSignal = this.#closer.signal): Promise<SweepReport> {
    const raw = await this.#raw(signal);
    const report = await sweepDecisions(
      raw.table.clusters.map((c) => c.id),
      this.#transport(raw, signal),
    );
    this.#txnCounters.rolledForward += report.rolledForward;
    this.#txnCounters.forgotten += report.forgotten;
    this.#txnCounters.resolved += report.resolved;
    return report;
  }

  /** Sweeps every `everyMs` until the gateway closes (the admin starts it). */
  startJanitor(everyMs: number = JANITOR_SWEEP_MS): void {
    if (this.#janitor !== undefined) return;
    const timer = setInterval(() => {
      if (this.#sweeping) return;
      this.#sweeping = true;
      this.sweep().catch(() => {}).finally(() => (this.#sweeping = false));
    }, everyMs);
    Deno.unrefTimer(timer);
    this.#janitor = timer;
  }

  /** Ends every watch and closes the routing client; later calls fail (503). */
  async close(): Promise<void> {
    if (this.#janitor !== undefined) clearInterval(this.#janitor);
    this.#closer.abort();
    this.#hub.close();
    const client = this.#client;
    this.#client = undefined;
    (await client?.catch(() => undefined))?.close();
  }

  get #timeoutMs(): number {
    return this.#options.timeoutMs ?? GATEWAY_CALL_TIMEOUT_MS;
  }

  /** The transport of transactions and snapshot reads, each call a share of the budget. */
  #transport(raw: RawCalls, signal: AbortSignal, room?: AnswerRoom) {
    return gatewayTransport(raw, signal, {
      ...(room === undefined ? {} : { answerRoom: room }),
      ...(this.#options.readAnswerBytesMax === undefined
        ? {}
        : { readAnswerBytesMax: this.#options.readAnswerBytesMax }),
      callTimeoutMs: Math.min(TXN_CALL_TIMEOUT_MS, this.#timeoutMs / 4),
      ...(this.#options.secretOf === undefined ? {} : { secretOf: this.#options.secretOf }),
    });
  }

  /** Transactions and snapshot reads end within the call's budget. */
  get #timings(): TxnTimings {
    const total = this.#timeoutMs;
    return { attemptMs: total * 0.4, decideGraceMs: total * 0.4, totalMs: total * 0.8 };
  }

  /** The routing client's raw calls, connecting it first if need be. */
  async #raw(signal: AbortSignal): Promise<RawCalls> {
    if (this.#closer.signal.aborted) {
      throw new KvConnectError(503, "The KV Connect gateway is closed");
    }
    const connecting = this.#client ??= this.#options.connect(this.#closer.signal);
    try {
      const client = await untilAborted(connecting, signal);
      const raw = rawCallsOf(client);
      this.#tableNow = raw.table;
      return raw;
    } catch (error) {
      // A failed connect is tried again by the next request; an aborted wait is not a failure.
      if (this.#client === connecting && !signal.aborted) this.#client = undefined;
      throw kvConnectFailure(error);
    }
  }

  /** Point reads of one cluster: one request, or one per key after a `421` (keys moving). */
  async #points(
    raw: RawCalls,
    cluster: string,
    ranges: readonly ReadRange[],
    signal: AbortSignal,
    room?: AnswerRoom,
  ): Promise<KvEntry[][]> {
    if (ranges.length === 1) {
      return await this.#readChunk(raw, { key: ranges[0].start, cluster }, ranges, signal, room);
    }
    try {
      return await this.#readChunk(raw, { cluster }, ranges, signal, room);
    } catch (error) {
      const cause = error instanceof KvConnectError ? error.cause : undefined;
      if (!(cause instanceof KoiHttpError && cause.status === 421)) throw error;
      return (await Promise.all(
        ranges.map((r) => this.#readChunk(raw, { key: r.start, cluster }, [r], signal, room)),
      )).flat(1);
    }
  }

  /** One `snapshot_read` of `ranges` on the cluster of `to`; its ranges' entries. */
  async #readChunk(
    raw: RawCalls,
    to: { readonly key?: Uint8Array; readonly cluster: string },
    ranges: readonly ReadRange[],
    signal: AbortSignal,
    room?: AnswerRoom,
  ): Promise<KvEntry[][]> {
    // With a key, the request goes to its owner and follows a 421; `cluster` is who that
    // is by the table, for messages.
    const where = `cluster ${to.cluster}`;
    let answer;
    try {
      answer = await raw.read({
        path: NODE_SNAPSHOT_READ_PATH,
        body: encodeSnapshotRead({ ranges: [...ranges] }),
        ...(to.key === undefined ? { cluster: to.cluster } : { key: to.key }),
        headers: PROTOBUF,
        answerBytesMax: this.#options.readAnswerBytesMax ?? NODE_READ_ANSWER_BYTES_MAX,
        ...(room === undefined ? {} : { answerRoom: room }),
        what: `snapshot_read of ${where}`,
      }, { signal, timeoutMs: this.#timeoutMs });
    } catch (error) {
      throw kvConnectFailure(error);
    }
    let out;
    try {
      out = decodeSnapshotReadOutput(answer.body);
    } catch (error) {
      if (!(error instanceof DatapathDecodeError)) throw error;
      throw new KvConnectError(500, `snapshot_read of ${where}: ${error.message}`);
    }
    if (out.status !== SnapshotReadStatus.SUCCESS || out.ranges.length !== ranges.length) {
      throw new KvConnectError(
        500,
        `snapshot_read of ${where}: the node answered status ${out.status} with ` +
          `${out.ranges.length} ranges for ${ranges.length}`,
      );
    }
    for (const range of out.ranges) for (const e of range.values) this.highest.note(e.versionstamp);
    return out.ranges.map((r) => r.values);
  }
}

/** `promise`, or a rejection as soon as `signal` aborts (the promise itself goes on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new KvConnectError(503, "The request was aborted"));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new KvConnectError(503, "The request was aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Transaction ids of one gateway: a random prefix and a counter. */
class TxnIds {
  readonly #prefix = `g${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  #n = 0;

  next(): string {
    return `${this.#prefix}.${++this.#n}`;
  }
}

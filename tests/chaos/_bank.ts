/**
 * The chaos test's transactional workload: a bank whose accounts are spread over the clusters.
 * Workers move money (a snapshot read of two accounts, then a commit that checks both
 * versionstamps and sets both balances: one atomic write when they share a cluster, a
 * cross-cluster transaction otherwise) and audit it (a snapshot read of every account, whose
 * total must never change), through the same drivers and node endpoints as the KV Connect
 * gateway. Every operation is recorded for the strict-serializability check of
 * tests/sim/txn_checker.ts.
 *
 * @module
 */
import { connect, type KoiClient, KoiError } from "../../mod.ts";
import {
  type RawCalls,
  rawCallsOf,
  runTransaction,
  snapshotRead,
  SYSTEM_TXN_CLOCK,
  TxnRejectedError,
} from "../../src/client/internal.ts";
import {
  AtomicWriteStatus,
  decodeAtomicWriteOutput,
  encodeAtomicWrite,
  type KvEntry,
  type Mutation,
  MutationType,
} from "../../src/kv_connect/_datapath.ts";
import { gatewayTransport, splitWrite } from "../../src/kv_connect/_gateway_txn.ts";
import { mergeRange } from "../../src/kv_connect/_merge.ts";
import { versionstampValue } from "../../src/kv_connect/_versionstamp.ts";
import type { Prng } from "../sim/prng.ts";
import type { ReadOp, WriteOp } from "../sim/txn_checker.ts";

/** Every account's opening balance. */
export const OPENING = 100;
/** Transactions and snapshot reads end within this (each call a part of it). */
const TIMINGS = { attemptMs: 2_000, decideGraceMs: 2_000, totalMs: 5_000 };

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The shared record of one run. */
export interface BankHistory {
  readonly writes: WriteOp[];
  readonly reads: ReadOp[];
  /** Counts by outcome. */
  readonly counts: Record<string, number>;
}

/** A new, empty history. */
export function bankHistory(): BankHistory {
  return { writes: [], reads: [], counts: {} };
}

function count(h: BankHistory, what: string): void {
  h.counts[what] = (h.counts[what] ?? 0) + 1;
}

/** The account keys: `bank/<i>`, `perCluster` of each cluster by the table. */
export function bankKeys(
  client: KoiClient,
  clusters: readonly string[],
  perCluster: number,
): Uint8Array[] {
  const by = new Map(clusters.map((c) => [c, [] as Uint8Array[]]));
  for (let i = 0; [...by.values()].some((k) => k.length < perCluster); i++) {
    if (i > 100_000) throw new Error("Cannot find account keys of every cluster");
    const key = enc.encode(`bank/${i}`);
    const mine = by.get(client.where(key).cluster);
    if (mine !== undefined && mine.length < perCluster) mine.push(key);
  }
  return [...by.values()].flat();
}

interface Account {
  readonly key: Uint8Array;
  readonly n: number;
  readonly by: string;
  /** Its versionstamp as 10 bytes and as a number. */
  readonly stamp: Uint8Array;
  readonly vs: number;
}

function accountOf(e: KvEntry): Account {
  const { n, by } = JSON.parse(dec.decode(e.value)) as { n: number; by: string };
  return {
    key: e.key,
    n,
    by,
    stamp: e.versionstamp,
    vs: Number(versionstampValue(e.versionstamp)),
  };
}

function setMutation(key: Uint8Array, n: number, by: string): Mutation {
  return {
    key,
    value: { data: enc.encode(JSON.stringify({ n, by })), encoding: 3 },
    mutationType: MutationType.SET,
    expireAtMs: 0n,
    sumMin: new Uint8Array(),
    sumMax: new Uint8Array(),
    sumClamp: false,
  };
}

/** One worker's (or the auditor's) view of the bank. */
export class BankClient {
  readonly #client: KoiClient;
  readonly #raw: RawCalls;
  readonly #keys: readonly Uint8Array[];
  readonly #h: BankHistory;
  readonly #name: string;
  readonly #secret: string;
  #seq = 0;

  private constructor(
    client: KoiClient,
    keys: readonly Uint8Array[],
    h: BankHistory,
    name: string,
    secret: string,
  ) {
    this.#client = client;
    this.#raw = rawCallsOf(client);
    this.#keys = keys;
    this.#h = h;
    this.#name = name;
    this.#secret = secret;
  }

  /** A client of the deployment at `adminUrl`. */
  static async open(
    adminUrl: string,
    keys: readonly Uint8Array[],
    h: BankHistory,
    name: string,
    secret: string,
  ): Promise<BankClient> {
    const client = await connect(adminUrl, { timeoutMs: 2_000, attemptTimeoutMs: 1_000 });
    return new BankClient(client, keys, h, name, secret);
  }

  #transport(signal: AbortSignal) {
    return gatewayTransport(this.#raw, signal, {
      callTimeoutMs: 1_000,
      secretOf: () => this.#secret,
    });
  }

  /** Closes the connection. */
  close(): void {
    this.#client.close();
  }

  /** Opens every account at {@linkcode OPENING} (each key checked absent). */
  async open(): Promise<void> {
    for (const key of this.#keys) {
      const id = `${this.#name}.init.${dec.decode(key)}`;
      const op = this.#write(id, [{ key, vs: 0 }], [key]);
      const out = await this.#plain(key, {
        checks: [{ key, versionstamp: new Uint8Array() }],
        mutations: [setMutation(key, OPENING, id)],
        enqueues: 0,
      });
      if (out === undefined || out.status !== AtomicWriteStatus.SUCCESS) {
        throw new Error(`Cannot open account ${dec.decode(key)}: ${JSON.stringify(out)}`);
      }
      this.#done(op, "committed", Number(versionstampValue(out.versionstamp)));
    }
  }

  /** A snapshot read of every account; throws when the total is not the opening one. */
  async audit(signal: AbortSignal): Promise<Account[] | undefined> {
    const range = {
      start: enc.encode("bank/"),
      end: enc.encode("bank0"),
      limit: 1000,
      reverse: false,
    };
    const clusters = this.#raw.table.clusters.map((c) => c.id);
    const got = await this.#snapshot([{ range, clusters }], signal);
    if (got === undefined) return undefined;
    const all = got[0].map(accountOf);
    const total = all.reduce((s, a) => s + a.n, 0);
    if (all.length !== this.#keys.length || total !== OPENING * this.#keys.length) {
      throw new Error(
        `An audit saw ${all.length} accounts totalling ${total}: ` +
          all.map((a) => `${dec.decode(a.key)}=${a.n}@${a.vs}(${a.by})`).join(" "),
      );
    }
    count(this.#h, "audit");
    return all;
  }

  /** One transfer between two random accounts. */
  async transfer(prng: Prng, signal: AbortSignal): Promise<void> {
    const a = prng.pick(this.#keys);
    let b = prng.pick(this.#keys);
    if (b === a) b = this.#keys[(this.#keys.indexOf(a) + 1) % this.#keys.length];
    const owner = (k: Uint8Array) => this.#raw.table.carp.owner(k);
    const point = (k: Uint8Array) => ({
      range: { start: k, end: Uint8Array.of(...k, 0), limit: 1, reverse: false },
      clusters: [owner(k)],
    });
    const got = await this.#snapshot([point(a), point(b)], signal);
    if (got === undefined || got[0].length !== 1 || got[1].length !== 1) return;
    const [from, to] = [accountOf(got[0][0]), accountOf(got[1][0])];
    const amount = prng.int(1, 30);
    if (from.n < amount) return;
    const id = `${this.#name}.${++this.#seq}`;
    const checks = [{ key: from.key, vs: from.vs }, { key: to.key, vs: to.vs }];
    const write = {
      checks: [{ key: from.key, versionstamp: from.stamp }, {
        key: to.key,
        versionstamp: to.stamp,
      }],
      mutations: [
        setMutation(from.key, from.n - amount, id),
        setMutation(to.key, to.n + amount, id),
      ],
      enqueues: 0,
    };
    const op = this.#write(id, checks, [from.key, to.key]);
    if (owner(from.key) === owner(to.key)) {
      count(this.#h, "plain");
      const out = await this.#plain(from.key, write);
      if (out === undefined) return this.#done(op, "unknown", 0);
      if (out.status === AtomicWriteStatus.SUCCESS) {
        return this.#done(op, "committed", Number(versionstampValue(out.versionstamp)));
      }
      return this.#done(op, "failed", 0);
    }
    count(this.#h, "cross");
    let run;
    try {
      run = await runTransaction(
        splitWrite(write, owner),
        () => `${id}.${++this.#seq}`,
        this.#transport(signal),
        SYSTEM_TXN_CLOCK,
        TIMINGS,
      );
    } catch (error) {
      count(this.#h, `cross-error`);
      return this.#done(op, "unknown", 0, error);
    }
    const r = run.result;
    count(this.#h, `cross-${r.kind}`);
    if (r.kind === "committed") return this.#done(op, "committed", r.vs);
    if (r.kind === "unknown") return this.#done(op, "unknown", 0);
    if (r.kind === "refused" && r.refusal.code === "wrong_shard") await this.#refresh();
    if (r.kind === "invalid") throw new Error(`A valid transfer was refused: ${r.message}`);
    this.#done(op, "failed", 0);
  }

  async #snapshot(
    placed: {
      range: { start: Uint8Array; end: Uint8Array; limit: number; reverse: boolean };
      clusters: string[];
    }[],
    signal: AbortSignal,
  ): Promise<KvEntry[][] | undefined> {
    const start = performance.now();
    let got: KvEntry[][];
    try {
      got = await snapshotRead<Mutation, KvEntry>(
        placed,
        (range, parts) => mergeRange(parts, range, (k) => this.#raw.table.carp.owner(k)),
        this.#transport(signal),
        SYSTEM_TXN_CLOCK,
        TIMINGS,
      );
    } catch (error) {
      if (error instanceof TxnRejectedError && error.status === 421) await this.#refresh();
      else if (!(error instanceof KoiError)) throw error;
      count(this.#h, "read-failed");
      return undefined;
    }
    this.#h.reads.push({
      start,
      end: performance.now(),
      seen: got.flat().map((e) => {
        const a = accountOf(e);
        return { key: a.key, vs: a.vs, by: a.by };
      }),
    });
    return got;
  }

  /** A plain atomic write of one cluster; undefined when its outcome is unknown. */
  async #plain(key: Uint8Array, write: Parameters<typeof encodeAtomicWrite>[0]) {
    try {
      const answer = await this.#raw.write({
        path: "/v1/kvc/atomic_write",
        body: encodeAtomicWrite(write),
        key,
        headers: { "content-type": "application/x-protobuf" },
        answerBytesMax: 64 * 1024,
        what: "a transfer",
      });
      return decodeAtomicWriteOutput(answer.body);
    } catch (error) {
      if (!(error instanceof KoiError)) throw error;
      if (error.outcomeUnknown) return undefined;
      // Refused (a lock that stayed, a moved key): nothing applied.
      return { status: 0, versionstamp: new Uint8Array(), failedChecks: [] };
    }
  }

  async #refresh(): Promise<void> {
    await this.#raw.refresh().catch(() => {});
  }

  #write(id: string, checks: WriteOp["checks"], writes: Uint8Array[]): WriteOp {
    const op: WriteOp = {
      id,
      start: performance.now(),
      end: Infinity,
      status: "unknown",
      vs: 0,
      checks,
      writes,
    };
    this.#h.writes.push(op);
    return op;
  }

  #done(op: WriteOp, status: WriteOp["status"], vs: number, error?: unknown): void {
    op.status = status;
    op.vs = vs;
    if (status !== "unknown") op.end = performance.now();
    count(this.#h, `write-${status}`);
    void error;
  }
}

/** Runs `workers` bank workers until `signal` aborts. */
export async function runBankWorkload(
  adminUrl: string,
  keys: readonly Uint8Array[],
  h: BankHistory,
  options: { workers: number; prng: Prng; signal: AbortSignal; secret: string },
): Promise<void> {
  const clients = await Promise.all(
    Array.from(
      { length: options.workers },
      (_, w) => BankClient.open(adminUrl, keys, h, `w${w}`, options.secret),
    ),
  );
  try {
    await Promise.all(clients.map(async (c, w) => {
      const prng = options.prng.fork();
      while (!options.signal.aborted) {
        if (prng.chance(0.2)) await c.audit(options.signal);
        else await c.transfer(prng, options.signal);
        void w;
      }
    }));
  } finally {
    for (const c of clients) c.close();
  }
}

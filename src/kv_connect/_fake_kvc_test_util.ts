/**
 * Test support: the node side of KV Connect faked in memory on the client's fake deployment
 * (`src/client/_fake_test_util.ts`): every fake node serves `POST /v1/kvc/snapshot_read` and
 * `POST /v1/kvc/atomic_write` as the contract describes them (docs/kv_connect.md, "Node
 * endpoints"): per-cluster ownership with `421 wrong_shard`, checks, set/delete/sum/min/max,
 * versionstamped keys, versionstamps after `x-koi-after-vs`, and `x-koi-request-id`
 * deduplication. Until the real node side lands, the gateway is tested against this.
 *
 * @module
 */
import {
  error as koiError,
  FakeDeployment,
  type FakeNode,
  type FakeSpec,
} from "../client/_fake_test_util.ts";
import { compareBytes } from "../client/internal.ts";
import {
  AtomicWriteStatus,
  DatapathDecodeError,
  decodeAtomicWrite,
  decodeSnapshotRead,
  encodeAtomicWriteOutput,
  encodeSnapshotReadOutput,
  type KvEntry,
  MutationType,
  SnapshotReadStatus,
  ValueEncoding,
} from "./_datapath.ts";
import { versionstampHex, versionstampValue } from "./_versionstamp.ts";
import { decode, encode } from "@msgpack/msgpack";
import {
  keyString,
  type TxnCheck,
  type TxnCommand,
  type TxnLockInfo,
  TxnParticipant,
  type TxnRefusal,
} from "../txn/mod.ts";
import type { Mutation } from "./_datapath.ts";

/** One fake cluster's KV Connect state. */
export class FakeKvcCluster {
  readonly entries = new Map<string, KvEntry>();
  /** The last versionstamp's `vs`. */
  vs = 0n;
  /** Request ids answered, with their answer (`<client>` to seq and bytes). */
  readonly answered = new Map<string, { seq: number; body: Uint8Array }>();
  /** Writes applied (not deduplicated), transaction commits included. */
  applied = 0;
  /** Cross-cluster transactions' locks and records (docs/transactions.md). */
  readonly txn: TxnParticipant<Mutation>;

  /** The state of cluster `id`. */
  constructor(id: string) {
    this.txn = new TxnParticipant<Mutation>(id, {
      writeKey: (m) => m.key,
      bytes: (m) => m.key.length + (m.value?.data.length ?? 0),
    }, () => Date.now());
  }

  /** The entries in key order. */
  sorted(): KvEntry[] {
    return [...this.entries.values()].sort((a, b) => compareBytes(a.key, b.key));
  }
}

/** A request a fake node got on `/v1/kvc/`. */
export interface KvcRequest {
  readonly node: string;
  readonly cluster: string;
  readonly path: string;
  readonly headers: Headers;
}

/** A fake deployment whose nodes serve the KV Connect endpoints. */
export class FakeKvcDeployment {
  readonly deployment: FakeDeployment;
  readonly clusters = new Map<string, FakeKvcCluster>();
  /** Every `/v1/kvc/` request, in order. */
  readonly requests: KvcRequest[] = [];
  /** Answers a `/v1/kvc/` request instead of the fake when it returns a Response. */
  hook: ((req: KvcRequest) => Response | undefined | Promise<Response | undefined>) | undefined;

  private constructor(deployment: FakeDeployment) {
    this.deployment = deployment;
    for (const id of deployment.clusters.keys()) this.clusters.set(id, new FakeKvcCluster(id));
    deployment.nodeHook = (request, node) => this.#serve(request, node);
  }

  /** Starts the fake admin and nodes. */
  static start(spec: FakeSpec): FakeKvcDeployment {
    return new FakeKvcDeployment(FakeDeployment.start(spec));
  }

  /** The fake cluster `id`'s state. */
  cluster(id: string): FakeKvcCluster {
    return this.clusters.get(id)!;
  }

  /** The cluster that owns `key`. */
  owner(key: Uint8Array): string {
    return this.deployment.nodeTable.owner(key);
  }

  /** Sets `key` on its owner directly (test setup); returns the entry. */
  put(key: Uint8Array, value: Uint8Array, encoding: number = ValueEncoding.BYTES): KvEntry {
    const state = this.cluster(this.owner(key));
    const entry = { key, value, encoding, versionstamp: stamp(++state.vs) };
    state.entries.set(versionstampHex(key), entry);
    return entry;
  }

  /** Stops every server. */
  async close(): Promise<void> {
    await this.deployment.close();
  }

  async #serve(request: Request, node: FakeNode): Promise<Response | undefined> {
    const path = new URL(request.url).pathname;
    if (!path.startsWith("/v1/kvc/") && !path.startsWith("/v1/txn/")) return undefined;
    const seen = { node: node.id, cluster: node.cluster.id, path, headers: request.headers };
    this.requests.push(seen);
    const body = new Uint8Array(await request.arrayBuffer());
    const hooked = await this.hook?.(seen);
    if (hooked !== undefined) return hooked;
    if (request.method !== "POST") return koiError(405, "method_not_allowed", "POST only");
    try {
      if (path === "/v1/kvc/snapshot_read") return this.#read(node, body);
      if (path === "/v1/kvc/atomic_write") return this.#write(node, body, request.headers);
      if (path === "/v1/kvc/prepare") return this.#prepare(node, body, request.headers);
      if (path === "/v1/txn/command") return this.#command(node, body);
      if (path === "/v1/txn/read") return this.#txnRead(node, body);
      if (path === "/v1/txn/check") return this.#txnCheck(node, body);
      if (path === "/v1/txn/records") {
        const [limit] = decode(body) as [number];
        const t = this.cluster(node.cluster.id).txn;
        return msgpackAnswer({
          decisions: t.unforgotten(Date.now(), limit).map((r) => [r.txn, r.vs, r.secondaries]),
          stale: t.staleIntents(Date.now(), limit).map((r) => [r.txn, r.primary, r.deadline]),
        });
      }
      if (path === "/v1/txn/held") {
        const txns = decode(body) as string[];
        const t = this.cluster(node.cluster.id).txn;
        return msgpackAnswer(txns.map((txn) => t.intent(txn) !== undefined));
      }
    } catch (e) {
      if (e instanceof DatapathDecodeError) return koiError(400, "bad_request", e.message);
      throw e;
    }
    return koiError(404, "not_found", "No such route");
  }

  #wrongShard(key: Uint8Array): Response {
    const table = this.deployment.nodeTable;
    const owner = table.owner(key);
    return koiError(421, "wrong_shard", `Wrong shard: it belongs to cluster ${owner}`, {
      "x-koi-epoch": String(table.epoch),
      "x-koi-owner": owner,
    });
  }

  #read(node: FakeNode, body: Uint8Array): Response {
    const read = decodeSnapshotRead(body);
    const id = node.cluster.id;
    const state = this.cluster(id);
    const ranges: { values: KvEntry[] }[] = [];
    for (const r of read.ranges) {
      if (r.limit < 1 || r.limit > 1000) {
        return koiError(400, "bad_request", `Invalid limit ${r.limit}: 1 to 1000`);
      }
      const point = r.end.length === r.start.length + 1 && r.end[r.start.length] === 0 &&
        compareBytes(r.start, r.end.subarray(0, r.start.length)) === 0;
      if (point && this.owner(r.start) !== id) return this.#wrongShard(r.start);
      const hit = state.sorted().filter((e) =>
        compareBytes(e.key, r.start) >= 0 && compareBytes(e.key, r.end) < 0
      );
      if (r.reverse) hit.reverse();
      ranges.push({ values: hit.slice(0, r.limit) });
    }
    return new Response(
      encodeSnapshotReadOutput({
        ranges,
        readDisabled: false,
        readIsStronglyConsistent: true,
        status: SnapshotReadStatus.SUCCESS,
      }) as BodyInit,
      { headers: { "content-type": "application/x-protobuf" } },
    );
  }

  #write(node: FakeNode, body: Uint8Array, headers: Headers): Response {
    const write = decodeAtomicWrite(body);
    const id = node.cluster.id;
    const state = this.cluster(id);
    if (write.enqueues > 0) return koiError(400, "bad_request", "Queues are not supported");
    const requestId = headers.get("x-koi-request-id");
    const [client, seqText] = requestId === null ? [] : requestId.split(":");
    const known = client === undefined ? undefined : state.answered.get(client);
    if (known !== undefined && known.seq === Number(seqText)) {
      return new Response(known.body as BodyInit, {
        headers: { "content-type": "application/x-protobuf" },
      });
    }
    for (
      const k of [
        ...write.checks.map((c) => c.key),
        ...write.mutations.filter((m) =>
          m.mutationType !== MutationType.SET_SUFFIX_VERSIONSTAMPED_KEY
        )
          .map((m) => m.key),
      ]
    ) {
      if (this.owner(k) !== id) return this.#wrongShard(k);
    }
    const lock = state.txn.blocker(
      write.mutations.map((m) => m.key),
      write.checks.map((c) => c.key),
    );
    if (lock !== undefined) return lockedError(lock);
    const failed = write.checks.flatMap((c, i) => {
      const current = state.entries.get(versionstampHex(c.key));
      const have = current === undefined ? "" : versionstampHex(current.versionstamp);
      return have === versionstampHex(c.versionstamp) ? [] : [i];
    });
    let out: Uint8Array;
    if (failed.length > 0) {
      out = encodeAtomicWriteOutput({
        status: AtomicWriteStatus.CHECK_FAILURE,
        versionstamp: new Uint8Array(),
        failedChecks: failed,
      });
    } else {
      const after = BigInt(headers.get("x-koi-after-vs") ?? "0");
      const vs = (state.vs > after ? state.vs : after) + 1n;
      const versionstamp = stamp(vs);
      const next = applyMutations(state, write.mutations, versionstamp);
      if (next instanceof Response) return next;
      state.entries.clear();
      for (const [k, e] of next) state.entries.set(k, e);
      state.vs = vs;
      state.applied++;
      out = encodeAtomicWriteOutput({
        status: AtomicWriteStatus.SUCCESS,
        versionstamp,
        failedChecks: [],
      });
    }
    if (client !== undefined) state.answered.set(client, { seq: Number(seqText), body: out });
    return new Response(out as BodyInit, { headers: { "content-type": "application/x-protobuf" } });
  }

  /** The store the cluster's participant guards. */
  #store(state: FakeKvcCluster) {
    return {
      evaluate: (checks: readonly TxnCheck[], mutations: readonly Mutation[]) => {
        for (const [i, c] of checks.entries()) {
          if (this.owner(c.key) !== this.#idOf(state)) {
            return { code: "wrong_shard", owner: this.owner(c.key), epoch: 1 } as TxnRefusal;
          }
          const e = state.entries.get(versionstampHex(c.key));
          const vs = e === undefined ? 0 : Number(versionstampValue(e.versionstamp));
          if (vs !== c.vs) return { code: "check_failed", check: i } as TxnRefusal;
        }
        const tried = applyMutations(state, mutations, stamp(state.vs + 1n));
        if (tried instanceof Response) {
          return { code: "invalid", mutation: -1, message: "not a u64" } as TxnRefusal;
        }
        return undefined;
      },
      apply: (mutations: readonly Mutation[], vs: number) => {
        const next = applyMutations(state, mutations, stamp(BigInt(vs)));
        if (next instanceof Response) throw new Error("a prepared mutation failed");
        state.entries.clear();
        for (const [k, e] of next) state.entries.set(k, e);
        if (BigInt(vs) > state.vs) state.vs = BigInt(vs);
        state.applied++;
      },
    };
  }

  #idOf(state: FakeKvcCluster): string {
    for (const [id, s] of this.clusters) if (s === state) return id;
    throw new Error("no such cluster");
  }

  #applyTxn(node: FakeNode, cmd: TxnCommand<Mutation>): Response {
    const state = this.cluster(node.cluster.id);
    const after = cmd.type === "commit" ? BigInt(cmd.after ?? 0) : 0n;
    state.vs = (state.vs > after ? state.vs : after) + 1n;
    const answer = state.txn.apply(cmd, Number(state.vs), this.#store(state));
    const out = "vote" in answer && answer.vote === "no" && answer.reason === "locked"
      ? { ...answer, lock: lockWire(answer.lock) }
      : answer;
    return new Response(encode(out) as BodyInit, {
      headers: { "content-type": "application/msgpack" },
    });
  }

  #prepare(node: FakeNode, body: Uint8Array, headers: Headers): Response {
    const write = decodeAtomicWrite(body);
    return this.#applyTxn(node, {
      type: "prepare",
      txn: headers.get("x-koi-txn")!,
      primary: headers.get("x-koi-txn-primary")!,
      participants: headers.get("x-koi-txn-participants")!.split(","),
      checks: write.checks.map((c) => ({
        key: c.key,
        vs: c.versionstamp.length === 0 ? 0 : Number(versionstampValue(c.versionstamp)),
      })),
      mutations: write.mutations,
      deadline: Number(headers.get("x-koi-txn-deadline")),
    });
  }

  #command(node: FakeNode, body: Uint8Array): Response {
    const v = decode(body) as unknown[];
    const [, kind, txn] = v as [number, number, string];
    const cmd: TxnCommand<Mutation> = kind === 1
      ? (v[4] !== null
        ? { type: "commit", txn, after: v[4] as number }
        : { type: "commit", txn, vs: v[5] as number })
      : kind === 2
      ? { type: "abort", txn, deadline: v[4] as number }
      : { type: "forget", txn };
    return this.#applyTxn(node, cmd);
  }

  #txnRead(node: FakeNode, body: Uint8Array): Response {
    const state = this.cluster(node.cluster.id);
    const ranges = decode(body) as [Uint8Array, Uint8Array, number, boolean][];
    const entries = [];
    for (const [start, end, limit, reverse] of ranges) {
      const lock = state.txn.writeLockIn(start, end);
      if (lock !== undefined) return msgpackAnswer({ lock: lockWire(lock) });
      const point = end.length === start.length + 1 && end[start.length] === 0 &&
        compareBytes(start, end.subarray(0, start.length)) === 0;
      if (point && this.owner(start) !== node.cluster.id) return this.#wrongShard(start);
      const hit = state.sorted().filter((e) =>
        compareBytes(e.key, start) >= 0 && compareBytes(e.key, end) < 0
      );
      if (reverse) hit.reverse();
      entries.push(
        hit.slice(0, limit).map((e) => [
          e.key,
          e.value,
          1,
          Number(versionstampValue(e.versionstamp)),
          e.encoding,
          0,
        ]),
      );
    }
    return msgpackAnswer({ index: state.applied, entries });
  }

  #txnCheck(node: FakeNode, body: Uint8Array): Response {
    const state = this.cluster(node.cluster.id);
    const [spans, since] = decode(body) as [[Uint8Array, Uint8Array][], number];
    for (const [start, end] of spans) {
      const lock = state.txn.writeLockIn(start, end);
      if (lock !== undefined) return msgpackAnswer({ valid: false, lock: lockWire(lock) });
    }
    // Conservative: any write since the first round counts as a change.
    return msgpackAnswer({ valid: state.applied === since });
  }
}

function msgpackAnswer(body: unknown): Response {
  return new Response(encode(body) as BodyInit, {
    headers: { "content-type": "application/msgpack" },
  });
}

function lockWire(l: TxnLockInfo): unknown[] {
  return [l.key, l.txn, l.primary, l.deadline, l.write];
}

/** `409 locked` with the lock in headers, as a node answers. */
function lockedError(lock: TxnLockInfo): Response {
  return koiError(409, "locked", `A key is locked by transaction ${lock.txn}`, {
    "x-koi-lock-txn": lock.txn,
    "x-koi-lock-primary": lock.primary,
    "x-koi-lock-deadline": String(lock.deadline),
    "x-koi-lock-key": btoa(keyString(lock.key)),
    "x-koi-lock-write": String(lock.write),
  });
}

/** The entries after `mutations` at `versionstamp`, or the 400 of a sum on a non-u64. */
function applyMutations(
  state: FakeKvcCluster,
  mutations: readonly Mutation[],
  versionstamp: Uint8Array,
): Map<string, KvEntry> | Response {
  const next = new Map(state.entries);
  for (const [i, m] of mutations.entries()) {
    const keyId = versionstampHex(m.key);
    const value = m.value ?? { data: new Uint8Array(), encoding: ValueEncoding.BYTES };
    if (m.mutationType === MutationType.SET) {
      next.set(keyId, {
        key: m.key,
        value: value.data,
        encoding: value.encoding,
        versionstamp,
      });
    } else if (m.mutationType === MutationType.DELETE) next.delete(keyId);
    else if (m.mutationType === MutationType.SET_SUFFIX_VERSIONSTAMPED_KEY) {
      const suffix = new TextEncoder().encode(versionstampHex(versionstamp));
      const key = Uint8Array.of(...m.key, 0x02, ...suffix, 0x00);
      next.set(versionstampHex(key), {
        key,
        value: value.data,
        encoding: value.encoding,
        versionstamp,
      });
    } else if (
      m.mutationType === MutationType.SUM || m.mutationType === MutationType.MIN ||
      m.mutationType === MutationType.MAX
    ) {
      const current = next.get(keyId);
      if (current !== undefined && current.encoding !== ValueEncoding.LE64) {
        const verb = m.mutationType === MutationType.SUM
          ? "sum"
          : m.mutationType === MutationType.MIN
          ? "min"
          : "max";
        return koiError(
          400,
          "bad_request",
          `Cannot ${verb}: the value at key #${i} is not a u64 (Deno.KvU64)`,
        );
      }
      const operand = new DataView(value.data.buffer, value.data.byteOffset, 8).getBigUint64(
        0,
        true,
      );
      const old = current === undefined
        ? undefined
        : new DataView(current.value.buffer, current.value.byteOffset, 8).getBigUint64(0, true);
      const result = old === undefined
        ? operand
        : m.mutationType === MutationType.SUM
        ? (old + operand) & 0xffff_ffff_ffff_ffffn
        : m.mutationType === MutationType.MIN
        ? (old < operand ? old : operand)
        : (old > operand ? old : operand);
      const data = new Uint8Array(8);
      new DataView(data.buffer).setBigUint64(0, result, true);
      next.set(keyId, { key: m.key, value: data, encoding: ValueEncoding.LE64, versionstamp });
    } else return koiError(400, "bad_request", `Unknown mutation type ${m.mutationType}`);
  }
  return next;
}

/** The versionstamp of `vs`: 8 bytes big-endian, then two zero bytes. */
export function stamp(vs: bigint): Uint8Array {
  const out = new Uint8Array(10);
  new DataView(out.buffer).setBigUint64(0, vs, false);
  return out;
}

/** The tuple encoding of a key of strings (type byte 0x02, UTF-8, 0x00; no 0x00 inside). */
export function tupleKey(...parts: string[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) out.push(0x02, ...new TextEncoder().encode(p), 0x00);
  return new Uint8Array(out);
}

/** A key `[prefix, "<n>"]` for the smallest n whose tuple key `owner` gives `cluster`. */
export function tupleKeyOwnedBy(
  owner: (key: Uint8Array) => string,
  cluster: string,
  prefix = "k",
): string[] {
  for (let i = 0; i < 100_000; i++) {
    if (owner(tupleKey(prefix, `${i}`)) === cluster) return [prefix, `${i}`];
  }
  throw new Error(`no key of cluster ${cluster}`);
}

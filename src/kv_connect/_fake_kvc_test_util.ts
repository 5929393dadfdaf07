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
import { versionstampHex } from "./_versionstamp.ts";

/** One fake cluster's KV Connect state. */
export class FakeKvcCluster {
  readonly entries = new Map<string, KvEntry>();
  /** The last versionstamp's `vs`. */
  vs = 0n;
  /** Request ids answered, with their answer (`<client>` to seq and bytes). */
  readonly answered = new Map<string, { seq: number; body: Uint8Array }>();
  /** Writes applied (not deduplicated). */
  applied = 0;

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
    for (const id of deployment.clusters.keys()) this.clusters.set(id, new FakeKvcCluster());
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
    if (!path.startsWith("/v1/kvc/")) return undefined;
    const seen = { node: node.id, cluster: node.cluster.id, path, headers: request.headers };
    this.requests.push(seen);
    const body = new Uint8Array(await request.arrayBuffer());
    const hooked = await this.hook?.(seen);
    if (hooked !== undefined) return hooked;
    if (request.method !== "POST") return koiError(405, "method_not_allowed", "POST only");
    try {
      if (path === "/v1/kvc/snapshot_read") return this.#read(node, body);
      if (path === "/v1/kvc/atomic_write") return this.#write(node, body, request.headers);
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
      const next = new Map(state.entries);
      for (const [i, m] of write.mutations.entries()) {
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

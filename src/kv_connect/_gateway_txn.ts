/**
 * The gateway's transactions (docs/transactions.md): an atomic write whose keys belong to
 * several clusters runs as a cross-cluster transaction, and a read that spans several
 * clusters as a two-round snapshot read, over the routing client's raw POSTs to the nodes'
 * transaction endpoints. A share's prepare travels as a KV Connect `AtomicWrite` to
 * `/v1/kvc/prepare`, so the node checks it as it checks an atomic write.
 *
 * @module
 */
import { KoiError, KoiHttpError } from "../client/mod.ts";
import { encode } from "@msgpack/msgpack";
import {
  type AnswerRoom,
  ClusterLeftError,
  decodeCheck,
  decodeHeld,
  decodePart,
  decodeRecords,
  decodeTxnAnswer,
  encodeCheck,
  encodeFence,
  encodeReadRanges,
  encodeTxnCommand,
  type JanitorTransport,
  MSGPACK_TYPE,
  type RawCalls,
  type ReadEntry,
  TXN_CHECK_PATH,
  TXN_COMMAND_PATH,
  TXN_HELD_PATH,
  TXN_READ_PATH,
  TXN_RECORDS_PATH,
  TxnRejectedError,
  type TxnTransport,
} from "../client/internal.ts";
import { TXN_PATHS, type TxnShare } from "../txn/mod.ts";
import {
  type AtomicWrite,
  type Check,
  encodeAtomicWrite,
  type KvEntry,
  type Mutation,
  MutationType,
} from "./_datapath.ts";
import { KvConnectError } from "./_errors.ts";
import { VERSIONSTAMP_BYTES, versionstampValue } from "./_versionstamp.ts";

/** The node endpoint of a share's prepare. */
export const NODE_PREPARE_PATH: string = TXN_PATHS.kvcPrepare;
/** Decisions one sweep of the janitor takes from a primary, at most. */
const JANITOR_BATCH = 100;
/** The largest answer to a transaction command or check, in bytes. */
const COMMAND_ANSWER_BYTES_MAX = 64 * 1024;
/** One call's budget inside a transaction (the drivers retry beyond it), in ms. */
export const TXN_CALL_TIMEOUT_MS = 2_000;

/** The versionstamp of a check as a number: 0 for "absent", and one no key has for bytes koi never makes. */
function checkVs(stamp: Uint8Array, i: number): number {
  if (stamp.length === 0) return 0;
  if (stamp.length !== VERSIONSTAMP_BYTES) {
    throw new KvConnectError(400, `Check ${i}: a versionstamp has 10 bytes, not ${stamp.length}`);
  }
  const v = versionstampValue(stamp)!;
  return v === 0n || v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

/** The 10 bytes of versionstamp `vs` (as the node's: zeros for a key written without one). */
export function stampBytes(vs: number): Uint8Array {
  const out = new Uint8Array(VERSIONSTAMP_BYTES);
  new DataView(out.buffer).setBigUint64(0, BigInt(vs), false);
  return out;
}

/** A check's versionstamp bytes: none for "absent". */
function checkBytes(vs: number): Uint8Array {
  return vs === 0 ? new Uint8Array(0) : stampBytes(vs);
}

/** A cross-cluster write's shares, by the clusters that own its keys, and its primary. */
export interface WriteShares {
  /** cluster -> its checks and mutations. */
  readonly shares: Map<string, TxnShare<Mutation>>;
  /** The deciding cluster: the first mutated key's, else the first checked one's. */
  readonly primary: string;
}

/** Splits `write` by the owner of each key. */
export function splitWrite(
  write: Pick<AtomicWrite, "checks" | "mutations">,
  owner: (key: Uint8Array) => string,
): WriteShares {
  const shares = new Map<
    string,
    {
      checks: TxnShare<Mutation>["checks"][number][];
      mutations: TxnShare<Mutation>["mutations"][number][];
    }
  >();
  const share = (cluster: string) => {
    let s = shares.get(cluster);
    if (s === undefined) shares.set(cluster, s = { checks: [], mutations: [] });
    return s;
  };
  write.checks.forEach((c, index) => {
    share(owner(c.key)).checks.push({ key: c.key, vs: checkVs(c.versionstamp, index), index });
  });
  const suffixed = (m: Mutation) => m.mutationType === MutationType.SET_SUFFIX_VERSIONSTAMPED_KEY;
  // The primary: the first mutated key's cluster (a versionstamped key's prefix decides
  // nothing), else the first checked one's.
  const deciding = write.mutations.find((m) => !suffixed(m))?.key ?? write.checks[0]?.key ??
    write.mutations[0].key;
  const primary = owner(deciding);
  write.mutations.forEach((m, index) => {
    // A versionstamped key is made at the decision, by the primary, which picks a
    // versionstamp whose final key it owns.
    share(suffixed(m) ? primary : owner(m.key)).mutations.push({ mutation: m, index });
  });
  return { shares, primary };
}

/** The transport of the gateway's transactions over the routing client's raw POSTs. */
export function gatewayTransport(
  raw: RawCalls,
  signal: AbortSignal,
  options: {
    readAnswerBytesMax?: number;
    /** Room the snapshot reads' answers take their bytes from (the read's build bound). */
    answerRoom?: AnswerRoom;
    callTimeoutMs?: number;
    /** The secret of a cluster's nodes: transaction commands need it (docs/api.md). */
    secretOf?: (cluster: string) => string | undefined;
  } = {},
): TxnTransport<Mutation, KvEntry> & JanitorTransport<Mutation> {
  const readAnswerBytesMax = options.readAnswerBytesMax ?? 80 * 1024 * 1024;
  const auth = (cluster: string): Record<string, string> => {
    const secret = options.secretOf?.(cluster);
    return secret === undefined ? {} : { authorization: `Bearer ${secret}` };
  };
  const call = { signal, timeoutMs: options.callTimeoutMs ?? TXN_CALL_TIMEOUT_MS };
  const post = async (
    kind: "write" | "read",
    cluster: string,
    path: string,
    body: Uint8Array,
    headers: Record<string, string>,
    what: string,
  ) => {
    try {
      const answer = await raw[kind]({
        path,
        body,
        cluster,
        headers,
        answerBytesMax: path === TXN_READ_PATH ? readAnswerBytesMax : COMMAND_ANSWER_BYTES_MAX,
        ...(path === TXN_READ_PATH && options.answerRoom !== undefined
          ? { answerRoom: options.answerRoom }
          : {}),
        what: `${what} at cluster ${cluster}`,
      }, call);
      return answer.body;
    } catch (error) {
      // A refusal no retry changes: the attempt ends (a prepare's is the write's answer); a
      // 421 (a point read of a key that moved) makes the caller refresh its table.
      if (error instanceof KoiHttpError && error.status >= 400 && error.status < 500) {
        throw new TxnRejectedError(error.message, error.status);
      }
      // A read of a cluster a newer table dropped is planned again, as after a 421.
      if (kind === "read" && error instanceof ClusterLeftError) {
        throw new TxnRejectedError(error.message, 421);
      }
      // The read's own bound on answer bytes is full (not a node's 503): asking again would
      // only take more.
      if (
        error instanceof KoiError && error.code === "overloaded" && !(error instanceof KoiHttpError)
      ) {
        throw new TxnRejectedError(error.message, 503);
      }
      // An answer over the limit would be over it again: read fewer entries at once.
      if (error instanceof KoiError && error.code === "bad_response") {
        throw new TxnRejectedError(`${error.message}; read fewer entries at once`, 400);
      }
      throw error;
    }
  };
  const msgpack = { "content-type": MSGPACK_TYPE };
  return {
    async command(cluster, cmd) {
      if (cmd.type === "prepare" && cmd.spans !== undefined) {
        // A snapshot read's fence: no share to carry, its spans go in the command itself.
        const headers = { ...msgpack, ...auth(cluster) };
        return decodeTxnAnswer(
          await post("write", cluster, TXN_COMMAND_PATH, encodeFence(cmd), headers, "fence"),
        );
      }
      if (cmd.type === "prepare") {
        const body = encodeAtomicWrite({
          checks: cmd.checks.map((c): Check => ({ key: c.key, versionstamp: checkBytes(c.vs) })),
          mutations: [...cmd.mutations],
          enqueues: 0,
        });
        const headers = {
          ...auth(cluster),
          "content-type": "application/x-protobuf",
          "x-koi-txn": cmd.txn,
          "x-koi-txn-primary": cmd.primary,
          "x-koi-txn-participants": cmd.participants.join(","),
          "x-koi-txn-deadline": String(cmd.deadline),
        };
        return decodeTxnAnswer(
          await post("write", cluster, NODE_PREPARE_PATH, body, headers, "prepare"),
        );
      }
      const body = encodeTxnCommand(cmd);
      const headers = { ...msgpack, ...auth(cluster) };
      return decodeTxnAnswer(
        await post("write", cluster, TXN_COMMAND_PATH, body, headers, cmd.type),
      );
    },
    async read(cluster, ranges) {
      const part = decodePart(
        await post("read", cluster, TXN_READ_PATH, encodeReadRanges(ranges), msgpack, "read"),
      );
      if ("lock" in part) return part;
      return { index: part.index, entries: part.entries.map((list) => list.map(entryOf)) };
    },
    async records(cluster) {
      return decodeRecords(
        await post("read", cluster, TXN_RECORDS_PATH, encode([JANITOR_BATCH]), {
          ...msgpack,
          ...auth(cluster),
        }, "records"),
      );
    },
    async held(cluster, txns) {
      return decodeHeld(
        await post("read", cluster, TXN_HELD_PATH, encode([...txns]), {
          ...msgpack,
          ...auth(cluster),
        }, "held"),
        txns.length,
      );
    },
    async check(cluster, spans, since) {
      return decodeCheck(
        await post("read", cluster, TXN_CHECK_PATH, encodeCheck(spans, since), msgpack, "check"),
      );
    },
  };
}

/** A read entry as KV Connect's `KvEntry`. */
function entryOf(e: ReadEntry): KvEntry {
  return { key: e.key, value: e.value, encoding: e.encoding, versionstamp: stampBytes(e.vs) };
}

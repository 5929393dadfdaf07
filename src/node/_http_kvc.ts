/**
 * The node's KV Connect endpoints (docs/kv_connect.md): `POST /v1/kvc/snapshot_read` and
 * `POST /v1/kvc/atomic_write`, with the protobuf bodies of the KV Connect data path, over
 * HTTP/1.1. The admin's gateway, which Deno's client talks to, splits each request by cluster
 * and sends it here; this side reads ranges of this cluster's keys and turns an atomic write
 * into one replicated command with its versionstamp.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import { type AnswerBytes, piecedResponse } from "../http/server.ts";
import {
  type AtomicWrite,
  AtomicWriteStatus,
  DatapathDecodeError,
  decodeAtomicWrite,
  decodeSnapshotRead,
  encodeAtomicWriteOutput,
  encodeSnapshotReadOutput,
  isPointRange,
  MutationType,
  snapshotReadOutputPieces,
  SnapshotReadStatus,
} from "../kv_connect/_datapath.ts";
import {
  type KvCheck,
  type KvCommand,
  type KvMutation,
  type KvResult,
  suffixedKey,
  ValueEncoding,
  versionstampBytes,
  versionstampFromBytes,
} from "../storage/mod.ts";
import { BadRequestError, OverloadedError, TooLargeError, WrongShardError } from "./errors.ts";
import { noRoomError } from "./_answer_room.ts";
import { errorResponse, lockedMessage, lockedResponse } from "./_http_errors.ts";
import { readBody } from "./_http_request.ts";
import type { KeyRange, NodeService, RangeEntry } from "./service.ts";
import { SYSTEM_KEY_BYTE } from "./_system_keys.ts";

/** The path of range reads. */
export const KVC_READ_PATH = "/v1/kvc/snapshot_read";
/** The path of atomic writes. */
export const KVC_WRITE_PATH = "/v1/kvc/atomic_write";
/** Largest request body, in bytes. */
export const KVC_BODY_BYTES_MAX = 1 << 20;
/**
 * Largest key, in bytes, as Deno's client: also the largest prefix of a versionstamped key,
 * whose suffix then adds {@linkcode KVC_SUFFIX_BYTES}.
 */
export const KVC_KEY_BYTES_MAX = 2048;
/** Bytes a versionstamp suffix adds to a key: 0x02, 20 hex digits, 0x00. */
export const KVC_SUFFIX_BYTES = 22;
/** Largest value, in bytes (as Deno's client). */
export const KVC_VALUE_BYTES_MAX = 65_536;
/** Checks of one atomic write, at most (as Deno's client). */
export const KVC_CHECKS_MAX = 100;
/** Mutations of one atomic write, at most (as Deno's client). */
export const KVC_MUTATIONS_MAX = 1_000;
/** Key and value bytes of one atomic write, at most (as Deno's client: 800 KiB). */
export const KVC_WRITE_BYTES_MAX = 819_200;
/** Ranges of one read, at most. */
export const KVC_RANGES_MAX = 64;
/** Entries of one range, at most. */
export const KVC_RANGE_LIMIT_MAX = 1_000;
/**
 * Key and value bytes of one read's answer, at most (each entry counted 64 bytes more, for
 * its framing and metadata). A full page of the largest values (1,000 of 64 KiB with 2 KiB
 * keys) fits; 64 such ranges in one read would be 4 GiB to encode, and are refused before any
 * byte is copied.
 */
export const KVC_READ_ANSWER_BYTES_MAX = 72 * 1024 * 1024;
/** What {@linkcode KVC_READ_ANSWER_BYTES_MAX} counts per entry besides its key and value. */
const ANSWER_ENTRY_OVERHEAD = 64;

/**
 * Throws {@linkcode TooLargeError} (413) when the entries read would make an answer larger
 * than `max` (by default {@linkcode KVC_READ_ANSWER_BYTES_MAX}): the reader asks for fewer or
 * smaller ranges.
 */
export function checkReadAnswerBytes(
  lists: readonly (readonly RangeEntry[])[],
  max: number,
): number {
  let bytes = 0;
  for (const list of lists) {
    for (const { key, entry } of list) {
      bytes += key.length + entry.value.length + ANSWER_ENTRY_OVERHEAD;
    }
  }
  if (bytes > max) {
    throw new TooLargeError(
      `The read's answer would hold ${bytes} bytes, more than ${max}: ` +
        `read fewer ranges or lower their limits`,
    );
  }
  return bytes;
}

/**
 * Bytes of answers being built or sent (not stalled at a client that stopped reading: see
 * `AnswerBytes.moving`) past which a node builds no more large read answers (one goes when
 * none is; small ones always): below the bound of all answers held, because building and
 * sending large reads takes the event loop that Raft's heartbeats share. Found by the attack: a flood of reads of
 * 20 MiB each kept every leader so busy that its followers elected others, again and again.
 */
export const READ_ANSWERS_MOVING_MAX = 16 * 1024 * 1024;
/** Read answers smaller than this always go (they cost the event loop little). */
const READ_ANSWER_BOUNDED_BYTES_MIN = 64 * 1024;
/**
 * Read answers of at least this many bytes are written in pieces, their values never copied
 * into one buffer (src/http/_pieced.ts); smaller ones are encoded whole, which costs less.
 */
export const PIECED_ANSWER_BYTES_MIN = 64 * 1024;

/**
 * The answer `build` makes of `bytes` (as {@linkcode checkReadAnswerBytes} counted them),
 * counted among the answers the server's clients have not taken yet; `503 overloaded` instead,
 * before anything is built, when it would not fit: clients that ask for large reads and do
 * not take the answers would otherwise pin any amount of memory.
 */
export function heldAnswer(
  answers: AnswerBytes | undefined,
  bytes: number,
  build: () => Response,
): Response {
  if (answers === undefined) return build();
  if (!answers.fits(bytes)) throw noRoomError(answers, bytes, "The read's answer");
  const held = answers.moving;
  if (
    bytes >= READ_ANSWER_BOUNDED_BYTES_MIN && held > 0 && held + bytes > READ_ANSWERS_MOVING_MAX
  ) {
    throw new OverloadedError(
      `The read's answer (${bytes} bytes) would pass the node's bound of read answers being ` +
        `sent: ${held} of ${READ_ANSWERS_MOVING_MAX} bytes are; retry later`,
    );
  }
  return answers.mark(build(), bytes);
}

/** Header: the commit's versionstamp must exceed this one (decimal of its first 8 bytes). */
export const AFTER_VS_HEADER = "x-koi-after-vs";
/** Header: the request id that makes a write at most once. */
export const REQUEST_ID_HEADER = "x-koi-request-id";

const PROTOBUF = "application/x-protobuf";
/** Keys at or after this byte are koi's own records: no range reaches them. */
const SYSTEM_START = new Uint8Array([SYSTEM_KEY_BYTE]);

/** What the endpoints need from the node's HTTP layer. */
export interface KvcDeps {
  readonly service: NodeService;
  /** See {@linkcode checkReadAnswerBytes}. */
  readonly readAnswerBytesMax: number;
  /** The server's count of answers not yet taken (see {@linkcode heldAnswer}). */
  readonly answers: AnswerBytes | undefined;
  /** Runs `operation` here, or forwards the request (with `body`) to the leader. */
  withLeader<T>(
    c: Context,
    body: Uint8Array,
    operation: () => Promise<T>,
    answer: (value: T) => Response,
  ): Promise<Response>;
}

function protobuf(bytes: Uint8Array): Response {
  return new Response(bytes as BodyInit, { headers: { "content-type": PROTOBUF } });
}

function compare(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/**
 * The longest start of a range: a versionstamped key (a prefix of {@linkcode KVC_KEY_BYTES_MAX}
 * bytes and its suffix), and one more byte (a list by that key as prefix starts at it + 0x00).
 */
export const KVC_RANGE_START_BYTES_MAX = KVC_KEY_BYTES_MAX + KVC_SUFFIX_BYTES + 1;

function checkKey(
  key: Uint8Array,
  what: string,
  written = false,
  max: number = KVC_KEY_BYTES_MAX,
): void {
  // An empty key is no tuple: Deno's client cannot decode it in a listing (it breaks every
  // list over the whole keyspace), and refuses to write one itself.
  if (written && key.length === 0) throw new BadRequestError(`${what} is empty`);
  if (key.length > max) {
    throw new BadRequestError(`${what} has ${key.length} bytes: more than ${max}`);
  }
  if (key.length > 0 && key[0] === SYSTEM_KEY_BYTE) {
    throw new BadRequestError(`${what} starts with the byte 0xFF, which koi keeps for itself`);
  }
}

function wrongShard(service: NodeService, key: Uint8Array): WrongShardError {
  const epoch = service.epoch();
  const owner = service.owner?.(key);
  return new WrongShardError(
    `Wrong shard: a key does not belong to cluster ${service.clusterId} at routing epoch ` +
      `${epoch}` + (owner === undefined ? "" : `; it belongs to cluster ${owner}`),
    epoch,
    owner,
  );
}

function decoded<T>(decode: () => T): T {
  try {
    return decode();
  } catch (e) {
    if (e instanceof DatapathDecodeError) throw new BadRequestError(e.message);
    throw e;
  }
}

function entryOut(e: RangeEntry) {
  return {
    key: e.key,
    value: e.entry.value,
    encoding: e.entry.encoding ?? ValueEncoding.BYTES,
    versionstamp: versionstampBytes(e.entry.vs ?? 0),
  };
}

/** Registers the KV Connect endpoints on the node's app. */
export function routeKvConnect(app: Hono, deps: KvcDeps): void {
  const { service } = deps;
  app.post(KVC_READ_PATH, async (c) => {
    const readRanges = service.readRanges?.bind(service);
    if (readRanges === undefined) return errorResponse(404, "not_found", "No KV Connect here");
    const consistency = new URL(c.req.url).searchParams.get("consistency") ?? "linearizable";
    if (consistency !== "linearizable" && consistency !== "stale") {
      throw new BadRequestError(`Invalid consistency: ${JSON.stringify(consistency)}`);
    }
    const body = await readBody(c.req.raw, KVC_BODY_BYTES_MAX, "Read request");
    const read = decoded(() => decodeSnapshotRead(body));
    if (read.ranges.length > KVC_RANGES_MAX) {
      throw new BadRequestError(`At most ${KVC_RANGES_MAX} ranges per read`);
    }
    const ranges: KeyRange[] = read.ranges.map((r, i) => {
      if (!(r.limit >= 1 && r.limit <= KVC_RANGE_LIMIT_MAX)) {
        throw new BadRequestError(
          `Range ${i}: limit ${r.limit} is not 1 to ${KVC_RANGE_LIMIT_MAX}`,
        );
      }
      checkKey(r.start, `Range ${i}'s start`, false, KVC_RANGE_START_BYTES_MAX);
      // koi's own records sort after every client key: a range ends before them.
      const end = compare(r.end, SYSTEM_START) > 0 ? SYSTEM_START : r.end;
      return { start: r.start, end, limit: r.limit, reverse: r.reverse };
    });
    for (const r of ranges) {
      if (isPointRange(r) && !service.owns(r.start)) throw wrongShard(service, r.start);
    }
    const stale = consistency === "stale";
    const answer = (values: RangeEntry[][]) => {
      const bytes = checkReadAnswerBytes(values, deps.readAnswerBytesMax);
      return heldAnswer(deps.answers, bytes, () => {
        const output = {
          ranges: values.map((v) => ({ values: v.map(entryOut) })),
          readDisabled: false,
          readIsStronglyConsistent: !stale,
          status: SnapshotReadStatus.SUCCESS,
        };
        return bytes < PIECED_ANSWER_BYTES_MIN
          ? protobuf(encodeSnapshotReadOutput(output))
          : piecedResponse(snapshotReadOutputPieces(output), { "content-type": PROTOBUF });
      });
    };
    if (stale) return answer(await readRanges(ranges, { stale: true }));
    return await deps.withLeader(c, body, () => readRanges(ranges, { stale: false }), answer);
  });

  app.post(KVC_WRITE_PATH, async (c) => {
    const writeStamped = service.writeStamped?.bind(service);
    if (writeStamped === undefined) return errorResponse(404, "not_found", "No KV Connect here");
    const requestId = c.req.header(REQUEST_ID_HEADER);
    const afterText = c.req.header(AFTER_VS_HEADER);
    if (afterText !== undefined && !/^[0-9]{1,16}$/.test(afterText)) {
      throw new BadRequestError(`Invalid ${AFTER_VS_HEADER}: ${JSON.stringify(afterText)}`);
    }
    const body = await readBody(c.req.raw, KVC_BODY_BYTES_MAX, "Atomic write");
    const write = decoded(() => decodeAtomicWrite(body));
    const plan = planWrite(write);
    for (const key of plan.fixedKeys) if (!service.owns(key)) throw wrongShard(service, key);
    if (plan.impossibleCheck !== undefined) {
      // A versionstamp koi never hands out: no key can carry it, so the check fails.
      return protobuf(encodeAtomicWriteOutput({
        status: AtomicWriteStatus.CHECK_FAILURE,
        versionstamp: new Uint8Array(0),
        failedChecks: [plan.impossibleCheck],
      }));
    }
    return await deps.withLeader(
      c,
      body,
      () =>
        writeStamped({
          ...(requestId === undefined ? {} : { requestId }),
          ...(afterText === undefined ? {} : { afterVs: Number(afterText) }),
          build: (vs) => plan.build(vs, (key) => service.owns(key), requestId),
        }),
      writeOutput,
    );
  });
}

/** The response to a write's result. */
function writeOutput(result: KvResult): Response {
  if (result.ok) {
    return protobuf(encodeAtomicWriteOutput({
      status: AtomicWriteStatus.SUCCESS,
      versionstamp: versionstampBytes(result.vs ?? 0),
      failedChecks: [],
    }));
  }
  switch (result.code) {
    case "precondition_failed":
      return protobuf(encodeAtomicWriteOutput({
        status: AtomicWriteStatus.CHECK_FAILURE,
        versionstamp: new Uint8Array(0),
        failedChecks: [result.check],
      }));
    case "type_mismatch":
      return errorResponse(400, "bad_request", `Mutation ${result.mutation}: ${result.message}`);
    case "wrong_shard":
      return errorResponse(
        421,
        "wrong_shard",
        `A key belongs to cluster ${result.owner} (epoch ${result.epoch}); nothing was written`,
        { "x-koi-epoch": String(result.epoch), "x-koi-owner": result.owner },
      );
    case "storage_full":
      return errorResponse(
        507,
        "insufficient_storage",
        `The store would exceed its limit of ${result.bytesMax} bytes; nothing was written`,
      );
    case "stale_request":
      return errorResponse(409, "stale_request", `Stale request id: last seq ${result.seq}`);
    case "stale_versionstamp":
      return errorResponse(503, "overloaded", "Versionstamps kept going stale; retry");
    case "locked":
      return lockedResponse(lockedMessage(result.lock), result.lock);
    default:
      return errorResponse(409, result.code, `The write was refused: ${result.reason}`);
  }
}

/** An atomic write checked and turned into a command builder. */
interface WritePlan {
  /** Keys known before the versionstamp (all but suffixed ones): this cluster's, or 421. */
  readonly fixedKeys: readonly Uint8Array[];
  /** The index of a check that can never hold, if any. */
  readonly impossibleCheck: number | undefined;
  /**
   * The mutations as a cross-cluster transaction's share keeps them: a versionstamped key as
   * `set_vs` (its key made at the decision).
   */
  txnMutations(): KvMutation[];
  /** The command for `vs`, or undefined when a suffixed key would not be `owns`'. */
  build(
    vs: number,
    owns: (key: Uint8Array) => boolean,
    requestId: string | undefined,
  ): KvCommand | undefined;
}

export { suffixedKey };

/** Validates an atomic write against koi's limits and plans its command. */
export function planWrite(write: AtomicWrite): WritePlan {
  if (write.enqueues > 0) {
    throw new BadRequestError("Queues (enqueue) are not supported by koi's KV Connect");
  }
  if (write.checks.length > KVC_CHECKS_MAX) {
    throw new BadRequestError(`At most ${KVC_CHECKS_MAX} checks per atomic write`);
  }
  if (write.mutations.length > KVC_MUTATIONS_MAX) {
    throw new BadRequestError(`At most ${KVC_MUTATIONS_MAX} mutations per atomic write`);
  }
  let bytes = 0;
  let impossibleCheck: number | undefined;
  const fixedKeys: Uint8Array[] = [];
  const checks: KvCheck[] = write.checks.map((ch, i) => {
    // A check may name a versionstamped key (read back with its suffix).
    checkKey(ch.key, `Check ${i}'s key`, false, KVC_KEY_BYTES_MAX + KVC_SUFFIX_BYTES);
    bytes += ch.key.length;
    fixedKeys.push(ch.key);
    if (ch.versionstamp.length === 0) return { key: ch.key, rev: 0, vs: 0 };
    if (ch.versionstamp.length !== 10) {
      throw new BadRequestError(
        `Check ${i}: a versionstamp has 10 bytes, not ${ch.versionstamp.length}`,
      );
    }
    const vs = versionstampFromBytes(ch.versionstamp);
    if (vs === undefined || vs === 0) impossibleCheck ??= i;
    return { key: ch.key, rev: 0, vs: vs ?? 0 };
  });
  type Planned = { readonly suffixed: boolean; readonly mutation: KvMutation };
  const planned: Planned[] = write.mutations.map((m, i) => {
    const what = `Mutation ${i}`;
    checkKey(m.key, `${what}'s key`, true);
    bytes += m.key.length + (m.value?.data.length ?? 0);
    const key = m.key;
    switch (m.mutationType) {
      case MutationType.SET:
      case MutationType.SET_SUFFIX_VERSIONSTAMPED_KEY: {
        const v = m.value;
        if (v === undefined) throw new BadRequestError(`${what} sets no value`);
        if (v.encoding < 1 || v.encoding > 3) {
          throw new BadRequestError(`${what}: unknown value encoding ${v.encoding}`);
        }
        if (v.encoding === ValueEncoding.LE64 && v.data.length !== 8) {
          throw new BadRequestError(`${what}: a u64 value must have 8 bytes`);
        }
        if (v.data.length > KVC_VALUE_BYTES_MAX) {
          throw new BadRequestError(
            `${what}: the value has ${v.data.length} bytes, more than ${KVC_VALUE_BYTES_MAX}`,
          );
        }
        const expireAt = Number(m.expireAtMs);
        if (!(Number.isSafeInteger(expireAt) && expireAt >= 0)) {
          throw new BadRequestError(`${what}: invalid expiry time`);
        }
        const suffixed = m.mutationType === MutationType.SET_SUFFIX_VERSIONSTAMPED_KEY;
        if (!suffixed) fixedKeys.push(key);
        return {
          suffixed,
          mutation: {
            type: "set",
            key,
            value: v.data,
            encoding: v.encoding,
            ...(expireAt > 0 ? { expireAt } : {}),
          },
        };
      }
      case MutationType.DELETE:
        fixedKeys.push(key);
        return { suffixed: false, mutation: { type: "delete", key } };
      case MutationType.SUM:
      case MutationType.MIN:
      case MutationType.MAX: {
        const v = m.value;
        if (v === undefined || v.encoding !== ValueEncoding.LE64 || v.data.length !== 8) {
          throw new BadRequestError(`${what}: the operand is not a u64 (Deno.KvU64)`);
        }
        if (m.sumMin.length > 0 || m.sumMax.length > 0 || m.sumClamp) {
          throw new BadRequestError(`${what}: sums with bounds are not supported`);
        }
        fixedKeys.push(key);
        const type = m.mutationType === MutationType.SUM
          ? "sum"
          : m.mutationType === MutationType.MIN
          ? "min"
          : "max";
        return { suffixed: false, mutation: { type, key, operand: v.data } };
      }
      default:
        throw new BadRequestError(`${what}: unknown mutation type ${m.mutationType}`);
    }
  });
  if (bytes > KVC_WRITE_BYTES_MAX) {
    throw new BadRequestError(
      `The atomic write has ${bytes} bytes of keys and values, more than ${KVC_WRITE_BYTES_MAX}`,
    );
  }
  return {
    fixedKeys,
    impossibleCheck,
    txnMutations() {
      return planned.map((p) => {
        if (!p.suffixed || p.mutation.type !== "set") return p.mutation;
        const { key, value, encoding, expireAt } = p.mutation;
        return { type: "set_vs", key, value, encoding: encoding ?? 3, expireAt: expireAt ?? 0 };
      });
    },
    build(vs, owns, requestId) {
      const mutations: KvMutation[] = [];
      for (const p of planned) {
        if (!p.suffixed) {
          mutations.push(p.mutation);
          continue;
        }
        const key = suffixedKey(p.mutation.key, vs);
        if (!owns(key)) return undefined;
        mutations.push({ ...p.mutation, key });
      }
      return { ...(requestId === undefined ? {} : { requestId }), checks, mutations, vs };
    },
  };
}

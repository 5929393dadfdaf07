/**
 * The node's endpoints of cross-cluster transactions (docs/transactions.md, docs/api.md):
 * `POST /v1/txn/command` (a transaction command: prepare, commit, abort or forget, proposed by
 * the leader), `POST /v1/txn/read` and `POST /v1/txn/check` (the two rounds of a snapshot read).
 * Bodies and answers are msgpack (keys and values are bytes); every request is checked before
 * anything is proposed, and the leader serves all three (others forward).
 *
 * @module
 */
import type { Hono } from "hono";
import { decode, encode } from "@msgpack/msgpack";
import {
  CommandDecodeError,
  decodeTxnEntry,
  encodeTxnEntry,
  type KvMutation,
  TXN_COMMAND_VERSION,
} from "../storage/mod.ts";
import {
  DatapathDecodeError,
  decodeAtomicWrite,
  isPointRange,
  MutationType,
} from "../kv_connect/_datapath.ts";
import type {
  KeySpan,
  ReadRange,
  SnapshotCheck,
  SnapshotPart,
  TxnAnswer,
  TxnCommand,
  TxnLockInfo,
} from "../txn/mod.ts";
import { TXN_PATHS } from "../txn/mod.ts";
import { BadRequestError, WrongShardError } from "./errors.ts";
import { errorResponse } from "./_http_errors.ts";
import { readBody } from "./_http_request.ts";
import type { NodeService, RangeEntry } from "./service.ts";
import { SYSTEM_KEY_BYTE } from "./_system_keys.ts";
import { partPieces } from "./_read_pieces.ts";
import { piecedResponse } from "../http/server.ts";
import {
  checkReadAnswerBytes,
  heldAnswer,
  KVC_CHECKS_MAX,
  KVC_KEY_BYTES_MAX,
  KVC_MUTATIONS_MAX,
  KVC_RANGE_LIMIT_MAX,
  KVC_RANGE_START_BYTES_MAX,
  KVC_RANGES_MAX,
  KVC_SUFFIX_BYTES,
  KVC_VALUE_BYTES_MAX,
  KVC_WRITE_BYTES_MAX,
  type KvcDeps,
  PIECED_ANSWER_BYTES_MIN,
  planWrite,
} from "./_http_kvc.ts";

/** The path of transaction commands. */
export const TXN_COMMAND_PATH: string = TXN_PATHS.command;
/** The path of a snapshot read's first round. */
export const TXN_READ_PATH: string = TXN_PATHS.read;
/** The path of a snapshot read's second round. */
export const TXN_CHECK_PATH: string = TXN_PATHS.check;
/**
 * The path of a prepare whose share is a KV Connect `AtomicWrite` (the gateway's): checked
 * and converted as `/v1/kvc/atomic_write` does, with the transaction in {@linkcode TXN_HEADERS}.
 */
export const TXN_KVC_PREPARE_PATH: string = TXN_PATHS.kvcPrepare;
/** Largest request body, in bytes. */
export const TXN_BODY_BYTES_MAX = 1 << 20;

/** The path of the janitor's list of decisions not forgotten. */
export const TXN_RECORDS_PATH: string = TXN_PATHS.records;
/** The path of the janitor's question: which attempts' intents are still held here. */
export const TXN_HELD_PATH: string = TXN_PATHS.held;
/** Records one janitor's request lists at most; attempts one question names at most. */
export const TXN_JANITOR_BATCH_MAX = 100;

/** The headers of a {@linkcode TXN_KVC_PREPARE_PATH} request. */
export const TXN_HEADERS = {
  /** The attempt's id. */
  txn: "x-koi-txn",
  /** Its primary cluster. */
  primary: "x-koi-txn-primary",
  /** Every participant, comma-separated. */
  participants: "x-koi-txn-participants",
  /** Its deadline, ms since 1970. */
  deadline: "x-koi-txn-deadline",
} as const;

const MSGPACK = "application/msgpack";

/** What the endpoints need from the node's HTTP layer (as KV Connect's). */
export type TxnDeps = KvcDeps;

function msgpack(body: unknown): Response {
  return new Response(encode(body) as BodyInit, { headers: { "content-type": MSGPACK } });
}

/** A lock as the wire carries it: `[key, txn, primary, deadline, write]`. */
export function lockToWire(l: TxnLockInfo): unknown[] {
  return [l.key, l.txn, l.primary, l.deadline, l.write];
}

function checkKey(key: Uint8Array, what: string, max = KVC_KEY_BYTES_MAX + KVC_SUFFIX_BYTES): void {
  if (key.length === 0) throw new BadRequestError(`${what} is empty`);
  if (key.length > max) {
    throw new BadRequestError(`${what} has ${key.length} bytes: more than ${max}`);
  }
  if (key[0] === SYSTEM_KEY_BYTE) {
    throw new BadRequestError(`${what} starts with the byte 0xFF, which koi keeps for itself`);
  }
}

/** Decodes and checks a transaction command's body (the log's form, with `at` 0). */
export function parseTxnCommand(body: Uint8Array): TxnCommand<KvMutation> {
  let cmd: TxnCommand<KvMutation>;
  try {
    cmd = decodeTxnEntry(body).cmd;
  } catch (e) {
    if (e instanceof CommandDecodeError || e instanceof RangeError || e instanceof Error) {
      throw new BadRequestError(`Invalid transaction command: ${e.message}`);
    }
    throw e;
  }
  if (cmd.type !== "prepare") return cmd;
  if (cmd.checks.length > KVC_CHECKS_MAX) {
    throw new BadRequestError(`At most ${KVC_CHECKS_MAX} checks per participant`);
  }
  if (cmd.mutations.length > KVC_MUTATIONS_MAX) {
    throw new BadRequestError(`At most ${KVC_MUTATIONS_MAX} mutations per participant`);
  }
  cmd.spans?.forEach((span, i) => {
    // A fence's span may end at koi's own records (a range over every client key).
    if (
      span.start.length > KVC_RANGE_START_BYTES_MAX || span.end.length > KVC_RANGE_START_BYTES_MAX
    ) {
      throw new BadRequestError(
        `Span ${i} has a key of more than ${KVC_RANGE_START_BYTES_MAX} bytes`,
      );
    }
  });
  let bytes = 0;
  cmd.checks.forEach((k, i) => checkKey(k.key, `Check ${i}'s key`));
  cmd.mutations.forEach((m, i) => {
    checkKey(m.key, `Mutation ${i}'s key`);
    if (m.type === "expire") throw new BadRequestError(`Mutation ${i}: expire is koi's own`);
    const value = "value" in m ? m.value.length : "operand" in m ? m.operand.length : 0;
    if (value > KVC_VALUE_BYTES_MAX) {
      throw new BadRequestError(`Mutation ${i}'s value has more than ${KVC_VALUE_BYTES_MAX} bytes`);
    }
    bytes += m.key.length + value;
  });
  if (bytes > KVC_WRITE_BYTES_MAX) {
    throw new BadRequestError(`The mutations have more than ${KVC_WRITE_BYTES_MAX} bytes`);
  }
  return cmd;
}

function decodeBody(body: Uint8Array, what: string): unknown {
  try {
    return decode(body);
  } catch (e) {
    throw new BadRequestError(`${what} is not msgpack: ${(e as Error).message}`);
  }
}

/** Decodes and checks the ranges of a first round: `[[start, end, limit, reverse], ...]`. */
export function parseReadRanges(body: Uint8Array): ReadRange[] {
  const v = decodeBody(body, "The read");
  if (!Array.isArray(v) || v.length === 0 || v.length > KVC_RANGES_MAX) {
    throw new BadRequestError(`A read is a list of 1 to ${KVC_RANGES_MAX} ranges`);
  }
  return v.map((r, i) => {
    if (
      !Array.isArray(r) || r.length !== 4 || !(r[0] instanceof Uint8Array) ||
      !(r[1] instanceof Uint8Array) || !Number.isSafeInteger(r[2]) || r[2] < 1 ||
      r[2] > KVC_RANGE_LIMIT_MAX || typeof r[3] !== "boolean"
    ) {
      throw new BadRequestError(
        `Range ${i} is not [start, end, limit 1 to ${KVC_RANGE_LIMIT_MAX}, reverse]`,
      );
    }
    return { start: r[0], end: r[1], limit: r[2], reverse: r[3] };
  });
}

/** Decodes and checks a second round: `[[[start, end], ...], since]`. */
export function parseCheck(body: Uint8Array): { spans: KeySpan[]; since: number } {
  const v = decodeBody(body, "The check");
  if (
    !Array.isArray(v) || v.length !== 2 || !Array.isArray(v[0]) || v[0].length === 0 ||
    v[0].length > KVC_RANGES_MAX || !Number.isSafeInteger(v[1]) || v[1] < 0
  ) {
    throw new BadRequestError(`A check is [[[start, end], ... 1 to ${KVC_RANGES_MAX}], since]`);
  }
  const spans = v[0].map((s: unknown, i: number) => {
    if (
      !Array.isArray(s) || s.length !== 2 || !(s[0] instanceof Uint8Array) ||
      !(s[1] instanceof Uint8Array)
    ) {
      throw new BadRequestError(`Span ${i} is not [start, end]`);
    }
    return { start: s[0], end: s[1] };
  });
  return { spans, since: v[1] };
}

function answerOut(a: TxnAnswer): unknown {
  return "vote" in a && a.vote === "no" && a.reason === "locked"
    ? { vote: "no", reason: "locked", lock: lockToWire(a.lock) }
    : a;
}

/** A snapshot-read part as the wire carries it (msgpack of this; see `_read_pieces.ts`). */
export function partOut(p: SnapshotPart<RangeEntry>): unknown {
  if ("lock" in p) return { lock: lockToWire(p.lock) };
  return {
    index: p.index,
    entries: p.entries.map((list) =>
      list.map(({ key, entry }) => [
        key,
        entry.value,
        entry.rev,
        entry.vs ?? 0,
        entry.encoding ?? 3,
        entry.expireAt ?? 0,
      ])
    ),
  };
}

function checkOut(c: SnapshotCheck): unknown {
  return c.valid ? { valid: true } : {
    valid: false,
    ...(c.lock === undefined ? {} : { lock: lockToWire(c.lock) }),
  };
}

/** The prepare of a KV Connect share: the transaction from headers, the share from the body. */
function kvcPrepare(
  headers: Headers,
  body: Uint8Array,
  self: string,
): TxnCommand<KvMutation> {
  const header = (name: string) => {
    const v = headers.get(name);
    if (v === null) throw new BadRequestError(`Missing ${name}`);
    return v;
  };
  const deadline = Number(header(TXN_HEADERS.deadline));
  if (!/^[0-9]{1,16}$/.test(header(TXN_HEADERS.deadline)) || !Number.isSafeInteger(deadline)) {
    throw new BadRequestError(`Invalid ${TXN_HEADERS.deadline}`);
  }
  let write;
  try {
    write = decodeAtomicWrite(body);
  } catch (e) {
    if (!(e instanceof DatapathDecodeError)) throw e;
    throw new BadRequestError(`Invalid AtomicWrite: ${e.message}`);
  }
  // A versionstamped key is made at the decision, by the primary's leader: only its share.
  if (
    header(TXN_HEADERS.primary) !== self &&
    write.mutations.some((m) => m.mutationType === MutationType.SET_SUFFIX_VERSIONSTAMPED_KEY)
  ) {
    throw new BadRequestError("A versionstamped key belongs in the primary's share");
  }
  const plan = planWrite(write);
  const cmd = plan.build(0, () => true, undefined)!;
  // In the log's form, so that it is checked exactly as a command sent to /v1/txn/command.
  return parseTxnCommand(encodeTxnEntry({
    at: 0,
    cmd: {
      type: "prepare",
      txn: header(TXN_HEADERS.txn),
      primary: header(TXN_HEADERS.primary),
      participants: header(TXN_HEADERS.participants).split(","),
      // A check of a versionstamp koi never hands out (vs 0 with bytes): it can never hold.
      checks: cmd.checks.map((k, i) => ({
        key: k.key,
        vs: i === plan.impossibleCheck ? 1 : k.vs ?? 0,
      })),
      mutations: plan.txnMutations(),
      deadline,
    },
  }));
}

/**
 * The refusal of a prepare with a key this cluster does not own under the table in force (the
 * state machine checks the routing state of a move only; before any move, the table decides),
 * or undefined.
 */
function misroutedPrepare(
  service: NodeService,
  cmd: TxnCommand<KvMutation>,
): TxnAnswer | undefined {
  if (cmd.type !== "prepare") return undefined;
  const keys = [
    ...cmd.checks.map((c) => c.key),
    ...cmd.mutations.filter((m) => m.type !== "set_vs").map((m) => m.key),
  ];
  for (const key of keys) {
    if (service.owns(key)) continue;
    return {
      vote: "no",
      reason: "refused",
      refusal: { code: "wrong_shard", owner: service.owner?.(key) ?? "", epoch: service.epoch() },
    };
  }
  return undefined;
}

/** Adds the transaction routes to `app`. */
export function routeTxn(app: Hono, deps: TxnDeps): void {
  const { service } = deps;
  const none = () => errorResponse(404, "not_found", "No transactions here");
  app.post(TXN_KVC_PREPARE_PATH, async (c) => {
    const run = service.txnCommand?.bind(service);
    if (run === undefined) return none();
    const body = await readBody(c.req.raw, TXN_BODY_BYTES_MAX, "Prepare");
    const cmd = kvcPrepare(c.req.raw.headers, body, service.clusterId);
    const misrouted = misroutedPrepare(service, cmd);
    if (misrouted !== undefined) return msgpack(answerOut(misrouted));
    return await deps.withLeader(c, body, () => run(cmd), (a) => msgpack(answerOut(a)));
  });
  app.post(TXN_COMMAND_PATH, async (c) => {
    const run = service.txnCommand?.bind(service);
    if (run === undefined) return none();
    const body = await readBody(c.req.raw, TXN_BODY_BYTES_MAX, "Transaction command");
    if (body.length < 2 || body[1] !== TXN_COMMAND_VERSION) {
      throw new BadRequestError("Invalid transaction command: not one");
    }
    const cmd = parseTxnCommand(body);
    const misrouted = misroutedPrepare(service, cmd);
    if (misrouted !== undefined) return msgpack(answerOut(misrouted));
    return await deps.withLeader(c, body, () => run(cmd), (a) => msgpack(answerOut(a)));
  });
  app.post(TXN_RECORDS_PATH, async (c) => {
    const records = service.txnRecords?.bind(service);
    if (records === undefined) return none();
    const body = await readBody(c.req.raw, TXN_BODY_BYTES_MAX, "Records request");
    const v = decodeBody(body, "The records request");
    if (!Array.isArray(v) || v.length !== 1 || !Number.isSafeInteger(v[0]) || v[0] < 1) {
      throw new BadRequestError(`A records request is [limit 1 to ${TXN_JANITOR_BATCH_MAX}]`);
    }
    const limit = Math.min(v[0], TXN_JANITOR_BATCH_MAX);
    return await deps.withLeader(
      c,
      body,
      () => records(limit),
      (r) =>
        msgpack({
          decisions: r.decisions.map((x) => [x.txn, x.vs, x.secondaries]),
          stale: r.stale.map((x) => [x.txn, x.primary, x.deadline]),
          pending: [r.pending.decisions, r.pending.primaries, r.pending.secondaries],
        }),
    );
  });
  app.post(TXN_HELD_PATH, async (c) => {
    const held = service.txnHeld?.bind(service);
    if (held === undefined) return none();
    const body = await readBody(c.req.raw, TXN_BODY_BYTES_MAX, "Held request");
    const v = decodeBody(body, "The held request");
    if (
      !Array.isArray(v) || v.length === 0 || v.length > TXN_JANITOR_BATCH_MAX ||
      !v.every((t) => typeof t === "string" && t.length > 0 && t.length <= 64)
    ) {
      throw new BadRequestError(`A held request is [txn, ...] (1 to ${TXN_JANITOR_BATCH_MAX})`);
    }
    return await deps.withLeader(c, body, () => held(v as string[]), (r) => msgpack(r));
  });
  app.post(TXN_READ_PATH, async (c) => {
    const part = service.snapshotPart?.bind(service);
    if (part === undefined) return none();
    const body = await readBody(c.req.raw, TXN_BODY_BYTES_MAX, "Snapshot read");
    const ranges = parseReadRanges(body);
    // A point read of a key this cluster does not own: the reader's table is out of date.
    for (const r of ranges) {
      if (isPointRange(r) && !service.owns(r.start)) {
        throw new WrongShardError(
          `Wrong shard: a key does not belong to cluster ${service.clusterId} at routing ` +
            `epoch ${service.epoch()}`,
          service.epoch(),
          service.owner?.(r.start),
        );
      }
    }
    return await deps.withLeader(c, body, () => part(ranges), (p) => {
      if ("lock" in p) return msgpack(partOut(p));
      const bytes = checkReadAnswerBytes(p.entries, deps.readAnswerBytesMax);
      return heldAnswer(
        deps.answers,
        bytes,
        () =>
          bytes < PIECED_ANSWER_BYTES_MIN
            ? msgpack(partOut(p))
            : piecedResponse(partPieces(p.index, p.entries), { "content-type": MSGPACK }),
      );
    });
  });
  app.post(TXN_CHECK_PATH, async (c) => {
    const check = service.snapshotCheck?.bind(service);
    if (check === undefined) return none();
    const body = await readBody(c.req.raw, TXN_BODY_BYTES_MAX, "Snapshot check");
    const { spans, since } = parseCheck(body);
    return await deps.withLeader(c, body, () => check(spans, since), (r) => msgpack(checkOut(r)));
  });
}

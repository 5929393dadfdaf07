import { decode, encodeToSlab } from "./_msgpack.ts";
import type { TxnLockInfo } from "../txn/mod.ts";

/**
 * A condition on one key, checked when the command applies: `rev > 0` requires the key to
 * exist with exactly that revision; `rev = 0` requires it to be absent. With `vs` the
 * versionstamp is compared instead (`vs = 0`: absent) and `rev` is ignored (KV Connect's
 * checks, docs/kv_connect.md).
 */
export interface KvCheck {
  /** The key (bytes, compared bytewise). */
  readonly key: Uint8Array;
  /** The required revision, or 0 for "absent". */
  readonly rev: number;
  /** The required versionstamp (its first 8 bytes as a number), or 0 for "absent". */
  readonly vs?: number;
}

/** How a value's bytes are to be read by KV Connect clients (its `ValueEncoding`). */
export const ValueEncoding = {
  /** A V8-serialized JavaScript value (what Deno.Kv writes for most values). */
  V8: 1,
  /** A little-endian u64 (Deno.KvU64): what sum, min and max work on. */
  LE64: 2,
  /** Plain bytes: every value written through koi's own API. */
  BYTES: 3,
} as const;

/** The operations that combine a stored little-endian u64 with an operand. */
export type KvNumericOp = "sum" | "min" | "max";

/** One change to the store. */
export type KvMutation =
  | {
    readonly type: "set";
    readonly key: Uint8Array;
    readonly value: Uint8Array;
    /** {@linkcode ValueEncoding}; absent: bytes. */
    readonly encoding?: number;
    /** When the key expires (ms since 1970; the log decides, see `expire`); absent: never. */
    readonly expireAt?: number;
  }
  | { readonly type: "delete"; readonly key: Uint8Array }
  | {
    /** `sum` (wrapping at 2^64), `min` or `max` of the stored u64 and `operand`. */
    readonly type: KvNumericOp;
    readonly key: Uint8Array;
    /** 8 bytes, little-endian. A missing key takes the operand. */
    readonly operand: Uint8Array;
  }
  | {
    /**
     * A set of the key `key` (the prefix) with the commit's versionstamp appended
     * (`suffixedKey`): only in a cross-cluster transaction's primary share, whose
     * leader picks a versionstamp whose final key its cluster owns (docs/transactions.md).
     */
    readonly type: "set_vs";
    readonly key: Uint8Array;
    readonly value: Uint8Array;
    /** {@linkcode ValueEncoding}. */
    readonly encoding: number;
    /** When the key expires (ms since 1970); 0: never. */
    readonly expireAt: number;
  }
  | {
    /**
     * Deletes the key if it has an expiry time at or before the command's time (from its
     * versionstamp); otherwise changes nothing. The leader proposes these: every replica
     * decides the same from the log, not from its own clock.
     */
    readonly type: "expire";
    readonly key: Uint8Array;
  };

/** A mutation as its effect on one key: a set or a delete. */
export type KvEffect = Extract<KvMutation, { readonly type: "set" | "delete" }>;

/**
 * The replicated command: every check holds, then every mutation applies, all or nothing, at
 * the log index of its entry (whose rev, the index plus the cluster's rev base, becomes the
 * `rev` of every key it sets). PUT, DELETE and
 * the conditional writes are its simplest cases; atomic batches are the general one.
 */
export interface KvCommand {
  /** `"<client>:<seq>"`: a retried command with the same id applies at most once. */
  readonly requestId?: string;
  /** Conditions that must all hold. */
  readonly checks: readonly KvCheck[];
  /** Changes applied when they hold. */
  readonly mutations: readonly KvMutation[];
  /**
   * The commit's versionstamp, chosen by the leader (docs/kv_connect.md, "Versionstamps"): it
   * must exceed the cluster's last one, or the command is refused with `stale_versionstamp`.
   * Absent: the last one plus 1.
   */
  readonly vs?: number;
}

/** What applying a command answered; a retried command gets the same answer. */
export type KvResult =
  | {
    readonly ok: true;
    /** The rev of the command (its log index plus the rev base): every set key's new rev. */
    readonly rev: number;
    /** Per mutation: whether the key existed before (meaningful for deletes). */
    readonly existed: readonly boolean[];
    /** The commit's versionstamp (absent in answers remembered by older versions). */
    readonly vs?: number;
  }
  | {
    readonly ok: false;
    /** A sum, min or max met a value that is not a u64, or an operand that is not one. */
    readonly code: "type_mismatch";
    /** Which mutation (position in `mutations`). */
    readonly mutation: number;
    /** What was wrong, for the client. */
    readonly message: string;
  }
  | {
    readonly ok: false;
    /**
     * The command's versionstamp is not above the cluster's last one (a new leader's clock
     * behind the old one's): nothing applied and nothing remembered; propose it again.
     */
    readonly code: "stale_versionstamp";
    /** The cluster's last versionstamp. */
    readonly vs: number;
  }
  | {
    readonly ok: false;
    /** A check failed. */
    readonly code: "precondition_failed";
    /** Which check (position in `checks`). */
    readonly check: number;
    /** The key's revision when it failed (0 = absent). */
    readonly rev: number;
  }
  | {
    readonly ok: false;
    /** Applying would make the store larger than its byte limit. */
    readonly code: "storage_full";
    /** The limit in bytes. */
    readonly bytesMax: number;
  }
  | {
    readonly ok: false;
    /** The request id's sequence number is older than the client's last applied one. */
    readonly code: "stale_request";
    /** The client's last applied sequence number. */
    readonly seq: number;
  }
  | {
    readonly ok: false;
    /**
     * A key of the command is not this cluster's under the routing state at the command's
     * log index (docs/resharding.md): nothing was applied, and nothing is remembered for
     * the request id (a retry at the right cluster applies).
     */
    readonly code: "wrong_shard";
    /** The cluster that owns the key, as this one knows it. */
    readonly owner: string;
    /** The epoch clients should route by. */
    readonly epoch: number;
  }
  | {
    readonly ok: false;
    /**
     * A key of the command is locked by a cross-cluster transaction in flight
     * (docs/transactions.md): nothing was applied, nothing is remembered for the request id;
     * propose it again once the lock is gone.
     */
    readonly code: "locked";
    /** The lock. */
    readonly lock: TxnLockInfo;
  }
  | {
    readonly ok: false;
    /**
     * A routing command does not fit the routing state (another epoch, a cursor going back,
     * a key that does not move here), or a destination's copies do not match the source's.
     */
    readonly code: "route_refused" | "stage_mismatch";
    /** Why, for the admin's log. */
    readonly reason: string;
  };

/** A command that does not decode: a bug or a foreign log. */
export class CommandDecodeError extends Error {
  /** Creates the error with the reason (`kind`: which command, "KV" by default). */
  constructor(reason: string, kind = "KV") {
    super(`Cannot decode a ${kind} command: ${reason}`);
    this.name = "CommandDecodeError";
  }
}

const COMMAND_VERSION = 1;
/**
 * The format with versionstamps, value encodings, expiry and numeric mutations (version 2 is
 * taken: routing commands start with it, see `isRouteCommand`).
 */
const COMMAND_VERSION_EXTENDED = 3;
const NUMERIC_CODES: Readonly<Record<KvNumericOp, number>> = { sum: 2, min: 3, max: 4 };
const NUMERIC_OPS: readonly (KvNumericOp | undefined)[] = [
  undefined,
  undefined,
  "sum",
  "min",
  "max",
];
const EXPIRE_CODE = 5;
const SET_VS_CODE = 6;

function isPlain(c: KvCommand): boolean {
  if (c.vs !== undefined) return false;
  for (const k of c.checks) if (k.vs !== undefined) return false;
  for (const m of c.mutations) {
    if (m.type === "delete") continue;
    if (m.type !== "set" || m.encoding !== undefined || m.expireAt !== undefined) return false;
  }
  return true;
}

/** A mutation as its wire record (for the log and for transaction intents). */
export function encodeMutation(m: KvMutation): unknown[] {
  switch (m.type) {
    case "set":
      return m.encoding === undefined && m.expireAt === undefined
        ? [0, m.key, m.value]
        : [0, m.key, m.value, m.encoding ?? ValueEncoding.BYTES, m.expireAt ?? 0];
    case "delete":
      return [1, m.key];
    case "expire":
      return [EXPIRE_CODE, m.key];
    case "set_vs":
      return [SET_VS_CODE, m.key, m.value, m.encoding, m.expireAt];
    default:
      return [NUMERIC_CODES[m.type], m.key, m.operand];
  }
}

/**
 * Encodes a command for a log entry (small ones share a slab buffer with the entries around
 * them; see `_byte_slab.ts`). Commands of koi's own API keep the first format, so their
 * entries are as small as before.
 */
export function encodeCommand(c: KvCommand): Uint8Array {
  if (isPlain(c)) {
    return encodeToSlab([
      COMMAND_VERSION,
      c.requestId ?? null,
      c.checks.map((k) => [k.key, k.rev]),
      c.mutations.map(encodeMutation),
    ]);
  }
  return encodeToSlab([
    COMMAND_VERSION_EXTENDED,
    c.requestId ?? null,
    c.checks.map((k) => (k.vs === undefined ? [k.key, k.rev] : [k.key, k.rev, k.vs])),
    c.mutations.map(encodeMutation),
    c.vs ?? null,
  ]);
}

function isNat(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Decodes and validates a command from a log entry. */
export function decodeCommand(data: Uint8Array): KvCommand {
  const v = decode(data);
  const extended = Array.isArray(v) && v.length === 5 && v[0] === COMMAND_VERSION_EXTENDED;
  if (!Array.isArray(v) || !(extended || (v.length === 4 && v[0] === COMMAND_VERSION))) {
    throw new CommandDecodeError("not a version 1 or 3 command");
  }
  const [, requestId, checks, mutations, vs] = v;
  if (requestId !== null && typeof requestId !== "string") {
    throw new CommandDecodeError("request id");
  }
  if (!Array.isArray(checks) || !Array.isArray(mutations)) throw new CommandDecodeError("lists");
  if (extended && vs !== null && !isNat(vs)) throw new CommandDecodeError("versionstamp");
  const outChecks: KvCheck[] = checks.map((k) => {
    if (!Array.isArray(k) || !(k[0] instanceof Uint8Array) || !isNat(k[1])) {
      throw new CommandDecodeError("check");
    }
    if (k.length === 2) return { key: k[0], rev: k[1] };
    if (!extended || k.length !== 3 || !isNat(k[2])) throw new CommandDecodeError("check");
    return { key: k[0], rev: k[1], vs: k[2] };
  });
  const outMutations: KvMutation[] = mutations.map((m) => decodeMutation(m, extended));
  return {
    ...(requestId === null ? {} : { requestId }),
    checks: outChecks,
    mutations: outMutations,
    ...(extended && vs !== null ? { vs } : {}),
  };
}

/** Decodes a mutation's wire record (`extended`: the version 3 forms are allowed). */
export function decodeMutation(m: unknown, extended: boolean): KvMutation {
  if (!Array.isArray(m) || !(m[1] instanceof Uint8Array)) throw new CommandDecodeError("mutation");
  const key = m[1];
  if (m[0] === 0 && m[2] instanceof Uint8Array) {
    if (m.length === 3) return { type: "set", key, value: m[2] };
    if (extended && m.length === 5 && isNat(m[3]) && m[3] >= 1 && m[3] <= 3 && isNat(m[4])) {
      return {
        type: "set",
        key,
        value: m[2],
        encoding: m[3],
        ...(m[4] > 0 ? { expireAt: m[4] } : {}),
      };
    }
  }
  if (m[0] === 1 && m.length === 2) return { type: "delete", key };
  if (extended && m[0] === EXPIRE_CODE && m.length === 2) return { type: "expire", key };
  if (
    extended && m[0] === SET_VS_CODE && m.length === 5 && m[2] instanceof Uint8Array &&
    isNat(m[3]) && m[3] >= 1 && m[3] <= 3 && isNat(m[4])
  ) {
    return { type: "set_vs", key, value: m[2], encoding: m[3], expireAt: m[4] };
  }
  const op = extended && typeof m[0] === "number" ? NUMERIC_OPS[m[0]] : undefined;
  if (op !== undefined && m.length === 3 && m[2] instanceof Uint8Array && m[2].length === 8) {
    return { type: op, key, operand: m[2] };
  }
  throw new CommandDecodeError("mutation");
}

/** Splits a request id `"<client>:<seq>"`; undefined when malformed. */
export function parseRequestId(id: string): { client: string; seq: number } | undefined {
  const colon = id.lastIndexOf(":");
  if (colon <= 0 || colon > 128) return undefined;
  const seqText = id.slice(colon + 1);
  if (!/^[0-9]{1,15}$/.test(seqText)) return undefined;
  return { client: id.slice(0, colon), seq: Number(seqText) };
}

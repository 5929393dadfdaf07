import { decode, encodeToSlab } from "./_msgpack.ts";

/**
 * A condition on one key, checked when the command applies: `rev > 0` requires the key to
 * exist with exactly that revision; `rev = 0` requires it to be absent.
 */
export interface KvCheck {
  /** The key (bytes, compared bytewise). */
  readonly key: Uint8Array;
  /** The required revision, or 0 for "absent". */
  readonly rev: number;
}

/** One change to the store. */
export type KvMutation =
  | { readonly type: "set"; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly type: "delete"; readonly key: Uint8Array };

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
}

/** What applying a command answered; a retried command gets the same answer. */
export type KvResult =
  | {
    readonly ok: true;
    /** The rev of the command (its log index plus the rev base): every set key's new rev. */
    readonly rev: number;
    /** Per mutation: whether the key existed before (meaningful for deletes). */
    readonly existed: readonly boolean[];
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
 * Encodes a command for a log entry (small ones share a slab buffer with the entries around
 * them; see `_byte_slab.ts`).
 */
export function encodeCommand(c: KvCommand): Uint8Array {
  return encodeToSlab([
    COMMAND_VERSION,
    c.requestId ?? null,
    c.checks.map((k) => [k.key, k.rev]),
    c.mutations.map((m) => (m.type === "set" ? [0, m.key, m.value] : [1, m.key])),
  ]);
}

function isNat(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Decodes and validates a command from a log entry. */
export function decodeCommand(data: Uint8Array): KvCommand {
  const v = decode(data);
  if (!Array.isArray(v) || v.length !== 4 || v[0] !== COMMAND_VERSION) {
    throw new CommandDecodeError("not a version 1 command");
  }
  const [, requestId, checks, mutations] = v;
  if (requestId !== null && typeof requestId !== "string") {
    throw new CommandDecodeError("request id");
  }
  if (!Array.isArray(checks) || !Array.isArray(mutations)) throw new CommandDecodeError("lists");
  const outChecks: KvCheck[] = checks.map((k) => {
    if (!Array.isArray(k) || !(k[0] instanceof Uint8Array) || !isNat(k[1])) {
      throw new CommandDecodeError("check");
    }
    return { key: k[0], rev: k[1] };
  });
  const outMutations: KvMutation[] = mutations.map((m) => {
    if (
      Array.isArray(m) && m[0] === 0 && m[1] instanceof Uint8Array && m[2] instanceof Uint8Array
    ) {
      return { type: "set", key: m[1], value: m[2] };
    }
    if (Array.isArray(m) && m[0] === 1 && m[1] instanceof Uint8Array && m.length === 2) {
      return { type: "delete", key: m[1] };
    }
    throw new CommandDecodeError("mutation");
  });
  return {
    ...(requestId === null ? {} : { requestId }),
    checks: outChecks,
    mutations: outMutations,
  };
}

/** Splits a request id `"<client>:<seq>"`; undefined when malformed. */
export function parseRequestId(id: string): { client: string; seq: number } | undefined {
  const colon = id.lastIndexOf(":");
  if (colon <= 0 || colon > 128) return undefined;
  const seqText = id.slice(colon + 1);
  if (!/^[0-9]{1,15}$/.test(seqText)) return undefined;
  return { client: id.slice(0, colon), seq: Number(seqText) };
}

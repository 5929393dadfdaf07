/**
 * The replicated commands of a move between routing epochs (docs/resharding.md): the admin
 * proposes them at the clusters' leaders, and each cluster's state machine applies them in
 * log order like any write. Encoded as msgpack arrays after a version tag of their own, so
 * that a log can hold both kinds of command and a decoder tells them apart.
 *
 * @module
 */
import type { CarpScheme } from "../carp/mod.ts";
import { decode, encodeToSlab } from "./_msgpack.ts";
import { msgpackShape } from "./_msgpack_shape.ts";
import { CommandDecodeError, type KvResult } from "./kv_command.ts";
import type { TableSpec } from "./_routing_state.ts";

/**
 * The deepest nesting and the most values a routing command may have: a stage of a full batch
 * holds about four values per key, sessions about fifteen per record (4,096 at most).
 */
export const ROUTE_COMMAND_SHAPE_MAX = { depth: 8, values: 100_000 } as const;

/** The first element of every encoded routing command (KV commands start with 1). */
export const ROUTE_COMMAND_VERSION = 2;

/** A key's KV Connect metadata: versionstamp, value encoding, expiry time (0: never). */
export type KeyMeta = readonly [vs: number, encoding: number, expireAt: number];

/** A key as it was at the source: value and rev (and its metadata, when it has any). */
export interface StagedKey {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly rev: number;
  readonly meta?: KeyMeta;
}

/** The wire form of a staged or moving key: `[key, value, rev]` or `[key, value, rev, meta]`. */
export function stagedKeyToWire(p: StagedKey): unknown[] {
  return p.meta === undefined ? [p.key, p.value, p.rev] : [p.key, p.value, p.rev, p.meta];
}

/** A staged or moving key from its wire form; undefined when malformed. */
export function stagedKeyFromWire(p: unknown): StagedKey | undefined {
  if (!Array.isArray(p) || (p.length !== 3 && p.length !== 4)) return undefined;
  const [key, value, rev, meta] = p;
  if (!(key instanceof Uint8Array) || !(value instanceof Uint8Array) || !isNatural(rev)) {
    return undefined;
  }
  if (p.length === 3) return { key, value, rev };
  if (
    !Array.isArray(meta) || meta.length !== 3 || !meta.every(isNatural) || meta[1] < 1 ||
    meta[1] > 3
  ) {
    return undefined;
  }
  return { key, value, rev, meta: [meta[0], meta[1], meta[2]] };
}

function isNatural(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** A client's last request id record, as copied from a source to a destination. */
export interface SessionRecord {
  readonly client: string;
  readonly seq: number;
  readonly result: KvResult;
}

/** One routing command. Cursors are key bytes, or null for the end of the keyspace. */
export type RouteCommand =
  /** Starts the move from table `from` (the one in force) to `to` (epoch + 1). */
  | { readonly type: "begin"; readonly from: TableSpec; readonly to: TableSpec }
  /** At a source: its moving keys below `upTo` stop being its own. Answers its rev. */
  | { readonly type: "fence"; readonly epoch: number; readonly upTo: Uint8Array | null }
  /**
   * At a destination: stores copies of keys moving from `source` (not owned yet). `clear`
   * first deletes every copy from `source` in `[from, upTo)`.
   */
  | {
    readonly type: "stage";
    readonly epoch: number;
    readonly source: string;
    readonly clear?: { readonly from: Uint8Array; readonly upTo: Uint8Array | null };
    readonly puts: readonly StagedKey[];
    readonly deletes: readonly Uint8Array[];
  }
  /** At a destination: merges request-id records (the greater seq of a client wins). */
  | {
    readonly type: "sessions";
    readonly epoch: number;
    readonly records: readonly SessionRecord[];
  }
  /**
   * At a destination: after checking that its copies from `source` in `[received, upTo)` are
   * exactly `count` keys with `digest`, owns them, and keeps its revs above `revFloor`.
   */
  | {
    readonly type: "switch";
    readonly epoch: number;
    readonly source: string;
    readonly upTo: Uint8Array | null;
    readonly count: number;
    readonly digest: string;
    readonly revFloor: number;
  }
  /** At a source: deletes its keys in `[from, upTo)` that moved away (fenced ones only). */
  | {
    readonly type: "drop";
    readonly epoch: number;
    readonly from: Uint8Array;
    readonly upTo: Uint8Array | null;
  }
  /** Everywhere, once every key moved: the next table is in force. */
  | { readonly type: "finish"; readonly epoch: number };

const TYPES = ["begin", "fence", "stage", "sessions", "switch", "drop", "finish"] as const;

function tableWire(t: TableSpec): unknown[] {
  return [t.scheme, t.epoch, t.members.map((m) => [m.id, m.loadFactor])];
}

/** Encodes a routing command for a log entry. */
export function encodeRouteCommand(c: RouteCommand): Uint8Array {
  const tag = TYPES.indexOf(c.type);
  switch (c.type) {
    case "begin":
      return encodeToSlab([ROUTE_COMMAND_VERSION, tag, tableWire(c.from), tableWire(c.to)]);
    case "fence":
      return encodeToSlab([ROUTE_COMMAND_VERSION, tag, c.epoch, c.upTo]);
    case "stage":
      return encodeToSlab([
        ROUTE_COMMAND_VERSION,
        tag,
        c.epoch,
        c.source,
        c.clear === undefined ? null : [c.clear.from, c.clear.upTo],
        c.puts.map(stagedKeyToWire),
        c.deletes,
      ]);
    case "sessions":
      return encodeToSlab([
        ROUTE_COMMAND_VERSION,
        tag,
        c.epoch,
        c.records.map((r) => [r.client, r.seq, r.result]),
      ]);
    case "switch":
      return encodeToSlab([
        ROUTE_COMMAND_VERSION,
        tag,
        c.epoch,
        c.source,
        c.upTo,
        c.count,
        c.digest,
        c.revFloor,
      ]);
    case "drop":
      return encodeToSlab([ROUTE_COMMAND_VERSION, tag, c.epoch, c.from, c.upTo]);
    case "finish":
      return encodeToSlab([ROUTE_COMMAND_VERSION, tag, c.epoch]);
  }
}

/** Whether an entry's data is a routing command (rather than a KV command). */
export function isRouteCommand(data: Uint8Array): boolean {
  // A msgpack array header (fixarray 0x90-0x9f) then the positive fixint 2.
  return data.length >= 2 && (data[0] & 0xf0) === 0x90 && data[1] === ROUTE_COMMAND_VERSION;
}

function bad(what: string): never {
  throw new CommandDecodeError(what, "routing");
}

function nat(v: unknown, what: string): number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : bad(what);
}

function bytes(v: unknown, what: string): Uint8Array {
  return v instanceof Uint8Array ? v : bad(what);
}

function cursor(v: unknown, what: string): Uint8Array | null {
  return v === null ? null : bytes(v, what);
}

function text(v: unknown, what: string): string {
  return typeof v === "string" && v.length > 0 && v.length <= 256 ? v : bad(what);
}

function table(v: unknown): TableSpec {
  if (!Array.isArray(v) || v.length !== 3 || !Array.isArray(v[2])) bad("table");
  const [scheme, epoch, members] = v as [unknown, unknown, unknown[]];
  if (scheme !== "carp" && scheme !== "carp64") bad("table scheme");
  return {
    scheme: scheme as CarpScheme,
    epoch: nat(epoch, "table epoch"),
    members: members.map((m) => {
      if (!Array.isArray(m) || m.length !== 2 || typeof m[1] !== "number") bad("table member");
      return { id: text(m[0], "member id"), loadFactor: m[1] as number };
    }),
  };
}

function result(v: unknown): KvResult {
  if (typeof v !== "object" || v === null || typeof (v as { ok?: unknown }).ok !== "boolean") {
    bad("session result");
  }
  return v as KvResult;
}

/** Decodes and checks the shape of a routing command (tables are checked when applied). */
export function decodeRouteCommand(data: Uint8Array): RouteCommand {
  // Shallow by design: a body that nests deeper, or holds more values than a full batch, is
  // refused before the decoder allocates for it.
  if (msgpackShape(data, ROUTE_COMMAND_SHAPE_MAX) === undefined) {
    bad(
      `not one msgpack value of at most ${ROUTE_COMMAND_SHAPE_MAX.depth} levels and ` +
        `${ROUTE_COMMAND_SHAPE_MAX.values} values`,
    );
  }
  const v = decode(data);
  if (!Array.isArray(v) || v[0] !== ROUTE_COMMAND_VERSION) bad("not a routing command");
  const type = TYPES[v[1] as number];
  const f = v.slice(2);
  const arity: Record<(typeof TYPES)[number], number> = {
    begin: 2,
    fence: 2,
    stage: 5,
    sessions: 2,
    switch: 6,
    drop: 3,
    finish: 1,
  };
  if (type === undefined || f.length !== arity[type]) bad("unknown type or wrong arity");
  switch (type) {
    case "begin":
      return { type, from: table(f[0]), to: table(f[1]) };
    case "fence":
      return { type, epoch: nat(f[0], "epoch"), upTo: cursor(f[1], "upTo") };
    case "stage": {
      const clear = f[2];
      if (clear !== null && (!Array.isArray(clear) || clear.length !== 2)) bad("clear");
      if (!Array.isArray(f[3]) || !Array.isArray(f[4])) bad("stage lists");
      return {
        type,
        epoch: nat(f[0], "epoch"),
        source: text(f[1], "source"),
        ...(clear === null ? {} : {
          clear: { from: bytes(clear[0], "clear from"), upTo: cursor(clear[1], "clear upTo") },
        }),
        puts: (f[3] as unknown[]).map((p) => stagedKeyFromWire(p) ?? bad("staged key")),
        deletes: (f[4] as unknown[]).map((k) => bytes(k, "deleted key")),
      };
    }
    case "sessions":
      if (!Array.isArray(f[1])) bad("records");
      return {
        type,
        epoch: nat(f[0], "epoch"),
        records: (f[1] as unknown[]).map((r) => {
          if (!Array.isArray(r) || r.length !== 3) bad("record");
          return { client: text(r[0], "client"), seq: nat(r[1], "seq"), result: result(r[2]) };
        }),
      };
    case "switch":
      return {
        type,
        epoch: nat(f[0], "epoch"),
        source: text(f[1], "source"),
        upTo: cursor(f[2], "upTo"),
        count: nat(f[3], "count"),
        digest: typeof f[4] === "string" && f[4].length <= 64 ? f[4] : bad("digest"),
        revFloor: nat(f[5], "revFloor"),
      };
    case "drop":
      return {
        type,
        epoch: nat(f[0], "epoch"),
        from: bytes(f[1], "from"),
        upTo: cursor(f[2], "upTo"),
      };
    case "finish":
      return { type, epoch: nat(f[0], "epoch") };
  }
}

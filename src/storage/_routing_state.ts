/**
 * The routing a cluster obeys, replicated in its state machine (docs/resharding.md): the
 * table in force and, while keys move, the next table with the cursors of the move. Pure:
 * the state machine applies the commands that change it, and asks it who owns a key.
 *
 * Cursors are positions in the byte order of keys, as binary strings (one char per byte,
 * the state machine's key form), or `null` for the end of the keyspace.
 *
 * @module
 */
import { type CarpMember, type CarpScheme, CarpTable } from "../carp/mod.ts";
import { keyBytes, keyString } from "./_sm_snapshot.ts";

/**
 * The first byte of koi's own per-cluster records (node/_system_keys.ts): they belong to the
 * cluster that holds them, under every table, and never move.
 */
export const LOCAL_KEY_BYTE = 0xff;

/** Whether `k` (binary string) is one of koi's own per-cluster records. */
export function isLocalKey(k: string): boolean {
  return k.length > 0 && k.charCodeAt(0) === LOCAL_KEY_BYTE;
}

/** A position in the byte order of keys (a binary string), or null: after every key. */
export type Cursor = string | null;

/** Whether key `k` (binary string) lies below cursor `c`. */
export function below(k: string, c: Cursor): boolean {
  return c === null || k < c;
}

/** `a <= b` for cursors. */
export function cursorAtMost(a: Cursor, b: Cursor): boolean {
  return b === null || (a !== null && a <= b);
}

/** A table as the routing commands carry it. */
export interface TableSpec {
  readonly scheme: CarpScheme;
  readonly epoch: number;
  readonly members: readonly CarpMember[];
}

/** The move to the next epoch, as far as this cluster knows it. */
export interface MoveState {
  /** The table of the next epoch. */
  readonly table: CarpTable;
  /** As a source: its moving keys below this are no longer its own ("" = none fenced). */
  readonly fenced: Cursor;
  /** As a destination: per source cluster, the keys moving from it below this are its own. */
  readonly received: ReadonlyMap<string, Cursor>;
}

/** How far a destination has switched the keys moving from `source` ("" = none yet). */
export function receivedFrom(move: MoveState, source: string): Cursor {
  // Not `?? ""`: null is END, a cursor of its own.
  return move.received.has(source) ? move.received.get(source)! : "";
}

/** Who owns a key, as one cluster's routing state sees it. */
export interface Ownership {
  /** Whether this cluster owns it. */
  readonly owned: boolean;
  /**
   * The cluster that owns it as far as this one knows (itself when owned). While the key is
   * between a fence and a switch, the other side of the move (the client will be told).
   */
  readonly owner: string;
}

/** The routing state of one cluster (immutable: the commands make new ones). */
export class RoutingState {
  /** The table in force. */
  readonly table: CarpTable;
  /** The move to the next table, while one runs. */
  readonly move: MoveState | undefined;

  /** Creates a state: `table` in force, `move` to the next one when a move runs. */
  constructor(table: CarpTable, move?: MoveState) {
    this.table = table;
    this.move = move;
  }

  /** The epoch a client should route by: the next one during a move. */
  get epoch(): number {
    return this.move?.table.epoch ?? this.table.epoch;
  }

  /** Whether cluster `self` owns key `k` (binary string), and who does. */
  ownership(self: string, k: string): Ownership {
    if (isLocalKey(k)) return { owned: true, owner: self };
    const bytes = keyBytes(k);
    const old = this.table.owner(bytes);
    const move = this.move;
    if (move === undefined) return { owned: old === self, owner: old };
    const next = move.table.owner(bytes);
    if (old === next) return { owned: old === self, owner: old };
    if (old === self) {
      // A source: its own until fenced; then the destination's (or in the gap before it).
      return below(k, move.fenced) ? { owned: false, owner: next } : { owned: true, owner: self };
    }
    if (next === self) {
      return below(k, receivedFrom(move, old))
        ? { owned: true, owner: self }
        : { owned: false, owner: old };
    }
    // Moving between two other clusters: point at the destination, which points back if it
    // has not switched yet.
    return { owned: false, owner: next };
  }

  /** Whether `k` moves from cluster `source` to cluster `self` in the running move. */
  movesTo(self: string, source: string, k: string): boolean {
    if (this.move === undefined || isLocalKey(k)) return false;
    const bytes = keyBytes(k);
    return this.table.owner(bytes) === source && this.move.table.owner(bytes) === self;
  }

  /** Whether `k` moves away from cluster `self` in the running move. */
  movesFrom(self: string, k: string): boolean {
    if (this.move === undefined || isLocalKey(k)) return false;
    const bytes = keyBytes(k);
    return this.table.owner(bytes) === self && this.move.table.owner(bytes) !== self;
  }

  /** The state as plain data (for snapshots and status answers). */
  toSpec(): RoutingSpec {
    return {
      table: specOf(this.table),
      ...(this.move === undefined ? {} : {
        move: {
          table: specOf(this.move.table),
          fenced: this.move.fenced,
          received: Object.fromEntries(this.move.received),
        },
      }),
    };
  }

  /** Rebuilds a state from {@linkcode RoutingState.toSpec}'s data; throws on bad data. */
  static fromSpec(spec: RoutingSpec): RoutingState {
    const table = tableOf(spec.table);
    if (spec.move === undefined) return new RoutingState(table);
    const received = new Map<string, Cursor>();
    for (const [id, c] of Object.entries(spec.move.received)) received.set(id, c);
    return new RoutingState(table, {
      table: tableOf(spec.move.table),
      fenced: spec.move.fenced,
      received,
    });
  }
}

/** {@linkcode RoutingState} as plain data. */
export interface RoutingSpec {
  readonly table: TableSpec;
  readonly move?: {
    readonly table: TableSpec;
    readonly fenced: Cursor;
    readonly received: Readonly<Record<string, Cursor>>;
  };
}

/** The plain data of a table. */
export function specOf(t: CarpTable): TableSpec {
  return {
    scheme: t.scheme,
    epoch: t.epoch,
    members: t.members.map((m) => ({ id: m.id, loadFactor: m.loadFactor })),
  };
}

/** A table from its plain data (throws `CarpConfigError` when invalid). */
export function tableOf(spec: TableSpec): CarpTable {
  return new CarpTable({ scheme: spec.scheme, epoch: spec.epoch, members: spec.members });
}

/** Whether two tables route every key the same way and have the same epoch. */
export function sameTable(a: TableSpec, b: TableSpec): boolean {
  if (a.scheme !== b.scheme || a.epoch !== b.epoch || a.members.length !== b.members.length) {
    return false;
  }
  const byId = new Map(b.members.map((m) => [m.id, m.loadFactor]));
  return a.members.every((m) => byId.get(m.id) === m.loadFactor);
}

function cursorWire(c: Cursor): Uint8Array | null {
  return c === null ? null : keyBytes(c);
}

/** {@linkcode RoutingSpec} as msgpack-ready data (cursors as bytes) for snapshots. */
export function routingToWire(spec: RoutingSpec): unknown {
  const table = (t: TableSpec) => [t.scheme, t.epoch, t.members.map((m) => [m.id, m.loadFactor])];
  return [
    table(spec.table),
    spec.move === undefined ? null : [
      table(spec.move.table),
      cursorWire(spec.move.fenced),
      Object.entries(spec.move.received).map(([id, c]) => [id, cursorWire(c)]),
    ],
  ];
}

/** Reads {@linkcode routingToWire}'s data; undefined when it is not that shape. */
export function routingFromWire(v: unknown): RoutingState | undefined {
  const table = (t: unknown): TableSpec | undefined => {
    if (!Array.isArray(t) || t.length !== 3 || !Array.isArray(t[2])) return undefined;
    const [scheme, epoch, members] = t;
    if ((scheme !== "carp" && scheme !== "carp64") || !Number.isSafeInteger(epoch)) {
      return undefined;
    }
    const ms = (members as unknown[]).map((m) =>
      Array.isArray(m) && typeof m[0] === "string" && typeof m[1] === "number"
        ? { id: m[0], loadFactor: m[1] }
        : undefined
    );
    if (ms.some((m) => m === undefined)) return undefined;
    return { scheme, epoch, members: ms as CarpMember[] };
  };
  const cursor = (c: unknown): Cursor | undefined =>
    c === null ? null : c instanceof Uint8Array ? keyString(c) : undefined;
  if (!Array.isArray(v) || v.length !== 2) return undefined;
  const t = table(v[0]);
  if (t === undefined) return undefined;
  try {
    if (v[1] === null) return RoutingState.fromSpec({ table: t });
    const m = v[1];
    if (!Array.isArray(m) || m.length !== 3 || !Array.isArray(m[2])) return undefined;
    const next = table(m[0]);
    const fenced = cursor(m[1]);
    if (next === undefined || fenced === undefined) return undefined;
    const received: Record<string, Cursor> = {};
    for (const r of m[2] as unknown[]) {
      if (!Array.isArray(r) || typeof r[0] !== "string") return undefined;
      const c = cursor(r[1]);
      if (c === undefined) return undefined;
      received[r[0]] = c;
    }
    return RoutingState.fromSpec({ table: t, move: { table: next, fenced, received } });
  } catch {
    return undefined; // a table that does not validate
  }
}

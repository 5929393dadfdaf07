/**
 * How a cluster's state machine applies the routing commands of a move (docs/resharding.md).
 * Each command is checked in full before anything changes: a command that does not fit the
 * routing state (another epoch, a cursor that goes back, a key that does not move here) is
 * refused with a reason and changes nothing, so a retried or stale command from an admin that
 * crashed and resumed is harmless.
 *
 * @module
 */
import type { KvResult } from "./kv_command.ts";
import type { RouteCommand, SessionRecord } from "./route_command.ts";
import {
  below,
  type Cursor,
  cursorAtMost,
  isLocalKey,
  receivedFrom,
  RoutingState,
  sameTable,
  specOf,
  tableOf,
} from "./_routing_state.ts";
import { keyString } from "./_sm_snapshot.ts";
import { StoredValue } from "./_packed_value.ts";

/** Records one `sessions` command may carry (their stamps share the entry's index). */
export const SESSIONS_PER_COMMAND_MAX = 4096;

/** What applying a routing command needs of the state machine. */
export interface RouteHost {
  /** This cluster's id. */
  readonly clusterId: string;
  /** The routing state (undefined before the first move). */
  routing: RoutingState | undefined;
  /** Added to log indexes to make revs. */
  revBase: number;
  /** Bytes of keys and values held, and the limit. */
  readonly bytes: number;
  readonly bytesMax: number;
  /** Every key at or after `from` (binary strings), in order, until `fn` returns false. */
  scan(from: string, fn: (k: string, v: StoredValue) => boolean): void;
  get(k: string): StoredValue | undefined;
  set(k: string, v: StoredValue): void;
  delete(k: string): void;
  /** Merges one request-id record (kept only when its seq is greater than the client's). */
  mergeSession(record: SessionRecord, stamp: number): void;
  /** The keys cross-cluster transactions hold locks on (binary strings). */
  lockedKeys(): Iterable<string>;
}

function refused(reason: string): KvResult {
  return { ok: false, code: "route_refused", reason };
}

function cursorOf(c: Uint8Array | null): Cursor {
  return c === null ? null : keyString(c);
}

/**
 * An order-independent digest of `(key, rev)` pairs: two lanes of a 32-bit multiplicative
 * hash per pair, summed. Keys are binary strings.
 */
export class PairDigest {
  #a = 0;
  #b = 0;
  #count = 0;

  /** Adds one pair. */
  add(k: string, rev: number): void {
    let h1 = 0x811c9dc5 ^ rev;
    let h2 = 0x01000193 ^ Math.floor(rev / 0x100000000);
    for (let i = 0; i < k.length; i++) {
      const c = k.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 15);
    }
    h1 = Math.imul(h1 ^ (h1 >>> 16), 0x85ebca6b);
    h2 = Math.imul(h2 ^ (h2 >>> 13), 0xc2b2ae35);
    this.#a = (this.#a + (h1 >>> 0)) >>> 0;
    this.#b = (this.#b + (h2 >>> 0)) >>> 0;
    this.#count++;
  }

  /** Adds one pair whose key is given as bytes. */
  addBytes(key: Uint8Array, rev: number): void {
    this.add(keyString(key), rev);
  }

  /** Pairs added. */
  get count(): number {
    return this.#count;
  }

  /** The digest as 16 hex digits. */
  get hex(): string {
    return this.#a.toString(16).padStart(8, "0") + this.#b.toString(16).padStart(8, "0");
  }
}

/** Applies routing command `c` at log index `index`; the answer says what happened. */
export function applyRouteCommand(host: RouteHost, c: RouteCommand, index: number): KvResult {
  const done = (): KvResult => ({ ok: true, rev: index + host.revBase, existed: [] });
  if (c.type === "begin") return begin(host, c, done);
  const routing = host.routing;
  const move = routing?.move;
  if (c.type === "finish" && move === undefined && routing?.table.epoch === c.epoch) {
    return done(); // finished already: an admin that resumes after some finishes
  }
  if (routing === undefined || move === undefined) {
    return refused(`no move runs in cluster ${host.clusterId}`);
  }
  if (c.epoch !== move.table.epoch) {
    return refused(`the move runs to epoch ${move.table.epoch}, not ${c.epoch}`);
  }
  const self = host.clusterId;
  switch (c.type) {
    case "fence": {
      const upTo = cursorOf(c.upTo);
      if (!cursorAtMost(move.fenced, upTo)) return refused("the fence cursor would go back");
      // A prepared transaction would commit here after the copy: the fence waits for it.
      for (const k of host.lockedKeys()) {
        if (routing.movesFrom(self, k) && below(k, upTo)) {
          return refused("a cross-cluster transaction holds a key of the batch: try again");
        }
      }
      host.routing = new RoutingState(routing.table, { ...move, fenced: upTo });
      return done();
    }
    case "stage":
      return stage(host, routing, c, done);
    case "sessions": {
      if (c.records.length > SESSIONS_PER_COMMAND_MAX) return refused("too many session records");
      c.records.forEach((r, i) => host.mergeSession(r, stampOf(index, i)));
      return done();
    }
    case "switch": {
      const from = receivedFrom(move, c.source);
      const upTo = cursorOf(c.upTo);
      if (!routing.table.members.some((m) => m.id === c.source)) {
        return refused(`cluster ${c.source} is not in the table in force`);
      }
      if (from === upTo) return done(); // switched already: an admin that resumes
      if (!cursorAtMost(from, upTo)) return refused("the switch cursor would go back");
      const digest = new PairDigest();
      if (from !== null) {
        host.scan(from, (k, v) => {
          if (!below(k, upTo)) return false;
          if (routing.movesTo(self, c.source, k)) digest.add(k, v.rev);
          return true;
        });
      }
      if (digest.count !== c.count || digest.hex !== c.digest) {
        return {
          ok: false,
          code: "stage_mismatch",
          reason: `cluster ${self} holds ${digest.count} keys from ${c.source} in the range ` +
            `(digest ${digest.hex}), the source ${c.count} (digest ${c.digest})`,
        };
      }
      const received = new Map(move.received);
      received.set(c.source, upTo);
      host.routing = new RoutingState(routing.table, { ...move, received });
      // Revs above every rev the source had at its fence, from the next entry on.
      host.revBase = Math.max(host.revBase, c.revFloor - index);
      return done();
    }
    case "drop": {
      const upTo = cursorOf(c.upTo);
      if (!cursorAtMost(upTo, move.fenced)) return refused("cannot drop keys not fenced");
      const gone: string[] = [];
      host.scan(keyString(c.from), (k) => {
        if (!below(k, upTo)) return false;
        if (routing.movesFrom(self, k)) gone.push(k);
        return true;
      });
      for (const k of gone) host.delete(k);
      return done();
    }
    case "finish": {
      const inOld = routing.table.members.some((m) => m.id === self);
      if (inOld && move.fenced !== null) return refused(`cluster ${self} has not fenced every key`);
      const inNew = move.table.members.some((m) => m.id === self);
      for (const m of inNew ? routing.table.members : []) {
        if (m.id !== self && move.received.get(m.id) !== null) {
          return refused(`cluster ${self} has not switched every key from ${m.id}`);
        }
      }
      host.routing = new RoutingState(move.table);
      return done();
    }
  }
}

function begin(
  host: RouteHost,
  c: Extract<RouteCommand, { type: "begin" }>,
  done: () => KvResult,
): KvResult {
  if (c.to.epoch !== c.from.epoch + 1) {
    return refused(`a move goes to the next epoch, not from ${c.from.epoch} to ${c.to.epoch}`);
  }
  let from;
  let to;
  try {
    from = tableOf(c.from);
    to = tableOf(c.to);
  } catch (error) {
    return refused(`invalid table: ${(error as Error).message}`);
  }
  const routing = host.routing;
  if (routing?.move !== undefined) {
    // The same begin again (an admin that resumes) changes nothing; another one is refused.
    return sameTable(specOf(routing.table), c.from) && sameTable(specOf(routing.move.table), c.to)
      ? done()
      : refused(`a move to epoch ${routing.move.table.epoch} runs already`);
  }
  // The move finished here already (an admin that resumes after some finishes): no-op.
  if (routing !== undefined && sameTable(specOf(routing.table), c.to)) return done();
  if (routing !== undefined && !sameTable(specOf(routing.table), c.from)) {
    return refused(`the table in force is epoch ${routing.table.epoch}, not ${c.from.epoch}`);
  }
  host.routing = new RoutingState(from, { table: to, fenced: "", received: new Map() });
  return done();
}

function stage(
  host: RouteHost,
  routing: RoutingState,
  c: Extract<RouteCommand, { type: "stage" }>,
  done: () => KvResult,
): KvResult {
  const self = host.clusterId;
  const received = receivedFrom(routing.move!, c.source);
  // Only copies of keys that move from the source to here and are not owned here yet.
  const stageable = (k: string) =>
    !isLocalKey(k) && routing.movesTo(self, c.source, k) && !below(k, received);
  const puts = c.puts.map((p) => ({
    k: keyString(p.key),
    value: p.value,
    rev: p.rev,
    meta: p.meta,
  }));
  const deletes = c.deletes.map(keyString);
  const named = [...puts.map((p) => p.k), ...deletes];
  for (const k of named) {
    if (!stageable(k)) return refused("a staged key does not move here, or is owned here");
  }
  if (new Set(named).size !== named.length) return refused("a key is staged twice");
  const clearFrom = c.clear === undefined ? undefined : keyString(c.clear.from);
  const clearUpTo = c.clear === undefined ? undefined : cursorOf(c.clear.upTo);
  if (clearFrom !== undefined && below(clearFrom, received)) {
    return refused("cannot clear keys owned here");
  }
  const cleared: string[] = [];
  if (clearFrom !== undefined) {
    host.scan(clearFrom, (k) => {
      if (!below(k, clearUpTo!)) return false;
      if (stageable(k)) cleared.push(k);
      return true;
    });
  }
  // The byte limit is checked on the net change before anything is changed.
  let bytes = host.bytes;
  const gone = new Set([...cleared, ...deletes]);
  for (const k of gone) {
    const old = host.get(k);
    if (old !== undefined) bytes -= k.length + old.size;
  }
  for (const p of puts) {
    const old = gone.has(p.k) ? undefined : host.get(p.k);
    if (old !== undefined) bytes -= p.k.length + old.size;
    bytes += p.k.length + p.value.length;
  }
  if (bytes > host.bytesMax && bytes > host.bytes) {
    return { ok: false, code: "storage_full", bytesMax: host.bytesMax };
  }
  for (const k of cleared) host.delete(k);
  for (const k of deletes) host.delete(k);
  for (const p of puts) host.set(p.k, new StoredValue(p.value, p.rev, ...(p.meta ?? [])));
  return done();
}

/** The stamp of the `i`-th request-id record written at log index `index`. */
export function stampOf(index: number, i = 0): number {
  return index * SESSIONS_PER_COMMAND_MAX + i;
}

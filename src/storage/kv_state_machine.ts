import BTreeModule from "sorted-btree";
import { assert, EMPTY_MEMBERSHIP, type Entry, type Membership } from "../raft/mod.ts";
import {
  keyBytes,
  keyString,
  readSnapshot,
  readSnapshotAsync,
  type RequestRecord,
  type SnapshotBuilder,
} from "./_sm_snapshot.ts";
import {
  decodeCommand,
  type KvCommand,
  type KvEffect,
  type KvResult,
  parseRequestId,
  ValueEncoding,
} from "./kv_command.ts";
import { numericResult, suffixedKey, timeOfVersionstamp } from "./_versionstamp.ts";
import {
  decodeRouteCommand,
  isRouteCommand,
  type SessionRecord,
  type StagedKey,
} from "./route_command.ts";
import { applyRouteCommand, type RouteHost, stampOf } from "./_route_apply.ts";
import type { Ownership, RoutingState } from "./_routing_state.ts";
import { KvSnapshotView } from "./kv_snapshot_view.ts";
import { StorageCorruptError } from "./_codec.ts";
import { StoredValue } from "./_packed_value.ts";
import {
  DEFAULT_TXN_LIMITS,
  TouchLog,
  type TxnAnswer,
  type TxnCheck,
  type TxnLimits,
  TxnParticipant,
  type TxnRefusal,
  type TxnStore,
} from "../txn/mod.ts";
import type { KvMutation } from "./kv_command.ts";
import { decodeTxnEntry, decodeTxnState, encodeTxnState, isTxnCommand } from "./txn_command.ts";

import { decodeMemberContext, type MemberAddress } from "./_member_context.ts";

export { decodeMemberContext, encodeMemberContext, type MemberAddress } from "./_member_context.ts";

// sorted-btree is CommonJS: under Deno its class is the `default` of the default import.
const BTree = BTreeModule.default;
type BTree<K, V> = import("sorted-btree").default<K, V>;

/** Default limit of the bytes of keys and values the store holds (it lives in memory). */
export const STATE_BYTES_MAX = 1 << 30;
/** Default number of clients whose last request id is remembered for deduplication. */
export const REQUEST_IDS_MAX = 100_000;

/** A stored value and the log index of the write that set it, with its KV Connect metadata. */
export interface KvValue {
  /** The value's bytes. */
  readonly value: Uint8Array;
  /** The rev of the write that last set the key (its log index plus the rev base). */
  readonly rev: number;
  /** The versionstamp of that write (docs/kv_connect.md); 0 or absent: none recorded. */
  readonly vs?: number;
  /** The value's `ValueEncoding` (absent: 3, plain bytes). */
  readonly encoding?: number;
  /** When the key expires (ms since 1970); 0 or absent: never. */
  readonly expireAt?: number;
}

/** What one successful command changed, as {@linkcode KvStateMachineOptions.onApplied} sees it. */
export interface KvApplied {
  /** The revision the command wrote (from its result: every key it set has this rev). */
  readonly rev: number;
  /**
   * The command's mutations, in order, as their effect: a sum, min or max as the set of its
   * result, an expiry as a delete (their bytes belong to the log entry: copy to keep).
   */
  readonly mutations: readonly KvEffect[];
  /** Per mutation: whether the key existed just before it (false: a delete changed nothing). */
  readonly existed: readonly boolean[];
}

/**
 * Options of {@linkcode KvStateMachine}. The limits must be equal on every member of a
 * cluster; `onApplied` is this member's own (it changes nothing in the state).
 */
export interface KvStateMachineOptions {
  /** Largest total of key and value bytes (writes beyond it answer `storage_full`). */
  readonly bytesMax?: number;
  /** Clients remembered for request-id deduplication (least recently written is evicted). */
  readonly requestIdsMax?: number;
  /**
   * The id of the cluster this store belongs to: needed to apply routing commands (without
   * it they are refused) and to check the ownership of keys once a routing state exists.
   */
  readonly clusterId?: string;
  /** Limits of the cross-cluster transaction state (docs/transactions.md). */
  readonly txnLimits?: TxnLimits;
  /**
   * Called after each command that applied (not after a refused one, nor a retry answered
   * from its request id), entries replayed at start included. It must not throw: it runs
   * inside the apply, after the state changed.
   */
  readonly onApplied?: (applied: KvApplied) => void;
}

/**
 * The key-value store a cluster replicates: applied entry by entry, deterministically, in
 * memory. A restart rebuilds it from the latest snapshot and the committed log, so applying
 * an entry costs no disk write and no entry can be applied twice. It keeps an ordered index
 * for prefix listing, each key's revision, the members' addresses and, per client, the last
 * request id with its answer (bounded, and part of every snapshot).
 */
export class KvStateMachine {
  readonly #bytesMax: number;
  readonly #requestIdsMax: number;
  readonly #onApplied: ((applied: KvApplied) => void) | undefined;
  #data: BTree<string, StoredValue> = new BTree<string, StoredValue>();
  #bytes = 0;
  /** client -> last applied seq, its answer and the stamp of its place in #requestOrder. */
  #requests: BTree<string, RequestRecord> = new BTree<string, RequestRecord>();
  /** stamp -> client, least recently written first (B-trees: O(1) copy-on-write clones). */
  #requestOrder: BTree<number, string> = new BTree<number, string>();
  #applied = 0;
  #commandsRejected = 0;
  #membership: Membership = EMPTY_MEMBERSHIP;
  #addresses = new Map<string, MemberAddress>();
  readonly #clusterId: string | undefined;
  /** The routing this cluster obeys, once a move began (docs/resharding.md). */
  #routing: RoutingState | undefined;
  /** Added to a log index to make a rev: raised by moves, never lowered. */
  #revBase = 0;
  /** The versionstamp of the last commit (docs/kv_connect.md); raised by moves too. */
  #lastVs = 0;
  /** `expiryIndexKey(expireAt, key)` of every key with an expiry time, soonest first. */
  #expiring: BTree<string, true> = new BTree<string, true>();
  /** Cross-cluster transactions' locks, intents and outcomes (none without a cluster id). */
  readonly #txn: TxnParticipant<KvMutation> | undefined;
  /** Which keys the latest entries changed: this replica's memory, for snapshot reads. */
  #touched = new TouchLog(0);

  /** Creates an empty store. */
  constructor(options: KvStateMachineOptions = {}) {
    this.#bytesMax = options.bytesMax ?? STATE_BYTES_MAX;
    this.#requestIdsMax = options.requestIdsMax ?? REQUEST_IDS_MAX;
    this.#clusterId = options.clusterId;
    this.#onApplied = options.onApplied;
    this.#txn = options.clusterId === undefined ? undefined : new TxnParticipant(
      options.clusterId,
      TXN_MUTATION_SHAPE,
      timeOfVersionstamp,
      options.txnLimits ?? DEFAULT_TXN_LIMITS,
    );
  }

  /** The transaction participant (locks, intents, outcomes); undefined without a cluster id. */
  get txn(): TxnParticipant<KvMutation> | undefined {
    return this.#txn;
  }

  /** Which keys the latest applied entries changed (this replica's own, since it started). */
  get touched(): TouchLog {
    return this.#touched;
  }

  /** The routing state, undefined until the first move began (config.toml's table rules). */
  get routing(): RoutingState | undefined {
    return this.#routing;
  }

  /** What is added to a log index to make a rev. */
  get revBase(): number {
    return this.#revBase;
  }

  /** The versionstamp of the last commit, or of a key copied here by a move if greater. */
  get lastVs(): number {
    return this.#lastVs;
  }

  /**
   * Keys whose expiry time is at or before `now` (ms), soonest first, at most `limit`: the
   * leader proposes their `expire` mutations.
   */
  expiredKeys(now: number, limit: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const [ik] of this.#expiring.entries()) {
      if (out.length >= limit || Number(ik.slice(0, EXPIRY_DIGITS)) > now) break;
      out.push(keyBytes(ik.slice(EXPIRY_DIGITS)));
    }
    return out;
  }

  /** Keys with an expiry time. */
  get expiringKeys(): number {
    return this.#expiring.size;
  }

  /**
   * The revision the state is at: the last applied entry's index plus the rev base. Every
   * change applied so far has a rev at most this, every later one a greater rev (copies a
   * move staged here keep their source's revs, and the switch raises the base above them).
   */
  get rev(): number {
    return this.#applied + this.#revBase;
  }

  /**
   * Whether this cluster owns `key` under its routing state, and who does; undefined when
   * there is no routing state (or no cluster id): the caller's table decides.
   */
  ownership(key: Uint8Array): Ownership | undefined {
    if (this.#routing === undefined || this.#clusterId === undefined) return undefined;
    return this.#routing.ownership(this.#clusterId, keyString(key));
  }

  /** The index of the last applied entry. */
  get applied(): number {
    return this.#applied;
  }

  /** The membership of the last applied config entry. */
  get membership(): Membership {
    return this.#membership;
  }

  /** Number of keys. */
  get size(): number {
    return this.#data.size;
  }

  /** Bytes of keys and values held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The known addresses of members (from config entries). */
  addresses(): ReadonlyMap<string, MemberAddress> {
    return this.#addresses;
  }

  /** The value and revision of `key`, or undefined ({@linkcode range} gives the metadata too). */
  get(key: Uint8Array): KvValue | undefined {
    const stored = this.#data.get(keyString(key));
    return stored === undefined ? undefined : { value: stored.value, rev: stored.rev };
  }

  /**
   * Keys in `[start, end)` with values and metadata, in byte order or reversed, at most
   * `limit`; `keep` filters them (e.g. by ownership) before they count.
   */
  range(
    options: {
      start: Uint8Array;
      end: Uint8Array;
      limit: number;
      reverse: boolean;
      keep?: (key: Uint8Array) => boolean;
    },
  ): { key: Uint8Array; entry: KvValue }[] {
    const start = keyString(options.start);
    const end = keyString(options.end);
    const out: { key: Uint8Array; entry: KvValue }[] = [];
    if (start >= end || options.limit <= 0) return out;
    const it = options.reverse
      ? this.#data.entriesReversed(end, undefined, true)
      : this.#data.entries(start);
    for (const [k, v] of it) {
      if (options.reverse ? k < start : k >= end) break;
      const key = keyBytes(k);
      if (options.keep !== undefined && !options.keep(key)) continue;
      out.push({ key, entry: entryOf(v) });
      if (out.length >= options.limit) break;
    }
    return out;
  }

  /** The answer already given to a request id, if it is the client's last applied one. */
  answered(requestId: string): KvResult | undefined {
    const id = parseRequestId(requestId);
    if (id === undefined) return undefined;
    const last = this.#requests.get(id.client);
    return last !== undefined && last.seq === id.seq ? last.result : undefined;
  }

  /**
   * For a move: the keys from `from` on (inclusive, in byte order) that move away from this
   * cluster, owned or fenced, with values and revs; at most `count` of them or about `bytes`
   * of keys and values (at least one), and at most `scan` keys looked at, below `upTo` when
   * given. `next` is where the scan stopped (null: at the end of the keyspace; `upTo` when it
   * got there). Empty before a move.
   */
  movingKeys(
    from: Uint8Array,
    limits: { count: number; bytes: number; scan: number; upTo?: Uint8Array | null },
  ): {
    items: StagedKey[];
    next: Uint8Array | null;
  } {
    const routing = this.#routing;
    const self = this.#clusterId;
    const items: StagedKey[] = [];
    if (routing?.move === undefined || self === undefined) return { items, next: null };
    let bytes = 0;
    let scanned = 0;
    const upTo = limits.upTo === undefined || limits.upTo === null
      ? undefined
      : keyString(limits.upTo);
    for (const [k, v] of this.#data.entries(keyString(from))) {
      if (upTo !== undefined && k >= upTo) return { items, next: limits.upTo! };
      if (items.length >= limits.count || bytes >= limits.bytes || scanned >= limits.scan) {
        return { items, next: keyBytes(k) };
      }
      scanned++;
      if (!routing.movesFrom(self, k)) continue;
      const plain = v.vs === 0 && v.encoding === ValueEncoding.BYTES && v.expireAt === 0;
      items.push({
        key: keyBytes(k),
        value: v.value,
        rev: v.rev,
        ...(plain ? {} : { meta: [v.vs, v.encoding, v.expireAt] as const }),
      });
      bytes += k.length + v.size;
    }
    return { items, next: null };
  }

  /** For a move: request-id records written after `stamp`, oldest first, at most `limit`. */
  sessionsAfter(stamp: number, limit: number): {
    records: { client: string; seq: number; result: KvResult; stamp: number }[];
    more: boolean;
  } {
    const records: { client: string; seq: number; result: KvResult; stamp: number }[] = [];
    for (const [st, client] of this.#requestOrder.entries(stamp)) {
      if (st <= stamp) continue;
      if (records.length >= limit) return { records, more: true };
      const r = this.#requests.get(client)!;
      records.push({ client, seq: r.seq, result: r.result, stamp: st });
    }
    return { records, more: false };
  }

  /** Keys starting with `prefix`, after `after` (exclusive), in byte order, at most `limit`. */
  list(options: { prefix: Uint8Array; after?: Uint8Array; limit: number }): {
    items: { key: Uint8Array; rev: number }[];
    more: boolean;
  } {
    const prefix = keyString(options.prefix);
    const after = options.after === undefined ? undefined : keyString(options.after);
    const start = after !== undefined && after >= prefix ? after : prefix;
    const items: { key: Uint8Array; rev: number }[] = [];
    let more = false;
    for (const [k, v] of this.#data.entries(start)) {
      if (after !== undefined && k <= after) continue;
      if (!k.startsWith(prefix)) break;
      if (items.length === options.limit) {
        more = true;
        break;
      }
      items.push({ key: keyBytes(k), rev: v.rev });
    }
    return { items, more };
  }

  /**
   * Applies the next committed entry; returns the command's answer for normal entries (a
   * transaction command's is a `TxnAnswer`, or a `stale_versionstamp` result).
   */
  apply(entry: Entry): KvResult | undefined {
    assert(entry.index === this.#applied + 1, () => `apply ${entry.index} after ${this.#applied}`);
    this.#applied = entry.index;
    if (entry.type === "config") {
      this.#applyConfig(entry);
      return undefined;
    }
    if (entry.data.length === 0) return undefined; // a leader's no-op
    if (isRouteCommand(entry.data)) return this.#applyRoute(entry);
    if (isTxnCommand(entry.data)) return this.#applyTxn(entry) as never;
    let command: KvCommand;
    try {
      command = decodeCommand(entry.data);
    } catch {
      // Not a command this code wrote (a forged or foreign entry): every replica decodes the
      // same bytes the same way, so skipping it keeps them equal; throwing would stop the
      // node at every restart, since the entry stays in the log.
      this.#commandsRejected++;
      return undefined;
    }
    return this.#applyCommand(entry.index, command);
  }

  /** Committed entries that did not decode as a command and were skipped. */
  get commandsRejected(): number {
    return this.#commandsRejected;
  }

  #applyConfig(entry: Entry): void {
    this.#membership = entry.membership!;
    for (const [id, addr] of Object.entries(decodeMemberContext(entry.data))) {
      this.#addresses.set(id, addr);
    }
    const m = entry.membership!;
    const members = new Set([...m.voters, ...m.outgoing, ...m.learners]);
    for (const id of [...this.#addresses.keys()]) if (!members.has(id)) this.#addresses.delete(id);
  }

  #applyRoute(entry: Entry): KvResult {
    let command;
    try {
      command = decodeRouteCommand(entry.data);
    } catch {
      this.#commandsRejected++; // as for a KV command that does not decode
      return { ok: false, code: "route_refused", reason: "the routing command does not decode" };
    }
    if (this.#clusterId === undefined) {
      return { ok: false, code: "route_refused", reason: "this store knows no cluster id" };
    }
    // Keys arrive and leave with a move: a snapshot read spanning it reads again.
    this.#touched.reset(entry.index);
    return applyRouteCommand(this.#routeHost(this.#clusterId), command, entry.index);
  }

  #applyTxn(entry: Entry): TxnAnswer | KvResult {
    let e;
    try {
      e = decodeTxnEntry(entry.data);
    } catch {
      this.#commandsRejected++; // as for a KV command that does not decode
      return {
        ok: false,
        code: "route_refused",
        reason: "the transaction command does not decode",
      };
    }
    if (this.#txn === undefined) {
      return { ok: false, code: "route_refused", reason: "this store knows no cluster id" };
    }
    // Not applied: the leader proposes it again with a greater versionstamp.
    if (e.at <= this.#lastVs) return { ok: false, code: "stale_versionstamp", vs: this.#lastVs };
    this.#lastVs = e.at;
    return this.#txn.apply(e.cmd, e.at, this.#txnStore(entry.index));
  }

  /** The store the participant guards, for the entry at `index`. */
  #txnStore(index: number): TxnStore<KvMutation> {
    return {
      evaluate: (checks, mutations) => this.#evaluateTxn(checks, mutations),
      // A versionstamped key whose final key is not this cluster's (a move fenced it since the
      // leader chose the versionstamp): the decision is an abort, and the client tries again.
      decidable: (mutations, vs) =>
        this.#misrouted({
          checks: [],
          mutations: mutations.filter((m) => m.type === "set_vs").map((m) => ({
            key: suffixedKey(m.key, vs),
          })),
        }) === undefined,
      admits: (participants) => this.#unroutedParticipant(participants),
      apply: (mutations, vs) => {
        // Validated at the prepare, and the keys were locked since: it cannot fail now (its
        // bytes were counted then: the store may exceed its limit by what prepares kept).
        const planned = this.#plan(index, mutations, vs, false);
        assert(
          !("code" in planned),
          () => `a prepared mutation failed: ${JSON.stringify(planned)}`,
        );
        this.#commitPlan(index, planned, vs);
      },
    };
  }

  /**
   * A prepare naming a cluster outside this one's tables (the table in force and a move's
   * next) comes from a coordinator whose table is older than a drain: refused as wrong_shard,
   * so that it routes again. Without a routing state every cluster of config.toml counts.
   */
  #unroutedParticipant(participants: readonly string[]): TxnRefusal | undefined {
    const routing = this.#routing;
    if (routing === undefined || this.#clusterId === undefined) return undefined;
    const routed = (id: string) =>
      routing.table.members.some((m) => m.id === id) ||
      (routing.move?.table.members.some((m) => m.id === id) ?? false);
    const unknown = participants.find((id) => !routed(id));
    if (unknown === undefined) return undefined;
    return { code: "wrong_shard", owner: this.#clusterId, epoch: routing.epoch };
  }

  #evaluateTxn(
    checks: readonly TxnCheck[],
    mutations: readonly KvMutation[],
  ): TxnRefusal | undefined {
    // A versionstamped key's owner is known only with the versionstamp: the leader checks it.
    const misrouted = this.#misrouted({
      checks,
      mutations: mutations.filter((m) => m.type !== "set_vs"),
    });
    if (misrouted !== undefined && misrouted.ok === false && misrouted.code === "wrong_shard") {
      return { code: "wrong_shard", owner: misrouted.owner, epoch: misrouted.epoch };
    }
    for (let i = 0; i < checks.length; i++) {
      if ((this.#data.get(keyString(checks[i].key))?.vs ?? 0) !== checks[i].vs) {
        return { code: "check_failed", check: i };
      }
    }
    const planned = this.#plan(this.#applied, mutations, this.#lastVs + 1);
    if ("code" in planned) {
      if (planned.code === "storage_full") return planned;
      return { code: "invalid", mutation: planned.mutation, message: planned.message };
    }
    return undefined;
  }

  #routeHost(clusterId: string): RouteHost {
    // deno-lint-ignore no-this-alias
    const sm = this;
    return {
      clusterId,
      get routing() {
        return sm.#routing;
      },
      set routing(r) {
        sm.#routing = r;
      },
      get revBase() {
        return sm.#revBase;
      },
      set revBase(b) {
        sm.#revBase = b;
      },
      bytes: this.#bytes,
      bytesMax: this.#bytesMax,
      scan: (from, fn) => {
        for (const [k, v] of this.#data.entries(from)) if (!fn(k, v)) return;
      },
      get: (k) => this.#data.get(k),
      set: (k, v) => {
        this.#put(k, v);
        if (v.vs > this.#lastVs) this.#lastVs = v.vs; // a copy's versionstamp never goes back
      },
      delete: (k) => this.#remove(k),
      mergeSession: (r, stamp) => this.#mergeSession(r, stamp),
      lockedKeys: () => this.#txn?.lockedKeyStrings() ?? [],
    };
  }

  #mergeSession(r: SessionRecord, stamp: number): void {
    const last = this.#requests.get(r.client);
    if (last !== undefined && last.seq >= r.seq) return;
    this.#remember(r.client, r.seq, r.result, stamp);
  }

  /** Stores `v` at `k`, keeping the byte count and the expiry index. */
  #put(k: string, v: StoredValue): void {
    this.#remove(k);
    this.#data.set(k, v);
    this.#bytes += k.length + v.size;
    if (v.expireAt > 0) this.#expiring.set(expiryIndexKey(v.expireAt, k), true);
  }

  /** Removes `k`, keeping the byte count and the expiry index. */
  #remove(k: string): void {
    const old = this.#data.get(k);
    if (old === undefined) return;
    this.#bytes -= k.length + old.size;
    this.#data.delete(k);
    if (old.expireAt > 0) this.#expiring.delete(expiryIndexKey(old.expireAt, k));
  }

  #applyCommand(index: number, cmd: KvCommand): KvResult {
    const id = cmd.requestId === undefined ? undefined : parseRequestId(cmd.requestId);
    if (id !== undefined) {
      const last = this.#requests.get(id.client);
      if (last !== undefined && id.seq === last.seq) return last.result; // a retry: same answer
      if (last !== undefined && id.seq < last.seq) {
        return { ok: false, code: "stale_request", seq: last.seq };
      }
    }
    // After the dedup check (a retry of a write applied before a fence gets its answer), and
    // not remembered: a retry at the owner must apply.
    const misrouted = this.#misrouted(cmd);
    if (misrouted !== undefined) return misrouted;
    // Not remembered either: proposed again once the transaction holding it is done.
    const lock = this.#txn?.blocker(cmd.mutations.map((m) => m.key), cmd.checks.map((c) => c.key));
    if (lock !== undefined) return { ok: false, code: "locked", lock };
    // Not remembered either: the leader proposes it again with a greater versionstamp.
    if (cmd.vs !== undefined && cmd.vs <= this.#lastVs) {
      return { ok: false, code: "stale_versionstamp", vs: this.#lastVs };
    }
    const result = this.#execute(index, cmd);
    if (id !== undefined) this.#remember(id.client, id.seq, result, stampOf(index));
    return result;
  }

  /** The refusal of a command with a key this cluster does not own, or undefined. */
  #misrouted(
    cmd: { checks: readonly { key: Uint8Array }[]; mutations: readonly { key: Uint8Array }[] },
  ): KvResult | undefined {
    const routing = this.#routing;
    const self = this.#clusterId;
    if (routing === undefined || self === undefined) return undefined;
    for (const { key } of [...cmd.checks, ...cmd.mutations]) {
      const o = routing.ownership(self, keyString(key));
      if (!o.owned) return { ok: false, code: "wrong_shard", owner: o.owner, epoch: routing.epoch };
    }
    return undefined;
  }

  #execute(index: number, cmd: KvCommand): KvResult {
    for (let i = 0; i < cmd.checks.length; i++) {
      const { key, rev, vs } = cmd.checks[i];
      const stored = this.#data.get(keyString(key));
      const holds = vs === undefined ? (stored?.rev ?? 0) === rev : (stored?.vs ?? 0) === vs;
      if (!holds) {
        return { ok: false, code: "precondition_failed", check: i, rev: stored?.rev ?? 0 };
      }
    }
    const vs = cmd.vs ?? this.#lastVs + 1;
    const planned = this.#plan(index, cmd.mutations, vs);
    if ("code" in planned) {
      return planned.code === "storage_full" ? { ok: false, ...planned } : {
        ok: false,
        code: "type_mismatch",
        mutation: planned.mutation,
        message: planned.message,
      };
    }
    this.#commitPlan(index, planned, vs);
    return { ok: true, rev: index + this.#revBase, existed: planned.existed, vs };
  }

  /**
   * What `mutations` do at entry `index` and versionstamp `vs`, without doing it: the new
   * values, the effects, whether each key existed, and the store's size after; or why not.
   */
  #plan(
    index: number,
    mutations: readonly KvMutation[],
    vs: number,
    limited = true,
  ): Plan | PlanRefusal {
    const rev = index + this.#revBase;
    const now = timeOfVersionstamp(vs);
    let bytes = this.#bytes;
    const existed: boolean[] = [];
    const effects: KvEffect[] = [];
    const plan: [string, StoredValue | undefined][] = [];
    for (let i = 0; i < mutations.length; i++) {
      const m = mutations[i];
      const key = m.type === "set_vs" ? suffixedKey(m.key, vs) : m.key;
      const k = keyString(key);
      // Within one command, a later mutation of the same key sees the earlier one.
      const planned = plan.findLast(([pk]) => pk === k);
      const old = planned !== undefined ? planned[1] : this.#data.get(k);
      let next: StoredValue | undefined;
      if (m.type === "set") {
        next = new StoredValue(m.value, rev, vs, m.encoding ?? ValueEncoding.BYTES, m.expireAt);
      } else if (m.type === "set_vs") {
        next = new StoredValue(m.value, rev, vs, m.encoding, m.expireAt || undefined);
      } else if (m.type === "delete") {
        next = undefined;
      } else if (m.type === "expire") {
        if (old === undefined || old.expireAt === 0 || old.expireAt > now) {
          existed.push(false); // not expired (rewritten since, or gone): nothing to do
          continue;
        }
        next = undefined;
      } else {
        const result = numericResult(m.type, old, m.operand);
        if (typeof result === "string") {
          return { code: "type_mismatch", mutation: i, message: result };
        }
        next = new StoredValue(result, rev, vs, ValueEncoding.LE64);
      }
      existed.push(old !== undefined);
      if (old !== undefined) bytes -= k.length + old.size;
      if (next !== undefined) bytes += k.length + next.size;
      plan.push([k, next]);
      effects.push(
        next === undefined ? { type: "delete", key } : {
          type: "set",
          key,
          value: m.type === "set" || m.type === "set_vs" ? m.value : next.value,
        },
      );
    }
    if (limited && bytes > this.#bytesMax && bytes > this.#bytes) {
      return { code: "storage_full", bytesMax: this.#bytesMax };
    }
    return { plan, effects, existed, bytes };
  }

  /** Does what `#plan` planned, at versionstamp `vs`. */
  #commitPlan(index: number, p: Plan, vs: number): void {
    for (const [k, v] of p.plan) {
      if (v === undefined) this.#remove(k);
      else this.#put(k, v);
    }
    // A secondary's commit of a cross-cluster transaction may carry a smaller versionstamp
    // than this cluster's last: the last one never goes back.
    if (vs > this.#lastVs) this.#lastVs = vs;
    this.#touched.recordStrings(index, p.plan.map(([k]) => k));
    this.#onApplied?.({ rev: index + this.#revBase, mutations: p.effects, existed: p.existed });
  }

  #remember(client: string, seq: number, result: KvResult, stamp: number): void {
    const old = this.#requests.get(client);
    if (old !== undefined) this.#requestOrder.delete(old.stamp);
    this.#requests.set(client, { seq, result, stamp });
    this.#requestOrder.set(stamp, client);
    if (this.#requests.size > this.#requestIdsMax) {
      const oldest = this.#requestOrder.minKey()!;
      this.#requests.delete(this.#requestOrder.get(oldest)!);
      this.#requestOrder.delete(oldest);
    }
  }

  /**
   * An immutable view of the state at the current applied index, in O(1): the B-trees are
   * cloned copy-on-write, so later applies copy the nodes they change instead of touching the
   * view's; the member addresses (a handful) are copied. Values are never mutated in place.
   */
  snapshotView(): KvSnapshotView {
    return new KvSnapshotView({
      applied: this.#applied,
      membership: this.#membership,
      addresses: new Map(this.#addresses),
      data: this.#data.clone(),
      requests: this.#requests.clone(),
      requestOrder: this.#requestOrder.clone(),
      revBase: this.#revBase,
      routing: this.#routing, // immutable: commands replace it
      lastVs: this.#lastVs,
      txn: this.#txnBytes(),
    });
  }

  /** The participant's state as snapshot bytes, undefined when empty. */
  #txnBytes(): Uint8Array | undefined {
    const t = this.#txn;
    if (t === undefined || (t.intents === 0 && t.outcomes === 0)) return undefined;
    return encodeTxnState(t.exportState());
  }

  /** Serializes the whole state at once: the snapshot's data (see {@linkcode snapshotView}). */
  encodeSnapshot(): Uint8Array {
    return this.snapshotView().encode();
  }

  #builder(): SnapshotBuilder {
    return {
      header: (h) => {
        this.#applied = h.applied;
        this.#membership = h.membership;
        this.#addresses = h.addresses;
        this.#revBase = h.revBase;
        this.#routing = h.routing;
        this.#lastVs = h.lastVs;
        this.#touched = new TouchLog(h.applied);
        if (h.txn !== undefined) {
          let state;
          try {
            state = decodeTxnState(h.txn);
          } catch (e) {
            throw new StorageCorruptError("state machine snapshot", "bad transaction state", {
              cause: e,
            });
          }
          this.#txn?.importState(state);
        }
      },
      key: (k, v) => {
        // Stored apart from the snapshot's chunk, which can then be collected.
        this.#put(k, new StoredValue(v.value, v.rev, v.vs, v.encoding, v.expireAt));
      },
      request: (client, r) => {
        this.#requests.set(client, r);
        this.#requestOrder.set(r.stamp, client);
      },
    };
  }

  /**
   * Rebuilds a store from a snapshot's data (empty data gives an empty store). Throws
   * `StorageCorruptError` when the data is not a snapshot.
   */
  static decodeSnapshot(data: Uint8Array, options: KvStateMachineOptions = {}): KvStateMachine {
    const sm = new KvStateMachine(options);
    if (data.length > 0) readSnapshot(data, sm.#builder());
    return sm;
  }

  /**
   * Rebuilds a store from a snapshot's data given in chunks (e.g. as received; no bytes at all
   * give an empty store), yielding to
   * the event loop every few thousand records so that a large install never blocks it for
   * long. Throws `StorageCorruptError` when the data is not a snapshot.
   */
  static async decodeSnapshotAsync(
    chunks: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options: KvStateMachineOptions = {},
  ): Promise<KvStateMachine> {
    const sm = new KvStateMachine(options);
    await readSnapshotAsync(chunks, sm.#builder());
    return sm;
  }
}

/** What a command's mutations would do (see `#plan`). */
interface Plan {
  readonly plan: readonly (readonly [string, StoredValue | undefined])[];
  readonly effects: readonly KvEffect[];
  readonly existed: readonly boolean[];
  readonly bytes: number;
}

/** Why a command's mutations cannot apply. */
type PlanRefusal =
  | { readonly code: "type_mismatch"; readonly mutation: number; readonly message: string }
  | { readonly code: "storage_full"; readonly bytesMax: number };

/** How the transaction participant sees a KV mutation. */
const TXN_MUTATION_SHAPE = {
  // A versionstamped key is made at the decision: a key nobody else can have, so no lock.
  writeKey: (m: KvMutation) => m.type === "set_vs" ? undefined : m.key,
  bytes: (m: KvMutation) => m.key.length + ("value" in m ? m.value.length : 8) + 16,
};

/** Digits of the expiry time in an expiry index key (ms since 1970 fit in 15 until year 33658). */
const EXPIRY_DIGITS = 15;

/** The expiry index's key: the time, zero-padded so that string order is time order, then the key. */
function expiryIndexKey(expireAt: number, k: string): string {
  return String(expireAt).padStart(EXPIRY_DIGITS, "0") + k;
}

function entryOf(stored: StoredValue): KvValue {
  return {
    value: stored.value,
    rev: stored.rev,
    vs: stored.vs,
    encoding: stored.encoding,
    expireAt: stored.expireAt,
  };
}

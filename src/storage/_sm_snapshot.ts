/**
 * The byte format of a state machine snapshot, written and read incrementally.
 *
 * Version 2 (written): the version byte `0x02` (a msgpack fixint), then a msgpack sequence: a
 * header map `{ applied, membership, addresses, keys, requests, revBase?, routing? }`, then
 * `keys` records `[key, value, rev]` or `[key, value, rev, vs, encoding, expireAt]` (a key
 * with a versionstamp, a value encoding other than bytes or an expiry time: docs/kv_connect.md)
 * in key order, then `requests` records `[client, seq, result, stamp?]` from the least
 * recently written client on. `revBase`, `routing` (docs/resharding.md), `lastVs`, `txn` (the
 * transaction participant's state, docs/transactions.md) and the
 * stamps came later: a snapshot without them has no routing state, a rev base of 0, no
 * versionstamp yet, and stamps older than any entry. Version 1 (still read):
 * one msgpack map with the same data as arrays.
 *
 * @module
 */
import { decodeMulti, decodeMultiStream, Encoder } from "@msgpack/msgpack";
import type { Membership } from "../raft/mod.ts";
import { isMembership, StorageCorruptError } from "./_codec.ts";
import type { KvResult } from "./kv_command.ts";
import type { KvValue, MemberAddress } from "./kv_state_machine.ts";
import { routingFromWire, type RoutingState, routingToWire } from "./_routing_state.ts";

type BTree<K, V> = import("sorted-btree").default<K, V>;

/** The format version written by {@linkcode snapshotPieces}. */
export const SNAPSHOT_VERSION = 2;
/** How long the async decoder runs before it yields to the event loop. */
export const DECODE_SLICE_MS = 5;
/** Records decoded between two looks at the clock by the async decoder. */
const DECODE_OBJECTS_PER_CLOCK_CHECK = 128;

/** A client's last applied request id, its answer and when it was written. */
export interface RequestRecord {
  /** The request's sequence number. */
  readonly seq: number;
  /** The answer given. */
  readonly result: KvResult;
  /** Orders clients by last write: the index of the entry, or negative after a decode. */
  readonly stamp: number;
}

/** Everything a snapshot holds, as immutable (or no longer mutated) structures. */
export interface StateParts {
  readonly applied: number;
  readonly membership: Membership;
  readonly addresses: ReadonlyMap<string, MemberAddress>;
  /** Keys as binary strings (one char per byte). */
  readonly data: BTree<string, KvValue>;
  readonly requests: BTree<string, RequestRecord>;
  /** stamp -> client, least recently written first. */
  readonly requestOrder: BTree<number, string>;
  /** Added to log indexes to make revs. */
  readonly revBase: number;
  /** The routing state, once a move began. */
  readonly routing: RoutingState | undefined;
  /** The versionstamp of the last commit (0: none yet). */
  readonly lastVs: number;
  /** The transaction participant's state (txn_command.ts), when not empty. */
  readonly txn?: Uint8Array;
}

import { keyBytes, keyString } from "../txn/mod.ts";
export { keyBytes, keyString };

/** A growable byte buffer with the few msgpack writers the records need. */
class Sink {
  #buf: Uint8Array;
  #view: DataView;
  #pos = 0;

  constructor(capacity: number) {
    this.#buf = new Uint8Array(capacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  get length(): number {
    return this.#pos;
  }

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#pos + n));
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  raw(bytes: Uint8Array): void {
    this.#ensure(bytes.length);
    this.#buf.set(bytes, this.#pos);
    this.#pos += bytes.length;
  }

  byte(b: number): void {
    this.#ensure(1);
    this.#buf[this.#pos++] = b;
  }

  /** A msgpack type byte and a big-endian length or value of `size` bytes (1, 2, 4 or 8). */
  #head(type: number, size: number, n: number): void {
    this.#ensure(1 + size);
    const v = this.#view;
    v.setUint8(this.#pos++, type);
    if (size === 1) v.setUint8(this.#pos, n);
    else if (size === 2) v.setUint16(this.#pos, n);
    else if (size === 4) v.setUint32(this.#pos, n);
    else {
      v.setUint32(this.#pos, Math.floor(n / 0x100000000));
      v.setUint32(this.#pos + 4, n >>> 0);
    }
    this.#pos += size;
  }

  uint(n: number): void {
    if (n < 0x80) this.byte(n);
    else if (n < 0x100) this.#head(0xcc, 1, n);
    else if (n < 0x10000) this.#head(0xcd, 2, n);
    else if (n < 0x100000000) this.#head(0xce, 4, n);
    else this.#head(0xcf, 8, n);
  }

  bin(b: Uint8Array): void {
    if (b.length < 0x100) this.#head(0xc4, 1, b.length);
    else if (b.length < 0x10000) this.#head(0xc5, 2, b.length);
    else this.#head(0xc6, 4, b.length);
    this.raw(b);
  }

  /** The bytes written so far; empties the sink. */
  take(): Uint8Array {
    const out = this.#buf.slice(0, this.#pos);
    this.#pos = 0;
    return out;
  }
}

/**
 * The snapshot bytes of `s` in pieces of about `chunkBytes` (a piece ends after the record
 * that reaches the size). Concatenated, they are one version 2 snapshot.
 */
export function* snapshotPieces(s: StateParts, chunkBytes: number): Generator<Uint8Array> {
  const encoder = new Encoder();
  const sink = new Sink(Math.min(chunkBytes, 1 << 24) + 1024);
  sink.byte(SNAPSHOT_VERSION);
  sink.raw(encoder.encode({
    applied: s.applied,
    membership: s.membership,
    addresses: Object.fromEntries(s.addresses),
    keys: s.data.size,
    requests: s.requests.size,
    ...(s.revBase === 0 ? {} : { revBase: s.revBase }),
    ...(s.routing === undefined ? {} : { routing: routingToWire(s.routing.toSpec()) }),
    ...(s.lastVs === 0 ? {} : { lastVs: s.lastVs }),
    ...(s.txn === undefined ? {} : { txn: s.txn }),
  }));
  for (const [k, v] of s.data.entries()) {
    const vs = v.vs ?? 0;
    const encoding = v.encoding ?? 3;
    const expireAt = v.expireAt ?? 0;
    const plain = vs === 0 && encoding === 3 && expireAt === 0;
    sink.byte(plain ? 0x93 : 0x96);
    sink.bin(keyBytes(k));
    sink.bin(v.value);
    sink.uint(v.rev);
    if (!plain) {
      sink.uint(vs);
      sink.uint(encoding);
      sink.uint(expireAt);
    }
    if (sink.length >= chunkBytes) yield sink.take();
  }
  for (const [, client] of s.requestOrder.entries()) {
    const r = s.requests.get(client)!;
    sink.raw(encoder.encode([client, r.seq, r.result, r.stamp]));
    if (sink.length >= chunkBytes) yield sink.take();
  }
  if (sink.length > 0) yield sink.take();
}

/** What a decoder hands over, record by record. */
export interface SnapshotBuilder {
  header(
    h: {
      applied: number;
      membership: Membership;
      addresses: Map<string, MemberAddress>;
      revBase: number;
      routing: RoutingState | undefined;
      lastVs: number;
      txn: Uint8Array | undefined;
    },
  ): void;
  key(key: string, value: KvValue): void;
  request(client: string, record: RequestRecord): void;
}

function corrupt(reason: string, cause?: unknown): StorageCorruptError {
  return new StorageCorruptError("state machine snapshot", reason, { cause });
}

function isNat(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function toAddresses(v: unknown): Map<string, MemberAddress> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw corrupt("bad addresses");
  const out = new Map<string, MemberAddress>();
  for (const [id, a] of Object.entries(v as Record<string, unknown>)) {
    const addr = a as Partial<MemberAddress>;
    if (typeof addr?.raft !== "string" || typeof addr?.http !== "string") {
      throw corrupt(`bad address of ${id}`);
    }
    out.set(id, { raft: addr.raft, http: addr.http });
  }
  return out;
}

/** Checks decoded objects one by one and hands them to a builder. */
export class SnapshotReader {
  readonly #b: SnapshotBuilder;
  #state: "version" | "header" | "keys" | "requests" | "done" = "version";
  #keysLeft = 0;
  #requestsLeft = 0;
  /** The highest rev a key may have (none when a move runs: copies keep their source's). */
  #revMax = Infinity;
  #lastKey: string | undefined;
  #lastStamp = -Infinity;

  /** Creates a reader that feeds `builder`. */
  constructor(builder: SnapshotBuilder) {
    this.#b = builder;
  }

  /** Takes the next decoded object. */
  push(o: unknown): void {
    switch (this.#state) {
      case "version":
        if (o === SNAPSHOT_VERSION) this.#state = "header";
        else this.#readV1(o);
        return;
      case "header":
        return this.#readHeader(o);
      case "keys":
        return this.#readKey(o);
      case "requests":
        return this.#readRequest(o);
      case "done":
        throw corrupt("data after the last record");
    }
  }

  /** Checks that nothing is missing. */
  finish(): void {
    this.#next();
    if (this.#state !== "done") throw corrupt(`truncated in the ${this.#state} records`);
  }

  #next(): void {
    if (this.#state === "keys" && this.#keysLeft === 0) this.#state = "requests";
    if (this.#state === "requests" && this.#requestsLeft === 0) this.#state = "done";
  }

  #readHeader(o: unknown): void {
    const h = o as Record<string, unknown>;
    if (
      typeof h !== "object" || h === null || !isNat(h.applied) || !isMembership(h.membership) ||
      !isNat(h.keys) || !isNat(h.requests) || (h.revBase !== undefined && !isNat(h.revBase)) ||
      (h.lastVs !== undefined && !isNat(h.lastVs)) ||
      (h.txn !== undefined && !(h.txn instanceof Uint8Array))
    ) {
      throw corrupt("bad header");
    }
    const revBase = (h.revBase as number | undefined) ?? 0;
    const routing = h.routing === undefined ? undefined : routingFromWire(h.routing);
    if (h.routing !== undefined && routing === undefined) throw corrupt("bad routing state");
    this.#revMax = routing?.move === undefined ? h.applied + revBase : Infinity;
    this.#keysLeft = h.keys;
    this.#requestsLeft = h.requests;
    this.#b.header({
      applied: h.applied,
      membership: h.membership,
      addresses: toAddresses(h.addresses),
      revBase,
      routing,
      lastVs: (h.lastVs as number | undefined) ?? 0,
      txn: h.txn as Uint8Array | undefined,
    });
    this.#state = "keys";
    this.#next();
  }

  #readKey(o: unknown): void {
    if (!Array.isArray(o) || (o.length !== 3 && o.length !== 6)) throw corrupt("bad key record");
    const [key, value, rev, vs = 0, encoding = 3, expireAt = 0] = o;
    if (
      !(key instanceof Uint8Array) || !(value instanceof Uint8Array) || !isNat(rev) ||
      !isNat(vs) || !isNat(encoding) || encoding < 1 || encoding > 3 || !isNat(expireAt)
    ) {
      throw corrupt("bad key record");
    }
    if (rev > this.#revMax) throw corrupt(`rev ${rev} after the last one, ${this.#revMax}`);
    const k = keyString(key);
    if (this.#lastKey !== undefined && k <= this.#lastKey) throw corrupt("keys out of order");
    this.#lastKey = k;
    this.#b.key(k, { value: value.slice(), rev, vs, encoding, expireAt });
    this.#keysLeft--;
    this.#next();
  }

  #readRequest(o: unknown): void {
    if (!Array.isArray(o) || (o.length !== 3 && o.length !== 4)) {
      throw corrupt("bad request record");
    }
    const [client, seq, result, written] = o;
    if (
      typeof client !== "string" || !isNat(seq) || typeof result !== "object" || !result ||
      (written !== undefined && !Number.isSafeInteger(written))
    ) {
      throw corrupt("bad request record");
    }
    // Without a stamp: negative, older than any entry applied from now on, in order.
    const stamp = (written as number | undefined) ?? -this.#requestsLeft;
    if (stamp <= this.#lastStamp) throw corrupt("request records out of order");
    this.#lastStamp = stamp;
    this.#b.request(client, { seq, result: result as KvResult, stamp });
    this.#requestsLeft--;
    this.#next();
  }

  /** Version 1: the whole state in one map. */
  #readV1(o: unknown): void {
    const m = o as Record<string, unknown>;
    if (
      typeof m !== "object" || m === null || m.v !== 1 || !isNat(m.applied) ||
      !isMembership(m.membership) || !Array.isArray(m.kv) || !Array.isArray(m.requests)
    ) {
      throw corrupt("not a version 1 or 2 snapshot");
    }
    this.#readHeader({ ...m, keys: m.kv.length, requests: m.requests.length });
    for (const r of m.kv) this.#readKey(r);
    for (const r of m.requests) this.#readRequest(r);
  }
}

/** Yields to the event loop (timers and I/O run). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Decodes a whole snapshot at once. */
export function readSnapshot(data: Uint8Array, builder: SnapshotBuilder): void {
  const reader = new SnapshotReader(builder);
  try {
    for (const o of decodeMulti(data)) reader.push(o);
    reader.finish();
  } catch (e) {
    throw e instanceof StorageCorruptError ? e : corrupt(String(e), e);
  }
}

/** The chunks of `data`, counting their bytes into `seen`. */
async function* asStream(
  data: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  seen: { bytes: number },
): AsyncGenerator<Uint8Array> {
  for await (const chunk of data instanceof Uint8Array ? [data] : data) {
    seen.bytes += chunk.length;
    yield chunk;
  }
}

/**
 * Decodes a snapshot from chunks, yielding to the event loop every {@linkcode DECODE_SLICE_MS}
 * (plus one record); no
 * bytes at all decode to nothing (the empty store).
 */
export async function readSnapshotAsync(
  data: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  builder: SnapshotBuilder,
): Promise<void> {
  const reader = new SnapshotReader(builder);
  const seen = { bytes: 0 };
  let objects = 0;
  let yieldAt = performance.now() + DECODE_SLICE_MS;
  try {
    for await (const o of decodeMultiStream(asStream(data, seen))) {
      reader.push(o);
      if (++objects % DECODE_OBJECTS_PER_CLOCK_CHECK === 0 && performance.now() >= yieldAt) {
        await yieldToEventLoop();
        yieldAt = performance.now() + DECODE_SLICE_MS;
      }
    }
    if (seen.bytes > 0) reader.finish(); // no bytes at all: the empty store
  } catch (e) {
    throw e instanceof StorageCorruptError ? e : corrupt(String(e), e);
  }
}

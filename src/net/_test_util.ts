/** Helpers for the tests of this folder: waiting on conditions, nodes on 127.0.0.1, raw peers. */

import fc from "fast-check";
import type { HostPort } from "../config/mod.ts";
import type { Entry, Membership, Message } from "../raft/mod.ts";
import { MESSAGE_TYPES } from "../raft/mod.ts";
import type { LogLevel } from "./_context.ts";
import { encodeFrame, FrameDecoder } from "./_frame.ts";
import { encodeHello, type Hello } from "./_hello.ts";
import { PeerTransport, type TransportOptions } from "./transport.ts";

/** The only host tests use. */
export const LOCALHOST = "127.0.0.1";

/** Resolves once `condition()` is true (polled); rejects after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  timeoutMs = 5_000,
  what = "condition",
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A loopback address with `port`. */
export function loopback(port: number): HostPort {
  return { host: LOCALHOST, port, text: `${LOCALHOST}:${port}` };
}

/** One log line recorded by a test node. */
export interface LogLine {
  /** The level. */
  level: LogLevel;
  /** The message. */
  message: string;
}

/** A started transport with what it received and logged. */
export interface TestNode {
  /** The node's id. */
  id: string;
  /** The transport. */
  transport: PeerTransport;
  /** The bound port. */
  port: number;
  /** Messages delivered to onMessage, in order. */
  received: Message[];
  /** Log lines, in order. */
  logs: LogLine[];
}

/** Starts a transport for `id` on 127.0.0.1 (any port), recording messages and logs. */
export async function startNode(
  id: string,
  options: Partial<TransportOptions> = {},
): Promise<TestNode> {
  const received: Message[] = [];
  const logs: LogLine[] = [];
  const transport = new PeerTransport({
    clusterId: "c",
    nodeId: id,
    listen: loopback(0),
    peers: new Map(),
    onMessage: (m) => received.push(m),
    log: (level, message) => logs.push({ level, message }),
    reconnectDelayMs: { min: 5, max: 50 },
    ...options,
  });
  try {
    const { port } = await transport.start();
    return { id, transport, port, received, logs };
  } catch (error) {
    await transport.close();
    throw error;
  }
}

/** Makes every node a peer of every other one. */
export function connectAll(nodes: readonly TestNode[]): void {
  for (const node of nodes) {
    const peers = new Map(
      nodes.filter((n) => n !== node).map((n) => [n.id, loopback(n.port)] as const),
    );
    node.transport.setPeers(peers);
  }
}

/** Closes every node (in parallel). */
export async function closeAll(nodes: readonly (TestNode | undefined)[]): Promise<void> {
  await Promise.all(nodes.map((n) => n?.transport.close()));
}

/** A heartbeat response carrying `seq` in `readSeq`: small, easy to order-check. */
export function ping(from: string, to: string, seq: number): Message {
  return { type: "heartbeatResp", from, to, term: 1, readSeq: seq };
}

/** An AppendEntries with one normal entry of `bytes` bytes (byte i = (seed + i) % 251). */
export function bigAppend(from: string, to: string, index: number, bytes: number): Message {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (index + i) % 251;
  const entry: Entry = { term: 2, index: index + 1, type: "normal", data };
  return { type: "app", from, to, term: 2, index, logTerm: 1, commit: index, entries: [entry] };
}

/** A raw TCP connection to `port` on 127.0.0.1 (the caller closes it). */
export function rawConnect(port: number): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: LOCALHOST, port });
}

/** The frame of a hello. */
export function helloFrame(
  hello: Omit<Hello, "v" | "incarnation" | "formed"> & {
    v?: number;
    incarnation?: string;
    formed?: boolean;
  },
): Uint8Array {
  return encodeFrame(
    encodeHello({ v: 3, incarnation: "test-incarnation", formed: true, ...hello } as Hello),
  );
}

/** Writes all of `bytes`; false when the peer already closed the connection. */
export async function writeRaw(conn: Deno.Conn, bytes: Uint8Array): Promise<boolean> {
  try {
    let at = 0;
    while (at < bytes.length) at += await conn.write(bytes.subarray(at));
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads until the other side closes `conn` (EOF or reset): true. False when it is still open
 * after `timeoutMs` (then the read is cut short by closing `conn`, which the caller still may).
 */
export async function closedByPeer(conn: Deno.Conn, timeoutMs = 3_000): Promise<boolean> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* already closed */ }
  }, timeoutMs);
  const buffer = new Uint8Array(4096);
  try {
    while ((await conn.read(buffer)) !== null) { /* discard */ }
    return true;
  } catch {
    return !timedOut;
  } finally {
    clearTimeout(timer);
  }
}

/** Reads the next frame body from a raw connection (null at EOF). */
export async function readRawFrame(
  conn: Deno.Conn,
  decoder: FrameDecoder = new FrameDecoder(),
): Promise<Uint8Array | null> {
  const buffer = new Uint8Array(4096);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) return null;
    const bodies = [...decoder.push(buffer.subarray(0, n))];
    if (bodies.length > 0) return bodies[0];
  }
}

/** Closes a raw connection, ignoring "already closed". */
export function closeQuietly(conn: Deno.Conn | undefined): void {
  try {
    conn?.close();
  } catch { /* already closed */ }
}

// ---- valid messages, independently of the codec ----

const NAT = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const ID = fc.string({ minLength: 1, maxLength: 6 });
const BYTES = fc.uint8Array({ maxLength: 64 });

/** A sorted list of unique ids. */
const SORTED_IDS = fc.uniqueArray(ID, { maxLength: 4 }).map((ids) => ids.sort());

/** A membership satisfying the invariants (sorted, unique, learners disjoint from voters). */
export const membershipArbitrary: fc.Arbitrary<Membership> = fc
  .record({ voters: SORTED_IDS, outgoing: SORTED_IDS, learners: SORTED_IDS })
  .map(({ voters, outgoing, learners }) => ({
    voters,
    outgoing,
    learners: learners.filter((id) => !voters.includes(id) && !outgoing.includes(id)),
  }));

/** An entry at `index` with `term`: normal (no membership key at all) or config. */
function entryArbitrary(index: number, term: number): fc.Arbitrary<Entry> {
  return fc.oneof(
    BYTES.map((data): Entry => ({ term, index, type: "normal", data })),
    fc.tuple(BYTES, membershipArbitrary).map(([data, membership]): Entry => ({
      term,
      index,
      type: "config",
      data,
      membership,
    })),
  );
}

const APP_ARBITRARY: fc.Arbitrary<Message> = fc
  .record({
    from: ID,
    to: ID,
    index: fc.nat({ max: 1_000_000 }),
    logTerm: fc.nat({ max: 50 }),
    commit: NAT,
    termSteps: fc.array(fc.nat({ max: 3 }), { maxLength: 5 }),
    extra: fc.nat({ max: 5 }),
  })
  .chain(({ from, to, index, logTerm, commit, termSteps, extra }) => {
    const terms: number[] = [];
    let t = logTerm;
    for (const step of termSteps) terms.push(t += step);
    const term = t + extra;
    return fc.tuple(...terms.map((et, i) => entryArbitrary(index + 1 + i, et))).map(
      (entries): Message => ({ type: "app", from, to, term, index, logTerm, commit, entries }),
    );
  });

const SNAP_ARBITRARY: fc.Arbitrary<Message> = fc
  .record({
    from: ID,
    to: ID,
    term: NAT,
    meta: fc.record({ index: NAT, term: NAT, membership: membershipArbitrary }),
    offset: fc.nat({ max: 1_000_000 }),
    chunk: BYTES,
    slack: fc.nat({ max: 1_000 }),
  })
  .map(({ from, to, term, meta, offset, chunk, slack }): Message => ({
    type: "snap",
    from,
    to,
    term,
    meta,
    offset,
    total: offset + chunk.length + slack,
    chunk,
  }));

/** Any valid message of any type (plain objects: fast-check may build null-prototype ones). */
export const messageArbitrary: fc.Arbitrary<Message> = fc.oneof(
  APP_ARBITRARY,
  SNAP_ARBITRARY,
  fc.record({
    type: fc.constant("appResp" as const),
    from: ID,
    to: ID,
    term: NAT,
    index: NAT,
    reject: fc.boolean(),
    rejectHint: NAT,
    logTerm: NAT,
  }),
  fc.record({
    type: fc.constantFrom("vote" as const, "preVote" as const),
    from: ID,
    to: ID,
    term: NAT,
    index: NAT,
    logTerm: NAT,
    transfer: fc.boolean(),
  }),
  fc.record({
    type: fc.constantFrom("voteResp" as const, "preVoteResp" as const),
    from: ID,
    to: ID,
    term: NAT,
    reject: fc.boolean(),
  }),
  fc.record({
    type: fc.constant("heartbeat" as const),
    from: ID,
    to: ID,
    term: NAT,
    commit: NAT,
    readSeq: NAT,
  }),
  fc.record({
    type: fc.constant("heartbeatResp" as const),
    from: ID,
    to: ID,
    term: NAT,
    readSeq: NAT,
  }),
  fc.record({
    type: fc.constant("snapResp" as const),
    from: ID,
    to: ID,
    term: NAT,
    snapIndex: NAT,
    offset: NAT,
  }),
  fc.record({ type: fc.constant("timeoutNow" as const), from: ID, to: ID, term: NAT }),
  fc.record({
    type: fc.constant("readIndex" as const),
    from: ID,
    to: ID,
    term: NAT,
    context: fc.string(),
  }),
  fc.record({
    type: fc.constant("readIndexResp" as const),
    from: ID,
    to: ID,
    term: NAT,
    context: fc.string(),
    index: NAT,
  }),
).map((m) => structuredClone(m));

const KEYS_BY_TYPE: Record<string, Record<string, string>> = {
  app: { index: "uint", logTerm: "uint", commit: "uint", entries: "entries" },
  appResp: { index: "uint", reject: "bool", rejectHint: "uint", logTerm: "uint" },
  vote: { index: "uint", logTerm: "uint", transfer: "bool" },
  preVote: { index: "uint", logTerm: "uint", transfer: "bool" },
  voteResp: { reject: "bool" },
  preVoteResp: { reject: "bool" },
  heartbeat: { commit: "uint", readSeq: "uint" },
  heartbeatResp: { readSeq: "uint" },
  snap: { meta: "meta", offset: "uint", total: "uint", chunk: "bytes" },
  snapResp: { snapIndex: "uint", offset: "uint" },
  timeoutNow: {},
  readIndex: { context: "string" },
  readIndexResp: { context: "string", index: "uint" },
};

/**
 * Whether `value` is a well-formed Message: exactly the keys of its type, each of the right
 * kind. Written without the codec, to check it.
 */
export function isValidMessage(value: unknown): value is Message {
  if (typeof value !== "object" || value === null) return false;
  const m = value as Record<string, unknown>;
  if (!MESSAGE_TYPES.includes(m.type as Message["type"])) return false;
  const kinds = {
    type: "type",
    from: "id",
    to: "id",
    term: "uint",
    ...KEYS_BY_TYPE[m.type as string],
  };
  const keys = Object.keys(m);
  if (keys.length !== Object.keys(kinds).length) return false;
  return Object.entries(kinds).every(([key, kind]) => key in m && isKind(m[key], kind));
}

function isKind(value: unknown, kind: string): boolean {
  switch (kind) {
    case "type":
      return true;
    case "id":
      return typeof value === "string" && value !== "";
    case "uint":
      return Number.isSafeInteger(value) && (value as number) >= 0;
    case "bool":
      return typeof value === "boolean";
    case "string":
      return typeof value === "string";
    case "bytes":
      return value instanceof Uint8Array;
    case "entries":
      return Array.isArray(value) && value.every(isValidEntry);
    case "meta": {
      const meta = value as Record<string, unknown>;
      return typeof meta === "object" && meta !== null && isKind(meta.index, "uint") &&
        isKind(meta.term, "uint") && isValidMembership(meta.membership);
    }
  }
  return false;
}

function isValidEntry(value: unknown): boolean {
  const e = value as Record<string, unknown>;
  if (typeof e !== "object" || e === null) return false;
  if (!isKind(e.term, "uint") || !isKind(e.index, "uint") || !isKind(e.data, "bytes")) return false;
  if (e.type === "normal") return !("membership" in e) && Object.keys(e).length === 4;
  return e.type === "config" && isValidMembership(e.membership) && Object.keys(e).length === 5;
}

function isValidMembership(value: unknown): boolean {
  const m = value as Record<string, unknown>;
  if (typeof m !== "object" || m === null) return false;
  return [m.voters, m.outgoing, m.learners].every((ids) =>
    Array.isArray(ids) && ids.every((id) => typeof id === "string" && id !== "")
  );
}

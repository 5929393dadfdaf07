/** The driver's options, limits and injected services (transport, clock, log). */
import type { Message, NodeId } from "../raft/mod.ts";
import type { KvLogStorage, KvStateMachineOptions, MemberAddress } from "../storage/mod.ts";

/** What the driver needs from the peer transport. */
export interface PeerSender {
  /** Sends messages (best effort: Raft retries what is lost). */
  send(messages: readonly Message[]): void;
  /** Replaces the set of peers and their Raft addresses (`host:port`). */
  setPeers(peers: ReadonlyMap<NodeId, string>): void;
  /** Counters for /metrics. */
  stats?(): Readonly<Record<string, number>>;
}

/** A clock the driver ticks from; tests inject a manual one. */
export interface TickSource {
  /** Calls `fn` every `ms` milliseconds until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
}

/** Dropped peer messages are logged at most once per reason in this interval. */
export const DROP_LOG_INTERVAL_MS = 10_000;

/** The real clock. */
export const SYSTEM_TICKS: TickSource = {
  every(ms, fn) {
    const id = setInterval(fn, ms);
    return () => clearInterval(id);
  },
};

/** Structured log calls of the driver. */
export type NodeLog = (
  level: "debug" | "info" | "warning" | "error" | "fatal",
  message: string,
  fields?: Record<string, unknown>,
) => void;

/** Limits of the driver, each with a default in {@linkcode DRIVER_LIMITS}. */
export interface DriverLimits {
  /** Writes waiting to commit; more answer `503 overloaded`. */
  readonly proposalsPendingMax: number;
  /** Linearizable reads waiting; more answer `503 overloaded`. */
  readonly readsPendingMax: number;
  /** How long a write or read may wait before it answers `503` (outcome unknown). */
  readonly requestTimeoutMs: number;
  /**
   * While the oldest waiting write (or read) has waited longer than this, new writes (reads)
   * answer `503 overloaded` with `retry-after` at once instead of queueing behind it.
   */
  readonly queueWaitMaxMs: number;
  /** Take a snapshot and compact the log after this many applied entries, at least (the
   * interval grows with the number of keys). */
  readonly snapshotEntries: number;
  /** Take a snapshot once the log holds this many bytes, at least (the interval grows with
   * the state's bytes). */
  readonly snapshotLogBytes: number;
  /** Bytes of one chunk of a snapshot encoded in the background. */
  readonly snapshotChunkBytes: number;
}

/** The default driver limits. */
export const DRIVER_LIMITS: DriverLimits = {
  proposalsPendingMax: 16_384,
  readsPendingMax: 16_384,
  requestTimeoutMs: 10_000,
  queueWaitMaxMs: 2_000,
  snapshotEntries: 20_000,
  snapshotLogBytes: 32 << 20,
  snapshotChunkBytes: 512 << 10,
};

/** Everything {@linkcode RaftNode.start} needs. */
export interface DriverOptions {
  /** This node. */
  readonly nodeId: NodeId;
  /** Its cluster. */
  readonly clusterId: string;
  /** Its durable Raft state. */
  readonly storage: KvLogStorage;
  /** The founding voters of the cluster with their addresses (used once, to bootstrap). */
  readonly founders: ReadonlyMap<NodeId, MemberAddress>;
  /** Whether this node waits to be added instead of founding the cluster. */
  readonly join: boolean;
  /** Every address the deployment file knows (id -> addresses). */
  readonly knownAddresses: ReadonlyMap<NodeId, MemberAddress>;
  /** Milliseconds per Raft tick. */
  readonly tickMs: number;
  /** Heartbeat interval in ticks. */
  readonly heartbeatTicks: number;
  /** Election timeout range in ticks `[min, max)`. */
  readonly electionTicks: readonly [number, number];
  /** The peer transport. */
  readonly transport: PeerSender;
  /** The cluster that owns a key under the routing table of `epoch`. */
  readonly owner: (key: Uint8Array) => string;
  /** The routing epoch. */
  readonly epoch: number;
  /** Injected clock (default: the system's). */
  readonly ticks?: TickSource;
  /** Injected monotonic clock in milliseconds (default `performance.now`). */
  readonly now?: () => number;
  /** Injected wall clock, ms since 1970 (default `Date.now`): versionstamps and expiry. */
  readonly wall?: () => number;
  /**
   * The cluster's position among the deployment's clusters: its versionstamps are those equal
   * to it modulo `VERSIONSTAMP_SLOTS` (unique across clusters); default 0.
   */
  readonly versionstampSlot?: number;
  /** Injected randomness for election timeouts (default Math.random). */
  readonly random?: () => number;
  /** Limits (defaults: {@linkcode DRIVER_LIMITS}). */
  readonly limits?: Partial<DriverLimits>;
  /** State machine options (its limits must be equal on every member). */
  readonly stateMachine?: KvStateMachineOptions;
  /**
   * Called when the state was loaded from a snapshot at `rev`: at start (before the entries
   * after it are applied again) and when a snapshot from the leader is installed. The changes
   * up to `rev` are then not known one by one (the watch hub's floor, `_watch_hub.ts`).
   */
  readonly onStateLoaded?: (rev: number) => void;
  /** Structured logging. */
  readonly log?: NodeLog;
  /** Called when the node cannot go on (storage failure, broken invariant). */
  readonly onFatal?: (error: unknown) => void;
}

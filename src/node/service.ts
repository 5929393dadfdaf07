import type { Membership, NodeId } from "../raft/mod.ts";
import type { KvCommand, KvMutation, KvResult, KvStateMachine, KvValue } from "../storage/mod.ts";
import type {
  KeySpan,
  ReadRange,
  SnapshotCheck,
  SnapshotPart,
  TxnAnswer,
  TxnCommand,
} from "../txn/mod.ts";
import type { DiskStatus } from "./_disk_failure.ts";
import type { TxnRecords } from "./_txn_service.ts";

export type { DiskStatus } from "./_disk_failure.ts";

/** One member in {@linkcode NodeStatus}. */
export interface MemberStatus {
  /** The member's id. */
  readonly id: NodeId;
  /** Whether it votes. */
  readonly voter: boolean;
  /** The highest log index known to match the leader (leader only; 0 elsewhere). */
  readonly match: number;
}

/** The answer of `GET /v1/status` (docs/api.md). */
export interface NodeStatus {
  /** This node. */
  readonly node: NodeId;
  /** Its cluster. */
  readonly cluster: string;
  /** Its Raft role. */
  readonly role: string;
  /** Its current term. */
  readonly term: number;
  /** The leader it knows, or "" (NONE). */
  readonly leader: NodeId;
  /** The commit index. */
  readonly commit: number;
  /** The applied index. */
  readonly applied: number;
  /** The index of the latest snapshot. */
  readonly snapshot: number;
  /** The routing epoch the node checks keys against. */
  readonly epoch: number;
  /** Keys this node's state holds (koi's own records not counted). */
  readonly keys: number;
  /** Bytes of those keys and values. */
  readonly bytes: number;
  /** The members of the membership in effect. */
  readonly members: readonly MemberStatus[];
  /** Whether the data directory takes writes (docs/disk_failures.md); absent in old fakes. */
  readonly disk?: DiskStatus;
  /** Gets and lists this node answered since it started (stale ones included). */
  readonly reads?: number;
  /** Writes this node acknowledged since it started (as leader: followers forward). */
  readonly writes?: number;
  /** The replicated routing state, once a move began (docs/resharding.md). */
  readonly routing?: RoutingStatus;
}

/** A cluster's replicated routing state as `GET /v1/status` reports it. */
export interface RoutingStatus {
  /** The epoch of the table in force. */
  readonly epoch: number;
  /** What the cluster adds to log indexes to make revs. */
  readonly revBase: number;
  /** The move to the next epoch, while one runs; cursors in base64url, null for the end. */
  readonly move?: {
    readonly epoch: number;
    readonly fenced: string | null;
    readonly received: Readonly<Record<string, string | null>>;
  };
}

/** A member to add, as `POST /v1/members` carries it. */
export interface MemberSpec {
  /** The new member's id. */
  readonly id: NodeId;
  /** Its Raft address, `host:port`. */
  readonly raft: string;
  /** Its HTTP address, `host:port`. */
  readonly http: string;
  /** `false`: add as a learner; `true`: add as a voter, or promote an existing learner. */
  readonly voter: boolean;
}

/** A page of `GET /v1/kv?prefix=…`. */
export interface ListPage {
  /** Keys and revisions in byte order. */
  readonly items: readonly { readonly key: Uint8Array; readonly rev: number }[];
  /** Whether more keys follow. */
  readonly more: boolean;
}

/** A range of keys to read: `start` inclusive, `end` exclusive, in byte order. */
export interface KeyRange {
  readonly start: Uint8Array;
  readonly end: Uint8Array;
  /** Entries at most. */
  readonly limit: number;
  /** From the end backwards. */
  readonly reverse: boolean;
}

/** A key and its value with metadata, as {@linkcode NodeService.readRanges} answers it. */
export interface RangeEntry {
  readonly key: Uint8Array;
  readonly entry: KvValue;
}

/** A write whose command depends on its versionstamp (`NodeService.writeStamped`). */
export interface StampedWrite {
  /** `"<client>:<seq>"`: a retry of an applied write gets its answer. */
  readonly requestId?: string;
  /** The versionstamp must exceed this (the largest one the caller has seen). */
  readonly afterVs?: number;
  /**
   * The command for versionstamp `vs` (which it must carry), or undefined when that
   * versionstamp does not fit (a suffixed key of another cluster): the next one is tried.
   */
  readonly build: (vs: number) => KvCommand | undefined;
}

/**
 * What the HTTP layer needs from a node. The real one is the Raft driver; tests use fakes.
 *
 * Operations that need the leader throw `NotLeaderError` (from `src/raft`) carrying the leader
 * hint; the HTTP layer then forwards the request to {@linkcode leaderHttp}. Other failures are
 * the typed errors of `src/node/errors.ts`.
 */
export interface NodeService {
  /** This node's id. */
  readonly nodeId: NodeId;
  /** This node's cluster id. */
  readonly clusterId: string;
  /** Whether the node has loaded its state (for `/healthz`). */
  loaded(): boolean;
  /** Whether the data directory takes writes (for `/healthz`); absent: it does. */
  diskStatus?(): DiskStatus;
  /** The leader this node knows, or "". */
  leader(): NodeId;
  /** The HTTP address (`host:port`) of the known leader, or undefined. */
  leaderHttp(): string | undefined;
  /** The routing epoch; {@linkcode owns} answers for this epoch's table. */
  epoch(): number;
  /** Whether this node's cluster owns `key` under the current routing table. */
  owns(key: Uint8Array): boolean;
  /** The cluster that owns `key` under the current routing table (for `421 wrong_shard`). */
  owner?(key: Uint8Array): string;
  /**
   * Reads a key. `stale: false` is linearizable (ReadIndex: may throw `NoLeaderError`,
   * `OverloadedError`, `RequestTimeoutError`); `stale: true` reads local state at once.
   */
  get(key: Uint8Array, options: { stale: boolean }): Promise<KvValue | undefined>;
  /** Lists keys by prefix (same consistency rules as {@linkcode get}). */
  list(
    options: { prefix: Uint8Array; after?: Uint8Array; limit: number; stale: boolean },
  ): Promise<ListPage>;
  /**
   * Replicates a command and answers what applying it answered. Leader only (else
   * `NotLeaderError`, thrown only before anything was proposed, so the caller may send the
   * write to the leader instead); may throw `OverloadedError`, `NoLeaderError`,
   * `RequestTimeoutError`.
   */
  write(command: KvCommand): Promise<KvResult>;
  /**
   * As {@linkcode write}, for a command built once its versionstamp is chosen (KV Connect's
   * atomic writes; absent in fakes). Throws `BadRequestError` for an `afterVs` far ahead of
   * the clock.
   */
  writeStamped?(request: StampedWrite): Promise<KvResult>;
  /**
   * Reads ranges of keys with values and metadata, keys of other clusters and koi's own
   * records left out (same consistency rules as {@linkcode get}; absent in fakes).
   */
  readRanges?(ranges: readonly KeyRange[], options: { stale: boolean }): Promise<RangeEntry[][]>;
  /**
   * Proposes a cross-cluster transaction command (docs/transactions.md) and answers what
   * applying it answered. Leader only, as {@linkcode write}; absent in fakes.
   */
  txnCommand?(cmd: TxnCommand<KvMutation>): Promise<TxnAnswer>;
  /** Decisions not forgotten and prepared attempts, past their deadline (a janitor's). */
  txnRecords?(limit: number): Promise<TxnRecords>;
  /** Per attempt, whether this cluster still holds its intent. */
  txnHeld?(txns: readonly string[]): Promise<boolean[]>;
  /** A snapshot read's first round here (linearizable): the ranges, or a write lock in one. */
  snapshotPart?(ranges: readonly ReadRange[]): Promise<SnapshotPart<RangeEntry>>;
  /** A snapshot read's second round here: nothing changed in `spans` after index `since`. */
  snapshotCheck?(spans: readonly KeySpan[], since: number): Promise<SnapshotCheck>;
  /** `GET /v1/status`. */
  status(): NodeStatus;
  /** Adds a learner or voter, or promotes a learner (leader only). */
  addMember(member: MemberSpec): Promise<void>;
  /** Removes a member (leader only). */
  removeMember(id: NodeId): Promise<void>;
  /** Hands leadership to `to` and resolves once it leads, or throws (leader only). */
  transferLeader(to: NodeId): Promise<void>;
  /** Takes a snapshot of the state machine and compacts the log; resolves with its index. */
  snapshot(): Promise<{ index: number }>;
  /** The Prometheus text exposition of the node's metrics. */
  metrics(): string;
  /**
   * Proposes an encoded routing command (docs/resharding.md) and resolves with its answer
   * once applied (leader only; absent in fakes).
   */
  route?(data: Uint8Array): Promise<KvResult>;
  /** Reads the state machine after a read barrier, for a move (leader only). */
  readForMove?<T>(read: (sm: KvStateMachine) => T): Promise<T>;
  /** The membership in effect. */
  membership(): Membership;
}

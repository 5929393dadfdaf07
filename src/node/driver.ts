import {
  bootstrapStorage,
  type Entry,
  isJoint,
  type Membership,
  type Message,
  type NodeId,
  NotLeaderError,
  ProposalDroppedError,
  Raft,
  type ReadState,
  type Snapshot,
  SnapshotOutOfDateError,
  type SoftState,
} from "../raft/mod.ts";
import {
  decodeMemberContext,
  encodeCommand,
  encodeMemberContext,
  type KvCommand,
  type KvLogStorage,
  type KvResult,
  KvStateMachine,
  type KvStateMachineOptions,
  type KvValue,
  type MemberAddress,
} from "../storage/mod.ts";
import { NoLeaderError, OverloadedError, RequestTimeoutError } from "./errors.ts";
import { renderMetrics } from "./_metrics.ts";
import { shouldSnapshot } from "./_snapshot_policy.ts";
import {
  decodeIncarnation,
  encodeIncarnation,
  incarnationKey,
  isSystemKey,
} from "./_system_keys.ts";
import type { ListPage, MemberSpec, NodeService, NodeStatus } from "./service.ts";

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
const DROP_LOG_INTERVAL_MS = 10_000;

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
  /** Whether this cluster owns a key under the routing table of `epoch`. */
  readonly owns: (key: Uint8Array) => boolean;
  /** The routing epoch. */
  readonly epoch: number;
  /** Injected clock (default: the system's). */
  readonly ticks?: TickSource;
  /** Injected randomness for election timeouts (default Math.random). */
  readonly random?: () => number;
  /** Limits (defaults: {@linkcode DRIVER_LIMITS}). */
  readonly limits?: Partial<DriverLimits>;
  /** State machine options (must be equal on every member). */
  readonly stateMachine?: KvStateMachineOptions;
  /** Structured logging. */
  readonly log?: NodeLog;
  /** Called when the node cannot go on (storage failure, broken invariant). */
  readonly onFatal?: (error: unknown) => void;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

interface AppliedWaiter {
  readonly until: () => boolean;
  readonly waiter: Waiter<void>;
}

interface ProposalWaiter extends Waiter<KvResult | undefined> {
  readonly term: number;
}

/**
 * A Raft member as a running service: it drives the pure core with Deno.Kv storage and the
 * peer transport, applies committed entries to the in-memory KV state machine, and answers
 * the HTTP layer through {@linkcode NodeService}.
 *
 * The Ready loop is a group commit: while one Deno.Kv commit is in flight, every proposal and
 * message keeps stepping into the core, and the next Ready persists all of it in one commit.
 */
export class RaftNode implements NodeService {
  readonly nodeId: NodeId;
  readonly clusterId: string;
  readonly #o: DriverOptions;
  readonly #limits: DriverLimits;
  readonly #storage: KvLogStorage;
  readonly #raft: Raft;
  #sm: KvStateMachine;
  readonly #log: NodeLog;
  readonly #addresses = new Map<NodeId, MemberAddress>();
  readonly #proposals = new Map<number, ProposalWaiter>();
  readonly #reads = new Map<string, Waiter<void>>();
  #readyReads: ReadState[] = [];
  #readSeq = 0;
  /** Makes read contexts unique across restarts: a leader may still hold a pre-restart one. */
  readonly #bootNonce = crypto.randomUUID().slice(0, 13);
  #sendScheduled = false;
  readonly #dropLoggedAt = new Map<string, number>();
  #snapshotTask: Promise<number> | undefined;
  /** Incarnations peers presented in their hello, for the leader to record. */
  readonly #seenIncarnations = new Map<NodeId, string>();
  /** Incarnation records proposed and not yet applied (no duplicate proposals). */
  readonly #incarnationsProposing = new Set<NodeId>();
  #appliedWaiters: AppliedWaiter[] = [];
  #loadedAt: number;
  #running = false;
  #loop: Promise<void> = Promise.resolve();
  #closed = false;
  #stopTicks: () => void = () => {};
  #lastSnapshotIndex: number;
  readonly #counters = {
    writes: 0,
    writesFailed: 0,
    reads: 0,
    readyBatches: 0,
    entriesApplied: 0,
    messagesSentBeforePersist: 0,
    messagesSentAfterPersist: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    peersRefused: 0,
  };

  private constructor(options: DriverOptions, sm: KvStateMachine) {
    this.#o = options;
    this.nodeId = options.nodeId;
    this.clusterId = options.clusterId;
    this.#limits = { ...DRIVER_LIMITS, ...options.limits };
    this.#storage = options.storage;
    this.#sm = sm;
    this.#log = options.log ?? (() => {});
    const snapshot = options.storage.snapshot();
    this.#lastSnapshotIndex = snapshot.meta.index;
    this.#raft = new Raft({
      id: options.nodeId,
      storage: options.storage,
      electionTicks: options.electionTicks[0],
      electionTicksMax: options.electionTicks[1],
      heartbeatTicks: options.heartbeatTicks,
      random: options.random ?? Math.random,
      applied: snapshot.meta.index,
      onDrop: (reason, message) => this.#onDrop(reason, message),
    });
    this.#loadedAt = options.storage.hardState().commit;
    for (const [id, a] of options.knownAddresses) this.#addresses.set(id, a);
    for (const [id, a] of sm.addresses()) this.#addresses.set(id, a);
  }

  /** Logs a dropped peer message, at most once per reason every 10 s (they are counted). */
  #onDrop(reason: string, message: unknown): void {
    const now = Date.now();
    if ((this.#dropLoggedAt.get(reason) ?? -Infinity) > now - DROP_LOG_INTERVAL_MS) return;
    this.#dropLoggedAt.set(reason, now);
    const m = message as Partial<Message>;
    this.#log("warning", "dropped an impossible peer message", {
      reason,
      type: m?.type,
      from: m?.from,
      term: m?.term,
    });
  }

  /** Loads (or bootstraps) the node's state and starts ticking. */
  static async start(options: DriverOptions): Promise<RaftNode> {
    const storage = options.storage;
    if (storage.lastIndex() === 0 && !options.join) {
      const founders = Object.fromEntries(options.founders);
      await bootstrapStorage(storage, [...options.founders.keys()], encodeMemberContext(founders));
    }
    const data = storage.snapshot().data;
    const sm = data.length === 0
      ? new KvStateMachine(options.stateMachine)
      : KvStateMachine.decodeSnapshot(data, options.stateMachine);
    const node = new RaftNode(options, sm);
    node.#updatePeers();
    node.#stopTicks = (options.ticks ?? SYSTEM_TICKS).every(options.tickMs, () => node.tick());
    node.#kick();
    return node;
  }

  /** Advances the Raft clock by one tick. */
  tick(): void {
    if (this.#closed) return;
    this.#raft.tick();
    this.#scheduleSend();
    this.#kick();
  }

  /** Feeds a message from a peer. */
  step(m: Message): void {
    if (this.#closed) return;
    this.#raft.step(m);
    this.#scheduleSend();
    this.#kick();
  }

  /**
   * Sends what needs no persist (heartbeats, catch-up appends, read answers, vote requests of
   * a pre-vote) at the end of this turn, even while the Ready loop waits for Deno.Kv: so a slow
   * commit never delays heartbeats into an election.
   */
  #scheduleSend(): void {
    if (this.#sendScheduled) return;
    this.#sendScheduled = true;
    queueMicrotask(() => {
      this.#sendScheduled = false;
      if (this.#closed) return;
      const msgs = this.#raft.readyMessages();
      if (msgs.length === 0) return;
      this.#counters.messagesSentBeforePersist += msgs.length;
      this.#o.transport.send(msgs);
    });
  }

  /** Stops ticking and fails every waiting request; in-flight persistence finishes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTicks();
    const closing = new NoLeaderError(`Node ${this.nodeId} is shutting down`);
    for (const w of this.#proposals.values()) this.#settle(w, closing);
    for (const w of this.#reads.values()) this.#settle(w, closing);
    for (const { waiter } of this.#appliedWaiters) this.#settle(waiter, closing);
    this.#proposals.clear();
    this.#reads.clear();
    this.#appliedWaiters = [];
    await this.#loop; // in-flight persistence finishes before the storage closes
    await this.#snapshotTask?.catch(() => {}); // stops at its next chunk
    await this.#storage.idle(); // background deletions, before the caller closes Deno.Kv
  }

  // ---------------------------------------------------------------------------------------
  // The Ready loop

  #kick(): void {
    if (this.#running || this.#closed) return;
    this.#running = true;
    this.#loop = Promise.resolve().then(() => this.#run());
  }

  async #run(): Promise<void> {
    try {
      while (!this.#closed && this.#raft.hasReady()) {
        const rd = this.#raft.ready();
        // A leader's appends of this batch leave while it writes them (§10.2.1).
        if (rd.messages.length > 0) {
          this.#counters.messagesSentBeforePersist += rd.messages.length;
          this.#o.transport.send(rd.messages);
        }
        await this.#storage.persist({
          snapshot: rd.snapshot,
          entries: rd.entries,
          hardState: rd.hardState,
        });
        this.#counters.readyBatches++;
        this.#noteAddresses(rd.entries);
        if (rd.messagesAfterPersist.length > 0) {
          this.#counters.messagesSentAfterPersist += rd.messagesAfterPersist.length;
          this.#o.transport.send(rd.messagesAfterPersist);
        }
        if (rd.snapshot !== undefined) await this.#installSnapshot(rd.snapshot);
        for (const e of rd.committedEntries) this.#apply(e);
        this.#readyReads.push(...rd.readStates);
        this.#serveReads();
        this.#raft.advance();
        if (rd.softState !== undefined) this.#onSoftState(rd.softState);
        this.#checkAppliedWaiters();
        this.#maybeSnapshot();
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#running = false;
    }
    if (!this.#closed && this.#raft.hasReady()) this.#kick();
  }

  #apply(e: Entry): void {
    const result = this.#sm.apply(e);
    this.#counters.entriesApplied++;
    if (e.type === "config") {
      this.#updatePeers();
      this.#recordIncarnations(); // an added member is recorded once its addition applies
    }
    const w = this.#proposals.get(e.index);
    if (w === undefined) return;
    this.#proposals.delete(e.index);
    if (w.term === e.term) {
      this.#settle(w, undefined, result);
    } else {
      this.#counters.writesFailed++;
      this.#settle(
        w,
        new NoLeaderError(`Leadership changed before the write committed; it was not applied`),
      );
    }
  }

  async #installSnapshot(snapshot: Snapshot): Promise<void> {
    // Decoded in steps that yield, so ticks and heartbeats go on during a large install.
    this.#sm = await KvStateMachine.decodeSnapshotAsync(snapshot.data, this.#o.stateMachine);
    this.#counters.snapshotsInstalled++;
    this.#lastSnapshotIndex = snapshot.meta.index;
    for (const [id, a] of this.#sm.addresses()) this.#addresses.set(id, a);
    this.#updatePeers();
    this.#log("info", "installed a snapshot from the leader", { index: snapshot.meta.index });
  }

  /** Config entries carry the addresses of added members: learn them as soon as appended. */
  #noteAddresses(entries: readonly Entry[]): void {
    let changed = false;
    for (const e of entries) {
      if (e.type !== "config") continue;
      for (const [id, a] of Object.entries(decodeMemberContext(e.data))) {
        this.#addresses.set(id, a);
        changed = true;
      }
    }
    if (changed) this.#updatePeers();
  }

  #updatePeers(): void {
    const peers = new Map<NodeId, string>();
    for (const [id, a] of this.#addresses) if (id !== this.nodeId) peers.set(id, a.raft);
    this.#o.transport.setPeers(peers);
  }

  #onSoftState(soft: SoftState): void {
    this.#log("info", "role changed", {
      role: soft.role,
      leader: soft.leader,
      term: this.#raft.term,
    });
    if (soft.role === "leader") this.#recordIncarnations();
  }

  #maybeSnapshot(): void {
    if (this.#snapshotTask !== undefined) return;
    const due = shouldSnapshot({
      entriesSince: this.#sm.applied - this.#lastSnapshotIndex,
      logBytes: this.#storage.logBytes(),
      keys: this.#sm.size,
      stateBytes: this.#sm.bytes,
    }, this.#limits);
    if (due) this.#takeSnapshot().catch(() => {}); // failures are handled in #takeSnapshot
  }

  /**
   * Snapshots the state machine in the background: a copy-on-write view is taken now (O(1)),
   * then encoded and written in chunks while the Ready loop goes on; the log is compacted once
   * the snapshot is durable. Concurrent callers share the snapshot in progress.
   */
  #takeSnapshot(): Promise<number> {
    if (this.#snapshotTask !== undefined) return this.#snapshotTask;
    const index = this.#sm.applied;
    const current = this.#storage.snapshot().meta.index;
    if (index <= current) return Promise.resolve(current);
    const view = this.#sm.snapshotView();
    const membership = this.#sm.membership;
    const task = (async () => {
      try {
        await this.#storage.createSnapshot(index, {
          membership,
          data: untilClosed(view.encodeChunks(this.#limits.snapshotChunkBytes), () => this.#closed),
        });
      } catch (error) {
        if (this.#closed) throw error; // abandoned by close(): the chunks are garbage
        if (error instanceof SnapshotOutOfDateError) {
          return this.#storage.snapshot().meta.index; // a newer one was installed meanwhile
        }
        this.#fail(error);
        throw error;
      }
      this.#lastSnapshotIndex = Math.max(this.#lastSnapshotIndex, index);
      this.#counters.snapshotsTaken++;
      this.#log("info", "took a snapshot and compacted the log", { index });
      return index;
    })();
    this.#snapshotTask = task;
    task.then(() => {}, () => {}).finally(() => {
      this.#snapshotTask = undefined;
    });
    return task;
  }

  #fail(error: unknown): void {
    if (this.#closed) return;
    this.#log("fatal", "Raft loop failed: the node stops", { error: String(error) });
    this.#closed = true;
    this.#stopTicks();
    this.#o.onFatal?.(error);
  }

  // ---------------------------------------------------------------------------------------
  // Waiting

  #wait<T>(
    register: (w: Waiter<T>) => void,
    what: string,
    timeoutMs = this.#limits.requestTimeoutMs,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const w: Waiter<T> = {
        resolve,
        reject,
        timer: setTimeout(() => {
          reject(new RequestTimeoutError(`${what} did not complete in ${timeoutMs} ms`));
        }, timeoutMs),
      };
      register(w);
    });
  }

  #settle<T>(w: Waiter<T>, error: unknown, value?: T): void {
    clearTimeout(w.timer);
    if (error !== undefined) w.reject(error);
    else w.resolve(value as T);
  }

  #serveReads(): void {
    const waiting: ReadState[] = [];
    for (const rs of this.#readyReads) {
      if (rs.index > this.#sm.applied) {
        waiting.push(rs);
        continue;
      }
      const w = this.#reads.get(rs.context);
      if (w === undefined) continue; // timed out meanwhile
      this.#reads.delete(rs.context);
      this.#settle(w, undefined);
    }
    this.#readyReads = waiting;
  }

  #checkAppliedWaiters(): void {
    if (this.#appliedWaiters.length === 0) return;
    const still: AppliedWaiter[] = [];
    for (const aw of this.#appliedWaiters) {
      if (aw.until()) this.#settle(aw.waiter, undefined);
      else still.push(aw);
    }
    this.#appliedWaiters = still;
  }

  /** Resolves once `until()` holds after an apply (or at once if it holds now). */
  #waitApplied(until: () => boolean, what: string, timeoutMs?: number): Promise<void> {
    if (until()) return Promise.resolve();
    const promise = this.#wait<void>(
      (waiter) => this.#appliedWaiters.push({ until, waiter }),
      what,
      timeoutMs,
    );
    promise.catch(() => {
      this.#appliedWaiters = this.#appliedWaiters.filter((aw) => aw.until !== until);
    });
    return promise;
  }

  /** A linearizable read barrier: resolves once the state reflects every earlier commit. */
  async #readBarrier(): Promise<void> {
    if (this.#reads.size >= this.#limits.readsPendingMax) {
      throw new OverloadedError(`${this.#reads.size} reads wait on node ${this.nodeId}`);
    }
    const context = `${this.nodeId}:${this.#bootNonce}:${++this.#readSeq}`;
    try {
      this.#raft.readIndex(context);
    } catch (e) {
      if (e instanceof NotLeaderError) throw new NoLeaderError(e.message);
      if (e instanceof ProposalDroppedError) throw new OverloadedError(e.message);
      throw e;
    }
    this.#counters.reads++;
    this.#scheduleSend(); // the heartbeat round that confirms leadership
    this.#kick();
    const p = this.#wait<void>((w) => this.#reads.set(context, w), "The read");
    p.catch(() => this.#reads.delete(context));
    await p;
  }

  // ---------------------------------------------------------------------------------------
  // NodeService

  /** See {@linkcode NodeService.loaded}. */
  loaded(): boolean {
    return this.#sm.applied >= this.#loadedAt;
  }

  /** See {@linkcode NodeService.leader}. */
  leader(): NodeId {
    return this.#raft.leader;
  }

  /** See {@linkcode NodeService.leaderHttp}. */
  leaderHttp(): string | undefined {
    const leader = this.#raft.leader;
    return leader === "" ? undefined : this.#addresses.get(leader)?.http;
  }

  /** See {@linkcode NodeService.epoch}. */
  epoch(): number {
    return this.#o.epoch;
  }

  /** See {@linkcode NodeService.owns}. */
  owns(key: Uint8Array): boolean {
    return this.#o.owns(key);
  }

  /** See {@linkcode NodeService.membership}. */
  membership(): Membership {
    return this.#raft.membership;
  }

  /** See {@linkcode NodeService.get}. */
  async get(key: Uint8Array, options: { stale: boolean }): Promise<KvValue | undefined> {
    if (!options.stale) await this.#readBarrier();
    return this.#sm.get(key);
  }

  /** See {@linkcode NodeService.list}. */
  async list(
    options: { prefix: Uint8Array; after?: Uint8Array; limit: number; stale: boolean },
  ): Promise<ListPage> {
    if (!options.stale) await this.#readBarrier();
    const page = this.#sm.list(options);
    // System keys sort after every user key: the first one ends the listing.
    const cut = page.items.findIndex((item) => isSystemKey(item.key));
    if (cut < 0) return page;
    return { items: page.items.slice(0, cut), more: false };
  }

  /** See {@linkcode NodeService.write}. */
  async write(command: KvCommand): Promise<KvResult> {
    if (command.requestId !== undefined) {
      const answered = this.#sm.answered(command.requestId);
      if (answered !== undefined) return answered; // a retry of an applied write
    }
    const result = await this.#propose(encodeCommand(command), "The write");
    this.#counters.writes++;
    return result!;
  }

  #propose(data: Uint8Array, what: string): Promise<KvResult | undefined> {
    if (this.#proposals.size >= this.#limits.proposalsPendingMax) {
      throw new OverloadedError(`${this.#proposals.size} writes wait on node ${this.nodeId}`);
    }
    let proposed: { index: number; term: number };
    try {
      proposed = this.#raft.propose(data);
    } catch (e) {
      if (e instanceof ProposalDroppedError) throw new OverloadedError(e.message);
      throw e; // NotLeaderError: the HTTP layer forwards
    }
    this.#kick();
    return this.#waitProposal(proposed, what);
  }

  #waitProposal(p: { index: number; term: number }, what: string): Promise<KvResult | undefined> {
    const promise = this.#wait<KvResult | undefined>(
      (w) => this.#proposals.set(p.index, { ...w, term: p.term }),
      what,
    );
    promise.catch(() => {
      if (this.#proposals.get(p.index)?.term === p.term) this.#proposals.delete(p.index);
    });
    return promise;
  }

  /** See {@linkcode NodeService.status}. */
  status(): NodeStatus {
    const st = this.#raft.status();
    const matchOf = new Map(st.progress.map((p) => [p.id, p.match]));
    const m = st.membership;
    const members = [...new Set([...m.voters, ...m.outgoing, ...m.learners])].sort().map((id) => ({
      id,
      voter: m.voters.includes(id) || m.outgoing.includes(id),
      match: matchOf.get(id) ?? 0,
    }));
    return {
      node: this.nodeId,
      cluster: this.clusterId,
      role: st.role,
      term: st.term,
      leader: st.leader,
      commit: st.commit,
      applied: this.#sm.applied,
      snapshot: this.#storage.snapshot().meta.index,
      epoch: this.#o.epoch,
      members,
    };
  }

  /** See {@linkcode NodeService.addMember}. */
  async addMember(member: MemberSpec): Promise<void> {
    const m = this.#raft.membership;
    const isLearner = m.learners.includes(member.id);
    const type = member.voter ? "addVoter" : "addLearner";
    if (!member.voter && isLearner) return; // already a learner
    const context = encodeMemberContext({ [member.id]: { raft: member.raft, http: member.http } });
    this.#addresses.set(member.id, { raft: member.raft, http: member.http });
    this.#updatePeers();
    await this.#changeMembership(() =>
      this.#raft.proposeMembership([{ type, id: member.id }], context)
    );
  }

  /** See {@linkcode NodeService.removeMember}. */
  async removeMember(id: NodeId): Promise<void> {
    await this.#changeMembership(() => this.#raft.proposeMembership([{ type: "remove", id }]));
    // A removed member may come back with a new data directory (as a joining member). If
    // this node just removed itself, the next leader forgets the record instead.
    this.#seenIncarnations.delete(id);
    await this.#forgetRemovedIncarnations();
  }

  async #changeMembership(propose: () => { index: number; term: number }): Promise<void> {
    const proposed = propose();
    this.#kick();
    await this.#waitProposal(proposed, "The membership change");
    // A voter change goes through a joint configuration, which the leader leaves by itself.
    await this.#waitApplied(() => !isJoint(this.#sm.membership), "Leaving the joint configuration");
  }

  /** See {@linkcode NodeService.transferLeader}. */
  async transferLeader(to: NodeId): Promise<void> {
    this.#raft.transferLeader(to);
    this.#kick();
    await this.#waitApplied(() => this.#raft.leader === to, `The transfer to ${to}`);
  }

  /** See {@linkcode NodeService.snapshot}. */
  async snapshot(): Promise<{ index: number }> {
    return { index: await this.#takeSnapshot() };
  }

  /**
   * Shutdown step one: when leader, hands leadership to the most up-to-date voter and waits
   * until this node no longer leads or `timeoutMs` passes. Resolves whether it no longer leads.
   */
  async handOffLeadership(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return this.#raft.role !== "leader";
    if (this.#raft.role !== "leader") return true;
    const target = this.#raft.status().progress
      .filter((p) => p.id !== this.nodeId && p.voter)
      .sort((a, b) => b.match - a.match)[0];
    if (target === undefined) return false; // a single-voter cluster has no one to hand to
    try {
      this.#raft.transferLeader(target.id);
    } catch (error) {
      this.#log("warning", "Cannot hand off leadership", { error: String(error) });
      return false;
    }
    this.#scheduleSend();
    this.#kick();
    try {
      await this.#waitApplied(
        () => this.#raft.role !== "leader",
        `Handing leadership to ${target.id}`,
        timeoutMs,
      );
    } catch {
      // Timed out: the caller stops anyway; the others elect a leader by timeout.
    }
    return this.#raft.role !== "leader";
  }

  /**
   * Whether to accept a peer's hello: the refusal reason when the cluster recorded another
   * incarnation (data directory) for `nodeId`, else undefined. A member whose data directory
   * was wiped comes back with a new incarnation; accepting it would let it vote with a log
   * that lost acknowledged entries.
   */
  verifyPeer(nodeId: NodeId, incarnation: string): string | undefined {
    const recorded = this.#sm.get(incarnationKey(nodeId));
    if (recorded === undefined) return undefined;
    const known = decodeIncarnation(recorded.value);
    if (known === incarnation) return undefined;
    this.#counters.peersRefused++;
    return `its data directory was recreated (incarnation ${incarnation}, cluster ` +
      `${this.clusterId} recorded ${known}); remove it with DELETE /v1/members/${nodeId} and ` +
      `add it back as a joining member (see docs/operations.md)`;
  }

  /** A peer completed a hello presenting `incarnation`: the leader records new ones. */
  notePeer(nodeId: NodeId, incarnation: string): void {
    this.#seenIncarnations.set(nodeId, incarnation);
    if (this.#raft.role === "leader") this.#recordIncarnations();
  }

  /** The leader deletes the incarnation records of nodes that are no longer members. */
  #forgetRemovedIncarnations(): Promise<void> {
    if (this.#closed || this.#raft.role !== "leader") return Promise.resolve();
    const m = this.#sm.membership;
    const members = new Set([...m.voters, ...m.outgoing, ...m.learners]);
    const prefix = incarnationKey("");
    const stale = this.#sm.list({ prefix, limit: 1_000 }).items
      .map((item) => item.key)
      .filter((key) => !members.has(new TextDecoder().decode(key.subarray(prefix.length))));
    if (stale.length === 0) return Promise.resolve();
    return this.#writeSystem({
      checks: [],
      mutations: stale.map((key) => ({ type: "delete" as const, key })),
    });
  }

  /** The leader proposes a record for each member (itself included) not recorded yet. */
  #recordIncarnations(): void {
    if (this.#closed || this.#raft.role !== "leader") return;
    this.#forgetRemovedIncarnations();
    const seen = new Map(this.#seenIncarnations);
    seen.set(this.nodeId, this.#storage.incarnation);
    const m = this.#sm.membership;
    const members = new Set([...m.voters, ...m.outgoing, ...m.learners]);
    for (const [id, incarnation] of seen) {
      // Only members: a removed node that still calls must not be recorded again, or it
      // could not come back with a new data directory.
      if (!members.has(id) || this.#incarnationsProposing.has(id)) continue;
      if (this.#sm.get(incarnationKey(id)) !== undefined) continue;
      this.#incarnationsProposing.add(id);
      this.#writeSystem({
        checks: [{ key: incarnationKey(id), rev: 0 }],
        mutations: [{
          type: "set",
          key: incarnationKey(id),
          value: encodeIncarnation(incarnation),
        }],
      }).finally(() => this.#incarnationsProposing.delete(id));
    }
  }

  /** Replicates one of koi's own records; failures are logged (the next leader retries). */
  async #writeSystem(command: KvCommand): Promise<void> {
    try {
      await this.#propose(encodeCommand(command), "Recording a member");
    } catch (error) {
      this.#log("debug", "Cannot record a system key yet", { error: String(error) });
    }
  }

  /** See {@linkcode NodeService.metrics}. */
  metrics(): string {
    const st = this.#raft.status();
    return renderMetrics({
      node: this.nodeId,
      cluster: this.clusterId,
      raft: st,
      storage: this.#storage.stats(),
      transport: this.#o.transport.stats?.() ?? {},
      raftDropped: this.#raft.droppedMessages(),
      counters: {
        ...this.#counters,
        proposalsPending: this.#proposals.size,
        readsPending: this.#reads.size,
        keys: this.#sm.size,
        stateBytes: this.#sm.bytes,
      },
    });
  }
}

/** Stops a background snapshot's chunks once the node closes. */
async function* untilClosed(
  chunks: AsyncIterable<Uint8Array>,
  closed: () => boolean,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    if (closed()) throw new NoLeaderError("Cannot finish the snapshot: the node is shutting down");
    yield chunk;
  }
}

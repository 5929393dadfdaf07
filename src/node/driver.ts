import {
  bootstrapStorage,
  type Entry,
  type Membership,
  type Message,
  type NodeId,
  ProposalDroppedError,
  Raft,
  type ReadState,
  type ReceivedSnapshot,
  type Snapshot,
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
  type KvValue,
  type MemberAddress,
} from "../storage/mod.ts";
import { BadRequestError, NoLeaderError, OverloadedError } from "./errors.ts";
import { NodeRouting } from "./_routing.ts";
import { ReadQueue } from "./_read_queue.ts";
import { DiskFailure, type DiskStatus, dropsWhileDiskFailed } from "./_disk_failure.ts";
import { renderMetrics } from "./_metrics.ts";
import { BackgroundSnapshots } from "./_background_snapshot.ts";
import { isSystemKey } from "./_system_keys.ts";
import { DropLog } from "./_drop_log.ts";
import { memberRows, userKeyCounts } from "./_node_status.ts";

import type {
  KeyRange,
  ListPage,
  MemberSpec,
  NodeService,
  NodeStatus,
  RangeEntry,
  StampedWrite,
} from "./service.ts";
import { STAMP_ATTEMPTS_MAX, STAMP_TRIES_MAX, VersionstampClock } from "./_versionstamp_clock.ts";
import { ExpirySweeper } from "./_expiry_sweeper.ts";
import {
  DRIVER_LIMITS,
  type DriverLimits,
  type DriverOptions,
  type NodeLog,
  SYSTEM_TICKS,
} from "./_driver_options.ts";
import { IncarnationRegistry } from "./_incarnations.ts";
import { MembershipChanges } from "./_membership_changes.ts";
import { AppliedWaiters, DurableWaiters } from "./_apply_waiters.ts";
import { ProposalWaiters, refusalWhileQueued } from "./_proposal_waiters.ts";
import { type TxnRecords, TxnService } from "./_txn_service.ts";
import {
  justAfter,
  type KeySpan,
  prefixEnd,
  type ReadRange,
  type SnapshotCheck,
  type SnapshotPart,
  type TxnAnswer,
  type TxnCommand,
} from "../txn/mod.ts";
import type { KvMutation } from "../storage/mod.ts";

/** Times a plain write proposes again after a lock went, before it answers locked. */
const LOCKED_RETRIES_MAX = 5;

export { DRIVER_LIMITS, SYSTEM_TICKS } from "./_driver_options.ts";
export type {
  DriverLimits,
  DriverOptions,
  NodeLog,
  PeerSender,
  TickSource,
} from "./_driver_options.ts";

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
  readonly #proposals: ProposalWaiters;
  /** Linearizable reads waiting for their index or their apply. */
  readonly #reads: ReadQueue;
  /** Which keys this node serves (config.toml's table, or the replicated routing state). */
  readonly #routing: NodeRouting;
  #sendScheduled = false;
  /** Ticks since the leader was last heard from (see {@linkcode leader}). */
  #ticksSinceLeader = 0;
  readonly #drops: DropLog;
  readonly #snapshots: BackgroundSnapshots;
  /** Whether the data directory takes writes; a failed one is retried (see _disk_failure.ts). */
  readonly #disk: DiskFailure;
  readonly #incarnations: IncarnationRegistry;
  readonly #appliedWaiters: AppliedWaiters;
  /** Waiting for the log on disk to reach an index (see SnapshotHost.whenDurable). */
  readonly #durableWaiters: DurableWaiters;
  #loadedAt: number;
  #running = false;
  #loop: Promise<void> = Promise.resolve();
  #closed = false;
  #stopTicks: () => void = () => {};
  readonly #counters = {
    writes: 0,
    reads: 0,
    /** Gets and lists answered, stale ones included (the dashboard's read rate). */
    readsServed: 0,
    readsReissued: 0,
    readyBatches: 0,
    entriesApplied: 0,
    entriesAppliedOutsideReady: 0,
    messagesSentBeforePersist: 0,
    messagesSentAfterPersist: 0,
    snapshotsInstalled: 0,
    messagesDroppedDiskFailed: 0,
    /** Reads refused because the oldest waited too long (metrics add the writes' count). */
    readsRefusedQueued: 0,
  };
  readonly #now: () => number;
  readonly #clock: VersionstampClock;
  readonly #sweeper: ExpirySweeper;
  readonly #txns: TxnService;
  readonly #membership: MembershipChanges;

  private constructor(options: DriverOptions, sm: KvStateMachine) {
    // deno-lint-ignore no-this-alias
    const node = this; // for the getters below, which see their own `this`
    this.#o = options;
    this.nodeId = options.nodeId;
    this.clusterId = options.clusterId;
    this.#limits = { ...DRIVER_LIMITS, ...options.limits };
    this.#storage = options.storage;
    this.#appliedWaiters = new AppliedWaiters(this.#limits.requestTimeoutMs);
    this.#now = options.now ?? (() => performance.now());
    this.#proposals = new ProposalWaiters(this.#limits, this.nodeId, this.#now);
    this.#durableWaiters = new DurableWaiters(() => this.#storage.lastIndex());
    this.#sm = sm;
    options.onStateLoaded?.(sm.rev); // before the committed entries after it are replayed
    this.#log = options.log ?? (() => {});
    this.#drops = new DropLog(this.#log);
    const wall = options.wall ?? Date.now;
    this.#clock = new VersionstampClock(
      wall,
      () => this.#sm.lastVs,
      options.versionstampSlot ?? 0,
    );
    this.#sweeper = new ExpirySweeper({
      leads: () => !this.#closed && this.#raft.role === "leader",
      stateMachine: () => this.#sm,
      owns: (key) => this.#routing.ownership(key).owned,
      write: (command) => this.#writeSystem(command, "Expiring keys"),
      wall,
    });
    this.#routing = new NodeRouting(this.clusterId, options.epoch, options.owner, () => this.#sm);
    this.#txns = new TxnService({
      sm: () => this.#sm,
      clock: this.#clock,
      propose: (data, what) => this.#propose(data, what),
      readBarrier: () => this.#readBarrier(),
      waitApplied: (until, what, timeoutMs) => this.#waitApplied(until, what, timeoutMs),
      keeps: (key) => !isSystemKey(key) && this.#routing.ownership(key).owned,
    });
    this.#reads = new ReadQueue({
      nodeId: this.nodeId,
      raft: {
        get term() {
          return node.#raft.term;
        },
        get leader() {
          return node.#raft.leader;
        },
        readIndex: (context) => this.#raft.readIndex(context),
      },
      applied: () => this.#sm.applied,
      now: () => this.#now(),
      kick: () => {
        this.#scheduleSend(); // the heartbeat round that confirms leadership
        this.#kick();
      },
      asked: () => this.#counters.reads++,
      reissued: () => this.#counters.readsReissued++,
    });
    const snapshot = options.storage.snapshot();
    this.#disk = new DiskFailure({
      log: this.#log,
      tickMs: options.tickMs,
      closed: () => this.#closed,
      onFailed: () => this.#onDiskFailed(),
      whileFailed: () => this.#membership.stepAside(),
      onRecovered: () => this.#raft.holdCampaigns(false),
    });
    this.#snapshots = new BackgroundSnapshots(
      {
        storage: options.storage,
        stateMachine: () => this.#sm,
        closed: () => this.#closed,
        whenDurable: (index) => this.#whenDurable(index),
        diskFailed: () =>
          this.#disk.failed ? this.#disk.error("Cannot take a snapshot") : undefined,
        fail: (error) => this.#fail(error),
        log: (level, message, fields) => this.#log(level, message, fields),
      },
      this.#limits,
      snapshot.meta.index,
    );
    this.#raft = new Raft({
      id: options.nodeId,
      storage: options.storage,
      electionTicks: options.electionTicks[0],
      electionTicksMax: options.electionTicks[1],
      heartbeatTicks: options.heartbeatTicks,
      random: options.random ?? Math.random,
      applied: snapshot.meta.index,
      onDrop: (reason, message) => this.#drops.note(reason, message),
    });
    this.#loadedAt = options.storage.hardState().commit;
    // A snapshot transfer whose next chunk was not in memory goes on as soon as it is.
    options.storage.onSnapshotBytesFetched(() => {
      if (this.#closed) return;
      this.#raft.snapshotBytesFetched();
      this.#scheduleSend();
    });
    this.#incarnations = new IncarnationRegistry({
      nodeId: this.nodeId,
      incarnation: options.storage.incarnation,
      clusterId: this.clusterId,
      get: (key) => this.#sm.get(key),
      keys: (prefix) => this.#sm.list({ prefix, limit: 10_000 }).items.map((i) => i.key),
      membership: () => this.#sm.membership,
      leads: () => !this.#closed && this.#raft.role === "leader",
      write: (command) => this.#writeSystem(command),
    });
    this.#membership = new MembershipChanges({
      nodeId: this.nodeId,
      raft: () => this.#raft,
      sm: () => this.#sm,
      disk: this.#disk,
      incarnations: this.#incarnations,
      log: this.#log,
      closed: () => this.#closed,
      kick: () => this.#kick(),
      scheduleSend: () => this.#scheduleSend(),
      waitProposal: (p, what) => this.#waitProposal(p, what),
      waitApplied: (until, what, timeoutMs) => this.#waitApplied(until, what, timeoutMs),
    });
    for (const [id, a] of options.knownAddresses) this.#addresses.set(id, a);
    for (const [id, a] of sm.addresses()) this.#addresses.set(id, a);
  }

  /** Loads (or bootstraps) the node's state and starts ticking. */
  static async start(options: DriverOptions): Promise<RaftNode> {
    const storage = options.storage;
    if (storage.lastIndex() === 0 && !options.join) {
      const founders = Object.fromEntries(options.founders);
      await bootstrapStorage(storage, [...options.founders.keys()], encodeMemberContext(founders));
    }
    const held = storage.snapshot().data;
    const data = held instanceof Uint8Array ? held : await held.load(0, held.length);
    const smOptions = { ...options.stateMachine, clusterId: options.clusterId };
    const sm = data.length === 0
      ? new KvStateMachine(smOptions)
      : KvStateMachine.decodeSnapshot(data, smOptions);
    storage.releaseSnapshotBytes(); // decoded: transfers read it from disk from now on
    const node = new RaftNode(options, sm);
    node.#updatePeers();
    node.#stopTicks = (options.ticks ?? SYSTEM_TICKS).every(options.tickMs, () => node.tick());
    node.#kick();
    return node;
  }

  /** Advances the Raft clock by one tick. */
  tick(): void {
    if (this.#closed) return;
    this.#ticksSinceLeader++;
    this.#raft.tick();
    this.#disk.tick();
    this.#sweeper.tick();
    this.#scheduleSend();
    this.#kick();
  }

  /** Feeds a message from a peer. */
  step(m: Message): void {
    if (this.#closed) return;
    if (this.#disk.failed && dropsWhileDiskFailed(m)) {
      this.#counters.messagesDroppedDiskFailed++;
      return;
    }
    this.#raft.step(m);
    if (
      (m.type === "app" || m.type === "heartbeat" || m.type === "snap") &&
      m.from === this.#raft.leader
    ) {
      this.#ticksSinceLeader = 0;
    }
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
      if (msgs.length > 0) {
        this.#counters.messagesSentBeforePersist += msgs.length;
        this.#o.transport.send(msgs);
      }
      if (this.#applyNow()) {
        this.#appliedWaiters.check();
        this.#snapshots.maybe();
      }
    });
  }

  /**
   * Applies what the core hands out without a persist of its own: committed entries (on a
   * follower, those durable here) and read answers. A leader whose followers acknowledge a
   * batch while it still writes it answers that batch's writes now, not after its own write. Answers
   * whether it applied or served anything (the caller then checks the waiters).
   */
  #applyNow(): boolean {
    const now = this.#raft.readyToApply();
    if (now.committedEntries.length === 0 && now.readStates.length === 0) return false;
    this.#counters.entriesAppliedOutsideReady += now.committedEntries.length;
    this.#applyCommitted(now.committedEntries, now.readStates);
    return true;
  }

  /** Applies committed entries and serves the reads they (and earlier entries) allow. */
  #applyCommitted(entries: readonly Entry[], readStates: readonly ReadState[]): void {
    for (const e of entries) this.#apply(e);
    this.#reads.indexed(readStates);
    this.#reads.serve();
  }

  /** Stops ticking and fails every waiting request; in-flight persistence finishes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTicks();
    this.#disk.close(); // a persist waiting to be retried gives up: nothing more is durable
    const closing = new NoLeaderError(`Node ${this.nodeId} is shutting down`);
    this.#proposals.failAll(closing);
    this.#reads.failAll(closing);
    this.#appliedWaiters.failAll(closing);
    this.#durableWaiters.failAll(closing);
    await this.#loop; // in-flight persistence finishes before the storage closes
    await this.#snapshots.settled(); // stops at its next chunk
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
        // Committed entries are durable on a majority already: applied before this Ready's
        // write (a leader's may include this write's own entries, §10.2.1).
        this.#applyCommitted(rd.committedEntries, rd.readStates);
        // A received snapshot is decoded before it is written: one that does not decode would
        // otherwise be on disk, and the node could never start again.
        const installing = rd.snapshot === undefined
          ? undefined
          : await this.#decodeReceivedSnapshot(rd.snapshot);
        // A disk error is retried (the same batch) until it succeeds: until then nothing of
        // this Ready counts as durable, its acknowledgements and votes stay unsent and the
        // core is not advanced. Any other error stops the node (#fail).
        const written = await this.#disk.persist(() =>
          this.#storage.persist({
            snapshot: rd.snapshot,
            entries: rd.entries,
            hardState: rd.hardState,
          })
        );
        if (!written) break; // closed while the disk failed
        this.#counters.readyBatches++;
        this.#durableWaiters.release();
        this.#noteAddresses(rd.entries);
        if (rd.messagesAfterPersist.length > 0) {
          this.#counters.messagesSentAfterPersist += rd.messagesAfterPersist.length;
          this.#o.transport.send(rd.messagesAfterPersist);
        }
        if (rd.snapshot !== undefined) {
          this.#installSnapshot(rd.snapshot, installing!);
          this.#reads.serve(); // the installed state may be what a read waits for
        }
        this.#raft.advance();
        // What this write made durable and is committed (a single voter commits only now).
        this.#applyNow();
        this.#reads.reissue();
        if (rd.softState !== undefined) this.#onSoftState(rd.softState);
        this.#appliedWaiters.check();
        this.#snapshots.maybe();
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#running = false;
    }
    if (!this.#closed && this.#raft.hasReady()) this.#kick();
  }

  #whenDurable(index: number): Promise<void> {
    if (this.#closed && this.#storage.lastIndex() < index) {
      return Promise.reject(new NoLeaderError(`Node ${this.nodeId} is shutting down`));
    }
    return this.#durableWaiters.when(index);
  }

  #apply(e: Entry): void {
    const result = this.#sm.apply(e);
    this.#counters.entriesApplied++;
    if (e.type === "config") {
      this.#updatePeers();
      this.#incarnations.record(); // an added member is recorded once its addition applies
    }
    this.#proposals.applied(e.index, e.term, result);
  }

  /** Decodes a snapshot from the leader in steps that yield (ticks and heartbeats go on). */
  async #decodeReceivedSnapshot(snapshot: ReceivedSnapshot): Promise<KvStateMachine> {
    try {
      return await KvStateMachine.decodeSnapshotAsync(snapshot.data, {
        ...this.#o.stateMachine,
        clusterId: this.clusterId,
      });
    } catch (error) {
      // The core already took it as its log; stopping before it reaches the disk leaves the
      // node able to restart from what it had (and the leader sends a good one then).
      throw new SnapshotRefusedError(
        `Cannot install the snapshot at index ${snapshot.meta.index} from ${this.#raft.leader}: ` +
          `${error instanceof Error ? error.message : String(error)}; it was not written`,
        { cause: error },
      );
    }
  }

  #installSnapshot(snapshot: Snapshot, sm: KvStateMachine): void {
    this.#sm = sm;
    this.#o.onStateLoaded?.(sm.rev);
    this.#counters.snapshotsInstalled++;
    this.#snapshots.lastIndex = snapshot.meta.index;
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
    if (soft.role === "leader") this.#incarnations.record();
  }

  /**
   * The disk failed: no campaign (a term or vote that cannot be made durable cannot win, and a
   * term raised only in memory would unseat the next leader once the disk is back), no write
   * taken (#propose), and a leader hands off to an up-to-date follower.
   */
  #onDiskFailed(): void {
    this.#raft.holdCampaigns(true);
    this.#membership.stepAside();
  }

  /** See {@linkcode NodeService.diskStatus}. */
  diskStatus(): DiskStatus {
    return this.#disk.status();
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

  /** Resolves once `until()` holds after an apply (or at once if it holds now). */
  #waitApplied(until: () => boolean, what: string, timeoutMs?: number): Promise<void> {
    return this.#appliedWaiters.until(until, what, timeoutMs);
  }

  /** A linearizable read barrier: resolves once the state reflects every earlier commit. */
  async #readBarrier(): Promise<void> {
    if (this.#reads.size >= this.#limits.readsPendingMax) {
      throw new OverloadedError(`${this.#reads.size} reads wait on node ${this.nodeId}`);
    }
    const oldest = this.#reads.oldest(); // (nothing to build on the path of most reads)
    const refusal = oldest === undefined ? undefined : refusalWhileQueued(oldest, "reads", {
      now: this.#now(),
      queueWaitMaxMs: this.#limits.queueWaitMaxMs,
      nodeId: this.nodeId,
    });
    if (refusal !== undefined) {
      this.#counters.readsRefusedQueued++;
      throw refusal;
    }
    if (this.leader() === "") {
      throw new NoLeaderError(`Cannot read: node ${this.nodeId} has not heard from a leader`);
    }
    // A follower applies only what its own disk holds: with the disk failed its state stops,
    // and a read would wait for it until it times out. A leader applies what its followers
    // made durable (§10.2.1) and still answers.
    if (this.#disk.failed && this.#raft.role !== "leader") {
      throw this.#disk.error("Cannot read linearizably");
    }
    await this.#reads.barrier(this.#limits.requestTimeoutMs);
  }

  // ---------------------------------------------------------------------------------------
  // NodeService

  /** See {@linkcode NodeService.loaded}. */
  loaded(): boolean {
    return this.#sm.applied >= this.#loadedAt;
  }

  /** See {@linkcode NodeService.leader}. */
  leader(): NodeId {
    if (this.#raft.role === "leader") return this.#raft.leader;
    // A learner never campaigns, so the core keeps naming a leader that died; a follower that
    // has not heard from it for a whole election timeout cannot vouch for it either.
    if (this.#ticksSinceLeader > this.#o.electionTicks[1]) return "";
    return this.#raft.leader;
  }

  /** See {@linkcode NodeService.leaderHttp}. */
  leaderHttp(): string | undefined {
    const leader = this.leader();
    return leader === "" ? undefined : this.#addresses.get(leader)?.http;
  }

  /** See {@linkcode NodeService.epoch}. */
  epoch(): number {
    return this.#routing.epoch();
  }

  /** See {@linkcode NodeService.owns}. */
  owns(key: Uint8Array): boolean {
    return this.#routing.ownership(key).owned;
  }

  /** See {@linkcode NodeService.owner}. */
  owner(key: Uint8Array): string {
    return this.#routing.ownership(key).owner;
  }

  /** See {@linkcode NodeService.membership}. */
  membership(): Membership {
    return this.#raft.membership;
  }

  /** See {@linkcode NodeService.get}. */
  async get(key: Uint8Array, options: { stale: boolean }): Promise<KvValue | undefined> {
    if (!options.stale) {
      await this.#readBarrier();
      // A write lock's transaction may be decided already: its value is not known here yet.
      // (Nothing to build when no transaction holds a lock: every read's path.)
      if (this.#sm.txn?.lockedKeys) {
        await this.#txns.untilReadable([{ start: key, end: justAfter(key) }]);
      }
    }
    this.#routing.checkStillOwned(key); // the key may have moved while the read waited
    this.#counters.readsServed++;
    return this.#sm.get(key);
  }

  /** See {@linkcode NodeService.list}. */
  async list(
    options: { prefix: Uint8Array; after?: Uint8Array; limit: number; stale: boolean },
  ): Promise<ListPage> {
    if (!options.stale) {
      await this.#readBarrier();
      if (this.#sm.txn?.lockedKeys) {
        await this.#txns.untilReadable([{ start: options.prefix, end: prefixEnd(options.prefix) }]);
      }
    }
    this.#counters.readsServed++;
    const page = this.#routing.ownedPage(options);
    // System keys sort after every user key: the first one ends the listing.
    const cut = page.items.findIndex((item) => isSystemKey(item.key));
    if (cut < 0) return page;
    return { items: page.items.slice(0, cut), more: false };
  }

  /** See {@linkcode NodeService.write}. */
  write(command: KvCommand): Promise<KvResult> {
    return this.writeStamped({ requestId: command.requestId, build: (vs) => ({ ...command, vs }) });
  }

  /** See {@linkcode NodeService.writeStamped}. */
  async writeStamped(request: StampedWrite): Promise<KvResult> {
    if (request.requestId !== undefined) {
      const answered = this.#sm.answered(request.requestId);
      if (answered !== undefined) return answered; // a retry of an applied write
    }
    if (request.afterVs !== undefined && !this.#clock.acceptsAfter(request.afterVs)) {
      throw new BadRequestError(`The versionstamp floor ${request.afterVs} is ahead of the clock`);
    }
    for (let attempt = 1, locked = 0;; attempt++) {
      const command = this.#build(request);
      const result = (await this.#propose(encodeCommand(command), "The write")) as KvResult;
      // A leader whose clock is behind the last commit's stamp: propose again, above it.
      if (!result.ok && result.code === "stale_versionstamp" && attempt < STAMP_ATTEMPTS_MAX) {
        continue;
      }
      // A key locked by a transaction in flight: once it is gone, propose again (a lock taken
      // again at once, a few times: answer locked, and the client decides).
      if (!result.ok && result.code === "locked" && ++locked <= LOCKED_RETRIES_MAX) {
        attempt = 0;
        await this.#txns.untilUnlocked(
          command.mutations.map((m) => m.key),
          command.checks.map((c) => c.key),
        );
        continue;
      }
      this.#counters.writes++;
      return result;
    }
  }

  /** The command of `request` with the first versionstamp it accepts. */
  #build(request: StampedWrite): KvCommand {
    let vs = this.#clock.next(request.afterVs);
    for (let tries = 1;; tries++) {
      const command = request.build(vs);
      if (command !== undefined) return command;
      if (tries >= STAMP_TRIES_MAX) {
        throw new BadRequestError(`No versionstamp of ${tries} tried gives keys of this cluster`);
      }
      vs = this.#clock.next(vs);
    }
  }

  /** See {@linkcode NodeService.readRanges}. */
  async readRanges(
    ranges: readonly KeyRange[],
    options: { stale: boolean },
  ): Promise<RangeEntry[][]> {
    if (!options.stale) {
      await this.#readBarrier();
      await this.#txns.untilReadable(ranges);
    }
    this.#counters.readsServed++;
    const keep = (key: Uint8Array) => !isSystemKey(key) && this.#routing.ownership(key).owned;
    return ranges.map((r) => this.#sm.range({ ...r, keep }));
  }

  /** See {@linkcode NodeService.txnCommand}. */
  txnCommand(cmd: TxnCommand<KvMutation>): Promise<TxnAnswer> {
    return this.#txns.command(cmd);
  }

  /** See {@linkcode NodeService.txnRecords}. */
  txnRecords(limit: number): Promise<TxnRecords> {
    return this.#txns.records(limit);
  }

  /** See {@linkcode NodeService.txnHeld}. */
  txnHeld(txns: readonly string[]): Promise<boolean[]> {
    return this.#txns.held(txns);
  }

  /** See {@linkcode NodeService.snapshotPart}. */
  snapshotPart(ranges: readonly ReadRange[]): Promise<SnapshotPart<RangeEntry>> {
    return this.#txns.part(ranges);
  }

  /** See {@linkcode NodeService.snapshotCheck}. */
  snapshotCheck(spans: readonly KeySpan[], since: number): Promise<SnapshotCheck> {
    return this.#txns.check(spans, since);
  }

  /** See {@linkcode NodeService.route}. */
  async route(data: Uint8Array): Promise<KvResult> {
    return (await this.#propose(data, "The routing command"))!;
  }

  /** See {@linkcode NodeService.readForMove}. */
  async readForMove<T>(read: (sm: KvStateMachine) => T): Promise<T> {
    await this.#readBarrier();
    return read(this.#sm);
  }

  #propose(data: Uint8Array, what: string): Promise<KvResult | undefined> {
    // (A transaction command's answer is a TxnAnswer: TxnService reads it as one.)
    // A leader whose disk fails could still commit through its followers, but its log would
    // grow in memory without bound: it refuses, and hands off (MembershipChanges.stepAside).
    if (this.#disk.failed) throw this.#disk.error(`${what} was refused`);
    this.#proposals.admit();
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
    return this.#proposals.wait(p, what);
  }

  /** See {@linkcode NodeService.status}. */
  status(): NodeStatus {
    const st = this.#raft.status();
    return {
      node: this.nodeId,
      cluster: this.clusterId,
      role: st.role,
      term: st.term,
      leader: this.leader(), // "" once a dead leader has been silent for an election timeout
      commit: st.commit,
      applied: this.#sm.applied,
      snapshot: this.#storage.snapshot().meta.index,
      epoch: this.epoch(),
      ...userKeyCounts(this.#sm),
      members: memberRows(st),
      disk: this.#disk.status(),
      reads: this.#counters.readsServed,
      writes: this.#counters.writes,
      ...(this.#sm.routing === undefined ? {} : { routing: this.#routing.status() }),
    };
  }

  /** See {@linkcode NodeService.addMember}. */
  addMember(member: MemberSpec): Promise<void> {
    return this.#membership.add(member);
  }

  /** See {@linkcode NodeService.removeMember}. */
  removeMember(id: NodeId): Promise<void> {
    return this.#membership.remove(id);
  }

  /** See {@linkcode NodeService.transferLeader}. */
  transferLeader(to: NodeId): Promise<void> {
    return this.#membership.transferLeader(to);
  }

  /** See {@linkcode NodeService.snapshot}. */
  async snapshot(): Promise<{ index: number }> {
    return { index: await this.#snapshots.take() };
  }

  /**
   * Shutdown step one: when leader, hands leadership to the most up-to-date voter and waits
   * until this node no longer leads or `timeoutMs` passes. Resolves whether it no longer leads.
   */
  handOffLeadership(timeoutMs: number): Promise<boolean> {
    return this.#membership.handOff(timeoutMs);
  }

  /**
   * Whether to accept a peer's hello: the refusal reason when the cluster recorded another
   * incarnation (data directory) for `nodeId`, else undefined.
   */
  verifyPeer(nodeId: NodeId, incarnation: string): string | undefined {
    return this.#incarnations.verify(nodeId, incarnation);
  }

  /** A peer completed a hello presenting `incarnation`: the leader records new ones. */
  notePeer(nodeId: NodeId, incarnation: string): void {
    this.#incarnations.note(nodeId, incarnation);
  }

  /** Replicates one of koi's own records; failures are logged (the next leader retries). */
  async #writeSystem(command: KvCommand, what = "Recording a member"): Promise<void> {
    try {
      await this.#propose(encodeCommand({ ...command, vs: this.#clock.next() }), what);
    } catch (error) {
      this.#log("debug", `${what}: not yet`, { error: String(error) });
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
      disk: {
        failed: this.#disk.failed,
        failedSeconds: this.#disk.failedSeconds(),
        ...this.#disk.status(),
        snapshotFailures: this.#snapshots.failures,
      },
      memory: Deno.memoryUsage(),
      counters: {
        ...this.#counters,
        writesFailed: this.#proposals.lost,
        refusedQueued: this.#proposals.refusedQueued + this.#counters.readsRefusedQueued,
        peersRefused: this.#incarnations.refused,
        snapshotsTaken: this.#snapshots.taken,
        proposalsPending: this.#proposals.size,
        readsPending: this.#reads.size,
        keys: this.#sm.size,
        stateBytes: this.#sm.bytes,
        commandsRejected: this.#sm.commandsRejected,
        keysExpiring: this.#sm.expiringKeys,
        expiriesProposed: this.#sweeper.proposed,
      },
    });
  }
}

/** A snapshot received from the leader did not decode; the node stops without writing it. */
export class SnapshotRefusedError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SnapshotRefusedError";
  }
}

import {
  bootstrapStorage,
  type Entry,
  isJoint,
  type Membership,
  type Message,
  type NodeId,
  NONE,
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
import { isSystemKey, SYSTEM_KEY_BYTE } from "./_system_keys.ts";

/** Times a plain write proposes again after a lock went, before it answers locked. */
const LOCKED_RETRIES_MAX = 5;

/** The smallest key greater than `key`. */
function justAfter(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1);
  out.set(key);
  return out;
}

/** The end of the keys starting with `prefix` (everything at or after it when none is). */
function prefixEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] !== 0xff) {
      const out = prefix.slice(0, i + 1);
      out[i]++;
      return out;
    }
  }
  return new Uint8Array([0xff, 0xff, 0xff, 0xff]);
}

/** The prefix of koi's own records, which status counts apart from the user's keys. */
const SYSTEM_PREFIX = new Uint8Array([SYSTEM_KEY_BYTE]);
/** More than the system records a cluster ever holds (one per member). */
const SYSTEM_KEYS_COUNTED_MAX = 100_000;
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
  DROP_LOG_INTERVAL_MS,
  type NodeLog,
  SYSTEM_TICKS,
} from "./_driver_options.ts";
import { IncarnationRegistry } from "./_incarnations.ts";
import { settle, wait, type Waiter } from "./_waiters.ts";
import { type TxnRecords, TxnService } from "./_txn_service.ts";
import type {
  KeySpan,
  ReadRange,
  SnapshotCheck,
  SnapshotPart,
  TxnAnswer,
  TxnCommand,
} from "../txn/mod.ts";
import type { KvMutation } from "../storage/mod.ts";

export { DRIVER_LIMITS, SYSTEM_TICKS } from "./_driver_options.ts";
export type {
  DriverLimits,
  DriverOptions,
  NodeLog,
  PeerSender,
  TickSource,
} from "./_driver_options.ts";

interface AppliedWaiter {
  readonly until: () => boolean;
  readonly waiter: Waiter<void>;
}

interface ProposalWaiter extends Waiter<KvResult | undefined> {
  readonly term: number;
  /** When it started waiting (the driver's clock, ms). */
  readonly since: number;
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
  /** Linearizable reads waiting for their index or their apply. */
  readonly #reads: ReadQueue;
  /** Which keys this node serves (config.toml's table, or the replicated routing state). */
  readonly #routing: NodeRouting;
  #sendScheduled = false;
  /** Ticks since the leader was last heard from (see {@linkcode leader}). */
  #ticksSinceLeader = 0;
  readonly #dropLoggedAt = new Map<string, number>();
  readonly #snapshots: BackgroundSnapshots;
  /** Whether the data directory takes writes; a failed one is retried (see _disk_failure.ts). */
  readonly #disk: DiskFailure;
  readonly #incarnations: IncarnationRegistry;
  #appliedWaiters: AppliedWaiter[] = [];
  /** Waiting for the log on disk to reach an index (see SnapshotHost.whenDurable). */
  #durableWaiters: { index: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  #loadedAt: number;
  #running = false;
  #loop: Promise<void> = Promise.resolve();
  #closed = false;
  #stopTicks: () => void = () => {};
  readonly #counters = {
    writes: 0,
    writesFailed: 0,
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
    /** Writes and reads refused because the oldest of their kind waited too long. */
    refusedQueued: 0,
  };
  readonly #now: () => number;
  readonly #clock: VersionstampClock;
  readonly #sweeper: ExpirySweeper;
  readonly #txns: TxnService;

  private constructor(options: DriverOptions, sm: KvStateMachine) {
    // deno-lint-ignore no-this-alias
    const node = this; // for the getters below, which see their own `this`
    this.#o = options;
    this.nodeId = options.nodeId;
    this.clusterId = options.clusterId;
    this.#limits = { ...DRIVER_LIMITS, ...options.limits };
    this.#storage = options.storage;
    this.#sm = sm;
    options.onStateLoaded?.(sm.rev); // before the committed entries after it are replayed
    this.#log = options.log ?? (() => {});
    this.#now = options.now ?? (() => performance.now());
    const wall = options.wall ?? Date.now;
    this.#clock = new VersionstampClock(wall, () => this.#sm.lastVs);
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
      whileFailed: () => this.#stepAside(),
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
      onDrop: (reason, message) => this.#onDrop(reason, message),
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
    for (const [id, a] of options.knownAddresses) this.#addresses.set(id, a);
    for (const [id, a] of sm.addresses()) this.#addresses.set(id, a);
  }

  /** Logs a dropped peer message, at most once per reason every 10 s (they are counted). */
  #onDrop(reason: string, message: unknown): void {
    const now = Date.now();
    if ((this.#dropLoggedAt.get(reason) ?? -Infinity) > now - DROP_LOG_INTERVAL_MS) return;
    this.#dropLoggedAt.set(reason, now);
    const m = message as Partial<Message>;
    // Counted in /metrics; logged at info because some are expected (a node that rejoins gets
    // heartbeats beyond its log until the leader finds where it is).
    if (reason === "divergedCommit") {
      // Not expected in any healthy cluster: this node cannot follow the leader any more.
      this.#log(
        "error",
        "this node's committed entries differ from the leader's log: it cannot follow it; " +
          "remove it (DELETE /v1/members) and add it back with an empty data directory",
        { reason, from: (message as Partial<Message>)?.from },
      );
      return;
    }
    // Some are expected (a chunk of a transfer the leader moved to a newer snapshot, a stale
    // answer), others point at a broken or hostile peer: the reason tells which.
    this.#log("info", "dropped a peer message that does not fit this node's state", {
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
        this.#checkAppliedWaiters();
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
    for (const w of this.#proposals.values()) settle(w, closing);
    this.#reads.failAll(closing);
    for (const { waiter } of this.#appliedWaiters) settle(waiter, closing);
    for (const w of this.#durableWaiters.splice(0)) w.reject(closing);
    this.#proposals.clear();
    this.#appliedWaiters = [];
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
        this.#releaseDurableWaiters();
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
        this.#checkAppliedWaiters();
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
    if (this.#storage.lastIndex() >= index) return Promise.resolve();
    if (this.#closed) {
      return Promise.reject(new NoLeaderError(`Node ${this.nodeId} is shutting down`));
    }
    return new Promise((resolve, reject) => this.#durableWaiters.push({ index, resolve, reject }));
  }

  #releaseDurableWaiters(): void {
    if (this.#durableWaiters.length === 0) return;
    const last = this.#storage.lastIndex();
    this.#durableWaiters = this.#durableWaiters.filter((w) => {
      if (w.index > last) return true;
      w.resolve();
      return false;
    });
  }

  #apply(e: Entry): void {
    const result = this.#sm.apply(e);
    this.#counters.entriesApplied++;
    if (e.type === "config") {
      this.#updatePeers();
      this.#incarnations.record(); // an added member is recorded once its addition applies
    }
    const w = this.#proposals.get(e.index);
    if (w === undefined) return;
    this.#proposals.delete(e.index);
    if (w.term === e.term) {
      settle(w, undefined, result);
    } else {
      this.#counters.writesFailed++;
      settle(
        w,
        new NoLeaderError(`Leadership changed before the write committed; it was not applied`),
      );
    }
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
    this.#stepAside();
  }

  /** While the disk fails, a leader keeps trying to hand leadership to a caught-up voter (a
   * transfer not done in an election timeout is abandoned by the core, then tried again). */
  #stepAside(): void {
    if (this.#closed || this.#raft.role !== "leader") return;
    if (this.#raft.status().leadTransferee !== NONE) return;
    const to = this.#startHandOff();
    if (to !== undefined) this.#log("info", "Handing leadership off: the disk fails", { to });
  }

  /** Starts a transfer to the voter whose log matches furthest; answers it, if any. */
  #startHandOff(): NodeId | undefined {
    const target = this.#raft.status().progress
      .filter((p) => p.id !== this.nodeId && p.voter)
      .sort((a, b) => b.match - a.match)[0]?.id;
    if (target === undefined) return undefined; // a single voter has no one to hand to
    try {
      this.#raft.transferLeader(target);
    } catch (error) {
      this.#log("warning", "Cannot hand off leadership", { error: String(error) });
      return undefined;
    }
    this.#scheduleSend();
    this.#kick();
    return target;
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

  /**
   * Refuses new work (503 overloaded) while the oldest of its kind has waited longer than
   * `queueWaitMaxMs`: past that, what is queued already is more than the node gets through in
   * that time, and queueing more would only make every answer later (until all time out with
   * unknown outcomes) instead of telling the excess at once to come back.
   */
  #refuseWhileQueued(oldest: { readonly since: number } | undefined, what: string): void {
    if (oldest === undefined) return;
    const waited = this.#now() - oldest.since;
    if (waited <= this.#limits.queueWaitMaxMs) return;
    this.#counters.refusedQueued++;
    throw new OverloadedError(
      `The oldest of the ${what} waiting on node ${this.nodeId} has waited ${
        Math.round(waited)
      } ms (limit ${this.#limits.queueWaitMaxMs} ms): retry later`,
    );
  }

  #wait<T>(
    register: (w: Waiter<T>) => void,
    what: string,
    timeoutMs = this.#limits.requestTimeoutMs,
  ): Promise<T> {
    return wait(register, what, timeoutMs);
  }

  #checkAppliedWaiters(): void {
    if (this.#appliedWaiters.length === 0) return;
    const still: AppliedWaiter[] = [];
    for (const aw of this.#appliedWaiters) {
      if (aw.until()) settle(aw.waiter, undefined);
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
    this.#refuseWhileQueued(this.#reads.oldest(), "reads");
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
    // grow in memory without bound: it refuses, and hands off (#stepAside).
    if (this.#disk.failed) throw this.#disk.error(`${what} was refused`);
    if (this.#proposals.size >= this.#limits.proposalsPendingMax) {
      throw new OverloadedError(`${this.#proposals.size} writes wait on node ${this.nodeId}`);
    }
    this.#refuseWhileQueued(first(this.#proposals.values()), "writes");
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
    const since = this.#now();
    const promise = this.#wait<KvResult | undefined>(
      (w) => this.#proposals.set(p.index, { ...w, term: p.term, since }),
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
      leader: this.leader(), // "" once a dead leader has been silent for an election timeout
      commit: st.commit,
      applied: this.#sm.applied,
      snapshot: this.#storage.snapshot().meta.index,
      epoch: this.epoch(),
      ...this.#userKeys(),
      members,
      disk: this.#disk.status(),
      reads: this.#counters.readsServed,
      writes: this.#counters.writes,
      ...(this.#sm.routing === undefined ? {} : { routing: this.#routing.status() }),
    };
  }

  /** Keys and bytes of the state, without koi's own records (a handful: one per member). */
  #userKeys(): { keys: number; bytes: number } {
    const system = this.#sm.list({ prefix: SYSTEM_PREFIX, limit: SYSTEM_KEYS_COUNTED_MAX });
    let bytes = this.#sm.bytes;
    for (const { key } of system.items) {
      bytes -= key.length + (this.#sm.get(key)?.value.length ?? 0);
    }
    return { keys: this.#sm.size - system.items.length, bytes };
  }

  /** See {@linkcode NodeService.addMember}. */
  async addMember(member: MemberSpec): Promise<void> {
    const m = this.#raft.membership;
    const isLearner = m.learners.includes(member.id);
    const type = member.voter ? "addVoter" : "addLearner";
    if (!member.voter && isLearner) return; // already a learner
    if (member.voter && m.voters.includes(member.id) && !isJoint(m)) return; // already a voter
    // The addresses take effect when the config entry is appended (#noteAddresses), so a
    // refused change never redirects a member's traffic.
    const context = encodeMemberContext({ [member.id]: { raft: member.raft, http: member.http } });
    await this.#changeMembership(() =>
      this.#raft.proposeMembership([{ type, id: member.id }], context)
    );
  }

  /** See {@linkcode NodeService.removeMember}. */
  async removeMember(id: NodeId): Promise<void> {
    await this.#changeMembership(() => this.#raft.proposeMembership([{ type: "remove", id }]));
    // A removed member may come back with a new data directory (as a joining member). If
    // this node just removed itself, the next leader forgets the record instead.
    await this.#incarnations.removed(id);
  }

  async #changeMembership(propose: () => { index: number; term: number }): Promise<void> {
    if (this.#disk.failed) throw this.#disk.error("The membership change was refused");
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
    return { index: await this.#snapshots.take() };
  }

  /**
   * Shutdown step one: when leader, hands leadership to the most up-to-date voter and waits
   * until this node no longer leads or `timeoutMs` passes. Resolves whether it no longer leads.
   */
  async handOffLeadership(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return this.#raft.role !== "leader";
    if (this.#raft.role !== "leader") return true;
    const target = this.#startHandOff();
    if (target === undefined) return false;
    try {
      await this.#waitApplied(
        () => this.#raft.role !== "leader",
        `Handing leadership to ${target}`,
        timeoutMs,
      );
    } catch {
      // Timed out: the caller stops anyway; the others elect a leader by timeout.
    }
    return this.#raft.role !== "leader";
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

/** The first of `values` (a Map keeps insertion order: the oldest), or undefined. */
function first<T>(values: IterableIterator<T>): T | undefined {
  for (const v of values) return v;
  return undefined;
}

import { assert, NotLeaderError } from "./_errors.ts";
import {
  answerToLowerTerm,
  answerVote,
  higherTermRule,
  promotable,
  voteRequests,
} from "./_election.ts";
import { ElectionTimer } from "./_election_timer.ts";
import type { MembershipChange } from "./_membership.ts";
import type { Message, VoteMessage } from "./_message.ts";
import {
  type FollowerHost,
  handleAppend,
  handleHeartbeat,
  handleSnapshot,
  type Outgoing,
} from "./_follower.ts";
import { checkMessage, DropCounter, type DropReason, type MessageView } from "./_message_check.ts";
import { Leader } from "./_leader.ts";
import { type RaftLimits, type RaftOptions, resolveOptions } from "./_options.ts";
import { quorumVote } from "./_quorum.ts";
import { RaftLog } from "./_raft_log.ts";
import { ForwardedReads, LeaderReads } from "./_read_index.ts";
import { type Applicable, Outbox, type Proposed, type RaftStatus, type Ready } from "./_ready.ts";
import { ReadyCycle } from "./_ready_cycle.ts";
import { SnapshotReceive } from "./_snapshot_receive.ts";
import {
  type HardState,
  type Membership,
  type NodeId,
  NONE,
  type Role,
  type SoftState,
} from "./_types.ts";

export type { Applicable, ProgressStatus, Proposed, RaftStatus, Ready } from "./_ready.ts";

type CampaignKind = "preElection" | "election" | "transfer";

/**
 * One Raft member as a pure state machine, in the style of etcd's raft library: it reacts to
 * {@linkcode tick}, {@linkcode step}, {@linkcode propose}, {@linkcode readIndex},
 * {@linkcode proposeMembership} and {@linkcode transferLeader}, and hands back what to do as a
 * {@linkcode Ready}. It performs no I/O, reads no clock and draws randomness only from the
 * injected `random`.
 *
 * Implemented: pre-vote, check-quorum with leader leases for votes, batched and pipelined
 * AppendEntries with a bounded in-flight window, fast back-off, commitment of current-term
 * entries only, a no-op on election, chunked InstallSnapshot, joint-consensus membership
 * changes with learners (a membership takes effect when its entry is appended), leadership
 * transfer (TimeoutNow) and ReadIndex. Nothing a peer sends makes it throw: messages that no
 * correct peer sends are dropped, counted ({@linkcode droppedMessages}) and change nothing.
 */
export class Raft {
  readonly #id: NodeId;
  readonly #timer: ElectionTimer;
  readonly #heartbeatTicks: number;
  readonly #preVote: boolean;
  readonly #checkQuorum: boolean;
  readonly #limits: RaftLimits;
  readonly #log: RaftLog;
  readonly #drops: DropCounter;

  #term = 0;
  #vote: NodeId = NONE;
  #lead: NodeId = NONE;
  #role: Role = "follower";
  #votes = new Map<NodeId, boolean>();
  /** Whether the node may campaign (see {@linkcode holdCampaigns}). */
  #campaignsHeld = false;

  // Leader state: the term's own (defined exactly while leader), and what outlives terms.
  #leader: Leader | undefined;
  readonly #reads = new LeaderReads();
  #lastCommitCoveredOlderTerms = false;

  // Follower state.
  readonly #snapshotReceive = new SnapshotReceive();
  readonly #forwarded: ForwardedReads;

  // Ready bookkeeping.
  readonly #outbox = new Outbox();
  readonly #cycle: ReadyCycle;

  /** Creates a node from its durable state in `options.storage`. */
  constructor(options: RaftOptions) {
    const opts = resolveOptions(options);
    this.#id = opts.id;
    this.#timer = new ElectionTimer(opts.electionTicks, opts.electionTicksMax, opts.random);
    this.#heartbeatTicks = opts.heartbeatTicks;
    this.#preVote = opts.preVote;
    this.#checkQuorum = opts.checkQuorum;
    this.#limits = opts.limits;
    this.#drops = new DropCounter(opts.onDrop);
    this.#forwarded = new ForwardedReads(opts.limits.readsPendingMax);
    const { hardState } = opts.storage.initialState();
    this.#log = new RaftLog(opts.storage, { committed: hardState.commit, applied: opts.applied });
    this.#term = hardState.term;
    this.#vote = hardState.vote;
    this.#becomeFollower(hardState.term, NONE);
    this.#timer.restart();
    this.#cycle = new ReadyCycle(
      this.#log,
      this.#outbox,
      opts.limits,
      hardState,
      this.#softState(),
      () => this.#role === "leader",
    );
  }

  /** This node's id. */
  get id(): NodeId {
    return this.#id;
  }

  /** The current role. */
  get role(): Role {
    return this.#role;
  }

  /** The current term. */
  get term(): number {
    return this.#term;
  }

  /** The leader this node follows (itself when leader), or {@linkcode NONE}. */
  get leader(): NodeId {
    return this.#lead;
  }

  /** The membership in effect (the last config entry in the log). */
  get membership(): Membership {
    return this.#log.membership();
  }

  // ---------------------------------------------------------------------------------------
  // Inputs

  /** Advances the logical clock by one tick. */
  tick(): void {
    if (this.#role === "leader") this.#leader!.tick();
    else this.#tickElection();
  }

  /**
   * Feeds a message received from a peer. Never throws on what a peer sends: a message no
   * correct peer sends is dropped and counted (see {@linkcode droppedMessages}), and it
   * changes nothing, because it is checked in full before anything is changed.
   */
  step(m: Message): void {
    const reason = checkMessage(m, this.#view());
    if (reason !== undefined) {
      this.#drops.count(reason, m);
      return;
    }
    if (m.term > this.#term) {
      const rule = higherTermRule(m, {
        checkQuorum: this.#checkQuorum,
        lead: this.#lead,
        electionTimeoutPassed: this.#timer.minTimeoutPassed,
      });
      if (rule === "ignore") return;
      if (rule !== "keep") this.#becomeFollower(m.term, rule.lead);
    } else if (m.term < this.#term) {
      const answer = answerToLowerTerm(m, {
        checkQuorum: this.#checkQuorum,
        preVote: this.#preVote,
      });
      if (answer !== undefined) this.#send(answer);
      return;
    }
    if (m.type === "vote" || m.type === "preVote") {
      this.#handleVoteRequest(m);
      return;
    }
    switch (this.#role) {
      case "leader":
        return this.#leader!.step(m);
      case "candidate":
      case "preCandidate":
        return this.#stepCandidate(m);
      case "follower":
        return this.#stepFollower(m);
    }
  }

  /** Messages dropped since start, by reason (see {@linkcode step}). */
  droppedMessages(): Readonly<Record<DropReason, number>> {
    return this.#drops.counts();
  }

  /** Proposes one command. Throws `NotLeaderError` or `ProposalDroppedError`. */
  propose(data: Uint8Array): Proposed {
    return this.proposeMany([data]);
  }

  /** Proposes commands as consecutive entries; returns where the first one landed. */
  proposeMany(commands: readonly Uint8Array[]): Proposed {
    assert(commands.length > 0, "proposeMany needs at least one command");
    return this.#leaderOrThrow().proposeMany(commands);
  }

  /**
   * Proposes a membership change; `context` travels in the config entry for the application
   * (e.g. addresses). Voter changes go through a joint configuration that the leader leaves
   * automatically once it commits. Throws `MembershipChangeError` when invalid or when a
   * change is still in progress.
   */
  proposeMembership(
    changes: readonly MembershipChange[],
    context: Uint8Array = new Uint8Array(0),
  ): Proposed {
    return this.#leaderOrThrow().proposeMembership(changes, context);
  }

  /**
   * Holds (`true`) or releases (`false`) this node's campaigns. While held it never starts an
   * election (no pre-vote, no vote request, TimeoutNow is ignored) and a pre-candidate or
   * candidate goes back to following in its term: the driver holds them while its disk fails,
   * because a node that cannot make its term and vote durable cannot lead, and a term it
   * raised only in memory would, once its disk returns, disrupt the leader elected meanwhile.
   * It still answers votes (those answers leave only once durable) and a leader keeps leading:
   * stepping aside is a transfer ({@linkcode transferLeader}).
   */
  holdCampaigns(held: boolean): void {
    this.#campaignsHeld = held;
    if (held && (this.#role === "preCandidate" || this.#role === "candidate")) {
      this.#becomeFollower(this.#term, NONE);
    }
  }

  /** Whether campaigns are held (see {@linkcode holdCampaigns}). */
  get campaignsHeld(): boolean {
    return this.#campaignsHeld;
  }

  /** Asks the leader to hand leadership to voter `to` (TimeoutNow once it is caught up). */
  transferLeader(to: NodeId): void {
    this.#leaderOrThrow().transferLeader(to);
  }

  /**
   * Requests a linearizable read. Its {@linkcode ReadState} appears in a later Ready once the
   * leader confirmed its leadership. `context` is opaque and must be unique across restarts
   * of this node (say, a per-boot nonce and a counter): a follower takes an answer only for a
   * context it forwarded, from the leader and in the term it forwarded it to. Throws
   * `NotLeaderError` when no leader is known and `ProposalDroppedError` when `context` is
   * outstanding already or (at the leader) `readsPendingMax` reads wait. A follower keeps at
   * most `readsPendingMax` forwarded reads; beyond, the oldest is forgotten.
   */
  readIndex(context: string): void {
    if (this.#role === "leader") {
      this.#leader!.handleRead({ context, from: this.#id });
    } else if (this.#lead !== NONE) {
      this.#forwarded.add(context, this.#lead, this.#term);
      this.#send({ type: "readIndex", to: this.#lead, context });
    } else {
      throw new NotLeaderError(this.#id, NONE);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Ready / advance

  /** Whether {@linkcode ready} has something to hand out. */
  hasReady(): boolean {
    const repl = this.#leader?.repl;
    const broadcast = repl?.sendPending === true || repl?.heartbeatPending === true;
    return this.#cycle.hasReady(broadcast, this.#hardState(), this.#softState());
  }

  /** Hands out the next batch of work; call {@linkcode advance} when it is done. */
  ready(): Ready {
    assert(!this.#cycle.handedOut, "ready() called again before advance()");
    this.#flushSends();
    return this.#cycle.take(this.#softState(), this.#hardState());
  }

  /**
   * Messages that may be sent now, even while a Ready is being persisted: heartbeats, appends
   * and snapshot chunks of a leader, read answers. Messages that must wait for a persist stay
   * queued for the next {@linkcode ready}. Callable at any time.
   */
  readyMessages(): Message[] {
    this.#flushSends();
    return this.#outbox.takeNow();
  }

  /**
   * What the application may take now, even while a Ready is being persisted: committed
   * entries (to apply at once, in order, before calling anything else of the core) and read
   * answers. A follower is handed only entries durable on it; a leader every committed entry,
   * also one its own write has not made durable yet (§10.2.1): a batch its followers
   * acknowledge while it writes it, or the next one, is applied then, not after that write. Callable at
   * any time; the next {@linkcode ready} carries only what comes after.
   */
  readyToApply(): Applicable {
    return this.#cycle.takeApplicable();
  }

  /**
   * The storage fetched snapshot bytes that a {@linkcode SnapshotReader} had answered "not
   * yet" for: a leader sends the waiting transfers' next chunks now (they leave with the next
   * {@linkcode readyMessages}) instead of at the followers' next heartbeat answers. Callable
   * at any time; does nothing on a follower.
   */
  snapshotBytesFetched(): void {
    this.#leader?.repl.retrySnapshotChunks();
  }

  /** Acknowledges that the last Ready was persisted, sent and applied. */
  advance(): void {
    this.#cycle.acknowledge();
    if (this.#role === "leader") this.#leader!.selfPersisted();
    else if (this.#role === "candidate") this.#maybeVoteForSelf();
  }

  /**
   * A candidate counts its own vote once its term and vote are durable, like any other vote:
   * a leader whose term is not on disk could, after a crash, win the same term again with
   * other entries than the ones it already sent (to learners, say).
   */
  #maybeVoteForSelf(): void {
    const d = this.#cycle.durableHardState;
    if (this.#votes.has(this.#id) || d.term !== this.#term || d.vote !== this.#id) return;
    this.#votes.set(this.#id, true);
    this.#tallyVotes();
  }

  /** The node's state, for status endpoints and tests. */
  status(): RaftStatus {
    const membership = this.#log.membership();
    return {
      id: this.#id,
      role: this.#role,
      term: this.#term,
      vote: this.#vote,
      leader: this.#lead,
      commit: this.#log.committed,
      applied: this.#log.applied,
      firstIndex: this.#log.firstIndex(),
      lastIndex: this.#log.lastIndex(),
      stableIndex: this.#log.stableLastIndex(),
      membership,
      membershipIndex: this.#log.membershipIndex(),
      leadTransferee: this.#leader?.transferee ?? NONE,
      progress: this.#leader?.repl.status() ?? [],
      readsPending: this.#role === "leader" ? this.#reads.size : this.#forwarded.size,
      lastCommitCoveredOlderTerms: this.#lastCommitCoveredOlderTerms,
      snapshotReceived: this.#snapshotReceive.received,
    };
  }

  /** The state message validation looks at (see `checkMessage`). */
  #view(): MessageView {
    return {
      id: this.#id,
      term: this.#term,
      role: this.#role,
      lead: this.#lead,
      log: this.#log,
      limits: this.#limits,
      isMember: (id) => this.#leader?.repl.progress.has(id) === true,
      readSeq: this.#reads.seq,
      readsWaiting: this.#reads.size,
      snapshotVerdict: (m) => this.#snapshotReceive.classify(m, this.#term),
      isForwardedRead: (m) => this.#forwarded.matches(m.context, m.from, m.term),
    };
  }

  // ---------------------------------------------------------------------------------------
  // Role transitions

  /**
   * Leaves the current role. It does not touch the election timer: only hearing from the
   * leader, granting a vote and campaigning restart it (§5.2). Stepping down to a higher
   * term from a vote request that is then refused must not, or a node with a stale log that
   * times out quickly keeps everyone else from ever campaigning.
   */
  #reset(term: number): void {
    if (term !== this.#term) {
      assert(term > this.#term, () => `term going back from ${this.#term} to ${term}`);
      this.#term = term;
      this.#vote = NONE;
      // What belonged to the old term: answers to its leader or candidates, reads forwarded
      // to its leader, the snapshot it was sending us.
      this.#outbox.dropBelowTerm(term);
      this.#forwarded.clear();
      this.#snapshotReceive.clear();
    }
    this.#lead = NONE;
    this.#votes = new Map();
    this.#leader = undefined; // with it its transfer target and uncommitted bytes
    this.#reads.clear();
  }

  #becomeFollower(term: number, lead: NodeId): void {
    this.#reset(term);
    this.#role = "follower";
    if (lead !== NONE) this.#followLeader(lead);
  }

  /** Records `lead` as the leader of this term; what is bound to another one is dropped. */
  #followLeader(lead: NodeId): void {
    this.#lead = lead;
    this.#snapshotReceive.keepOnly(lead, this.#term);
  }

  #becomePreCandidate(): void {
    assert(this.#role !== "leader", "leader cannot become pre-candidate");
    // A pre-candidate keeps its term and vote: it only asks whether it could win. It draws a
    // new timeout so that competing pre-candidates do not retry in lockstep.
    this.#votes = new Map();
    this.#timer.restart();
    this.#role = "preCandidate";
    this.#lead = NONE;
  }

  #becomeCandidate(): void {
    assert(this.#role !== "leader", "leader cannot become candidate");
    this.#reset(this.#term + 1);
    this.#timer.restart();
    this.#vote = this.#id;
    this.#role = "candidate";
  }

  #becomeLeader(): void {
    assert(this.#role === "candidate", () => `${this.#role} cannot become leader`);
    this.#reset(this.#term);
    this.#timer.restart(); // from now on: the check-quorum round
    this.#role = "leader";
    this.#lead = this.#id;
    this.#leader = new Leader({
      id: this.#id,
      term: this.#term,
      log: this.#log,
      limits: this.#limits,
      heartbeatTicks: this.#heartbeatTicks,
      checkQuorum: this.#checkQuorum,
      timer: this.#timer,
      reads: this.#reads,
      send: (m) => this.#send(m),
      sendNow: (m) => this.#outbox.sendNow(m),
      readState: (read) => this.#cycle.addReadState(read),
      commitAdvanced: (coveredOlderTerms) => {
        this.#lastCommitCoveredOlderTerms = coveredOlderTerms;
      },
      stepDown: () => this.#becomeFollower(this.#term, NONE),
    });
    this.#leader.appendNoop();
  }

  // ---------------------------------------------------------------------------------------
  // Elections

  #tickElection(): void {
    this.#timer.tick();
    if (promotable(this.#log, this.#id) && this.#timer.timedOut) {
      this.#campaign(this.#preVote ? "preElection" : "election");
    }
  }

  #campaign(kind: CampaignKind): void {
    if (this.#campaignsHeld || !promotable(this.#log, this.#id)) return;
    let term: number;
    let type: "vote" | "preVote";
    if (kind === "preElection") {
      this.#becomePreCandidate();
      term = this.#term + 1;
      type = "preVote";
      this.#votes.set(this.#id, true); // a pre-vote changes nothing: no persist needed
      if (this.#tallyVotes()) return;
    } else {
      this.#becomeCandidate(); // its own vote counts once durable (#maybeVoteForSelf)
      term = this.#term;
      type = "vote";
    }
    const transfer = kind === "transfer";
    for (const m of voteRequests(this.#log, this.#id, { type, term, transfer })) {
      this.#outbox.send(m);
    }
  }

  /** Acts on the votes so far; returns true when the campaign ended. */
  #tallyVotes(): boolean {
    const result = quorumVote(this.#log.membership(), this.#votes);
    if (result === "won") {
      if (this.#role === "preCandidate") this.#campaign("election");
      else this.#becomeLeader();
      return true;
    }
    if (result === "lost") {
      this.#becomeFollower(this.#term, NONE);
      return true;
    }
    return false;
  }

  #handleVoteRequest(m: VoteMessage): void {
    const state = { id: this.#id, vote: this.#vote, lead: this.#lead, term: this.#term };
    const resp = answerVote(m, { ...state, log: this.#log });
    this.#outbox.send(resp);
    if (!resp.reject && m.type === "vote") {
      assert(this.#vote === NONE || this.#vote === m.from, "voting twice in one term");
      this.#timer.restart();
      this.#vote = m.from;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Candidate and follower messages (the leader's go to Leader.step)

  #stepCandidate(m: Message): void {
    switch (m.type) {
      case "app":
      case "heartbeat":
      case "snap":
        // A leader of this term exists: follow it.
        this.#becomeFollower(this.#term, m.from);
        this.#stepFollower(m);
        return;
      case "voteResp":
      case "preVoteResp": {
        const expected = this.#role === "candidate" ? "voteResp" : "preVoteResp";
        if (m.type !== expected) return;
        this.#votes.set(m.from, !m.reject);
        this.#tallyVotes();
        return;
      }
      default:
        return;
    }
  }

  #stepFollower(m: Message): void {
    switch (m.type) {
      case "app":
      case "heartbeat":
      case "snap":
        // The leader of the current term: the only message that restarts a follower's timer.
        this.#followLeader(m.from);
        this.#timer.restart();
        if (m.type === "app") return handleAppend(this.#followerHost(), m);
        if (m.type === "heartbeat") return handleHeartbeat(this.#followerHost(), m);
        return handleSnapshot(this.#followerHost(), m);
      case "timeoutNow":
        this.#campaign("transfer");
        return;
      case "readIndexResp":
        this.#forwarded.delete(m.context);
        this.#cycle.addReadState({ context: m.context, index: m.index });
        return;
      default:
        return;
    }
  }

  #followerHost(): FollowerHost {
    return {
      log: this.#log,
      snapshotReceive: this.#snapshotReceive,
      term: this.#term,
      send: (m) => this.#send(m),
    };
  }

  // ---------------------------------------------------------------------------------------
  // Helpers

  /** The leader, for an input only a leader takes; throws `NotLeaderError` otherwise. */
  #leaderOrThrow(): Leader {
    if (this.#role !== "leader") throw new NotLeaderError(this.#id, this.#lead);
    return this.#leader!;
  }

  /** Turns pending broadcasts into messages (done lazily so one turn sends one batch). */
  #flushSends(): void {
    if (this.#role === "leader") this.#leader!.flush();
  }

  /** Queues a message of this node's term (the outbox decides when it may leave). */
  #send(m: Outgoing): void {
    this.#outbox.send({ ...m, from: this.#id, term: this.#term } as Message);
  }

  #hardState(): HardState {
    return { term: this.#term, vote: this.#vote, commit: this.#log.committed };
  }

  #softState(): SoftState {
    return { role: this.#role, leader: this.#lead };
  }
}

import {
  assert,
  MembershipChangeError,
  NotLeaderError,
  ProposalDroppedError,
  TransferLeaderError,
} from "./_errors.ts";
import { answerToLowerTerm, grantsVote, inLease, promotable, voteRequests } from "./_election.ts";
import { isJoint, isVoter, leaveJoint, planChange } from "./_membership.ts";
import type { MembershipChange } from "./_membership.ts";
import type { Message, VoteMessage, VoteResponseMessage } from "./_message.ts";
import {
  type FollowerHost,
  handleAppend,
  handleHeartbeat,
  handleSnapshot,
  type Outgoing,
} from "./_follower.ts";
import { checkMessage, DROP_REASONS, type DropReason, type MessageView } from "./_message_check.ts";
import { type RaftLimits, type RaftOptions, resolveOptions } from "./_options.ts";
import type { Progress } from "./_progress.ts";
import { quorumVote } from "./_quorum.ts";
import { RaftLog } from "./_raft_log.ts";
import { ForwardedReads, LeaderReads, type ReadRequest } from "./_read_index.ts";
import { Outbox, type Proposed, type RaftStatus, type Ready } from "./_ready.ts";
import { Replication } from "./_replication.ts";
import { SnapshotReceive } from "./_snapshot_receive.ts";
import {
  type Entry,
  type HardState,
  type Membership,
  type NodeId,
  NONE,
  type ReadState,
  type Role,
  type SoftState,
} from "./_types.ts";

export type { ProgressStatus, Proposed, RaftStatus, Ready } from "./_ready.ts";

/** What the last Ready handed out, to be acknowledged by advance(). */
interface HandedOut {
  readonly hardState: HardState;
  readonly lastEntry: { index: number; term: number } | undefined;
  readonly snapshotIndex: number | undefined;
  readonly appliedTo: number;
}

type CampaignKind = "preElection" | "election" | "transfer";

const NO_PROGRESS: ReadonlyMap<NodeId, Progress> = new Map();

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
  readonly #electionTicks: number;
  readonly #electionTicksMax: number;
  readonly #heartbeatTicks: number;
  readonly #random: () => number;
  readonly #preVote: boolean;
  readonly #checkQuorum: boolean;
  readonly #limits: RaftLimits;
  readonly #log: RaftLog;
  readonly #onDrop: ((reason: DropReason, message: unknown) => void) | undefined;
  readonly #dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<
    DropReason,
    number
  >;

  #term = 0;
  #vote: NodeId = NONE;
  #lead: NodeId = NONE;
  #role: Role = "follower";
  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #randomizedElectionTicks = 0;
  #votes = new Map<NodeId, boolean>();
  /** The hard state on disk: a candidate counts its own vote only once it is durable. */
  #durableHard: HardState;

  // Leader state.
  #repl: Replication | undefined;
  #leadTransferee: NodeId = NONE;
  #uncommitted: [lastIndex: number, bytes: number][] = [];
  #uncommittedBytes = 0;
  readonly #reads = new LeaderReads();
  #lastCommitCoveredOlderTerms = false;

  // Follower state.
  readonly #snapshotReceive = new SnapshotReceive();
  readonly #forwarded: ForwardedReads;

  // Ready bookkeeping.
  readonly #outbox = new Outbox();
  #readStates: ReadState[] = [];
  #prevHard: HardState;
  #prevSoft: SoftState;
  #handedOut: HandedOut | undefined;

  /** Creates a node from its durable state in `options.storage`. */
  constructor(options: RaftOptions) {
    const opts = resolveOptions(options);
    this.#id = opts.id;
    this.#electionTicks = opts.electionTicks;
    this.#electionTicksMax = opts.electionTicksMax;
    this.#heartbeatTicks = opts.heartbeatTicks;
    this.#random = opts.random;
    this.#preVote = opts.preVote;
    this.#checkQuorum = opts.checkQuorum;
    this.#limits = opts.limits;
    this.#onDrop = opts.onDrop;
    this.#forwarded = new ForwardedReads(opts.limits.readsPendingMax);
    const { hardState } = opts.storage.initialState();
    this.#log = new RaftLog(opts.storage, { committed: hardState.commit, applied: opts.applied });
    this.#term = hardState.term;
    this.#vote = hardState.vote;
    this.#prevHard = hardState;
    this.#durableHard = hardState;
    this.#becomeFollower(hardState.term, NONE);
    this.#resetElectionTimer();
    this.#prevSoft = this.#softState();
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
    if (this.#role === "leader") this.#tickHeartbeat();
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
      this.#dropped[reason]++;
      this.#onDrop?.(reason, m);
      return;
    }
    if (m.term > this.#term) {
      if (!this.#acceptHigherTerm(m)) return;
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
        return this.#stepLeader(m);
      case "candidate":
      case "preCandidate":
        return this.#stepCandidate(m);
      case "follower":
        return this.#stepFollower(m);
    }
  }

  /** Messages dropped since start, by reason (see {@linkcode step}). */
  droppedMessages(): Readonly<Record<DropReason, number>> {
    return Object.freeze({ ...this.#dropped });
  }

  /** Proposes one command. Throws `NotLeaderError` or `ProposalDroppedError`. */
  propose(data: Uint8Array): Proposed {
    return this.proposeMany([data]);
  }

  /** Proposes commands as consecutive entries; returns where the first one landed. */
  proposeMany(commands: readonly Uint8Array[]): Proposed {
    assert(commands.length > 0, "proposeMany needs at least one command");
    this.#checkCanPropose();
    let bytes = 0;
    for (const c of commands) bytes += c.length;
    if (
      this.#uncommittedBytes > 0 &&
      this.#uncommittedBytes + bytes > this.#limits.uncommittedBytesMax
    ) {
      throw new ProposalDroppedError(
        `Cannot propose: ${this.#uncommittedBytes} bytes await commit on node ${this.#id}, ` +
          `limit ${this.#limits.uncommittedBytesMax}`,
      );
    }
    const index = this.#log.lastIndex() + 1;
    const entries = commands.map((data, i): Entry => ({
      term: this.#term,
      index: index + i,
      type: "normal",
      data,
    }));
    this.#appendEntries(entries);
    return { index, term: this.#term };
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
    this.#checkCanPropose();
    const pending = this.#log.membershipIndex();
    if (pending > this.#log.committed) {
      throw new MembershipChangeError(
        `Cannot change membership: the change at index ${pending} is not committed yet`,
      );
    }
    if (this.#log.term(this.#log.committed) !== this.#term) {
      throw new MembershipChangeError(
        `Cannot change membership: leader ${this.#id} has not committed an entry of term ` +
          `${this.#term} yet`,
      );
    }
    const membership = planChange(this.#log.membership(), changes);
    const index = this.#log.lastIndex() + 1;
    this.#appendEntries([{ term: this.#term, index, type: "config", data: context, membership }]);
    return { index, term: this.#term };
  }

  /** Asks the leader to hand leadership to voter `to` (TimeoutNow once it is caught up). */
  transferLeader(to: NodeId): void {
    if (this.#role !== "leader") throw new NotLeaderError(this.#id, this.#lead);
    if (to === this.#id) return;
    if (!this.#log.membership().voters.includes(to)) {
      throw new TransferLeaderError(`Cannot transfer leadership to ${to}: it is not a voter`);
    }
    if (this.#leadTransferee === to) return;
    this.#leadTransferee = to;
    this.#resetElectionTimer(); // the transfer is abandoned after one election timeout
    const pr = this.#progress().get(to)!;
    if (pr.match === this.#log.lastIndex()) this.#send({ type: "timeoutNow", to });
    else this.#repl!.sendAppend(to, true);
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
      this.#handleReadRequest({ context, from: this.#id });
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
    if (this.#handedOut !== undefined) return false;
    const log = this.#log;
    return this.#outbox.hasMessages(log.lastIndex()) || this.#repl?.sendPending === true ||
      this.#repl?.heartbeatPending === true || this.#readStates.length > 0 ||
      log.hasUnstableEntries() || log.hasPendingSnapshot() || log.hasNextCommittedEntries() ||
      !sameHardState(this.#hardState(), this.#prevHard) ||
      !sameSoftState(this.#softState(), this.#prevSoft);
  }

  /** Hands out the next batch of work; call {@linkcode advance} when it is done. */
  ready(): Ready {
    assert(this.#handedOut === undefined, "ready() called again before advance()");
    this.#flushSends();
    const log = this.#log;
    const soft = this.#softState();
    const entries = log.unstableEntries(this.#limits.persistBytesMax);
    const snapshot = log.unstableSnapshot();
    // What is on disk once this Ready is persisted. It may be only a prefix of the unstable
    // entries: the commit index on disk, the entries to apply and the acknowledgements never
    // pass it; the rest goes out with a later Ready.
    const durableLast = entries.at(-1)?.index ?? snapshot?.meta.index ?? log.stableLastIndex();
    const hard = { ...this.#hardState(), commit: Math.min(log.committed, durableLast) };
    const committedEntries = log.nextCommittedEntries(this.#limits.applyBytesMax, durableLast);
    const rd: Ready = {
      ...(sameSoftState(soft, this.#prevSoft) ? {} : { softState: soft }),
      ...(sameHardState(hard, this.#prevHard) ? {} : { hardState: hard }),
      entries,
      ...(snapshot === undefined ? {} : { snapshot }),
      messages: this.#outbox.takeNow(),
      messagesAfterPersist: this.#outbox.takeAfterPersist(durableLast),
      committedEntries,
      readStates: this.#readStates,
    };
    this.#readStates = [];
    this.#prevHard = hard;
    this.#prevSoft = soft;
    const last = entries.at(-1);
    this.#handedOut = {
      hardState: hard,
      lastEntry: last === undefined ? undefined : { index: last.index, term: last.term },
      snapshotIndex: snapshot?.meta.index,
      appliedTo: committedEntries.at(-1)?.index ?? 0,
    };
    return rd;
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

  /** Acknowledges that the last Ready was persisted, sent and applied. */
  advance(): void {
    const handed = this.#handedOut;
    assert(handed !== undefined, "advance() without ready()");
    this.#handedOut = undefined;
    this.#durableHard = handed.hardState;
    if (handed.snapshotIndex !== undefined) {
      this.#log.stableSnapTo(handed.snapshotIndex);
      this.#log.appliedTo(handed.snapshotIndex);
    }
    if (handed.lastEntry !== undefined) {
      this.#log.stableTo(handed.lastEntry.index, handed.lastEntry.term);
    }
    this.#log.appliedTo(handed.appliedTo);
    if (this.#role === "leader") this.#selfPersisted();
    else if (this.#role === "candidate") this.#maybeVoteForSelf();
  }

  /** The leader counts its own log in the commit quorum only once it is durable (§10.2.1). */
  #selfPersisted(): void {
    if (this.#log.hasPendingSnapshot()) return;
    const self = this.#progress().get(this.#id);
    if (self !== undefined && self.maybeUpdate(this.#log.stableLastIndex())) this.#maybeCommit();
  }

  /**
   * A candidate counts its own vote once its term and vote are durable, like any other vote:
   * a leader whose term is not on disk could, after a crash, win the same term again with
   * other entries than the ones it already sent (to learners, say).
   */
  #maybeVoteForSelf(): void {
    const d = this.#durableHard;
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
      leadTransferee: this.#leadTransferee,
      progress: this.#repl?.status() ?? [],
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
      isMember: (id) => this.#progress().has(id),
      readSeq: this.#reads.seq,
      readsWaiting: this.#reads.size,
      snapshotVerdict: (m) => this.#snapshotReceive.classify(m, this.#term),
      isForwardedRead: (m) => this.#forwarded.matches(m.context, m.from, m.term),
    };
  }

  // ---------------------------------------------------------------------------------------
  // Role transitions

  /** The one place that restarts the election timeout (and draws a new random one). */
  #resetElectionTimer(): void {
    this.#electionElapsed = 0;
    const span = this.#electionTicksMax - this.#electionTicks;
    this.#randomizedElectionTicks = this.#electionTicks + Math.floor(this.#random() * span);
    assert(
      this.#randomizedElectionTicks >= this.#electionTicks &&
        this.#randomizedElectionTicks < this.#electionTicksMax,
      "injected random() must return a number in [0, 1)",
    );
  }

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
    this.#heartbeatElapsed = 0;
    this.#votes = new Map();
    this.#repl = undefined;
    this.#leadTransferee = NONE;
    this.#uncommitted = [];
    this.#uncommittedBytes = 0;
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
    this.#resetElectionTimer();
    this.#role = "preCandidate";
    this.#lead = NONE;
  }

  #becomeCandidate(): void {
    assert(this.#role !== "leader", "leader cannot become candidate");
    this.#reset(this.#term + 1);
    this.#resetElectionTimer();
    this.#vote = this.#id;
    this.#role = "candidate";
  }

  #becomeLeader(): void {
    assert(this.#role === "candidate", () => `${this.#role} cannot become leader`);
    this.#reset(this.#term);
    this.#resetElectionTimer(); // from now on: the check-quorum round
    this.#role = "leader";
    this.#lead = this.#id;
    this.#repl = new Replication({
      id: this.#id,
      term: this.#term,
      log: this.#log,
      limits: this.#limits,
      send: (m) => this.#outbox.sendNow(m),
    });
    this.#repl.sync();
    const self = this.#progress().get(this.#id)!;
    self.becomeReplicate();
    if (!this.#log.hasPendingSnapshot()) self.maybeUpdate(this.#log.stableLastIndex());
    // The no-op lets the leader commit entries of earlier terms (Figure 8).
    this.#appendEntries([{
      term: this.#term,
      index: this.#log.lastIndex() + 1,
      type: "normal",
      data: new Uint8Array(0),
    }]);
  }

  #campaign(kind: CampaignKind): void {
    if (!promotable(this.#log, this.#id)) return;
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
    for (const m of voteRequests(this.#log, this.#id, { type, term, transfer })) this.#push(m);
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

  // ---------------------------------------------------------------------------------------
  // Ticks

  #tickElection(): void {
    this.#electionElapsed++;
    if (promotable(this.#log, this.#id) && this.#electionElapsed >= this.#randomizedElectionTicks) {
      this.#campaign(this.#preVote ? "preElection" : "election");
    }
  }

  #tickHeartbeat(): void {
    this.#heartbeatElapsed++;
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#electionTicks) {
      this.#resetElectionTimer();
      if (this.#checkQuorum && !this.#repl!.checkQuorum()) {
        this.#becomeFollower(this.#term, NONE);
        return;
      }
      this.#leadTransferee = NONE; // a transfer that did not finish in time is abandoned
    }
    if (this.#heartbeatElapsed >= this.#heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      this.#repl!.heartbeatPending = true;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Term rules

  /** A message from a higher term: returns whether to go on processing it. */
  #acceptHigherTerm(m: Message): boolean {
    if ((m.type === "vote" || m.type === "preVote") && inLease(m, this.#leaseState())) {
      return false;
    }
    if (m.type === "preVote") return true; // answering a pre-vote never changes our term
    if (m.type === "preVoteResp" && !m.reject) return true; // our own pre-vote, granted
    const fromLeader = m.type === "app" || m.type === "heartbeat" || m.type === "snap" ||
      m.type === "timeoutNow";
    this.#becomeFollower(m.term, fromLeader ? m.from : NONE);
    return true;
  }

  #leaseState() {
    return {
      checkQuorum: this.#checkQuorum,
      lead: this.#lead,
      electionElapsed: this.#electionElapsed,
      electionTicks: this.#electionTicks,
    };
  }

  #handleVoteRequest(m: VoteMessage): void {
    const respType = m.type === "vote" ? "voteResp" : "preVoteResp";
    const state = { vote: this.#vote, lead: this.#lead, term: this.#term, log: this.#log };
    if (grantsVote(m, state)) {
      // A granted pre-vote carries the term it was asked for, so the candidate counts it.
      const resp: VoteResponseMessage = {
        type: respType,
        from: this.#id,
        to: m.from,
        term: m.term,
        reject: false,
      };
      this.#push(resp);
      if (m.type === "vote") {
        assert(this.#vote === NONE || this.#vote === m.from, "voting twice in one term");
        this.#resetElectionTimer();
        this.#vote = m.from;
      }
    } else {
      this.#send({ type: respType, to: m.from, reject: true });
    }
  }

  // ---------------------------------------------------------------------------------------
  // Per-role message handling

  #stepLeader(m: Message): void {
    switch (m.type) {
      case "appResp": {
        const updated = this.#repl!.onAppendResponse(m);
        if (updated) this.#maybeCommit();
        if (this.#role !== "leader") return; // stepped down after its removal committed
        this.#repl!.sendAll(m.from);
        const pr = this.#progress().get(m.from)!;
        if (!m.reject && m.from === this.#leadTransferee && pr.match === this.#log.lastIndex()) {
          this.#send({ type: "timeoutNow", to: m.from });
        }
        return;
      }
      case "heartbeatResp":
        if (this.#repl!.onHeartbeatResponse(m)) this.#releaseReads();
        return;
      case "snapResp":
        return this.#repl!.onSnapshotResponse(m);
      case "readIndex":
        return this.#handleReadRequest({ context: m.context, from: m.from });
      case "app":
      case "heartbeat":
      case "snap":
        // #check drops these: reaching here means the core itself broke.
        assert(false, () => `two leaders in term ${this.#term}: ${this.#id} and ${m.from}`);
        return;
      default:
        return; // stale votes, responses to past campaigns
    }
  }

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
        this.#resetElectionTimer();
        if (m.type === "app") return handleAppend(this.#followerHost(), m);
        if (m.type === "heartbeat") return handleHeartbeat(this.#followerHost(), m);
        return handleSnapshot(this.#followerHost(), m);
      case "timeoutNow":
        this.#campaign("transfer");
        return;
      case "readIndexResp":
        this.#forwarded.delete(m.context);
        this.#readStates.push({ context: m.context, index: m.index });
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Follower: replication

  #followerHost(): FollowerHost {
    return {
      log: this.#log,
      snapshotReceive: this.#snapshotReceive,
      term: this.#term,
      send: (m) => this.#send(m),
    };
  }

  // ---------------------------------------------------------------------------------------
  // Leader: replication

  /** The leader's progress map (empty when not leader). */
  #progress(): ReadonlyMap<NodeId, Progress> {
    return this.#repl?.progress ?? NO_PROGRESS;
  }

  #checkCanPropose(): void {
    if (this.#role !== "leader") throw new NotLeaderError(this.#id, this.#lead);
    if (this.#leadTransferee !== NONE) {
      throw new ProposalDroppedError(
        `Cannot propose: node ${this.#id} is transferring leadership to ${this.#leadTransferee}`,
      );
    }
  }

  #appendEntries(entries: Entry[]): void {
    const log = this.#log;
    const before = log.membershipIndex();
    for (const e of entries) assert(e.term === this.#term, "leader appends entries of its term");
    const last = log.append(entries);
    let bytes = 0;
    for (const e of entries) bytes += e.data.length;
    if (bytes > 0) {
      this.#uncommitted.push([last, bytes]);
      this.#uncommittedBytes += bytes;
    }
    if (log.membershipIndex() !== before) this.#syncProgress();
    // The leader's own match moves only when its entries are durable (advance()).
    this.#repl!.sendPending = true;
    this.#maybeCommit();
  }

  /** Makes the progress map name exactly the members (and the leader itself). */
  #syncProgress(): void {
    this.#repl!.sync();
    const membership = this.#log.membership();
    if (this.#leadTransferee !== NONE && !membership.voters.includes(this.#leadTransferee)) {
      this.#leadTransferee = NONE;
    }
  }

  #maybeCommit(): boolean {
    const n = this.#repl!.quorumMatch();
    const before = this.#log.committed;
    if (!Number.isFinite(n) || !this.#log.maybeCommit(n, this.#term)) return false;
    // Terms never decrease along the log: the first newly committed entry is the oldest.
    this.#lastCommitCoveredOlderTerms = this.#log.term(before + 1) !== this.#term;
    this.#onCommitAdvanced();
    return true;
  }

  #onCommitAdvanced(): void {
    const log = this.#log;
    while (this.#uncommitted.length > 0 && this.#uncommitted[0][0] <= log.committed) {
      this.#uncommittedBytes -= this.#uncommitted.shift()![1];
    }
    this.#repl!.sendPending = true; // followers learn the new commit index
    if (log.term(log.committed) === this.#term) {
      for (const r of this.#reads.takeBeforeCommit()) this.#handleReadRequest(r);
    }
    if (log.membershipIndex() > log.committed) return;
    const membership = log.membership();
    if (isJoint(membership)) {
      // C_old,new committed: move on to C_new.
      this.#appendEntries([{
        term: this.#term,
        index: log.lastIndex() + 1,
        type: "config",
        data: new Uint8Array(0),
        membership: leaveJoint(membership),
      }]);
    } else if (!isVoter(membership, this.#id)) {
      this.#stepDownRemoved();
    }
  }

  /** The leader's removal committed: hand over to the most caught-up voter and step down. */
  #stepDownRemoved(): void {
    this.#flushSends(); // tell everyone the commit index first
    const successor = this.#repl!.caughtUpVoter();
    if (successor !== undefined) this.#send({ type: "timeoutNow", to: successor });
    this.#becomeFollower(this.#term, NONE);
  }

  // ---------------------------------------------------------------------------------------
  // Leader: reads

  #handleReadRequest(read: ReadRequest): void {
    const waiting = this.#reads.size;
    if (waiting >= this.#limits.readsPendingMax) {
      // A follower's request is dropped by #check; only the leader's own reach here.
      throw new ProposalDroppedError(
        `Cannot read: ${waiting} reads wait on node ${this.#id}, limit ${this.#limits.readsPendingMax}`,
      );
    }
    const log = this.#log;
    if (log.term(log.committed) !== this.#term) {
      // Until an entry of this term commits, the commit index may lag the true one.
      this.#reads.waitForCommit(read);
      return;
    }
    this.#reads.add(read, log.committed);
    this.#repl!.heartbeatPending = true;
    this.#releaseReads();
  }

  /** Answers every read whose heartbeat round a quorum acknowledged. */
  #releaseReads(): void {
    for (const r of this.#reads.release(this.#repl!.quorumReadRound(this.#reads.seq))) {
      if (r.from === this.#id) {
        this.#readStates.push({ context: r.context, index: r.index });
      } else {
        this.#send({ type: "readIndexResp", to: r.from, context: r.context, index: r.index });
      }
    }
  }

  // ---------------------------------------------------------------------------------------
  // Sending

  /** Turns pending broadcasts into messages (done lazily so one turn sends one batch). */
  #flushSends(): void {
    if (this.#role === "leader") this.#repl!.flush(this.#reads.seq);
  }

  /** Queues a message of this node's term. */
  #send(m: Outgoing): void {
    this.#push({ ...m, from: this.#id, term: this.#term } as Message);
  }

  /**
   * Queues a message. Votes, vote requests and append acknowledgements leave only once what
   * they vouch for is durable: the term and vote, and for an acknowledgement its entries.
   */
  #push(m: Message): void {
    if (m.type === "appResp") {
      this.#outbox.sendAfterPersist(m, m.reject ? 0 : m.index);
    } else if (m.type === "vote" || m.type === "voteResp" || m.type === "preVoteResp") {
      this.#outbox.sendAfterPersist(m, 0);
    } else {
      this.#outbox.sendNow(m);
    }
  }

  #hardState(): HardState {
    return { term: this.#term, vote: this.#vote, commit: this.#log.committed };
  }

  #softState(): SoftState {
    return { role: this.#role, leader: this.#lead };
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.leader === b.leader;
}

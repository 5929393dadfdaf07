import {
  assert,
  MembershipChangeError,
  NotLeaderError,
  ProposalDroppedError,
  TransferLeaderError,
} from "./_errors.ts";
import { isJoint, isVoter, leaveJoint, membersOf, planChange } from "./_membership.ts";
import type { MembershipChange } from "./_membership.ts";
import type {
  AppendMessage,
  AppendResponseMessage,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  Message,
  SnapshotMessage,
  SnapshotResponseMessage,
  VoteMessage,
  VoteResponseMessage,
} from "./_message.ts";
import { type RaftLimits, type RaftOptions, resolveOptions } from "./_options.ts";
import { Progress, type ProgressState } from "./_progress.ts";
import { quorumActive, quorumValue, quorumVote } from "./_quorum.ts";
import { RaftLog } from "./_raft_log.ts";
import { entryBytes } from "./_storage.ts";
import {
  type Entry,
  type HardState,
  type Membership,
  type NodeId,
  NONE,
  type ReadState,
  type Role,
  type Snapshot,
  type SnapshotMeta,
  type SoftState,
} from "./_types.ts";

/**
 * What the core asks of the driver, in this order:
 * 1. send `messages` at once: none of them depends on this Ready's persist (a leader may send
 *    its entries while it writes them, Raft dissertation §10.2.1);
 * 2. persist `snapshot`, `entries` and `hardState` (one durable step);
 * 3. then send `messagesAfterPersist` (votes and acknowledgements of what step 2 made durable);
 * 4. then apply `committedEntries` (and install `snapshot` into the state machine);
 * 5. serve `readStates` once the applied index reaches theirs;
 * 6. call {@linkcode Raft.advance}.
 *
 * While step 2 runs the driver keeps stepping and ticking the core and sends what
 * {@linkcode Raft.readyMessages} hands out, so heartbeats never wait behind a slow disk.
 */
export interface Ready {
  /** Role or leader changed: for the application's information. */
  readonly softState?: SoftState;
  /** Persist when present. */
  readonly hardState?: HardState;
  /** Persist: append, replacing any existing entries from `entries[0].index` on. */
  readonly entries: readonly Entry[];
  /** Persist and install: a snapshot received from the leader replaces log and state. */
  readonly snapshot?: Snapshot;
  /** Send now: these do not depend on this Ready's persist. */
  readonly messages: readonly Message[];
  /** Send only after persisting this Ready: votes, vote requests and append acknowledgements. */
  readonly messagesAfterPersist: readonly Message[];
  /** Apply, in order, after persisting. */
  readonly committedEntries: readonly Entry[];
  /** Linearizable reads: serve each once the applied index reaches its `index`. */
  readonly readStates: readonly ReadState[];
}

/** Where a proposal landed: it succeeded if the entry committed at `index` has `term`. */
export interface Proposed {
  /** The log index of the (first) proposed entry. */
  readonly index: number;
  /** The leader's term: the entry is this proposal only if the committed term matches. */
  readonly term: number;
}

/** The leader's view of one member, in {@linkcode RaftStatus}. */
export interface ProgressStatus {
  /** The member. */
  readonly id: NodeId;
  /** Whether it votes. */
  readonly voter: boolean;
  /** The highest index known to match the leader. */
  readonly match: number;
  /** The next index the leader sends it. */
  readonly next: number;
  /** The replication mode. */
  readonly state: ProgressState;
}

/** A snapshot of the node's state for status endpoints and tests. */
export interface RaftStatus {
  /** This node. */
  readonly id: NodeId;
  /** Its role. */
  readonly role: Role;
  /** Its current term. */
  readonly term: number;
  /** Its vote in the current term. */
  readonly vote: NodeId;
  /** The leader it follows, or {@linkcode NONE}. */
  readonly leader: NodeId;
  /** The commit index. */
  readonly commit: number;
  /** The index handed to the application. */
  readonly applied: number;
  /** The first index in the log. */
  readonly firstIndex: number;
  /** The last index in the log. */
  readonly lastIndex: number;
  /** The membership in effect. */
  readonly membership: Membership;
  /** The index of the config entry that set it (committed once `commit` reaches it). */
  readonly membershipIndex: number;
  /** The leadership transfer target, or {@linkcode NONE}. */
  readonly leadTransferee: NodeId;
  /** Per member (leader only; empty otherwise). */
  readonly progress: readonly ProgressStatus[];
}

/** A ReadIndex request waiting for the leader to confirm its leadership. */
interface PendingRead {
  readonly seq: number;
  readonly index: number;
  readonly context: string;
  readonly from: NodeId;
}

/** A snapshot being received chunk by chunk. */
interface SnapshotReceive {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
  received: number;
}

/** What the last Ready handed out, to be acknowledged by advance(). */
interface HandedOut {
  readonly lastEntry: { index: number; term: number } | undefined;
  readonly snapshotIndex: number | undefined;
  readonly appliedTo: number;
}

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
 * transfer (TimeoutNow) and ReadIndex.
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

  #term = 0;
  #vote: NodeId = NONE;
  #lead: NodeId = NONE;
  #role: Role = "follower";
  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #randomizedElectionTicks = 0;
  #votes = new Map<NodeId, boolean>();

  // Leader state.
  #progress = new Map<NodeId, Progress>();
  #leadTransferee: NodeId = NONE;
  #sendPending = false;
  #heartbeatPending = false;
  #uncommitted: [lastIndex: number, bytes: number][] = [];
  #uncommittedBytes = 0;
  #readSeq = 0;
  #pendingReads: PendingRead[] = [];
  #readsBeforeCommit: { context: string; from: NodeId }[] = [];

  // Follower state.
  #snapshotReceive: SnapshotReceive | undefined;

  // Ready bookkeeping.
  #msgs: Message[] = [];
  #msgsAfterPersist: Message[] = [];
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
    const { hardState } = opts.storage.initialState();
    this.#log = new RaftLog(opts.storage, { committed: hardState.commit, applied: opts.applied });
    this.#term = hardState.term;
    this.#vote = hardState.vote;
    this.#prevHard = hardState;
    this.#becomeFollower(hardState.term, NONE);
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

  /** Feeds a message received from a peer. */
  step(m: Message): void {
    assert(m.to === this.#id, () => `message for ${m.to} stepped into ${this.#id}`);
    if (m.term > this.#term) {
      if (!this.#acceptHigherTerm(m)) return;
    } else if (m.term < this.#term) {
      this.#answerLowerTerm(m);
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
    this.#electionElapsed = 0; // the transfer is aborted after one election timeout
    const pr = this.#progress.get(to)!;
    if (pr.match === this.#log.lastIndex()) this.#send({ type: "timeoutNow", to });
    else this.#sendAppend(to, true);
  }

  /**
   * Requests a linearizable read. Its {@linkcode ReadState} appears in a later Ready once the
   * leader confirmed its leadership. Throws `NotLeaderError` when no leader is known.
   */
  readIndex(context: string): void {
    if (this.#role === "leader") {
      this.#handleReadRequest(context, this.#id);
    } else if (this.#lead !== NONE) {
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
    return this.#msgs.length > 0 || this.#msgsAfterPersist.length > 0 || this.#sendPending ||
      this.#heartbeatPending ||
      this.#readStates.length > 0 || this.#log.hasUnstableEntries() ||
      this.#log.hasPendingSnapshot() || this.#log.hasNextCommittedEntries() ||
      !sameHardState(this.#hardState(), this.#prevHard) ||
      !sameSoftState(this.#softState(), this.#prevSoft);
  }

  /** Hands out the next batch of work; call {@linkcode advance} when it is done. */
  ready(): Ready {
    assert(this.#handedOut === undefined, "ready() called again before advance()");
    this.#flushSends();
    const soft = this.#softState();
    const entries = this.#log.unstableEntries(this.#limits.persistBytesMax);
    const snapshot = this.#log.unstableSnapshot();
    // The commit index on disk never passes the entries on disk (the Ready may persist only a
    // prefix of the unstable entries); the rest of it goes out with a later Ready.
    const durableLast = entries.at(-1)?.index ?? snapshot?.meta.index ??
      this.#log.stableLastIndex();
    const hard = { ...this.#hardState(), commit: Math.min(this.#log.committed, durableLast) };
    // Apply only what is durable here after this Ready: a snapshot of the state machine is
    // then always at an index the local log holds.
    const committedEntries = this.#log.nextCommittedEntries(this.#limits.applyBytesMax)
      .filter((e) => e.index <= durableLast);
    const rd: Ready = {
      ...(sameSoftState(soft, this.#prevSoft) ? {} : { softState: soft }),
      ...(sameHardState(hard, this.#prevHard) ? {} : { hardState: hard }),
      entries,
      ...(snapshot === undefined ? {} : { snapshot }),
      messages: this.#msgs,
      messagesAfterPersist: this.#msgsAfterPersist,
      committedEntries,
      readStates: this.#readStates,
    };
    this.#msgs = [];
    this.#msgsAfterPersist = [];
    this.#readStates = [];
    this.#prevHard = hard;
    this.#prevSoft = soft;
    const last = entries.at(-1);
    this.#handedOut = {
      lastEntry: last === undefined ? undefined : { index: last.index, term: last.term },
      snapshotIndex: snapshot?.meta.index,
      appliedTo: committedEntries.at(-1)?.index ?? 0,
    };
    return rd;
  }

  /**
   * Messages that may be sent now, even while a Ready is being persisted: heartbeats, catch-up
   * appends and snapshot chunks of a leader, read answers. Messages that must wait for a
   * persist stay queued for the next {@linkcode ready}; so do the appends of newly proposed
   * entries, which go out with the Ready that persists them (one append per batch, sent while
   * the leader writes it). Callable at any time.
   */
  readyMessages(): Message[] {
    this.#flushHeartbeats();
    const out = this.#msgs;
    this.#msgs = [];
    return out;
  }

  /** Acknowledges that the last Ready was persisted, sent and applied. */
  advance(): void {
    const handed = this.#handedOut;
    assert(handed !== undefined, "advance() without ready()");
    this.#handedOut = undefined;
    if (handed.snapshotIndex !== undefined) {
      this.#log.stableSnapTo(handed.snapshotIndex);
      this.#log.appliedTo(handed.snapshotIndex);
    }
    if (handed.lastEntry !== undefined) {
      this.#log.stableTo(handed.lastEntry.index, handed.lastEntry.term);
    }
    this.#log.appliedTo(handed.appliedTo);
    if (this.#role === "leader") this.#selfPersisted();
  }

  /** The leader counts its own log in the commit quorum only once it is durable (§10.2.1). */
  #selfPersisted(): void {
    if (this.#log.hasPendingSnapshot()) return;
    const self = this.#progress.get(this.#id);
    if (self !== undefined && self.maybeUpdate(this.#log.stableLastIndex())) this.#maybeCommit();
  }

  /** The node's state, for status endpoints and tests. */
  status(): RaftStatus {
    const membership = this.#log.membership();
    const progress: ProgressStatus[] = [];
    if (this.#role === "leader") {
      for (const [id, pr] of this.#progress) {
        progress.push({
          id,
          voter: isVoter(membership, id),
          match: pr.match,
          next: pr.next,
          state: pr.state,
        });
      }
      progress.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    }
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
      membership,
      membershipIndex: this.#log.membershipIndex(),
      leadTransferee: this.#leadTransferee,
      progress,
    };
  }

  // ---------------------------------------------------------------------------------------
  // Role transitions

  #reset(term: number): void {
    if (term !== this.#term) {
      assert(term > this.#term, () => `term going back from ${this.#term} to ${term}`);
      this.#term = term;
      this.#vote = NONE;
    }
    this.#lead = NONE;
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#randomizeElectionTimeout();
    this.#votes = new Map();
    this.#progress = new Map();
    this.#leadTransferee = NONE;
    this.#sendPending = false;
    this.#heartbeatPending = false;
    this.#uncommitted = [];
    this.#uncommittedBytes = 0;
    this.#pendingReads = [];
    this.#readsBeforeCommit = [];
  }

  #randomizeElectionTimeout(): void {
    const span = this.#electionTicksMax - this.#electionTicks;
    this.#randomizedElectionTicks = this.#electionTicks + Math.floor(this.#random() * span);
    assert(
      this.#randomizedElectionTicks >= this.#electionTicks &&
        this.#randomizedElectionTicks < this.#electionTicksMax,
      "injected random() must return a number in [0, 1)",
    );
  }

  #becomeFollower(term: number, lead: NodeId): void {
    this.#reset(term);
    this.#role = "follower";
    this.#lead = lead;
  }

  #becomePreCandidate(): void {
    assert(this.#role !== "leader", "leader cannot become pre-candidate");
    // A pre-candidate keeps its term and vote: it only asks whether it could win. It draws a
    // new timeout so that competing pre-candidates do not retry in lockstep.
    this.#votes = new Map();
    this.#randomizeElectionTimeout();
    this.#role = "preCandidate";
    this.#lead = NONE;
  }

  #becomeCandidate(): void {
    assert(this.#role !== "leader", "leader cannot become candidate");
    this.#reset(this.#term + 1);
    this.#vote = this.#id;
    this.#role = "candidate";
  }

  #becomeLeader(): void {
    assert(this.#role === "candidate", () => `${this.#role} cannot become leader`);
    this.#reset(this.#term);
    this.#role = "leader";
    this.#lead = this.#id;
    this.#syncProgress();
    const self = this.#progress.get(this.#id)!;
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

  /**
   * A voter of the membership in effect may campaign. So may a voter that the latest, still
   * uncommitted, config entry removes: it may hold the only up-to-date log (say, a leader that
   * removed itself and restarted), and the remaining voters need it to lead until the removal
   * commits. It counts votes with the new membership, like a leader that is not part of
   * C_new (dissertation §4.2.2), and steps down once that commits.
   */
  #promotable(): boolean {
    const log = this.#log;
    if (isVoter(log.membership(), this.#id)) return true;
    const previous = log.previousMembership();
    return log.membershipIndex() > log.committed && previous !== undefined &&
      isVoter(previous, this.#id);
  }

  #campaign(kind: CampaignKind): void {
    if (!this.#promotable()) return;
    let term: number;
    let type: "vote" | "preVote";
    if (kind === "preElection") {
      this.#becomePreCandidate();
      term = this.#term + 1;
      type = "preVote";
    } else {
      this.#becomeCandidate();
      term = this.#term;
      type = "vote";
    }
    this.#votes.set(this.#id, true);
    if (this.#tallyVotes()) return;
    const membership = this.#log.membership();
    const index = this.#log.lastIndex();
    const logTerm = this.#log.lastTerm();
    for (const to of membersOf(membership)) {
      if (to === this.#id || !isVoter(membership, to)) continue;
      const m: VoteMessage = {
        type,
        from: this.#id,
        to,
        term,
        index,
        logTerm,
        transfer: kind === "transfer",
      };
      this.#push(m);
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

  // ---------------------------------------------------------------------------------------
  // Ticks

  #tickElection(): void {
    this.#electionElapsed++;
    if (this.#promotable() && this.#electionElapsed >= this.#randomizedElectionTicks) {
      this.#electionElapsed = 0;
      this.#campaign(this.#preVote ? "preElection" : "election");
    }
  }

  #tickHeartbeat(): void {
    this.#heartbeatElapsed++;
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#electionTicks) {
      this.#electionElapsed = 0;
      if (this.#checkQuorum) {
        const membership = this.#log.membership();
        const active = (id: NodeId) =>
          id === this.#id || this.#progress.get(id)?.recentActive === true;
        if (!quorumActive(membership, active)) {
          this.#becomeFollower(this.#term, NONE);
          return;
        }
        for (const pr of this.#progress.values()) pr.recentActive = false;
      }
      this.#leadTransferee = NONE; // a transfer that did not finish in time is abandoned
    }
    if (this.#heartbeatElapsed >= this.#heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      this.#heartbeatPending = true;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Term rules

  /** A message from a higher term: returns whether to go on processing it. */
  #acceptHigherTerm(m: Message): boolean {
    if (m.type === "vote" || m.type === "preVote") {
      const inLease = this.#checkQuorum && this.#lead !== NONE &&
        this.#electionElapsed < this.#electionTicks;
      // While a leader is heard from, a vote request is most likely from a node that was
      // partitioned or removed: ignore it, unless a leadership transfer sent it.
      if (inLease && !m.transfer) return false;
    }
    if (m.type === "preVote") return true; // answering a pre-vote never changes our term
    if (m.type === "preVoteResp" && !m.reject) return true; // our own pre-vote, granted
    const fromLeader = m.type === "app" || m.type === "heartbeat" || m.type === "snap";
    this.#becomeFollower(m.term, fromLeader ? m.from : NONE);
    return true;
  }

  /** A message from a lower term: tell a stale leader or pre-candidate about our term. */
  #answerLowerTerm(m: Message): void {
    if ((this.#checkQuorum || this.#preVote) && (m.type === "app" || m.type === "heartbeat")) {
      this.#send({
        type: "appResp",
        to: m.from,
        index: 0,
        reject: false,
        rejectHint: 0,
        logTerm: 0,
      });
    } else if (m.type === "preVote") {
      this.#send({ type: "preVoteResp", to: m.from, reject: true });
    }
  }

  #handleVoteRequest(m: VoteMessage): void {
    const canVote = this.#vote === m.from ||
      (this.#vote === NONE && this.#lead === NONE) ||
      (m.type === "preVote" && m.term > this.#term);
    const respType = m.type === "vote" ? "voteResp" : "preVoteResp";
    if (canVote && this.#log.isUpToDate(m.index, m.logTerm)) {
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
        this.#electionElapsed = 0;
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
      case "appResp":
        return this.#handleAppendResponse(m);
      case "heartbeatResp":
        return this.#handleHeartbeatResponse(m);
      case "snapResp":
        return this.#handleSnapshotResponse(m);
      case "readIndex":
        if (this.#progress.has(m.from)) this.#handleReadRequest(m.context, m.from);
        return;
      case "app":
      case "heartbeat":
      case "snap":
        assert(false, () => `two leaders in term ${this.#term}: ${this.#id} and ${m.from}`);
        return;
      default:
        return; // stale votes, responses to past campaigns, misdirected reads
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
        this.#electionElapsed = 0;
        this.#lead = m.from;
        return this.#handleAppend(m);
      case "heartbeat":
        this.#electionElapsed = 0;
        this.#lead = m.from;
        return this.#handleHeartbeat(m);
      case "snap":
        this.#electionElapsed = 0;
        this.#lead = m.from;
        return this.#handleSnapshot(m);
      case "timeoutNow":
        this.#campaign("transfer");
        return;
      case "readIndexResp":
        this.#readStates.push({ context: m.context, index: m.index });
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Follower: replication

  #handleAppend(m: AppendMessage): void {
    const log = this.#log;
    if (m.index < log.committed) {
      this.#sendAppendResponse(m.from, log.committed);
      return;
    }
    const lastNew = log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.#sendAppendResponse(m.from, lastNew);
      return;
    }
    // Fast back-off: skip every index whose term is above the leader's term at m.index.
    const [hint, hintTerm] = log.findConflictByTerm(Math.min(m.index, log.lastIndex()), m.logTerm);
    this.#send({
      type: "appResp",
      to: m.from,
      index: m.index,
      reject: true,
      rejectHint: hint,
      logTerm: hintTerm,
    });
  }

  #sendAppendResponse(to: NodeId, index: number): void {
    this.#send({ type: "appResp", to, index, reject: false, rejectHint: 0, logTerm: 0 });
  }

  #handleHeartbeat(m: HeartbeatMessage): void {
    // The leader sends min(our match, its commit): every index up to it matches the leader.
    this.#log.commitTo(m.commit);
    this.#send({ type: "heartbeatResp", to: m.from, readSeq: m.readSeq });
  }

  #handleSnapshot(m: SnapshotMessage): void {
    const { meta } = m;
    if (meta.index <= this.#log.committed) {
      if (this.#snapshotReceive?.meta.index === meta.index) this.#snapshotReceive = undefined;
      this.#sendAppendResponse(m.from, this.#log.committed);
      return;
    }
    const valid = m.total <= this.#limits.snapshotBytesMax && m.offset >= 0 &&
      m.offset + m.chunk.length <= m.total;
    let rcv = this.#snapshotReceive;
    const same = rcv !== undefined && rcv.meta.index === meta.index &&
      rcv.meta.term === meta.term && rcv.data.length === m.total;
    if (!valid) {
      // Refused (too large for this node, or inconsistent offsets): no answer, so the leader
      // retries at heartbeat pace instead of looping on an immediate reply.
      return;
    }
    if (m.offset === 0 && !same) {
      rcv = { meta, data: new Uint8Array(m.total), received: 0 };
      this.#snapshotReceive = rcv;
    } else if (!same) {
      this.#sendSnapshotResponse(m.from, meta.index, 0); // we lost the start: begin again
      return;
    }
    rcv = rcv!;
    if (m.offset !== rcv.received) {
      // A duplicate or a gap: say where we are.
      this.#sendSnapshotResponse(m.from, meta.index, rcv.received);
      return;
    }
    rcv.data.set(m.chunk, m.offset);
    rcv.received += m.chunk.length;
    if (rcv.received < rcv.data.length) {
      this.#sendSnapshotResponse(m.from, meta.index, rcv.received);
      return;
    }
    this.#snapshotReceive = undefined;
    this.#restore({ meta: rcv.meta, data: rcv.data }, m.from);
  }

  #sendSnapshotResponse(to: NodeId, snapIndex: number, offset: number): void {
    this.#send({ type: "snapResp", to, snapIndex, offset });
  }

  #restore(snapshot: Snapshot, from: NodeId): void {
    const { index, term } = snapshot.meta;
    if (this.#log.matchTerm(index, term)) {
      // The log already holds the snapshot's last entry: just commit up to it.
      this.#log.commitTo(index);
      this.#sendAppendResponse(from, this.#log.committed);
      return;
    }
    this.#log.restore(snapshot);
    this.#sendAppendResponse(from, this.#log.lastIndex());
  }

  // ---------------------------------------------------------------------------------------
  // Leader: replication

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
    this.#sendPending = true;
    this.#maybeCommit();
  }

  /** Makes the progress map name exactly the members (and the leader itself). */
  #syncProgress(): void {
    const membership = this.#log.membership();
    const members = new Set(membersOf(membership));
    members.add(this.#id);
    const next = this.#log.lastIndex() + 1;
    const window = {
      countMax: this.#limits.inflightAppendsMax,
      bytesMax: this.#limits.inflightBytesMax,
    };
    for (const id of members) {
      if (!this.#progress.has(id)) {
        const pr = new Progress(next, window);
        pr.recentActive = true; // a new member gets one election timeout of grace
        this.#progress.set(id, pr);
      }
    }
    for (const id of [...this.#progress.keys()]) {
      if (!members.has(id)) this.#progress.delete(id);
    }
    if (this.#leadTransferee !== NONE && !membership.voters.includes(this.#leadTransferee)) {
      this.#leadTransferee = NONE;
    }
  }

  #maybeCommit(): boolean {
    const n = quorumValue(this.#log.membership(), (id) => this.#progress.get(id)?.match ?? 0);
    if (!Number.isFinite(n) || !this.#log.maybeCommit(n, this.#term)) return false;
    this.#onCommitAdvanced();
    return true;
  }

  #onCommitAdvanced(): void {
    const log = this.#log;
    while (this.#uncommitted.length > 0 && this.#uncommitted[0][0] <= log.committed) {
      this.#uncommittedBytes -= this.#uncommitted.shift()![1];
    }
    this.#sendPending = true; // followers learn the new commit index
    if (this.#readsBeforeCommit.length > 0 && log.term(log.committed) === this.#term) {
      const waiting = this.#readsBeforeCommit;
      this.#readsBeforeCommit = [];
      for (const r of waiting) this.#handleReadRequest(r.context, r.from);
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
    const last = this.#log.lastIndex();
    const successor = this.#log.membership().voters.find((id) =>
      this.#progress.get(id)?.match === last
    );
    if (successor !== undefined) this.#send({ type: "timeoutNow", to: successor });
    const msgs = this.#msgs;
    this.#becomeFollower(this.#term, NONE);
    this.#msgs = msgs;
  }

  /** Sends entries (or an empty append, if `sendIfEmpty`) to `to`; returns whether it sent. */
  #sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.#progress.get(to);
    if (pr === undefined) return false;
    if (pr.state === "snapshot") {
      this.#sendSnapshotChunk(to, pr);
      return false;
    }
    if (pr.isPaused()) return false;
    const log = this.#log;
    const prevIndex = pr.next - 1;
    const prevTerm = log.term(prevIndex);
    if (prevTerm === undefined || pr.next < log.firstIndex()) {
      this.#startSnapshot(to, pr);
      return false;
    }
    const last = log.lastIndex();
    const entries = pr.next > last ? [] : log.entries(
      pr.next,
      Math.min(last + 1, pr.next + this.#limits.appendEntriesMax),
      this.#limits.appendBytesMax,
    );
    if (entries.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (const e of entries) bytes += entryBytes(e);
    const m: AppendMessage = {
      type: "app",
      from: this.#id,
      to,
      term: this.#term,
      index: prevIndex,
      logTerm: prevTerm,
      entries,
      commit: log.committed,
    };
    this.#msgs.push(m);
    pr.sentEntries(entries.at(-1)?.index ?? prevIndex, bytes);
    return entries.length > 0;
  }

  #startSnapshot(to: NodeId, pr: Progress): void {
    if (!pr.recentActive) return; // do not ship a snapshot to a node that may be down
    const snapshot = this.#log.snapshot();
    assert(snapshot.meta.index > 0, "log compacted without a snapshot");
    pr.becomeSnapshot(snapshot);
    this.#sendSnapshotChunk(to, pr);
  }

  #sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const snapshot = pr.snapshot!;
    if (pr.snapshotChunkSent) return;
    const offset = pr.snapshotAcked;
    const chunk = snapshot.data.subarray(offset, offset + this.#limits.snapshotChunkBytes);
    this.#send({
      type: "snap",
      to,
      meta: snapshot.meta,
      offset,
      total: snapshot.data.length,
      chunk,
    });
    pr.snapshotChunkSent = true;
  }

  #handleAppendResponse(m: AppendResponseMessage): void {
    const pr = this.#progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (m.reject) {
      let hint = m.rejectHint;
      if (m.logTerm > 0) hint = this.#log.findConflictByTerm(m.rejectHint, m.logTerm)[0];
      if (pr.maybeDecrease(m.index, hint)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.#sendAppend(m.from, true);
      }
      return;
    }
    if (m.index < pr.match) return; // stale
    const updated = pr.maybeUpdate(m.index);
    if (pr.state === "probe") {
      pr.becomeReplicate();
    } else if (pr.state === "snapshot") {
      if (pr.match < pr.snapshot!.meta.index) return;
      pr.becomeReplicate();
    } else {
      pr.inflights.freeLE(m.index);
    }
    if (updated) this.#maybeCommit();
    if (this.#role !== "leader") return; // stepped down after its removal committed
    while (this.#sendAppend(m.from, false));
    if (m.from === this.#leadTransferee && pr.match === this.#log.lastIndex()) {
      this.#send({ type: "timeoutNow", to: m.from });
    }
  }

  #handleHeartbeatResponse(m: HeartbeatResponseMessage): void {
    const pr = this.#progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.probeSent = false;
    if (pr.state === "snapshot") {
      // No chunk answer for a heartbeat round: the chunk was likely lost; resend it.
      pr.snapshotChunkSent = false;
      this.#sendSnapshotChunk(m.from, pr);
    } else if (pr.match < this.#log.lastIndex()) {
      // The follower answers heartbeats but not appends: some were lost. Free one slot of a
      // full window so an append goes out; a gap makes the follower reject it and we probe.
      if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
      this.#sendAppend(m.from, true);
    }
    if (m.readSeq > pr.readSeqAcked) {
      pr.readSeqAcked = m.readSeq;
      this.#releaseReads();
    }
  }

  #handleSnapshotResponse(m: SnapshotResponseMessage): void {
    const pr = this.#progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (pr.state !== "snapshot" || pr.snapshot!.meta.index !== m.snapIndex) return;
    if (m.offset > pr.snapshot!.data.length) return;
    pr.snapshotAcked = m.offset;
    pr.snapshotChunkSent = false;
    if (m.offset < pr.snapshot!.data.length) this.#sendSnapshotChunk(m.from, pr);
  }

  // ---------------------------------------------------------------------------------------
  // Leader: reads

  #handleReadRequest(context: string, from: NodeId): void {
    const waiting = this.#pendingReads.length + this.#readsBeforeCommit.length;
    if (waiting >= this.#limits.readsPendingMax) {
      if (from === this.#id) {
        throw new ProposalDroppedError(
          `Cannot read: ${waiting} reads wait on node ${this.#id}, limit ${this.#limits.readsPendingMax}`,
        );
      }
      return; // the follower's request times out and is retried
    }
    const log = this.#log;
    if (log.term(log.committed) !== this.#term) {
      // Until an entry of this term commits, the commit index may lag the true one.
      this.#readsBeforeCommit.push({ context, from });
      return;
    }
    this.#readSeq++;
    this.#pendingReads.push({ seq: this.#readSeq, index: log.committed, context, from });
    this.#heartbeatPending = true;
    this.#releaseReads();
  }

  /** Answers every read whose heartbeat round a quorum acknowledged. */
  #releaseReads(): void {
    const acked = quorumValue(
      this.#log.membership(),
      (id) => (id === this.#id ? this.#readSeq : this.#progress.get(id)?.readSeqAcked ?? 0),
    );
    let n = 0;
    while (n < this.#pendingReads.length && this.#pendingReads[n].seq <= acked) {
      const r = this.#pendingReads[n++];
      if (r.from === this.#id) {
        this.#readStates.push({ context: r.context, index: r.index });
      } else {
        this.#send({ type: "readIndexResp", to: r.from, context: r.context, index: r.index });
      }
    }
    if (n > 0) this.#pendingReads = this.#pendingReads.slice(n);
  }

  // ---------------------------------------------------------------------------------------
  // Sending

  /** Turns pending broadcasts into messages (done lazily so one turn sends one batch). */
  #flushSends(): void {
    if (this.#role !== "leader") return;
    this.#flushHeartbeats();
    if (this.#sendPending) {
      this.#sendPending = false;
      for (const to of this.#progress.keys()) {
        if (to === this.#id) continue;
        if (!this.#sendAppend(to, true)) continue;
        while (this.#sendAppend(to, false));
      }
    }
  }

  /** Turns a pending heartbeat round into messages. */
  #flushHeartbeats(): void {
    if (this.#role !== "leader" || !this.#heartbeatPending) return;
    this.#heartbeatPending = false;
    for (const [to, pr] of this.#progress) {
      if (to === this.#id) continue;
      const m: HeartbeatMessage = {
        type: "heartbeat",
        from: this.#id,
        to,
        term: this.#term,
        commit: Math.min(pr.match, this.#log.committed),
        readSeq: this.#readSeq,
      };
      this.#msgs.push(m);
    }
  }

  /** Queues a message of this node's term. */
  #send(m: DistributiveOmit<Message, "from" | "term">): void {
    this.#push({ ...m, from: this.#id, term: this.#term } as Message);
  }

  /**
   * Queues a message: votes, vote requests (the candidate counts its own vote at once) and
   * append acknowledgements may only leave once what they vouch for is durable.
   */
  #push(m: Message): void {
    if (mustPersistFirst(m)) this.#msgsAfterPersist.push(m);
    else this.#msgs.push(m);
  }

  #hardState(): HardState {
    return { term: this.#term, vote: this.#vote, commit: this.#log.committed };
  }

  #softState(): SoftState {
    return { role: this.#role, leader: this.#lead };
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function mustPersistFirst(m: Message): boolean {
  return m.type === "appResp" || m.type === "vote" || m.type === "voteResp" ||
    m.type === "preVoteResp";
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.leader === b.leader;
}

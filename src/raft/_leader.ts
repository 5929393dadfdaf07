/**
 * A leader's state for one term: replication, the proposal path, commitment and the bytes
 * proposed but not committed yet, membership-proposal checks, the leadership-transfer target,
 * and ReadIndex at the leader. The core builds a new {@linkcode Leader} each time it wins an
 * election and drops it when it steps down, so nothing of a past term can leak into a new one.
 *
 * @module
 */
import {
  assert,
  MembershipChangeError,
  ProposalDroppedError,
  TransferLeaderError,
} from "./_errors.ts";
import type { ElectionTimer } from "./_election_timer.ts";
import type { Outgoing } from "./_follower.ts";
import { isJoint, isVoter, leaveJoint, planChange } from "./_membership.ts";
import type { MembershipChange } from "./_membership.ts";
import type { Message } from "./_message.ts";
import type { RaftLimits } from "./_options.ts";
import type { RaftLog } from "./_raft_log.ts";
import type { LeaderReads, ReadRequest } from "./_read_index.ts";
import type { Proposed } from "./_ready.ts";
import { Replication } from "./_replication.ts";
import { type Entry, type NodeId, NONE, type ReadState } from "./_types.ts";

/** What a leader needs of the core. */
export interface LeaderHost {
  /** The leader's id. */
  readonly id: NodeId;
  /** The term it leads: fixed, since a new term means a new leader object. */
  readonly term: number;
  /** The leader's log. */
  readonly log: RaftLog;
  /** The core's limits. */
  readonly limits: RaftLimits;
  /** Heartbeat interval in ticks. */
  readonly heartbeatTicks: number;
  /** Whether the leader steps down when a quorum was not heard from for an election timeout. */
  readonly checkQuorum: boolean;
  /** The core's election timer: for a leader, its check-quorum round and the deadline of a
   * leadership transfer. */
  readonly timer: ElectionTimer;
  /** The core's ReadIndex queue. It outlives the term: its round numbers never restart, so a
   * late heartbeat answer is never mistaken for an acknowledgement of a later round. */
  readonly reads: LeaderReads;
  /** Queues a message of the leader's id and term (it leaves at once or after a persist,
   * as the core's outbox decides by its type). */
  send(m: Outgoing): void;
  /** Queues a message that may leave at once (appends, snapshot chunks, heartbeats). */
  sendNow(m: Message): void;
  /** Hands the application the answer to a read it asked of this node. */
  readState(read: ReadState): void;
  /** Records whether the commit advance just made also committed entries of earlier terms
   * (for the status; the core keeps it across terms). */
  commitAdvanced(coveredOlderTerms: boolean): void;
  /** Turns the core into a follower of the same term: this leader lost its quorum, or its
   * removal committed. */
  stepDown(): void;
}

/** The leader's state for the one term it leads. */
export class Leader {
  /** Replication to every member; its progress map names the members and the leader. */
  readonly repl: Replication;
  readonly #host: LeaderHost;
  #transferee: NodeId = NONE;
  /** Appended and not yet committed: each batch's last index and its data bytes. */
  #uncommitted: [lastIndex: number, bytes: number][] = [];
  #uncommittedBytes = 0;
  #heartbeatElapsed = 0;
  /** Set once this leader stepped down: the core has dropped it, so a handler that was
   * running when that happened must stop. */
  #steppedDown = false;

  /**
   * Takes over as leader: one progress per member, the leader's own counting what is already
   * durable on it. Call {@linkcode appendNoop} next.
   */
  constructor(host: LeaderHost) {
    this.#host = host;
    this.repl = new Replication({
      id: host.id,
      term: host.term,
      log: host.log,
      limits: host.limits,
      send: (m) => host.sendNow(m),
    });
    this.repl.sync();
    const self = this.repl.progress.get(host.id)!;
    self.becomeReplicate();
    if (!host.log.hasPendingSnapshot()) self.maybeUpdate(host.log.stableLastIndex());
  }

  /**
   * Appends the term's no-op entry, which lets the leader commit entries of earlier terms
   * (Figure 8). Not done by the constructor: an append may commit, and a commit calls back
   * into the core, which must hold this leader by then.
   */
  appendNoop(): void {
    this.#append([{
      term: this.#host.term,
      index: this.#host.log.lastIndex() + 1,
      type: "normal",
      data: new Uint8Array(0),
    }]);
  }

  /**
   * One tick of the logical clock. Each election timeout is a check-quorum round: a leader
   * that a quorum did not answer during it steps down (§6.2), and a transfer that did not
   * finish in it is given up. Each `heartbeatTicks` a heartbeat round is due.
   */
  tick(): void {
    const timer = this.#host.timer;
    this.#heartbeatElapsed++;
    timer.tick();
    if (timer.minTimeoutPassed) {
      timer.restart();
      if (this.#host.checkQuorum && !this.repl.checkQuorum()) {
        this.#stepDown();
        return;
      }
      this.#transferee = NONE; // a transfer that did not finish in time is abandoned
    }
    if (this.#heartbeatElapsed >= this.#host.heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      this.repl.heartbeatPending = true;
    }
  }

  /** The leadership-transfer target, or {@linkcode NONE}. */
  get transferee(): NodeId {
    return this.#transferee;
  }

  /**
   * Appends commands as consecutive entries. Throws `ProposalDroppedError` during a
   * leadership transfer and when the bytes awaiting commit would pass `uncommittedBytesMax`.
   */
  proposeMany(commands: readonly Uint8Array[]): Proposed {
    this.#checkCanPropose();
    const { id, term, log, limits } = this.#host;
    let bytes = 0;
    for (const c of commands) bytes += c.length;
    // With nothing awaiting commit any proposal is taken, or one above the limit never would.
    if (this.#uncommittedBytes > 0 && this.#uncommittedBytes + bytes > limits.uncommittedBytesMax) {
      throw new ProposalDroppedError(
        `Cannot propose: ${this.#uncommittedBytes} bytes await commit on node ${id}, ` +
          `limit ${limits.uncommittedBytesMax}`,
      );
    }
    const index = log.lastIndex() + 1;
    const entries = commands.map((data, i): Entry => ({
      term,
      index: index + i,
      type: "normal",
      data,
    }));
    this.#append(entries);
    return { index, term };
  }

  /**
   * Appends a config entry for `changes`. Throws `ProposalDroppedError` during a transfer and
   * `MembershipChangeError` when the change is invalid or may not start yet.
   */
  proposeMembership(changes: readonly MembershipChange[], context: Uint8Array): Proposed {
    this.#checkCanPropose();
    const { id, term, log } = this.#host;
    // One change at a time, and only once an entry of this term committed (Ongaro's 2015 fix
    // for the single-server-change bug): no log ever holds two uncommitted configurations.
    const pending = log.membershipIndex();
    if (pending > log.committed) {
      throw new MembershipChangeError(
        `Cannot change membership: the change at index ${pending} is not committed yet`,
      );
    }
    if (log.term(log.committed) !== term) {
      throw new MembershipChangeError(
        `Cannot change membership: leader ${id} has not committed an entry of term ` +
          `${term} yet`,
      );
    }
    const membership = planChange(log.membership(), changes);
    const index = log.lastIndex() + 1;
    this.#append([{ term, index, type: "config", data: context, membership }]);
    return { index, term };
  }

  /**
   * Starts handing leadership to voter `to`: TimeoutNow as soon as it holds the whole log.
   * Throws `TransferLeaderError` when `to` is not a voter.
   */
  transferLeader(to: NodeId): void {
    const { id, log } = this.#host;
    if (to === id) return;
    if (!log.membership().voters.includes(to)) {
      throw new TransferLeaderError(`Cannot transfer leadership to ${to}: it is not a voter`);
    }
    if (this.#transferee === to) return;
    this.#transferee = to;
    this.#host.timer.restart(); // the transfer is abandoned after one election timeout
    const pr = this.repl.progress.get(to)!;
    if (pr.match === log.lastIndex()) this.#host.send({ type: "timeoutNow", to });
    else this.repl.sendAppend(to, true);
  }

  /** Handles a message of this term that `checkMessage` let through to the leader. */
  step(m: Message): void {
    switch (m.type) {
      case "appResp": {
        const updated = this.repl.onAppendResponse(m);
        if (updated) this.#maybeCommit();
        if (this.#steppedDown) return; // stepped down after its removal committed
        this.repl.sendAll(m.from);
        const pr = this.repl.progress.get(m.from)!;
        if (
          !m.reject && m.from === this.#transferee && pr.match === this.#host.log.lastIndex()
        ) {
          this.#host.send({ type: "timeoutNow", to: m.from });
        }
        return;
      }
      case "heartbeatResp":
        if (this.repl.onHeartbeatResponse(m)) this.#releaseReads();
        return;
      case "snapResp":
        return this.repl.onSnapshotResponse(m);
      case "readIndex":
        return this.handleRead({ context: m.context, from: m.from });
      case "app":
      case "heartbeat":
      case "snap":
        // checkMessage drops these: reaching here means the core itself broke.
        assert(
          false,
          () => `two leaders in term ${this.#host.term}: ${this.#host.id} and ${m.from}`,
        );
        return;
      default:
        return; // stale votes, responses to past campaigns
    }
  }

  /**
   * A read request, the leader's own or forwarded by a follower. Throws
   * `ProposalDroppedError` when `readsPendingMax` reads wait.
   */
  handleRead(read: ReadRequest): void {
    const { id, term, limits, reads } = this.#host;
    const waiting = reads.size;
    if (waiting >= limits.readsPendingMax) {
      // checkMessage drops a follower's request: only the leader's own reach here.
      throw new ProposalDroppedError(
        `Cannot read: ${waiting} reads wait on node ${id}, limit ${limits.readsPendingMax}`,
      );
    }
    const log = this.#host.log;
    if (log.term(log.committed) !== term) {
      // Until an entry of this term commits, the commit index may lag the true one.
      reads.waitForCommit(read);
      return;
    }
    reads.add(read, log.committed);
    this.repl.heartbeatPending = true;
    this.#releaseReads();
  }

  /** The leader counts its own log in the commit quorum only once it is durable (§10.2.1). */
  selfPersisted(): void {
    const log = this.#host.log;
    if (log.hasPendingSnapshot()) return;
    const self = this.repl.progress.get(this.#host.id);
    if (self !== undefined && self.maybeUpdate(log.stableLastIndex())) this.#maybeCommit();
  }

  /** Turns pending broadcasts into messages (done lazily so one turn sends one batch). */
  flush(): void {
    this.repl.flush(this.#host.reads.seq);
  }

  #checkCanPropose(): void {
    // The log stops growing during a transfer so that the target can catch up and take over.
    if (this.#transferee !== NONE) {
      throw new ProposalDroppedError(
        `Cannot propose: node ${this.#host.id} is transferring leadership to ${this.#transferee}`,
      );
    }
  }

  #append(entries: Entry[]): void {
    const log = this.#host.log;
    const before = log.membershipIndex();
    for (const e of entries) {
      assert(e.term === this.#host.term, "leader appends entries of its term");
    }
    const last = log.append(entries);
    let bytes = 0;
    for (const e of entries) bytes += e.data.length;
    if (bytes > 0) {
      this.#uncommitted.push([last, bytes]);
      this.#uncommittedBytes += bytes;
    }
    // A config entry takes effect when appended: replicate to the new members from now on.
    if (log.membershipIndex() !== before) this.#syncProgress();
    // The leader's own match moves only when its entries are durable (advance()).
    this.repl.sendPending = true;
    this.#maybeCommit();
  }

  /** Makes the progress map name exactly the members (and the leader itself). */
  #syncProgress(): void {
    this.repl.sync();
    const membership = this.#host.log.membership();
    if (this.#transferee !== NONE && !membership.voters.includes(this.#transferee)) {
      this.#transferee = NONE;
    }
  }

  #maybeCommit(): void {
    const { term, log } = this.#host;
    const n = this.repl.quorumMatch();
    const before = log.committed;
    if (!Number.isFinite(n) || !log.maybeCommit(n, term)) return;
    // Terms never decrease along the log: the first newly committed entry is the oldest.
    this.#host.commitAdvanced(log.term(before + 1) !== term);
    this.#onCommitAdvanced();
  }

  #onCommitAdvanced(): void {
    const { id, term, log, reads } = this.#host;
    while (this.#uncommitted.length > 0 && this.#uncommitted[0][0] <= log.committed) {
      this.#uncommittedBytes -= this.#uncommitted.shift()![1];
    }
    this.repl.sendPending = true; // followers learn the new commit index
    if (log.term(log.committed) === term) {
      for (const r of reads.takeBeforeCommit()) this.handleRead(r);
    }
    if (log.membershipIndex() > log.committed) return;
    const membership = log.membership();
    if (isJoint(membership)) {
      // C_old,new committed: move on to C_new.
      this.#append([{
        term,
        index: log.lastIndex() + 1,
        type: "config",
        data: new Uint8Array(0),
        membership: leaveJoint(membership),
      }]);
    } else if (!isVoter(membership, id)) {
      this.#stepDownRemoved();
    }
  }

  /** The leader's removal committed: hand over to a caught-up voter and step down. */
  #stepDownRemoved(): void {
    this.flush(); // tell everyone the commit index first
    const successor = this.repl.caughtUpVoter();
    if (successor !== undefined) this.#host.send({ type: "timeoutNow", to: successor });
    this.#stepDown();
  }

  #stepDown(): void {
    this.#steppedDown = true;
    this.#host.stepDown();
  }

  /** Answers every read whose heartbeat round a quorum acknowledged. */
  #releaseReads(): void {
    const { id, reads } = this.#host;
    for (const r of reads.release(this.repl.quorumReadRound(reads.seq))) {
      if (r.from === id) {
        this.#host.readState({ context: r.context, index: r.index });
      } else {
        this.#host.send({ type: "readIndexResp", to: r.from, context: r.context, index: r.index });
      }
    }
  }
}

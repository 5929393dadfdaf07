/**
 * What the core hands the driver: the {@linkcode Ready} batch, the status, and the outbox that
 * decides when each message may leave.
 *
 * @module
 */
import type { Message } from "./_message.ts";
import type { ProgressState } from "./_progress.ts";
import type {
  Entry,
  HardState,
  Membership,
  NodeId,
  ReadState,
  ReceivedSnapshot,
  Role,
  SoftState,
} from "./_types.ts";

/**
 * What the core asks of the driver, in this order:
 * 1. send `messages` at once: none of them depends on this Ready's persist (a leader may send
 *    its entries while it writes them, Raft dissertation §10.2.1);
 * 2. persist `snapshot`, `entries` and `hardState` (one durable step);
 * 3. then send `messagesAfterPersist` (votes and acknowledgements of what step 2 made durable);
 * 4. apply `committedEntries` (they are committed, durable on a majority: this may come
 *    before step 2) and, after step 2, install `snapshot` into the state machine;
 * 5. serve `readStates` once the applied index reaches theirs;
 * 6. call {@linkcode Raft.advance}.
 *
 * While step 2 runs the driver keeps stepping and ticking the core and sends what
 * {@linkcode Raft.readyMessages} hands out, so heartbeats never wait behind a slow disk.
 */
export interface Ready {
  /** Role or leader changed: for the application's information. */
  readonly softState?: SoftState;
  /** Persist when present. Its `commit` never passes the last entry on disk after this
   * Ready's persist. */
  readonly hardState?: HardState;
  /** Persist: append, replacing any existing entries from `entries[0].index` on. At most
   * `persistBytesMax` bytes (at least one entry); the rest comes in later Readys. */
  readonly entries: readonly Entry[];
  /** Persist and install: a snapshot received from the leader replaces log and state. */
  readonly snapshot?: ReceivedSnapshot;
  /** Send now: these do not depend on this Ready's persist. */
  readonly messages: readonly Message[];
  /** Send only after persisting this Ready: votes, vote requests and acknowledgements of
   * entries that are durable once it is persisted. */
  readonly messagesAfterPersist: readonly Message[];
  /** Apply, in order, at once (before persisting is fine): committed entries. A follower's
   * were durable on it before this Ready (those that become durable with this Ready's persist
   * come with {@linkcode Raft.readyToApply} or the next Ready); a leader's may still be in
   * this or an earlier Ready's write (§10.2.1). */
  readonly committedEntries: readonly Entry[];
  /** Linearizable reads: serve each once the applied index reaches its `index`. */
  readonly readStates: readonly ReadState[];
}

/**
 * What the application may take at any time, without a persist of its own (see
 * {@linkcode Raft.readyToApply}).
 */
export interface Applicable {
  /** Committed entries to apply now and in order (on a follower, durable on it). */
  readonly committedEntries: readonly Entry[];
  /** Read answers: serve each once the applied index reaches its `index`. */
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
  /** The highest index known to match the leader (for the leader itself: durable). */
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
  /** The last index whose entry is durable on this node (unstable entries excluded). */
  readonly stableIndex: number;
  /** The membership in effect. */
  readonly membership: Membership;
  /** The index of the config entry that set it (committed once `commit` reaches it). */
  readonly membershipIndex: number;
  /** The leadership transfer target, or {@linkcode NONE}. */
  readonly leadTransferee: NodeId;
  /** Per member (leader only; empty otherwise). */
  readonly progress: readonly ProgressStatus[];
  /** ReadIndex requests waiting: at the leader, its queue; at a follower, the reads it
   * forwarded and got no answer for yet. */
  readonly readsPending: number;
  /** Whether this node's last commit advance as leader also committed entries of earlier
   * terms, through an entry of its own term (Raft §5.4.2, Figure 8). */
  readonly lastCommitCoveredOlderTerms: boolean;
  /** Bytes received of the snapshot being assembled (0 when none). */
  readonly snapshotReceived: number;
}

/** A message waiting for a persist, and the last log index it vouches is durable. */
interface Held {
  readonly m: Message;
  readonly needIndex: number;
}

/**
 * The outgoing messages. Most may leave at once; votes and acknowledgements wait until what
 * they vouch for is durable: the term and vote (every Ready persists the hard state) and, for
 * an acknowledgement, the entries up to its index. A Ready that persists only a prefix of the
 * unstable entries releases only the acknowledgements that prefix covers.
 */
export class Outbox {
  #now: Message[] = [];
  #held: Held[] = [];

  /**
   * Queues a message by what it vouches for. Votes, vote requests and append
   * acknowledgements leave only once that is durable: the term and vote, and for an
   * acknowledgement its entries. Everything else may leave at once.
   */
  send(m: Message): void {
    if (m.type === "appResp") {
      this.sendAfterPersist(m, m.reject ? 0 : m.index);
    } else if (m.type === "vote" || m.type === "voteResp" || m.type === "preVoteResp") {
      this.sendAfterPersist(m, 0);
    } else {
      this.sendNow(m);
    }
  }

  /** Queues a message that may leave at once. */
  sendNow(m: Message): void {
    this.#now.push(m);
  }

  /** Queues a message to leave once its Ready is persisted and entries to `needIndex` are. */
  sendAfterPersist(m: Message, needIndex: number): void {
    this.#held.push({ m, needIndex });
  }

  /** Takes the messages that may leave at once. */
  takeNow(): Message[] {
    const out = this.#now;
    this.#now = [];
    return out;
  }

  /** The held messages (kept in order) that may leave once entries to `durableIndex` are
   * durable; the others stay for a later Ready. */
  takeAfterPersist(durableIndex: number): Message[] {
    const out: Message[] = [];
    const keep: Held[] = [];
    for (const h of this.#held) {
      if (h.needIndex <= durableIndex) out.push(h.m);
      else keep.push(h);
    }
    this.#held = keep;
    return out;
  }

  /** Put back messages taken with {@linkcode takeNow} (a leader that stepped down keeps its
   * last words). */
  restoreNow(msgs: Message[]): void {
    this.#now = msgs.concat(this.#now);
  }

  /** Whether a Ready would carry a message, given the log's last index. */
  hasMessages(lastIndex: number): boolean {
    return this.#now.length > 0 || this.#held.some((h) => h.needIndex <= lastIndex);
  }

  /** Drops held messages of terms before `term`: answers to a leader or candidate that is
   * gone, whose acknowledged entries may since have been replaced. */
  dropBelowTerm(term: number): void {
    this.#held = this.#held.filter((h) => h.m.term >= term);
  }
}

/**
 * One simulated node: its disk (which survives crashes), and everything a crash loses: the
 * core, the state machine, the persist in progress and the requests it was serving.
 *
 * @module
 */
import type { NodeId, Raft, Ready } from "../../src/raft/mod.ts";
import { SimDisk } from "./disk.ts";
import { KvStateMachine } from "./state_machine.ts";

/** A client write this node proposed as leader. */
export interface Proposal {
  /** The term it was proposed in: it succeeded iff the entry applied at its index has it. */
  readonly term: number;
  /** The client waiting for it. */
  readonly client: number;
  /** The key it writes. */
  readonly key: string;
}

/** A linearizable read this node took from a client. */
export interface PendingRead {
  /** The client waiting for it. */
  readonly client: number;
  /** The key it reads. */
  readonly key: string;
  /** Simulated time the client asked. */
  readonly start: number;
  /** The term it was asked in, when the node was the leader then. */
  readonly leaderTerm: number | undefined;
  /** The node was a leader that had not committed an entry of its term yet. */
  readonly beforeTermCommit: boolean;
}

/** A Ready being persisted: sent `messages` already; the rest waits for the disk. */
export interface Persisting {
  /** The Ready. */
  readonly ready: Ready;
  /** The node's term when it took the Ready. */
  readonly term: number;
  /** When the disk finishes. */
  readonly doneAt: number;
}

/** A simulated node. Fields other than `id` and `disk` are reset by a crash. */
export class SimNode {
  /** Its id. */
  readonly id: NodeId;
  /** What survives a crash. */
  readonly disk: SimDisk = new SimDisk();
  /** The core while the node is up. */
  raft: Raft | undefined;
  /** Incarnation: events of an earlier one are ignored. */
  inc = 0;
  /** The application. */
  sm: KvStateMachine = new KvStateMachine();
  /** The Ready being persisted. */
  persisting: Persisting | undefined;
  /** index -> the client write proposed there. */
  proposals: Map<number, Proposal> = new Map();
  /** context -> the read asked with it. */
  reads: Map<string, PendingRead> = new Map();
  /** ReadStates waiting for the applied index to reach theirs. */
  readyReads: { context: string; index: number }[] = [];
  /** Removed for good (its removal committed). */
  reaped = false;
  /** Milliseconds between two ticks of this node's (drifting) clock. */
  tickMs = 10;
  /** Paused until then: no ticks, no input. */
  pausedUntil = 0;
  /** Simulated time it last persisted a vote. */
  votedAt = -Infinity;
  /** The last term it was seen leading in (0: never since it booted). */
  ledTerm = 0;
  /** As leader: the index of its election no-op (its term's first entry). */
  termFirstIndex = 0;
  /** As a new leader: leader completeness is checked once its log up to here is durable. */
  completenessAt: { term: number; index: number } | undefined;

  /** Creates a node that is down until booted. */
  constructor(id: NodeId) {
    this.id = id;
  }

  /** The storage the core reads. */
  get storage(): SimDisk["storage"] {
    return this.disk.storage;
  }
}

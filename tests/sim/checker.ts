import type { Entry, MemoryStorage, NodeId } from "../../src/raft/mod.ts";
import { entryHash } from "./state_machine.ts";

/** A broken safety property: the simulation stops and prints how to replay the seed. */
export class SimViolation extends Error {
  /** Creates the error with the property and the evidence. */
  constructor(message: string) {
    super(message);
    this.name = "SimViolation";
  }
}

function violate(message: string): never {
  throw new SimViolation(message);
}

/**
 * Checks Raft's safety properties against what every node persists, applies and answers:
 * election safety, log matching, leader completeness, state machine safety and
 * linearizable reads. All checks are O(1) per event except leader completeness (once per
 * election, linear in the committed log).
 */
export class SafetyChecker {
  /** term -> the one leader of that term. */
  readonly #leaders = new Map<number, NodeId>();
  /**
   * index -> (term, content) of the entry committed there, and the lowest term of a node
   * that observed it committed: an upper bound of the term in which it was committed.
   */
  readonly #committed = new Map<number, { term: number; hash: number; commitTerm: number }>();
  /** index -> state machine hash chain after applying it. */
  readonly #chainAt = new Map<number, number>();
  /** "index:term" -> content and the term before it (log matching, by induction). */
  readonly #entries = new Map<string, { hash: number; prevTerm: number | undefined }>();
  /** key -> acknowledged writes in acknowledgement order. */
  readonly #acks = new Map<string, { time: number; rev: number }[]>();
  /** Counts of checks made, for the report. */
  readonly counts = { readsChecked: 0, writesAcked: 0, entriesChecked: 0, elections: 0 };
  #highestLeaderTerm = 0;

  /** The highest term any node led in so far. */
  get highestLeaderTerm(): number {
    return this.#highestLeaderTerm;
  }

  /** Election safety: at most one leader per term. */
  onLeader(id: NodeId, term: number): void {
    const other = this.#leaders.get(term);
    if (other !== undefined && other !== id) {
      violate(`election safety: ${other} and ${id} are both leaders of term ${term}`);
    }
    if (other === undefined) this.counts.elections++;
    this.#leaders.set(term, id);
    this.#highestLeaderTerm = Math.max(this.#highestLeaderTerm, term);
  }

  /** Log matching: equal (index, term) means equal content and equal preceding term. */
  onPersistEntries(id: NodeId, entries: readonly Entry[], storage: MemoryStorage): void {
    for (const e of entries) {
      let prevTerm: number | undefined;
      try {
        prevTerm = storage.term(e.index - 1);
      } catch {
        prevTerm = undefined; // compacted
      }
      const key = `${e.index}:${e.term}`;
      const hash = entryHash(e);
      const seen = this.#entries.get(key);
      if (seen === undefined) {
        this.#entries.set(key, { hash, prevTerm });
      } else {
        if (seen.hash !== hash) {
          violate(`log matching: ${id} holds a different entry at index ${e.index} term ${e.term}`);
        }
        if (seen.prevTerm !== undefined && prevTerm !== undefined && seen.prevTerm !== prevTerm) {
          violate(
            `log matching: at ${id}, entry ${e.index}/${e.term} follows term ${prevTerm}, ` +
              `elsewhere term ${seen.prevTerm}`,
          );
        }
      }
      this.counts.entriesChecked++;
    }
  }

  /**
   * A node in term `nodeTerm` declared (`index`, `term`) committed: it must agree with every
   * other node. Returns whether this is the first time any node declared it.
   */
  onCommitted(
    id: NodeId,
    nodeTerm: number,
    e: { index: number; term: number; hash: number },
  ): boolean {
    const { index, term, hash } = e;
    const known = this.#committed.get(index);
    if (known === undefined) {
      this.#committed.set(index, { term, hash, commitTerm: nodeTerm });
      return true;
    } else if (known.term === term && known.hash === hash) {
      known.commitTerm = Math.min(known.commitTerm, nodeTerm);
    } else {
      violate(
        `state machine safety: ${id} committed index ${index} with term ${term}, ` +
          `another node with term ${known.term}`,
      );
    }
    return false;
  }

  /** State machine safety: every node has the same state after applying the same index. */
  onApplied(id: NodeId, nodeTerm: number, e: Entry, chain: number): void {
    this.onCommitted(id, nodeTerm, { index: e.index, term: e.term, hash: entryHash(e) });
    this.#checkChain(id, e.index, chain);
  }

  /** A node restored a snapshot: its state must equal everyone's state at that index. */
  onRestored(id: NodeId, index: number, chain: number): void {
    this.#checkChain(id, index, chain);
  }

  #checkChain(id: NodeId, index: number, chain: number): void {
    const known = this.#chainAt.get(index);
    if (known === undefined) this.#chainAt.set(index, chain);
    else if (known !== chain) {
      violate(`state machine safety: ${id} has a different state after applying index ${index}`);
    }
  }

  /**
   * Leader completeness: a new leader of `term` holds every entry committed in an earlier
   * term (an entry of an old term committed by a later leader does not count).
   */
  checkLeaderCompleteness(id: NodeId, term: number, storage: MemoryStorage): void {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    for (const [index, c] of this.#committed) {
      if (c.commitTerm >= term || index < first) continue; // later commits; compacted prefix
      if (index > last) {
        violate(`leader completeness: leader ${id} of term ${term} lacks committed index ${index}`);
      }
      const t = storage.term(index);
      if (t !== c.term) {
        violate(
          `leader completeness: leader ${id} of term ${term} has term ${t} at committed ` +
            `index ${index} (committed with term ${c.term})`,
        );
      }
    }
  }

  /** A write to `key` at revision `rev` was acknowledged to its client at `time`. */
  onWriteAcked(key: string, rev: number, time: number): void {
    let list = this.#acks.get(key);
    if (list === undefined) this.#acks.set(key, list = []);
    list.push({ time, rev });
    this.counts.writesAcked++;
  }

  /**
   * A linearizable read of `key` that began at `startTime` returned revision `rev` (0 when
   * absent): it must not be older than any write acknowledged before the read began.
   */
  onRead(id: NodeId, key: string, rev: number, startTime: number): void {
    let newest = 0;
    for (const a of this.#acks.get(key) ?? []) {
      if (a.time < startTime && a.rev > newest) newest = a.rev;
    }
    if (rev < newest) {
      violate(
        `linearizability: read of ${key} at ${id} begun at t=${startTime} returned rev ${rev}, ` +
          `but rev ${newest} was acknowledged before it began`,
      );
    }
    this.counts.readsChecked++;
  }
}

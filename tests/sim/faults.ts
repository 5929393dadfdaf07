/**
 * The fault scheduler of phase one: a chaos round every {@linkcode CHAOS_MS} (crashes,
 * pauses, partitions, compaction, membership changes, leadership transfers), and hooks the
 * node driver calls at the moments where a fault hurts most: a persist in progress, a vote
 * just persisted, a leader that just won, appended or committed.
 *
 * @module
 */
import {
  type MembershipChange,
  MembershipChangeError,
  type NodeId,
  planChange,
  ProposalDroppedError,
} from "../../src/raft/mod.ts";
import type { SimNode } from "./node.ts";
import type { Simulation } from "./simulation.ts";

/** Milliseconds between two chaos rounds in phase one. */
export const CHAOS_MS = 50;
/** Largest number of node ids a seed may create (initial plus added). */
const NODES_MAX = 11;
/** Largest number of voters a membership change may produce. */
const VOTERS_MAX = 7;

/** Injects the faults of one run, at the rates its configuration drew. */
export class Faults {
  readonly #sim: Simulation;
  #partitionId = 0;

  /** Creates the scheduler of `sim`. */
  constructor(sim: Simulation) {
    this.#sim = sim;
  }

  get #rates() {
    return this.#sim.config.rates;
  }

  /** One chaos round. */
  chaos(): void {
    const r = this.#rates;
    const p = this.#sim.prng;
    if (p.chance(r.crash)) this.#crashSomeone();
    if (p.chance(r.pause)) this.#pauseSomeone();
    if (p.chance(r.partition) && this.#sim.partition === undefined) this.#partitionSome();
    if (p.chance(r.snapshot)) this.#snapshotSomeone();
    if (p.chance(r.membership)) this.#changeMembership();
    if (p.chance(r.transfer)) this.#transferLeadership();
    if (p.chance(0.05)) this.#reapRemoved();
  }

  // ---------------------------------------------------------------------------------------
  // Hooks: the driver calls these at the moments that matter.

  /** A persist started and takes until `doneAt`: maybe crash in the middle of it. */
  onPersistStart(node: SimNode, doneAt: number): void {
    const sim = this.#sim;
    if (!sim.faulty || doneAt <= sim.now || !sim.prng.chance(this.#rates.crashInPersist)) return;
    sim.schedule(sim.prng.int(sim.now, doneAt - 1), {
      kind: "kill",
      id: node.id,
      inc: node.inc,
      restartMs: sim.prng.int(1, 300),
    });
  }

  /**
   * A persist of a new vote started and takes until `doneAt`: maybe crash before the vote is
   * durable and restart at once, while the candidates of this term still ask for votes.
   */
  onVotePersistStart(node: SimNode, doneAt: number): void {
    const sim = this.#sim;
    if (!sim.faulty || doneAt <= sim.now || !sim.prng.chance(this.#rates.crashAfterVote)) return;
    sim.schedule(sim.prng.int(sim.now, doneAt - 1), {
      kind: "kill",
      id: node.id,
      inc: node.inc,
      restartMs: sim.prng.int(1, 10),
    });
  }

  /**
   * A persist completed; `voted` when it recorded a new vote. Returns true when the node
   * crashes now, before it sends or applies anything.
   */
  crashesAfterPersist(node: SimNode, voted: boolean): boolean {
    const sim = this.#sim;
    if (!sim.faulty) return false;
    if (voted && sim.prng.chance(this.#rates.crashAfterVote)) {
      // Restart at once: the candidates of this term may still be asking for votes.
      if (sim.prng.chance(0.5)) {
        sim.crash(node, sim.prng.int(1, 30));
        return true;
      }
      sim.schedule(sim.now + sim.prng.int(0, 10), {
        kind: "kill",
        id: node.id,
        inc: node.inc,
        restartMs: sim.prng.int(1, 30),
      });
      return false;
    }
    if (!sim.prng.chance(this.#rates.crashAfterPersist)) return false;
    sim.crash(node, sim.prng.int(1, 500));
    return true;
  }

  /** `node` just became leader. */
  onElected(node: SimNode): void {
    const sim = this.#sim;
    if (sim.faulty && sim.prng.chance(this.#rates.leaderKill)) {
      sim.schedule(sim.now + sim.prng.int(1, 30), {
        kind: "kill",
        id: node.id,
        inc: node.inc,
        restartMs: sim.prng.int(20, 800),
      });
    }
  }

  /** The leader took a Ready with entries of its term: maybe cut it off a few ms later. */
  onLeaderAppend(node: SimNode): void {
    const sim = this.#sim;
    if (!sim.faulty || !sim.prng.chance(this.#rates.isolateAfterAppend)) return;
    sim.schedule(sim.now + sim.prng.int(0, 4), { kind: "isolate", id: node.id, inc: node.inc });
  }

  /** The leader's commit index advanced and nobody was told yet: maybe cut it off now. */
  onLeaderCommit(node: SimNode): void {
    const sim = this.#sim;
    if (sim.faulty && sim.prng.chance(this.#rates.isolateAfterCommit)) this.isolate(node);
  }

  /** Cuts `node` off, alone or with one other node; messages in flight across are lost. */
  isolate(node: SimNode): void {
    const sim = this.#sim;
    const groups = new Map<NodeId, number>();
    for (const id of sim.nodes.keys()) groups.set(id, 0);
    groups.set(node.id, 1);
    // A companion only where the two stay a minority (of the usual five voters).
    if (groups.size >= 5 && sim.prng.chance(0.4)) {
      groups.set(sim.prng.pick([...sim.nodes.keys()]), 1);
    }
    this.#startPartition(groups);
    sim.stats.leaderIsolated++;
  }

  // ---------------------------------------------------------------------------------------
  // Chaos actions

  /** An up node; half the time the leader, whose failures are the interesting ones. */
  #victim(): SimNode | undefined {
    const sim = this.#sim;
    const leader = sim.leader();
    if (leader !== undefined && sim.prng.chance(0.5)) return leader;
    const up = sim.upNodes();
    return up.length === 0 ? undefined : sim.prng.pick(up);
  }

  #pauseSomeone(): void {
    const sim = this.#sim;
    const node = this.#victim();
    if (node === undefined || node.pausedUntil > sim.now) return;
    node.pausedUntil = sim.now + sim.prng.int(50, 800);
    sim.stats.pause++;
  }

  #crashSomeone(): void {
    const node = this.#victim();
    if (node !== undefined) this.#sim.crash(node, this.#sim.prng.int(50, 1500));
  }

  #partitionSome(): void {
    const sim = this.#sim;
    const ids = [...sim.nodes.keys()];
    const groups = new Map<NodeId, number>();
    for (const id of ids) groups.set(id, sim.prng.int(0, 1));
    const leader = sim.leader();
    if (leader !== undefined && sim.prng.chance(0.5)) {
      // Cut the leader off with at most a minority of the others.
      for (const id of ids) groups.set(id, sim.prng.chance(0.25) ? 1 : 0);
      groups.set(leader.id, 1);
    }
    this.#startPartition(groups);
  }

  /** Replaces any partition; it heals by itself unless another one replaces it first. */
  #startPartition(groups: Map<NodeId, number>): void {
    const sim = this.#sim;
    const id = ++this.#partitionId;
    sim.partition = { id, groups };
    sim.stats.partition++;
    const [lo, hi] = this.#rates.partitionMs;
    sim.schedule(sim.now + sim.prng.int(lo, hi), { kind: "heal", partition: id });
  }

  #snapshotSomeone(): void {
    const sim = this.#sim;
    // Only up to what is durable: an entry applied before it reached this disk cannot be
    // compacted into a snapshot of this disk yet.
    const up = sim.upNodes().filter((n) =>
      n.sm.applied > n.storage.snapshot().meta.index && n.sm.applied <= n.storage.lastIndex()
    );
    if (up.length === 0) return;
    const node = sim.prng.pick(up);
    node.storage.createSnapshot(node.sm.applied, {
      membership: node.sm.membership,
      data: node.sm.encode(),
    });
    sim.stats.compaction++;
  }

  /** The leader proposes one change, or several at once (one joint configuration). */
  #changeMembership(): void {
    const sim = this.#sim;
    const leader = sim.leader();
    if (leader === undefined) return;
    const m = leader.raft!.membership;
    const count = sim.prng.chance(this.#rates.multiChange) ? sim.prng.int(2, 3) : 1;
    const changes: MembershipChange[] = [];
    const used = new Set<NodeId>();
    let added = 0;
    for (let i = 0; i < count; i++) {
      const options: MembershipChange[] = [];
      if (sim.nextNodeNumber + added < NODES_MAX) {
        const id = `n${sim.nextNodeNumber + added}`;
        options.push({ type: "addLearner", id }, { type: "addVoter", id });
      }
      for (const id of m.learners) {
        if (!used.has(id)) options.push({ type: "addVoter", id }, { type: "remove", id });
      }
      for (const id of m.voters) if (!used.has(id)) options.push({ type: "remove", id });
      if (options.length === 0) break;
      const change = sim.prng.pick(options);
      if (!sim.nodes.has(change.id) && !used.has(change.id)) added++;
      used.add(change.id);
      changes.push(change);
    }
    if (changes.length === 0) return;
    try {
      if (planChange(m, changes).voters.length > VOTERS_MAX) return;
      leader.raft!.proposeMembership(changes);
    } catch (e) {
      if (!(e instanceof MembershipChangeError) && !(e instanceof ProposalDroppedError)) throw e;
      return;
    }
    for (let i = 0; i < added; i++) sim.addNode(sim.newId());
    if (changes.length > 1) sim.stats.multiChange++;
    sim.kick(leader);
  }

  #transferLeadership(): void {
    const sim = this.#sim;
    const leader = sim.leader();
    if (leader === undefined) return;
    const voters = leader.raft!.membership.voters.filter((id) => id !== leader.id);
    if (voters.length === 0) return;
    const to = sim.prng.pick(voters);
    leader.raft!.transferLeader(to);
    sim.transferTarget = { id: to, term: leader.raft!.term };
    sim.kick(leader);
  }

  /**
   * Stops for good a node whose removal is committed. A node whose addition never committed
   * stays: the addition may still commit from another node's log.
   */
  #reapRemoved(): void {
    const sim = this.#sim;
    const members = sim.latestCommittedMembers;
    for (const node of sim.nodes.values()) {
      if (!members.has(node.id) && !node.reaped && sim.everCommittedMember.has(node.id)) {
        if (node.raft !== undefined) sim.crash(node, undefined);
        node.reaped = true;
        return;
      }
    }
  }
}

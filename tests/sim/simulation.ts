/**
 * Deterministic simulation of a Raft cluster: every node in one process, a simulated network
 * (drop, delay, reorder, duplicate, partitions that heal), simulated disks that take time and
 * lose what a crash interrupts ({@linkcode SimDisk}), restarts, membership changes, snapshots
 * and compaction, leadership transfers, client writes and ReadIndex reads. One seeded PRNG
 * drives everything; each seed draws its own configuration ({@linkcode drawConfig}). Phase one
 * checks safety under faults after every event; phase two stops the faults and requires
 * progress within a time budget.
 *
 * Each node is driven like the real driver (`src/node/driver.ts`): a Ready's `messages` leave
 * when it is taken; the persist takes simulated time, during which the node keeps being
 * ticked and stepped and sends what `readyMessages()` hands out; `messagesAfterPersist` leave
 * once the persist completed; then the node applies and advances.
 *
 * @module
 */
import {
  type Entry,
  type HardState,
  isJoint,
  membersOf,
  type Message,
  type NodeId,
  NONE,
  NotLeaderError,
  ProposalDroppedError,
  Raft,
  type ReadState,
  type Ready,
} from "../../src/raft/mod.ts";
import { SafetyChecker, SimViolation } from "./checker.ts";
import { drawConfig, type FaultRates, type SimConfig, TICK_MS } from "./config.ts";
import { SimDisk } from "./disk.ts";
import { EventQueue } from "./event_queue.ts";
import { CHAOS_MS, Faults } from "./faults.ts";
import { SimNode } from "./node.ts";
import { Prng } from "./prng.ts";
import { describeNodes, traceReady } from "./report.ts";
import {
  entryHash,
  EXTENSION_TAG,
  type ExtensionFactory,
  KvStateMachine,
} from "./state_machine.ts";
import { emptyStats, type SimStats } from "./stats.ts";
import { Workload } from "./workload.ts";

export type { FaultRates, SimConfig } from "./config.ts";
export type { SimStats } from "./stats.ts";

/** Print every persisted Ready (set SIM_TRACE=1 when replaying one seed). */
const TRACE = (() => {
  try {
    return Deno.env.get("SIM_TRACE") === "1";
  } catch {
    return false; // no --allow-env: no tracing
  }
})();

/** A crash this soon after persisting a vote counts as a crash right after voting. */
const VOTE_CRASH_WINDOW_MS = 50;

/** The outcome of one seed. */
export interface SimResult {
  /** The seed. */
  readonly seed: number;
  /** The configuration it drew. */
  readonly config: SimConfig;
  /** What happened. */
  readonly stats: SimStats;
  /** The violated property, when one was. */
  readonly violation?: string;
  /** Simulated ms it ran. */
  readonly timeMs: number;
}

/** Options of {@linkcode runSimulation}. */
export interface SimOptions {
  /** Simulated ms of phase one (faults). */
  readonly faultMs?: number;
  /** Simulated ms phase two may take to elect a leader and commit on every member. */
  readonly healBudgetMs?: number;
}

/**
 * What the multi-cluster mode (tests/sim/txn_simulation.ts) adds to a cluster: an extension of
 * the state machine, and a look at what its nodes apply, read and lose.
 */
export interface SimHooks {
  /** The id of the cluster. */
  readonly clusterId: string;
  /** Makes a node's state machine extension (from its snapshot, at a boot or an install). */
  readonly extension: ExtensionFactory;
  /** `node` applied extension entry `e`, which answered `answer`. */
  onApplied(node: SimNode, e: Entry, answer: unknown): void;
  /** `node` may serve the ReadStates it holds (before the single-cluster workload does). */
  serveReads(node: SimNode): void;
  /** `node` crashed: what it was serving is lost. */
  onCrash(node: SimNode): void;
  /** Adjusts the configuration the seed drew (the multi-cluster mode calms the faults). */
  tune?(config: SimConfig): SimConfig;
}

/** An event of the queue. */
export type SimEvent =
  | { kind: "tick"; id: NodeId; inc: number }
  | { kind: "deliver"; msg: Message }
  | { kind: "persisted"; id: NodeId; inc: number }
  | { kind: "chaos" }
  | { kind: "client"; client: number; retry?: boolean }
  | { kind: "restart"; id: NodeId }
  | { kind: "kill"; id: NodeId; inc: number; restartMs: number }
  | { kind: "isolate"; id: NodeId; inc: number }
  | { kind: "heal"; partition: number }
  | { kind: "settle" };

/** A network partition: messages cross only within a group. */
export interface Partition {
  /** Identifies it, so that the heal of a replaced one does not end it. */
  readonly id: number;
  /** node -> its group. */
  readonly groups: ReadonlyMap<NodeId, number>;
}

/** One seeded run. Fields without `#` are shared with the workload and the fault scheduler. */
export class Simulation {
  /** The run's only source of chance. */
  readonly prng: Prng;
  /** What the seed drew. */
  readonly config: SimConfig;
  /** What happened so far. */
  readonly stats: SimStats = emptyStats();
  /** The safety properties. */
  readonly checker: SafetyChecker = new SafetyChecker();
  /** Every node ever created. */
  readonly nodes: Map<NodeId, SimNode> = new Map();
  /** The current partition, if any. */
  partition: Partition | undefined;
  /** The number of the next node id. */
  nextNodeNumber = 1;
  /** A transfer in progress: counted when its target leads in a later term. */
  transferTarget: { id: NodeId; term: number } | undefined;
  /** Nodes some committed membership included: once a committed one drops them, it is final. */
  readonly everCommittedMember: Set<NodeId> = new Set();
  /** The members of the newest committed membership (the same on every node). */
  latestCommittedMembers: Set<NodeId> = new Set();

  readonly #events = new EventQueue<SimEvent>();
  readonly #hooks: SimHooks | undefined;
  readonly #faults: Faults;
  readonly #workload: Workload;
  #latestCommittedIndex = 0;
  #committedConfigs = new Set<number>();
  #now = 0;
  #faulty = true;
  #marker: { node: NodeId; index: number; term: number } | undefined;
  #settled = false;

  /** Draws the seed's configuration; `hooks`: a cluster of the multi-cluster mode. */
  constructor(seed: number, hooks?: SimHooks) {
    this.#hooks = hooks;
    this.prng = new Prng(seed);
    const drawn = drawConfig(this.prng);
    this.config = hooks?.tune?.(drawn) ?? drawn;
    this.#faults = new Faults(this);
    this.#workload = new Workload(this);
  }

  /** Simulated ms since the start. */
  get now(): number {
    return this.#now;
  }

  /** Whether phase one (faults) is still on. */
  get faulty(): boolean {
    return this.#faulty;
  }

  /** The fault rates of the seed. */
  get rates(): FaultRates {
    return this.config.rates;
  }

  /** Queues an event. */
  schedule(time: number, ev: SimEvent): void {
    this.#events.push(time, ev);
  }

  /** Bootstraps the founding voters, the clients and the chaos. */
  async start(): Promise<void> {
    const ids: NodeId[] = [];
    for (let i = 0; i < this.config.voters; i++) ids.push(this.newId());
    for (const id of ids) {
      const node = new SimNode(id);
      await node.disk.bootstrap(ids);
      this.nodes.set(id, node);
      this.#boot(node);
    }
    this.#workload.start(this.config.clients);
    this.schedule(CHAOS_MS, { kind: "chaos" });
  }

  /** A fresh node id. */
  newId(): NodeId {
    return `n${this.nextNodeNumber++}`;
  }

  /** Creates and boots a node with an empty disk. */
  addNode(id: NodeId): SimNode {
    const node = new SimNode(id);
    this.nodes.set(id, node);
    this.#boot(node);
    return node;
  }

  /** Every node that is up. */
  upNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.raft !== undefined);
  }

  /** The up node that leads in the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.raft?.role === "leader" && (best === undefined || n.raft.term > best.raft!.term)) {
        best = n;
      }
    }
    return best;
  }

  /** Starts a node from its disk: state machine from the snapshot, core from the log. */
  #boot(node: SimNode): void {
    const snapshot = node.storage.snapshot();
    // The simulation's MemoryStorage keeps every snapshot's bytes in memory.
    if (!(snapshot.data instanceof Uint8Array)) throw new Error("a simulated disk holds bytes");
    node.sm = KvStateMachine.decode(snapshot.data, this.#hooks?.extension);
    node.inc++;
    node.persisting = undefined;
    node.tickMs = Math.max(
      1,
      Math.round(TICK_MS * (1 + (2 * this.prng.next() - 1) * this.rates.clockDrift)),
    );
    const random = this.prng.fork();
    const c = this.config;
    node.raft = new Raft({
      id: node.id,
      storage: node.storage,
      electionTicks: c.electionTicks,
      electionTicksMax: c.electionTicksMax,
      heartbeatTicks: c.heartbeatTicks,
      preVote: c.preVote,
      checkQuorum: c.checkQuorum,
      random: () => random.next(),
      applied: snapshot.meta.index,
      limits: c.limits,
    });
    node.ledTerm = 0;
    node.termFirstIndex = 0;
    node.completenessAt = undefined;
    this.schedule(this.#now + this.prng.int(1, TICK_MS), {
      kind: "tick",
      id: node.id,
      inc: node.inc,
    });
  }

  /**
   * Crashes `node`: a persist in progress keeps a prefix of its parts, anything else not
   * written is lost. Restarts it after `restartMs` unless undefined.
   */
  crash(node: SimNode, restartMs: number | undefined): void {
    if (TRACE) console.log(`${this.#now} ${node.id} CRASH`);
    const p = node.persisting;
    if (p !== undefined) {
      this.stats.crashInPersist++;
      const batch = { snapshot: p.ready.snapshot, entries: p.ready.entries, ...hard(p.ready) };
      const parts = SimDisk.parts(batch);
      const kept = parts === 0 ? 0 : this.prng.int(0, parts - 1);
      if (kept > 0) this.stats.partialPersist++;
      node.disk.writePrefix(batch, kept);
    }
    if (this.#now - node.votedAt <= VOTE_CRASH_WINDOW_MS) this.stats.crashAfterVote++;
    if (node.disk.crash()) this.stats.commitRegressed++;
    node.raft = undefined;
    node.persisting = undefined;
    this.#workload.release(node);
    this.#hooks?.onCrash(node);
    node.proposals.clear();
    node.reads.clear();
    node.readyReads = [];
    this.stats.crash++;
    if (restartMs !== undefined) {
      this.schedule(this.#now + restartMs, { kind: "restart", id: node.id });
    }
  }

  /** Runs phase one for `faultMs`, then phase two until settled or out of budget. */
  run(faultMs: number, healBudgetMs: number): void {
    const deadline = faultMs + healBudgetMs;
    let healed = false;
    for (;;) {
      const ev = this.#events.pop();
      if (ev === undefined) throw new SimViolation("liveness: the event queue ran dry");
      this.#now = ev.time;
      if (!healed && this.#now >= faultMs) {
        healed = true;
        this.#startHealing();
      }
      if (this.#now > deadline) {
        throw new SimViolation(
          `liveness: ${healBudgetMs} ms after the faults stopped, ` +
            (this.#marker === undefined
              ? "no leader could commit a new entry"
              : `entry ${this.#marker.index} is not applied on every member`) +
            ` (${describeNodes(this.nodes.values())})`,
        );
      }
      this.#handle(ev.item);
      if (this.#settled) return;
    }
  }

  // ---------------------------------------------------------------------------------------
  // The multi-cluster mode steps each cluster itself, in the order of their events.

  /** The time of this cluster's next event, or undefined. */
  nextTime(): number | undefined {
    return this.#events.peekTime();
  }

  /** Handles this cluster's next event. */
  step(): void {
    const ev = this.#events.pop();
    if (ev === undefined) return;
    this.#now = Math.max(this.#now, ev.time);
    this.#handle(ev.item);
  }

  /** Moves this cluster's clock to `time` (before input from outside it). */
  advanceTo(time: number): void {
    if (time > this.#now) this.#now = time;
  }

  /** Ends phase one: no more faults; every node up. */
  heal(): void {
    this.#startHealing();
  }

  /** Whether phase two saw a new entry applied on every member. */
  get settled(): boolean {
    return this.#settled;
  }

  /** What the cluster is waiting for, for a liveness report. */
  describeProgress(): string {
    return (this.#marker === undefined
      ? "no leader could commit a new entry"
      : `entry ${this.#marker.index} is not applied on every member`) +
      ` (${describeNodes(this.nodes.values())})`;
  }

  /** Defers an event aimed at a paused node until it resumes; returns whether it did. */
  #deferIfPaused(node: SimNode | undefined, ev: SimEvent): boolean {
    if (node === undefined || node.pausedUntil <= this.#now) return false;
    this.schedule(node.pausedUntil, ev);
    return true;
  }

  #handle(ev: SimEvent): void {
    switch (ev.kind) {
      case "tick": {
        const node = this.nodes.get(ev.id)!;
        if (node.inc !== ev.inc || node.raft === undefined) return;
        if (this.#deferIfPaused(node, ev)) return; // a paused clock does not tick
        node.raft.tick();
        this.kick(node);
        this.schedule(this.#now + node.tickMs, ev);
        return;
      }
      case "deliver":
        if (this.#deferIfPaused(this.nodes.get(ev.msg.to), ev)) return;
        return this.#deliver(ev.msg);
      case "persisted": {
        const node = this.nodes.get(ev.id)!;
        if (node.inc !== ev.inc || node.raft === undefined) return;
        if (this.#deferIfPaused(node, ev)) return;
        return this.#onPersisted(node);
      }
      case "chaos":
        if (!this.#faulty) return;
        this.#faults.chaos();
        this.schedule(this.#now + CHAOS_MS, ev);
        return;
      case "client":
        return this.#workload.step(ev.client, ev.retry);
      case "restart": {
        const node = this.nodes.get(ev.id)!;
        if (node.raft !== undefined || node.reaped) return;
        this.stats.restart++;
        this.#boot(node);
        return;
      }
      case "kill": {
        const node = this.nodes.get(ev.id)!;
        if (node.inc !== ev.inc || node.raft === undefined || !this.#faulty) return;
        return this.crash(node, ev.restartMs);
      }
      case "isolate": {
        const node = this.nodes.get(ev.id)!;
        if (node.inc !== ev.inc || node.raft?.role !== "leader" || !this.#faulty) return;
        return this.#faults.isolate(node);
      }
      case "heal":
        if (this.partition?.id === ev.partition) this.partition = undefined;
        return;
      case "settle":
        this.#settle();
        this.schedule(this.#now + CHAOS_MS, ev);
        return;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Node driver: the loop a real node runs, with a disk that takes time.

  /** After any input: take the next Ready, or send what may leave during the persist. */
  kick(node: SimNode): void {
    const raft = node.raft;
    if (raft === undefined) return;
    if (raft.role === "leader" && node.ledTerm !== raft.term) this.#onElected(node, raft);
    if (node.persisting !== undefined) {
      const msgs = raft.readyMessages();
      this.stats.sentDuringPersist += msgs.length;
      for (const m of msgs) this.#send(m);
      this.#applyNow(node, raft);
      return;
    }
    if (!raft.hasReady()) return;
    const prevCommit = node.storage.hardState().commit;
    const rd = raft.ready();
    if (raft.role === "leader") {
      if (rd.entries.some((e) => e.term === raft.term)) this.#faults.onLeaderAppend(node);
      if ((rd.hardState?.commit ?? 0) > prevCommit) this.#faults.onLeaderCommit(node);
    }
    for (const m of rd.messages) this.#send(m);
    // Durable already: applied while this Ready is being persisted, as the node does.
    this.#applyEntries(node, rd.committedEntries, rd.readStates, raft.term);
    const latency = this.prng.int(0, this.config.diskLatencyMaxMs);
    const doneAt = this.#now + latency;
    node.persisting = { ready: rd, term: raft.term, doneAt };
    this.schedule(doneAt, { kind: "persisted", id: node.id, inc: node.inc });
    this.#faults.onPersistStart(node, doneAt);
    const hs = rd.hardState;
    const durable = node.storage.hardState();
    if (
      hs !== undefined && hs.vote !== NONE && (hs.vote !== durable.vote || hs.term !== durable.term)
    ) {
      this.#faults.onVotePersistStart(node, doneAt);
    }
  }

  /** The first sign of a node's leadership in a term: before it serves any request. */
  #onElected(node: SimNode, raft: Raft): void {
    const term = raft.term;
    node.ledTerm = term;
    this.checker.onLeader(node.id, term);
    this.stats.election = this.checker.counts.elections;
    if (isJoint(raft.membership)) this.stats.jointElection++;
    node.termFirstIndex = raft.status().lastIndex; // its election no-op
    node.completenessAt = { term, index: node.termFirstIndex };
    if (this.transferTarget?.id === node.id && term > this.transferTarget.term) {
      this.stats.leaderTransfer++;
      this.transferTarget = undefined;
    }
    this.#faults.onElected(node);
    this.#workload.onElected(node);
  }

  #onPersisted(node: SimNode): void {
    const raft = node.raft!;
    const { ready: rd, term } = node.persisting!;
    node.persisting = undefined;
    const prevHard = node.storage.hardState();
    node.disk.write({ snapshot: rd.snapshot, entries: rd.entries, ...hard(rd) });
    if (TRACE) traceReady(this.#now, node, rd);
    this.checker.onPersistEntries(node.id, rd.entries, node.storage);
    this.#checkPersistedCommit(node, prevHard.commit, term);
    this.#checkCompleteness(node, raft);
    const voted = rd.hardState !== undefined && rd.hardState.vote !== NONE &&
      (rd.hardState.vote !== prevHard.vote || rd.hardState.term !== prevHard.term);
    if (voted) node.votedAt = this.#now;
    if (this.#faults.crashesAfterPersist(node, voted)) {
      this.stats.crashAfterPersist++;
      return;
    }
    for (const m of rd.messagesAfterPersist) this.#send(m);
    if (rd.snapshot !== undefined) {
      node.sm = KvStateMachine.decode(rd.snapshot.data, this.#hooks?.extension);
      if (node.sm.applied !== rd.snapshot.meta.index) {
        throw new SimViolation(
          `snapshot at ${rd.snapshot.meta.index} holds state of ${node.sm.applied}`,
        );
      }
      this.checker.onRestored(node.id, node.sm.applied, node.sm.chain);
      this.stats.snapshotInstall++;
    }
    raft.advance();
    this.#applyNow(node, raft);
    this.kick(node);
  }

  /** What the core hands out between Readys: entries committed and durable, read answers. */
  #applyNow(node: SimNode, raft: Raft): void {
    const now = raft.readyToApply();
    this.stats.appliedOutsideReady += now.committedEntries.length;
    this.#applyEntries(node, now.committedEntries, now.readStates, raft.term);
  }

  #applyEntries(
    node: SimNode,
    entries: readonly Entry[],
    readStates: readonly ReadState[],
    term: number,
  ): void {
    for (const e of entries) this.#apply(node, e, term);
    node.readyReads.push(...readStates);
    this.#hooks?.serveReads(node);
    this.#workload.serveReads(node);
  }

  /** A persisted commit index must cover entries that agree with every other node. */
  #checkPersistedCommit(node: SimNode, prevCommit: number, term: number): void {
    const storage = node.storage;
    const commit = storage.hardState().commit;
    if (commit > storage.lastIndex()) {
      throw new SimViolation(`${node.id} persisted commit ${commit} beyond its log`);
    }
    const lo = Math.max(prevCommit + 1, storage.firstIndex());
    if (lo > commit) return;
    const leading = node.raft!.role === "leader" && node.raft!.term === term;
    for (const e of storage.entries(lo, commit + 1)) {
      const first = this.checker.onCommitted(node.id, term, {
        index: e.index,
        term: e.term,
        hash: entryHash(e),
      });
      // Figure 8 (e): only an entry of the leader's term commits the earlier ones before it.
      if (first && leading && e.term < term) this.stats.oldTermCommitted++;
    }
  }

  /** A new leader holds every entry committed before its term, once its log is durable. */
  #checkCompleteness(node: SimNode, raft: Raft): void {
    const at = node.completenessAt;
    if (at === undefined) return;
    if (raft.term !== at.term) {
      node.completenessAt = undefined; // deposed before its no-op was durable
      return;
    }
    const s = node.storage;
    if (s.lastIndex() < at.index || at.index < s.firstIndex() || s.term(at.index) !== at.term) {
      return;
    }
    node.completenessAt = undefined;
    this.checker.checkLeaderCompleteness(node.id, at.term, s);
  }

  #apply(node: SimNode, e: Entry, term: number): void {
    if (e.index !== node.sm.applied + 1) {
      throw new SimViolation(
        `state machine safety: ${node.id} applies index ${e.index} after ${node.sm.applied}`,
      );
    }
    const write = node.sm.apply(e);
    this.checker.onApplied(node.id, term, e, node.sm.chain);
    if (this.#hooks !== undefined && e.type === "normal" && e.data[0] === EXTENSION_TAG) {
      this.#hooks.onApplied(node, e, node.sm.extAnswer);
    }
    if (e.type === "config" && !this.#committedConfigs.has(e.index)) {
      this.#committedConfigs.add(e.index);
      for (const id of membersOf(e.membership!)) this.everCommittedMember.add(id);
      if (e.index > this.#latestCommittedIndex) {
        this.#latestCommittedIndex = e.index;
        this.latestCommittedMembers = new Set(membersOf(e.membership!));
      }
      if (e.index > 1) this.stats.membershipChange++;
    }
    this.#workload.onApplied(node, e, write);
    if (
      this.#marker !== undefined && this.#marker.node === node.id &&
      this.#marker.index === e.index && this.#marker.term !== e.term
    ) {
      this.#marker = undefined; // the marker lost its leader: propose it again
    }
  }

  // ---------------------------------------------------------------------------------------
  // Network

  #cut(m: Message): boolean {
    const g = this.partition?.groups;
    return g !== undefined && g.get(m.from) !== g.get(m.to);
  }

  #send(m: Message): void {
    const rates = this.rates;
    if (this.#cut(m) || (this.#faulty && this.prng.chance(rates.drop))) {
      this.stats.drop++;
      return;
    }
    const delayMax = this.#faulty ? rates.delayMaxMs : 3;
    this.schedule(this.#now + this.prng.int(1, delayMax), { kind: "deliver", msg: m });
    if (this.#faulty && this.prng.chance(rates.duplicate)) {
      this.stats.duplicate++;
      this.schedule(this.#now + this.prng.int(1, delayMax), { kind: "deliver", msg: m });
    }
  }

  #deliver(m: Message): void {
    const node = this.nodes.get(m.to);
    if (node?.raft === undefined) return;
    if (this.#cut(m)) {
      this.stats.drop++; // a partition that began while the message was in flight
      return;
    }
    node.raft.step(m);
    this.kick(node);
  }

  // ---------------------------------------------------------------------------------------
  // Phase two: no faults; a leader must commit a new entry on every member.

  #startHealing(): void {
    this.#faulty = false;
    this.partition = undefined;
    for (const node of this.nodes.values()) node.pausedUntil = 0;
    for (const node of this.nodes.values()) {
      if (node.raft === undefined && !node.reaped) {
        this.stats.restart++;
        this.#boot(node);
      }
    }
    this.schedule(this.#now, { kind: "settle" });
  }

  #settle(): void {
    const leader = this.leader();
    if (leader === undefined) return;
    if (this.#marker === undefined) {
      try {
        const { index, term } = leader.raft!.propose(new TextEncoder().encode(""));
        this.#marker = { node: leader.id, index, term };
      } catch (e) {
        if (!(e instanceof NotLeaderError) && !(e instanceof ProposalDroppedError)) throw e;
      }
      this.kick(leader);
      return;
    }
    const st = leader.raft!.status();
    if (isJoint(st.membership) || st.membershipIndex > st.commit) return;
    for (const id of membersOf(st.membership)) {
      const n = this.nodes.get(id);
      if (n === undefined || n.sm.applied < this.#marker.index) return;
    }
    this.#settled = true;
  }
}

/** The hard state of a Ready as an optional batch field (absent, not undefined). */
function hard(rd: Ready): { hardState?: HardState } {
  return rd.hardState === undefined ? {} : { hardState: rd.hardState };
}

/** Runs one seed; a safety or liveness violation is returned, never thrown. */
export async function runSimulation(seed: number, options: SimOptions = {}): Promise<SimResult> {
  const sim = new Simulation(seed);
  let violation: string | undefined;
  try {
    await sim.start();
    sim.run(options.faultMs ?? 5_000, options.healBudgetMs ?? 10_000);
  } catch (e) {
    if (!(e instanceof Error)) throw e;
    violation = `${e.name}: ${e.message}`;
    if (!(e instanceof SimViolation)) violation += `\n${e.stack}`;
  }
  return {
    seed,
    config: sim.config,
    stats: sim.stats,
    ...(violation === undefined ? {} : { violation }),
    timeMs: sim.now,
  };
}

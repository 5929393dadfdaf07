/**
 * Deterministic simulation of a Raft cluster: every node in one process, a simulated network
 * (drop, delay, reorder, duplicate, partitions that heal), simulated disks (a crash loses
 * what was not yet handed to storage), restarts, membership changes, snapshots and
 * compaction, leadership transfers, client writes and ReadIndex reads. One seeded PRNG drives
 * everything; each seed draws its own fault rates. Phase one checks safety under faults after
 * every event; phase two stops the faults and requires progress within a time budget.
 *
 * @module
 */
import {
  type Entry,
  MemoryStorage,
  type Message,
  type NodeId,
  NotLeaderError,
  ProposalDroppedError,
  Raft,
  type Ready,
} from "../../src/raft/mod.ts";
import { bootstrapStorage, isJoint, MembershipChangeError, membersOf } from "../../src/raft/mod.ts";
import type { MembershipChange } from "../../src/raft/mod.ts";
import { SafetyChecker, SimViolation } from "./checker.ts";
import { EventQueue } from "./event_queue.ts";
import { Prng } from "./prng.ts";
import { encodeWrite, entryHash, KvStateMachine } from "./state_machine.ts";

/** Print every persisted Ready (set SIM_TRACE=1 when replaying one seed). */
const TRACE = (() => {
  try {
    return Deno.env.get("SIM_TRACE") === "1";
  } catch {
    return false; // no --allow-env: no tracing
  }
})();

/** Milliseconds of simulated time between two ticks of a node. */
const TICK_MS = 10;
/** Milliseconds between two chaos decisions in phase one. */
const CHAOS_MS = 50;
/** Largest number of node ids a seed may create (initial plus added). */
const NODES_MAX = 11;
/** Largest number of voters a membership change may produce. */
const VOTERS_MAX = 7;
/** Keys the clients write and read (few, so reads race writes). */
const KEYS = ["k0", "k1", "k2", "k3", "k4"];
/** A client gives up on a request after this long (its outcome stays unknown). */
const CLIENT_TIMEOUT_MS = 2_000;

/** The fault rates of one seed (probabilities per message or per chaos round). */
export interface FaultRates {
  /** A message is dropped. */
  readonly drop: number;
  /** A message is delivered twice. */
  readonly duplicate: number;
  /** Largest network delay in ms (delays are uniform in [1, max], so messages reorder). */
  readonly delayMaxMs: number;
  /** Per chaos round: crash a node. */
  readonly crash: number;
  /** Per chaos round: start a partition. */
  readonly partition: number;
  /** Per chaos round: a node snapshots and compacts its log. */
  readonly snapshot: number;
  /** Per chaos round: the leader proposes a membership change. */
  readonly membership: number;
  /** Per chaos round: the leader transfers leadership. */
  readonly transfer: number;
  /** Per chaos round: a node pauses (a GC pause or a stopped VM): no ticks, no input. */
  readonly pause: number;
  /** Each node's clock runs at a rate drawn from [1 - drift, 1 + drift]. */
  readonly clockDrift: number;
  /** A new leader crashes within a few ms of winning (mid-replication of old entries). */
  readonly leaderKill: number;
}

/** How often each kind of fault or event happened in a run. */
export interface SimStats {
  /** Messages dropped (loss or partition). */
  drop: number;
  /** Messages delivered twice. */
  duplicate: number;
  /** Partitions started. */
  partition: number;
  /** Node crashes (unpersisted state lost). */
  crash: number;
  /** Node restarts from disk. */
  restart: number;
  /** Node pauses (time passes, the node does nothing, then resumes with a backlog). */
  pause: number;
  /** Snapshots taken and logs compacted. */
  compaction: number;
  /** Snapshots received over InstallSnapshot and installed. */
  snapshotInstall: number;
  /** Membership changes committed (joint entries, leave-joint entries, learner changes). */
  membershipChange: number;
  /** Leadership transfers that made their target leader. */
  leaderTransfer: number;
  /** Distinct leader terms. */
  election: number;
  /** Client writes acknowledged. */
  writeAcked: number;
  /** Linearizable reads checked. */
  readChecked: number;
}

/** The outcome of one seed. */
export interface SimResult {
  /** The seed. */
  readonly seed: number;
  /** The rates it drew. */
  readonly rates: FaultRates;
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

type SimEvent =
  | { kind: "tick"; id: NodeId; inc: number }
  | { kind: "deliver"; msg: Message }
  | { kind: "persisted"; id: NodeId; inc: number }
  | { kind: "chaos" }
  | { kind: "client"; client: number }
  | { kind: "restart"; id: NodeId }
  | { kind: "kill"; id: NodeId; inc: number }
  | { kind: "heal" }
  | { kind: "settle" };

interface Proposal {
  readonly term: number;
  readonly client: number;
  readonly key: string;
}

interface PendingRead {
  readonly client: number;
  readonly key: string;
  readonly start: number;
}

class SimNode {
  readonly id: NodeId;
  readonly storage: MemoryStorage;
  raft: Raft | undefined;
  inc = 0;
  sm = new KvStateMachine();
  persisting: { ready: Ready; term: number } | undefined;
  proposals = new Map<number, Proposal>();
  reads = new Map<string, PendingRead>();
  readyReads: { context: string; index: number }[] = [];
  reaped = false;
  tickMs = TICK_MS;
  pausedUntil = 0;

  constructor(id: NodeId, storage: MemoryStorage) {
    this.id = id;
    this.storage = storage;
  }
}

interface Client {
  readonly id: number;
  seq: number;
  busyUntil: number;
}

function emptyStats(): SimStats {
  return {
    drop: 0,
    duplicate: 0,
    partition: 0,
    crash: 0,
    restart: 0,
    pause: 0,
    compaction: 0,
    snapshotInstall: 0,
    membershipChange: 0,
    leaderTransfer: 0,
    election: 0,
    writeAcked: 0,
    readChecked: 0,
  };
}

/** Draws the fault rates of a seed: some seeds are calm, some hostile. */
function drawRates(prng: Prng): FaultRates {
  const pick = (max: number) => (prng.chance(0.2) ? 0 : prng.next() * max);
  return {
    drop: pick(0.15),
    duplicate: pick(0.1),
    delayMaxMs: prng.int(2, 40),
    crash: pick(0.08),
    partition: pick(0.06),
    snapshot: pick(0.15),
    membership: pick(0.08),
    transfer: pick(0.05),
    pause: pick(0.05),
    clockDrift: pick(0.5),
    leaderKill: pick(0.3),
  };
}

/** One seeded run. */
class Simulation {
  readonly #prng: Prng;
  readonly rates: FaultRates;
  readonly stats = emptyStats();
  readonly #checker = new SafetyChecker();
  readonly #events = new EventQueue<SimEvent>();
  readonly #nodes = new Map<NodeId, SimNode>();
  readonly #clients: Client[] = [];
  readonly #limits: {
    appendEntriesMax: number;
    inflightAppendsMax: number;
    snapshotChunkBytes: number;
  };
  readonly #electionTicks = 10;
  #now = 0;
  #faulty = true;
  #partition: Map<NodeId, number> | undefined;
  #nextNodeNumber = 1;
  #transferTarget: { id: NodeId; term: number } | undefined;
  #committedConfigs = new Set<number>();
  /** Nodes some committed membership included: once a committed one drops them, it is final. */
  #everCommittedMember = new Set<NodeId>();
  /** The newest committed membership (from applied config entries: the same on every node). */
  #latestCommittedConfig: { index: number; members: Set<NodeId> } = {
    index: 0,
    members: new Set(),
  };
  #marker: { node: NodeId; index: number; term: number } | undefined;
  #settled = false;

  constructor(seed: number) {
    this.#prng = new Prng(seed);
    this.rates = drawRates(this.#prng);
    this.#limits = {
      appendEntriesMax: this.#prng.chance(0.3) ? 1 : this.#prng.int(1, 64),
      inflightAppendsMax: this.#prng.int(1, 8),
      snapshotChunkBytes: this.#prng.int(16, 512),
    };
  }

  async start(): Promise<void> {
    const voters = this.#prng.chance(0.5) ? 3 : 5;
    const ids: NodeId[] = [];
    for (let i = 0; i < voters; i++) ids.push(this.#newId());
    for (const id of ids) {
      const storage = new MemoryStorage();
      await bootstrapStorage(storage, ids);
      this.#addNode(id, storage);
    }
    for (let c = 0; c < this.#prng.int(2, 5); c++) {
      this.#clients.push({ id: c, seq: 0, busyUntil: 0 });
      this.#events.push(this.#prng.int(0, 50), { kind: "client", client: c });
    }
    this.#events.push(CHAOS_MS, { kind: "chaos" });
  }

  #newId(): NodeId {
    return `n${this.#nextNodeNumber++}`;
  }

  #addNode(id: NodeId, storage: MemoryStorage): SimNode {
    const node = new SimNode(id, storage);
    this.#nodes.set(id, node);
    this.#boot(node);
    return node;
  }

  /** Starts a node from its disk: state machine from the snapshot, core from the log. */
  #boot(node: SimNode): void {
    const snapshot = node.storage.snapshot();
    node.sm = KvStateMachine.decode(snapshot.data);
    node.inc++;
    node.persisting = undefined;
    node.tickMs = Math.max(
      1,
      Math.round(TICK_MS * (1 + (2 * this.#prng.next() - 1) * this.rates.clockDrift)),
    );
    const random = this.#prng.fork();
    node.raft = new Raft({
      id: node.id,
      storage: node.storage,
      electionTicks: this.#electionTicks,
      heartbeatTicks: 2,
      random: () => random.next(),
      applied: snapshot.meta.index,
      limits: this.#limits,
    });
    this.#events.push(this.#now + this.#prng.int(1, TICK_MS), {
      kind: "tick",
      id: node.id,
      inc: node.inc,
    });
  }

  /** Runs phase one for `faultMs`, then phase two until settled or out of budget. */
  run(faultMs: number, healBudgetMs: number): void {
    const healAt = faultMs;
    const deadline = faultMs + healBudgetMs;
    let healed = false;
    for (;;) {
      const ev = this.#events.pop();
      if (ev === undefined) throw new SimViolation("liveness: the event queue ran dry");
      this.#now = ev.time;
      if (!healed && this.#now >= healAt) {
        healed = true;
        this.#startHealing();
      }
      if (this.#now > deadline) {
        throw new SimViolation(
          `liveness: ${healBudgetMs} ms after the faults stopped, ` +
            (this.#marker === undefined
              ? "no leader could commit a new entry"
              : `entry ${this.#marker.index} is not applied on every member`) +
            ` (${this.#describe()})`,
        );
      }
      this.#handle(ev.item);
      if (this.#settled) return;
    }
  }

  get now(): number {
    return this.#now;
  }

  /** Defers an event aimed at a paused node until it resumes; returns whether it did. */
  #deferIfPaused(node: SimNode | undefined, ev: SimEvent): boolean {
    if (node === undefined || node.pausedUntil <= this.#now) return false;
    this.#events.push(node.pausedUntil, ev);
    return true;
  }

  #handle(ev: SimEvent): void {
    switch (ev.kind) {
      case "tick": {
        const node = this.#nodes.get(ev.id)!;
        if (node.inc !== ev.inc || node.raft === undefined) return;
        if (node.pausedUntil > this.#now) {
          this.#events.push(node.pausedUntil, ev); // a paused clock does not tick
          return;
        }
        node.raft.tick();
        this.#kick(node);
        this.#events.push(this.#now + node.tickMs, ev);
        return;
      }
      case "deliver":
        if (this.#deferIfPaused(this.#nodes.get(ev.msg.to), ev)) return;
        return this.#deliver(ev.msg);
      case "persisted": {
        const node = this.#nodes.get(ev.id)!;
        if (node.inc !== ev.inc || node.raft === undefined) return;
        if (this.#deferIfPaused(node, ev)) return;
        return this.#onPersisted(node);
      }
      case "chaos":
        if (!this.#faulty) return;
        this.#chaos();
        this.#events.push(this.#now + CHAOS_MS, ev);
        return;
      case "client":
        this.#clientStep(this.#clients[ev.client]);
        this.#events.push(this.#now + this.#prng.int(5, 40), ev);
        return;
      case "restart": {
        const node = this.#nodes.get(ev.id)!;
        if (node.raft !== undefined || node.reaped) return;
        this.stats.restart++;
        this.#boot(node);
        return;
      }
      case "kill": {
        const node = this.#nodes.get(ev.id)!;
        if (node.inc !== ev.inc || node.raft === undefined || !this.#faulty) return;
        this.#crash(node);
        this.#events.push(this.#now + this.#prng.int(20, 800), { kind: "restart", id: node.id });
        return;
      }
      case "heal":
        this.#partition = undefined;
        return;
      case "settle":
        this.#settle();
        this.#events.push(this.#now + CHAOS_MS, ev);
        return;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Node driver: the same loop a real node runs, with a disk that takes time.

  #kick(node: SimNode): void {
    const raft = node.raft;
    if (raft === undefined || node.persisting !== undefined || !raft.hasReady()) return;
    node.persisting = { ready: raft.ready(), term: raft.term };
    this.#events.push(this.#now + this.#prng.int(0, 3), {
      kind: "persisted",
      id: node.id,
      inc: node.inc,
    });
  }

  #onPersisted(node: SimNode): void {
    const raft = node.raft!;
    const { ready: rd, term } = node.persisting!;
    node.persisting = undefined;
    const prevCommit = node.storage.hardState().commit;
    node.storage.persist({ snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState });
    if (TRACE) {
      const es = rd.entries.map((e) =>
        `${e.index}/${e.term}${
          e.type === "config"
            ? `C[${e.membership!.voters}|${e.membership!.outgoing}|${e.membership!.learners}]`
            : ""
        }`
      );
      console.log(
        `${this.#now} ${node.id} persist ${es.join(",")} hs=${JSON.stringify(rd.hardState ?? {})}` +
          ` soft=${JSON.stringify(rd.softState ?? {})} snap=${rd.snapshot?.meta.index ?? "-"}` +
          ` msgs=${rd.messages.map((m) => `${m.type}>${m.to}`).join(",")}`,
      );
    }
    this.#checker.onPersistEntries(node.id, rd.entries, node.storage);
    this.#checkPersistedCommit(node, prevCommit, term);
    if (rd.softState?.role === "leader") {
      this.#checker.onLeader(node.id, term);
      this.stats.election = this.#checker.counts.elections;
      this.#checker.checkLeaderCompleteness(node.id, term, node.storage);
      if (this.#faulty && this.#prng.chance(this.rates.leaderKill)) {
        this.#events.push(this.#now + this.#prng.int(1, 30), {
          kind: "kill",
          id: node.id,
          inc: node.inc,
        });
      }
      if (this.#transferTarget?.id === node.id && term > this.#transferTarget.term) {
        this.stats.leaderTransfer++;
        this.#transferTarget = undefined;
      }
    }
    for (const m of [...rd.messages, ...rd.messagesAfterPersist]) this.#send(m);
    if (rd.snapshot !== undefined) {
      node.sm = KvStateMachine.decode(rd.snapshot.data);
      if (node.sm.applied !== rd.snapshot.meta.index) {
        throw new SimViolation(
          `snapshot at ${rd.snapshot.meta.index} holds state of ${node.sm.applied}`,
        );
      }
      this.#checker.onRestored(node.id, node.sm.applied, node.sm.chain);
      this.stats.snapshotInstall++;
    }
    for (const e of rd.committedEntries) this.#apply(node, e, term);
    node.readyReads.push(...rd.readStates);
    this.#serveReads(node);
    raft.advance();
    this.#kick(node);
  }

  /** A persisted commit index must cover entries that agree with every other node. */
  #checkPersistedCommit(node: SimNode, prevCommit: number, term: number): void {
    const commit = node.storage.hardState().commit;
    if (commit > node.storage.lastIndex()) {
      throw new SimViolation(`${node.id} persisted commit ${commit} beyond its log`);
    }
    const lo = Math.max(prevCommit + 1, node.storage.firstIndex());
    if (lo > commit) return;
    for (const e of node.storage.entries(lo, commit + 1)) {
      this.#checker.onCommitted(node.id, term, {
        index: e.index,
        term: e.term,
        hash: entryHash(e),
      });
    }
  }

  #apply(node: SimNode, e: Entry, term: number): void {
    if (e.index !== node.sm.applied + 1) {
      throw new SimViolation(
        `state machine safety: ${node.id} applies index ${e.index} after ${node.sm.applied}`,
      );
    }
    const write = node.sm.apply(e);
    this.#checker.onApplied(node.id, term, e, node.sm.chain);
    if (e.type === "config" && !this.#committedConfigs.has(e.index)) {
      this.#committedConfigs.add(e.index);
      for (const id of membersOf(e.membership!)) this.#everCommittedMember.add(id);
      if (e.index > this.#latestCommittedConfig.index) {
        this.#latestCommittedConfig = {
          index: e.index,
          members: new Set(membersOf(e.membership!)),
        };
      }
      if (e.index > 1) this.stats.membershipChange++;
    }
    const p = node.proposals.get(e.index);
    if (p !== undefined) {
      node.proposals.delete(e.index);
      const client = this.#clients[p.client];
      client.busyUntil = 0;
      if (p.term === e.term && write !== undefined) {
        this.#checker.onWriteAcked(p.key, e.index, this.#now);
        this.stats.writeAcked++;
      }
    }
    if (
      this.#marker !== undefined && this.#marker.node === node.id &&
      this.#marker.index === e.index && this.#marker.term !== e.term
    ) {
      this.#marker = undefined; // the marker lost its leader: propose it again
    }
  }

  #serveReads(node: SimNode): void {
    const waiting: { context: string; index: number }[] = [];
    for (const rs of node.readyReads) {
      if (rs.index > node.sm.applied) {
        waiting.push(rs);
        continue;
      }
      const r = node.reads.get(rs.context);
      if (r === undefined) continue;
      node.reads.delete(rs.context);
      this.#checker.onRead(node.id, r.key, node.sm.kv.get(r.key)?.rev ?? 0, r.start);
      this.stats.readChecked++;
      this.#clients[r.client].busyUntil = 0;
    }
    node.readyReads = waiting;
  }

  // ---------------------------------------------------------------------------------------
  // Network

  #send(m: Message): void {
    const rates = this.rates;
    if (
      this.#partition !== undefined && this.#partition.get(m.from) !== this.#partition.get(m.to)
    ) {
      this.stats.drop++;
      return;
    }
    if (this.#faulty && this.#prng.chance(rates.drop)) {
      this.stats.drop++;
      return;
    }
    const delayMax = this.#faulty ? rates.delayMaxMs : 3;
    this.#events.push(this.#now + this.#prng.int(1, delayMax), { kind: "deliver", msg: m });
    if (this.#faulty && this.#prng.chance(rates.duplicate)) {
      this.stats.duplicate++;
      this.#events.push(this.#now + this.#prng.int(1, delayMax), { kind: "deliver", msg: m });
    }
  }

  #deliver(m: Message): void {
    const node = this.#nodes.get(m.to);
    if (node?.raft === undefined) return;
    if (
      this.#partition !== undefined && this.#partition.get(m.from) !== this.#partition.get(m.to)
    ) {
      this.stats.drop++;
      return;
    }
    node.raft.step(m);
    this.#kick(node);
  }

  // ---------------------------------------------------------------------------------------
  // Clients

  #clientStep(client: Client): void {
    if (client.busyUntil > this.#now) return;
    const up = [...this.#nodes.values()].filter((n) => n.raft !== undefined);
    if (up.length === 0) return;
    const leader = this.#leader();
    const key = this.#prng.pick(KEYS);
    client.seq++;
    if (this.#prng.chance(0.5)) {
      const node = leader !== undefined && this.#prng.chance(0.9) ? leader : this.#prng.pick(up);
      const value = `c${client.id}s${client.seq}`;
      try {
        const { index, term } = node.raft!.propose(
          encodeWrite({ client: client.id, seq: client.seq, key, value }),
        );
        node.proposals.set(index, { term, client: client.id, key });
        client.busyUntil = this.#now + CLIENT_TIMEOUT_MS;
      } catch (e) {
        if (!(e instanceof NotLeaderError) && !(e instanceof ProposalDroppedError)) throw e;
      }
      this.#kick(node);
    } else {
      const node = this.#prng.pick(up);
      const context = `c${client.id}r${client.seq}`;
      try {
        node.raft!.readIndex(context);
        node.reads.set(context, { client: client.id, key, start: this.#now });
        client.busyUntil = this.#now + CLIENT_TIMEOUT_MS;
      } catch (e) {
        if (!(e instanceof NotLeaderError) && !(e instanceof ProposalDroppedError)) throw e;
      }
      this.#kick(node);
    }
  }

  /** The up node that leads in the highest term, if any. */
  #leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.#nodes.values()) {
      if (n.raft?.role === "leader" && (best === undefined || n.raft.term > best.raft!.term)) {
        best = n;
      }
    }
    return best;
  }

  // ---------------------------------------------------------------------------------------
  // Chaos (phase one)

  #chaos(): void {
    const r = this.rates;
    const p = this.#prng;
    if (p.chance(r.crash)) this.#crashSomeone();
    if (p.chance(r.pause)) this.#pauseSomeone();
    if (p.chance(r.partition) && this.#partition === undefined) this.#partitionSome();
    if (p.chance(r.snapshot)) this.#snapshotSomeone();
    if (p.chance(r.membership)) this.#changeMembership();
    if (p.chance(r.transfer)) this.#transferLeadership();
    if (p.chance(0.05)) this.#reapRemoved();
  }

  /** An up node; half the time the leader, whose failures are the interesting ones. */
  #victim(): SimNode | undefined {
    const leader = this.#leader();
    if (leader !== undefined && this.#prng.chance(0.5)) return leader;
    const up = [...this.#nodes.values()].filter((n) => n.raft !== undefined);
    return up.length === 0 ? undefined : this.#prng.pick(up);
  }

  #pauseSomeone(): void {
    const node = this.#victim();
    if (node === undefined || node.pausedUntil > this.#now) return;
    node.pausedUntil = this.#now + this.#prng.int(50, 800);
    this.stats.pause++;
  }

  #crashSomeone(): void {
    const node = this.#victim();
    if (node === undefined) return;
    this.#crash(node);
    this.#events.push(this.#now + this.#prng.int(50, 1500), { kind: "restart", id: node.id });
  }

  #crash(node: SimNode): void {
    if (TRACE) console.log(`${this.#now} ${node.id} CRASH`);
    node.raft = undefined;
    node.persisting = undefined; // the write in progress never reached the disk
    for (const p of node.proposals.values()) this.#clients[p.client].busyUntil = 0;
    for (const r of node.reads.values()) this.#clients[r.client].busyUntil = 0;
    node.proposals.clear();
    node.reads.clear();
    node.readyReads = [];
    this.stats.crash++;
  }

  #partitionSome(): void {
    const ids = [...this.#nodes.keys()];
    const groups = new Map<NodeId, number>();
    for (const id of ids) groups.set(id, this.#prng.int(0, 1));
    const leader = this.#leader();
    if (leader !== undefined && this.#prng.chance(0.5)) {
      // Cut the leader off with at most a minority of the others.
      for (const id of ids) groups.set(id, this.#prng.chance(0.25) ? 1 : 0);
      groups.set(leader.id, 1);
    }
    this.#partition = groups;
    this.stats.partition++;
    this.#events.push(this.#now + this.#prng.int(100, 2000), { kind: "heal" });
  }

  #snapshotSomeone(): void {
    const up = [...this.#nodes.values()].filter((n) =>
      n.raft !== undefined && n.sm.applied > n.storage.snapshot().meta.index
    );
    if (up.length === 0) return;
    const node = this.#prng.pick(up);
    node.storage.createSnapshot(node.sm.applied, {
      membership: node.sm.membership,
      data: node.sm.encode(),
    });
    this.stats.compaction++;
  }

  #changeMembership(): void {
    const leader = this.#leader();
    if (leader === undefined) return;
    const m = leader.raft!.membership;
    const options: (() => MembershipChange)[] = [];
    if (this.#nextNodeNumber <= NODES_MAX) {
      options.push(() => ({
        type: "addLearner",
        id: this.#addNode(this.#newId(), new MemoryStorage()).id,
      }));
      if (m.voters.length < VOTERS_MAX) {
        options.push(() => ({
          type: "addVoter",
          id: this.#addNode(this.#newId(), new MemoryStorage()).id,
        }));
      }
    }
    if (m.learners.length > 0 && m.voters.length < VOTERS_MAX) {
      options.push(() => ({ type: "addVoter", id: this.#prng.pick(m.learners) }));
    }
    if (m.learners.length > 0) {
      options.push(() => ({ type: "remove", id: this.#prng.pick(m.learners) }));
    }
    if (m.voters.length > 1) {
      options.push(() => ({ type: "remove", id: this.#prng.pick(m.voters) }));
    }
    if (options.length === 0) return;
    const change = this.#prng.pick(options)();
    try {
      leader.raft!.proposeMembership([change]);
    } catch (e) {
      if (!(e instanceof MembershipChangeError) && !(e instanceof ProposalDroppedError)) throw e;
    }
    this.#kick(leader);
  }

  #transferLeadership(): void {
    const leader = this.#leader();
    if (leader === undefined) return;
    const voters = leader.raft!.membership.voters.filter((id) => id !== leader.id);
    if (voters.length === 0) return;
    const to = this.#prng.pick(voters);
    leader.raft!.transferLeader(to);
    this.#transferTarget = { id: to, term: leader.raft!.term };
    this.#kick(leader);
  }

  /**
   * Stops for good a node whose removal is committed. A node whose addition never committed
   * stays: the addition may still commit from another node's log.
   */
  #reapRemoved(): void {
    const members = this.#latestCommittedConfig.members;
    for (const node of this.#nodes.values()) {
      if (!members.has(node.id) && !node.reaped && this.#everCommittedMember.has(node.id)) {
        if (node.raft !== undefined) this.#crash(node);
        node.reaped = true;
        return;
      }
    }
  }

  // ---------------------------------------------------------------------------------------
  // Phase two: no faults; a leader must commit a new entry on every member.

  #startHealing(): void {
    this.#faulty = false;
    this.#partition = undefined;
    for (const node of this.#nodes.values()) node.pausedUntil = 0;
    for (const node of this.#nodes.values()) {
      if (node.raft === undefined && !node.reaped) {
        this.stats.restart++;
        this.#boot(node);
      }
    }
    this.#events.push(this.#now, { kind: "settle" });
  }

  #settle(): void {
    const leader = this.#leader();
    if (leader === undefined) return;
    if (this.#marker === undefined) {
      try {
        const { index, term } = leader.raft!.propose(new TextEncoder().encode(""));
        this.#marker = { node: leader.id, index, term };
      } catch (e) {
        if (!(e instanceof NotLeaderError) && !(e instanceof ProposalDroppedError)) throw e;
      }
      this.#kick(leader);
      return;
    }
    const st = leader.raft!.status();
    if (isJoint(st.membership) || st.membershipIndex > st.commit) return;
    for (const id of membersOf(st.membership)) {
      const n = this.#nodes.get(id);
      if (n === undefined || n.sm.applied < this.#marker.index) return;
    }
    this.#settled = true;
  }

  #describe(): string {
    return [...this.#nodes.values()].map((n) => {
      if (n.reaped) return `${n.id}:reaped`;
      if (n.raft === undefined) return `${n.id}:down`;
      const s = n.raft.status();
      return `${n.id}:${s.role}/t${s.term}/c${s.commit}/a${n.sm.applied}/v[${s.membership.voters}]` +
        (s.membership.outgoing.length > 0 ? `/o[${s.membership.outgoing}]` : "") +
        (s.membership.learners.length > 0 ? `/l[${s.membership.learners}]` : "") +
        (s.role === "leader"
          ? ` {${s.progress.map((p) => `${p.id}:${p.state}/m${p.match}/n${p.next}`).join(",")}}` +
            `/first${s.firstIndex}`
          : "");
    }).join(" ");
  }
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
    rates: sim.rates,
    stats: sim.stats,
    ...(violation === undefined ? {} : { violation }),
    timeMs: sim.now,
  };
}

/**
 * A small synchronous harness for tests of the Raft core: several nodes in one process, a
 * network that delivers every message in order unless a link is cut, and MemoryStorage as
 * each node's disk. Unlike the simulation it has no randomness of its own: tests script it.
 *
 * @module
 */
import {
  bootstrapStorage,
  type Entry,
  MemoryStorage,
  type Message,
  type NodeId,
  Raft,
  type RaftOptions,
  type ReadState,
} from "../../src/raft/mod.ts";

/** Ready rounds one node may need in one processReady() call. */
const READY_ROUNDS_MAX = 10_000;
/** A deterministic pseudo-random source for `RaftOptions.random` (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One member of a {@linkcode TestCluster}. */
export interface TestNode {
  /** The core. */
  raft: Raft;
  /** Its disk. */
  storage: MemoryStorage;
  /** Every entry it applied, in order. */
  applied: Entry[];
  /** Every read state it received. */
  readStates: ReadState[];
}

/** Options of {@linkcode TestCluster}. */
export interface TestClusterOptions {
  /** Election timeout in ticks (default 10). */
  electionTicks?: number;
  /** Heartbeat interval in ticks (default 1). */
  heartbeatTicks?: number;
  /** Pre-vote (default true). */
  preVote?: boolean;
  /** Check-quorum (default true). */
  checkQuorum?: boolean;
  /** Limits passed to every node. */
  limits?: RaftOptions["limits"];
  /** Seed of the injected randomness (default 1). */
  seed?: number;
}

/** Several Raft nodes wired through a scripted in-memory network. */
export class TestCluster {
  /** The nodes by id. */
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent and not yet delivered, in order. */
  inflight: Message[] = [];
  /** Links that drop messages: "from->to". */
  readonly cut = new Set<string>();
  /** Every message delivered so far (for assertions about traffic). */
  readonly delivered: Message[] = [];
  readonly #options: TestClusterOptions;
  readonly #random: () => number;

  private constructor(options: TestClusterOptions) {
    this.#options = options;
    this.#random = seededRandom(options.seed ?? 1);
  }

  /** Creates a cluster whose founding voters are `ids`. */
  static async create(ids: NodeId[], options: TestClusterOptions = {}): Promise<TestCluster> {
    const c = new TestCluster(options);
    for (const id of ids) {
      const storage = new MemoryStorage();
      await bootstrapStorage(storage, ids);
      c.nodes.set(id, c.#newNode(id, storage));
    }
    return c;
  }

  #newNode(id: NodeId, storage: MemoryStorage): TestNode {
    const raft = new Raft({
      id,
      storage,
      electionTicks: this.#options.electionTicks ?? 10,
      heartbeatTicks: this.#options.heartbeatTicks ?? 1,
      random: this.#random,
      preVote: this.#options.preVote ?? true,
      checkQuorum: this.#options.checkQuorum ?? true,
      limits: this.#options.limits,
      applied: storage.snapshot().meta.index,
    });
    return { raft, storage, applied: [], readStates: [] };
  }

  /** Adds an empty node (to be added as a learner or voter by a membership change). */
  addEmptyNode(id: NodeId): TestNode {
    const node = this.#newNode(id, new MemoryStorage());
    this.nodes.set(id, node);
    return node;
  }

  /** Restarts `id` from its disk: everything not persisted is lost. */
  restart(id: NodeId): TestNode {
    const old = this.node(id);
    const node = this.#newNode(id, old.storage);
    this.nodes.set(id, node);
    return node;
  }

  /** The node `id` (throws when unknown). */
  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** Cuts both directions between `a` and every node in `others`. */
  isolate(a: NodeId, others: NodeId[] = [...this.nodes.keys()]): void {
    for (const b of others) {
      if (a === b) continue;
      this.cut.add(`${a}->${b}`);
      this.cut.add(`${b}->${a}`);
    }
  }

  /** Restores every link. */
  heal(): void {
    this.cut.clear();
  }

  /** Processes every node's Ready: persist, queue messages, apply, advance. */
  processReady(): void {
    for (const node of this.nodes.values()) {
      // A core that always has more Ready (a bug) fails the test instead of hanging it.
      for (let rounds = 0; node.raft.hasReady(); rounds++) {
        if (rounds >= READY_ROUNDS_MAX) {
          throw new Error(`processReady: ${node.raft.id} still has a Ready after ${rounds} rounds`);
        }
        const rd = node.raft.ready();
        node.storage.persist({
          snapshot: rd.snapshot,
          entries: rd.entries,
          hardState: rd.hardState,
        });
        this.inflight.push(...rd.messages, ...rd.messagesAfterPersist);
        node.applied.push(...rd.committedEntries);
        node.readStates.push(...rd.readStates);
        node.raft.advance();
      }
    }
  }

  /** Delivers messages (and the ones they cause) until none is left; returns how many. */
  deliverAll(filter: (m: Message) => boolean = () => true, maxMessages = 100_000): number {
    let count = 0;
    this.processReady();
    while (this.inflight.length > 0) {
      const batch = this.inflight;
      this.inflight = [];
      for (const m of batch) {
        if (this.cut.has(`${m.from}->${m.to}`) || !filter(m)) continue;
        const to = this.nodes.get(m.to);
        if (to === undefined) continue;
        this.delivered.push(m);
        to.raft.step(m);
        if (++count > maxMessages) throw new Error("deliverAll: message storm");
      }
      this.processReady();
    }
    return count;
  }

  /** Ticks `id` n times, processing its Ready and delivering messages after each tick. */
  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) {
      this.node(id).raft.tick();
      this.deliverAll();
    }
  }

  /** Ticks every node n times, delivering messages after each round. */
  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const node of this.nodes.values()) node.raft.tick();
      this.deliverAll();
    }
  }

  /**
   * Runs `rounds` rounds; in each, every node ticks `rates[id]` times (default 1; 0 stops its
   * clock, as for a dead node), then every message is delivered. Models nodes whose clocks
   * run at different speeds.
   */
  tickRounds(rounds: number, rates: Record<NodeId, number>): void {
    for (let i = 0; i < rounds; i++) {
      for (const [id, node] of this.nodes) {
        for (let k = 0; k < (rates[id] ?? 1); k++) node.raft.tick();
      }
      this.deliverAll();
    }
  }

  /** Ticks `id` until it campaigns and delivers the election; returns the leader (or ""). */
  elect(id: NodeId): NodeId {
    const node = this.node(id);
    for (let i = 0; i < 100 && node.raft.role !== "leader"; i++) this.tick(id);
    return this.leader();
  }

  /** The id of a node that is leader in the highest term, or "" when none. */
  leader(): NodeId {
    let best: TestNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.raft.role === "leader" && (best === undefined || n.raft.term > best.raft.term)) {
        best = n;
      }
    }
    return best?.raft.id ?? "";
  }

  /** Proposes `text` at `id` and delivers everything; returns the entry's index. */
  propose(id: NodeId, text: string): number {
    const { index } = this.node(id).raft.propose(new TextEncoder().encode(text));
    this.deliverAll();
    return index;
  }
}

/** The normal, non-empty entries applied by a node, decoded as text. */
export function appliedTexts(node: TestNode): string[] {
  return node.applied
    .filter((e) => e.type === "normal" && e.data.length > 0)
    .map((e) => new TextDecoder().decode(e.data));
}

/** Ticks `id` until `done()`, delivering through `filter`; returns the ticks it took. */
export function tickUntil(
  c: TestCluster,
  id: NodeId,
  done: () => boolean,
  filter: (m: Message) => boolean = () => true,
  max = 500,
): number {
  for (let i = 1; i <= max; i++) {
    c.node(id).raft.tick();
    c.deliverAll(filter);
    if (done()) return i;
  }
  throw new Error(`tickUntil: condition not reached after ${max} ticks of ${id}`);
}

/** Cuts every link between nodes of different groups (both directions). */
export function partition(c: TestCluster, ...groups: NodeId[][]): void {
  for (const g of groups) {
    for (const h of groups) {
      if (g === h) continue;
      for (const a of g) for (const b of h) c.cut.add(`${a}->${b}`);
    }
  }
}

/** Processes every Ready and takes the messages the nodes sent (undelivered). */
export function outbox(c: TestCluster): Message[] {
  c.processReady();
  return c.inflight.splice(0);
}

/** An AppendEntries message, for tests that step messages by hand. */
export function append(
  from: NodeId,
  to: NodeId,
  term: number,
  index: number,
  logTerm: number,
  entries: Entry[] = [],
  commit = 0,
): Message {
  return { type: "app", from, to, term, index, logTerm, entries, commit };
}

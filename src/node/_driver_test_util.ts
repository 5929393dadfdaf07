/** A test cluster of RaftNodes in one process: in-memory transport, manual clock, real Deno.Kv. */
import type { Message, NodeId } from "../raft/mod.ts";
import { KvLogStorage, type MemberAddress } from "../storage/mod.ts";
import { type DriverLimits, type PeerSender, RaftNode, type TickSource } from "./driver.ts";
import type { WatchHub } from "./_watch_hub.ts";

/** Waits until `cond()` holds, polling; fails after `timeoutMs`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Holds a node's persists until released, as a slow disk would. */
export class PersistGate {
  #held = false;
  #waiting: (() => void)[] = [];
  /** Persists that started while held. */
  blocked = 0;

  /** Makes every later persist wait. */
  hold(): void {
    this.#held = true;
  }

  /** Lets every waiting and later persist go. */
  release(): void {
    this.#held = false;
    for (const go of this.#waiting.splice(0)) go();
  }

  /** Resolves when the persist may run. */
  pass(): Promise<void> {
    if (!this.#held) return Promise.resolve();
    this.blocked++;
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
}

/**
 * Makes a node's Deno.Kv commits fail on demand, as a full or failing disk does: every commit
 * the storage makes (persists, snapshots, deletions) throws `error` until {@linkcode clear}.
 */
export class DiskFault {
  #error: Error | undefined;
  /** Commits refused so far. */
  refused = 0;

  /** Every later commit throws `error` (default: what Deno.Kv throws on a full disk). */
  fail(error: Error = new TypeError("database or disk is full")): void {
    this.#error = error;
  }

  /** Commits go through again. */
  clear(): void {
    this.#error = undefined;
  }

  /** The storage's beforeCommit hook. */
  check(): void {
    if (this.#error === undefined) return;
    this.refused++;
    throw this.#error;
  }
}

class ManualTicks implements TickSource {
  fns = new Set<() => void>();
  every(_ms: number, fn: () => void): () => void {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }
}

/** Several RaftNodes wired through an in-memory network whose links can be cut. */
export class DriverCluster {
  readonly nodes = new Map<NodeId, RaftNode>();
  readonly kvs = new Map<NodeId, Deno.Kv>();
  readonly ticks = new Map<NodeId, ManualTicks>();
  readonly down = new Set<NodeId>();
  readonly storages = new Map<NodeId, KvLogStorage>();
  readonly gates = new Map<NodeId, PersistGate>();
  /** Per node, its disk faults (kept across restarts, like the disk). */
  readonly faults = new Map<NodeId, DiskFault>();
  /** Per node, everything it logged (message and fields). */
  readonly logs = new Map<NodeId, { level: string; message: string }[]>();
  /** The peer addresses each node last gave its transport. */
  readonly peers = new Map<NodeId, ReadonlyMap<NodeId, string>>();
  /** The error each node stopped on (its onFatal), if it did. */
  readonly fatal = new Map<NodeId, unknown>();
  /** Every message sent, in order, with the sender's last durable log index at the time. */
  readonly sent: { m: Message; senderDurable: number }[] = [];
  readonly dir: string;
  readonly addresses: Map<NodeId, MemberAddress>;
  readonly founders: NodeId[];
  readonly limits: Partial<DriverLimits>;
  /** The nodes' clock (`now`), in ms: moved only by the test. */
  readonly clock = { ms: 0 };
  /** The nodes' wall clock (`wall`: versionstamps, expiry), in ms since 1970: moved by the test. */
  readonly wall = { ms: Date.UTC(2026, 0, 1) };

  private constructor(dir: string, founders: NodeId[], limits: Partial<DriverLimits>) {
    this.dir = dir;
    this.founders = founders;
    this.limits = limits;
    this.addresses = new Map();
  }

  /** Creates and starts the founders. */
  static async create(
    founders: NodeId[],
    limits: Partial<DriverLimits> = {},
  ): Promise<DriverCluster> {
    const c = new DriverCluster(
      await Deno.makeTempDir({ prefix: "koi-driver-" }),
      founders,
      limits,
    );
    for (const id of founders) c.addresses.set(id, { raft: `mem:${id}`, http: `http-${id}` });
    for (const id of founders) await c.start(id);
    return c;
  }

  /** Starts (or restarts) a node from its Deno.Kv file (its changes fed to `watch`, if given). */
  async start(id: NodeId, options: { join?: boolean; watch?: WatchHub } = {}): Promise<RaftNode> {
    if (!this.addresses.has(id)) this.addresses.set(id, { raft: `mem:${id}`, http: `http-${id}` });
    const kv = await Deno.openKv(`${this.dir}/${id}.kv`);
    this.kvs.set(id, kv);
    const ticks = new ManualTicks();
    this.ticks.set(id, ticks);
    this.down.delete(id);
    const transport: PeerSender = {
      send: (messages: readonly Message[]) => {
        for (const m of messages) {
          this.sent.push({ m, senderDurable: this.storages.get(m.from)?.lastIndex() ?? 0 });
          queueMicrotask(() => {
            if (this.down.has(m.from) || this.down.has(m.to)) return;
            this.nodes.get(m.to)?.step(m);
          });
        }
      },
      setPeers: (peers) => this.peers.set(id, new Map(peers)),
    };
    const fault = this.faults.get(id) ?? new DiskFault();
    this.faults.set(id, fault);
    const storage = await KvLogStorage.open(kv, { beforeCommit: () => fault.check() });
    const gate = new PersistGate();
    const persist = storage.persist.bind(storage);
    storage.persist = async (batch) => {
      await gate.pass();
      try {
        return await persist(batch);
      } finally {
        if (gate.blocked > 0) gate.blocked--;
      }
    };
    this.storages.set(id, storage);
    this.gates.set(id, gate);
    const node = await RaftNode.start({
      nodeId: id,
      clusterId: "a",
      storage,
      founders: new Map(this.founders.map((f) => [f, this.addresses.get(f)!])),
      join: options.join ?? false,
      knownAddresses: this.addresses,
      tickMs: 10,
      heartbeatTicks: 1,
      electionTicks: [10, 20],
      transport,
      owner: () => "a", // the test cluster owns every key
      epoch: 1,
      ticks,
      now: () => this.clock.ms,
      wall: () => this.wall.ms,
      limits: this.limits,
      ...(options.watch === undefined ? {} : {
        stateMachine: { onApplied: (a) => options.watch!.applied(a) },
        onStateLoaded: (rev) => options.watch!.reset(rev),
      }),
      onFatal: (error) => this.fatal.set(id, error),
      log: (level, message) => {
        const logged = this.logs.get(id) ?? [];
        logged.push({ level, message });
        this.logs.set(id, logged);
      },
    });
    this.nodes.set(id, node);
    return node;
  }

  /** Stops a node as a crash would: its Deno.Kv file keeps what was committed. */
  async stop(id: NodeId): Promise<void> {
    this.down.add(id);
    await this.nodes.get(id)?.close();
    this.nodes.delete(id);
    this.kvs.get(id)?.close();
    this.kvs.delete(id);
  }

  /** Ticks every running node once and lets the microtasks run. */
  async tick(rounds = 1): Promise<void> {
    for (let i = 0; i < rounds; i++) {
      for (const [id, t] of this.ticks) if (!this.down.has(id)) { for (const fn of t.fns) fn(); }
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Ticks until some node leads; returns it. */
  async leader(): Promise<RaftNode> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      for (const n of this.nodes.values()) if (n.status().role === "leader") return n;
      if (Date.now() > deadline) throw new Error("no leader emerged");
      await this.tick();
    }
  }

  /** Keeps ticking in the background until the returned function is called. */
  autoTick(): () => void {
    let on = true;
    (async () => {
      while (on) await this.tick();
    })();
    return () => {
      on = false;
    };
  }

  /** Stops everything and removes the files. */
  async close(): Promise<void> {
    for (const id of [...this.nodes.keys()]) await this.stop(id);
    await Deno.remove(this.dir, { recursive: true });
  }
}

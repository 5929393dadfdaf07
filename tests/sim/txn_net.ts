/**
 * The multi-cluster mode's network between clients (the coordinators) and the clusters'
 * nodes: requests to a node picked from a leader hint, delays, drops, timeouts, and the
 * nodes' side: proposals (with the versionstamp the leader picks), ReadIndex reads and the
 * snapshot-read checks, answered by the node that took them.
 *
 * @module
 */
import {
  type Entry,
  type NodeId,
  NotLeaderError,
  ProposalDroppedError,
} from "../../src/raft/mod.ts";
import {
  type KeySpan,
  type ReadRange,
  serveSnapshotCheck,
  serveSnapshotRead,
  type SnapshotCheck,
  type SnapshotPart,
  type TxnCommand,
} from "../../src/txn/mod.ts";
import type { SimNode } from "./node.ts";
import type { Simulation } from "./simulation.ts";
import {
  type Account,
  type Bank,
  type BankAnswer,
  type BankMutation,
  encodeBankEntry,
  type PlainCommand,
  VS_PER_MS,
} from "./txn_bank.ts";

/** What a client asks of a cluster. */
export type NetRequest =
  | { readonly kind: "cmd"; readonly cmd: TxnCommand<BankMutation> | PlainCommand }
  | { readonly kind: "read"; readonly ranges: readonly ReadRange[] }
  | { readonly kind: "check"; readonly spans: readonly KeySpan[]; readonly since: number };

/** What comes back (`failed`: no answer in time, or the node could not serve it). */
export type NetReply =
  | { readonly kind: "answer"; readonly answer: BankAnswer }
  | { readonly kind: "part"; readonly part: SnapshotPart<Account> }
  | { readonly kind: "checked"; readonly check: SnapshotCheck }
  | { readonly kind: "failed" };

/** A client gives up waiting for one answer after this long. */
export const REQUEST_TIMEOUT_MS = 400;

interface InFlight {
  readonly id: number;
  readonly cluster: string;
  readonly request: NetRequest;
  readonly onReply: (reply: NetReply) => void;
  done: boolean;
}

/** What the network needs of the world it runs in. */
export interface NetWorld {
  /** Simulated now. */
  readonly now: number;
  /** Whether faults are on. */
  readonly faulty: boolean;
  /** Chance. */
  chance(p: number): boolean;
  /** A uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number;
  /** Runs `fn` at `time` (in the world's queue). */
  at(time: number, fn: () => void): void;
  /** The cluster `id`. */
  cluster(id: string): Simulation;
  /** Every account key (what a range read can find). */
  readonly keys: readonly Uint8Array[];
  /** Whether the client's link to a cluster is cut now. */
  cut(client: number, cluster: string): boolean;
}

/** The network of one run. */
export class TxnNet {
  readonly #world: NetWorld;
  readonly #hints = new Map<string, NodeId>();
  readonly #proposed = new Map<string, { flight: InFlight; term: number }>();
  readonly #reads = new Map<string, { flight: InFlight; inc: number }>();
  readonly #vsLast = new Map<string, number>();
  #nextId = 1;
  /** Requests sent, answers lost to drops or cuts, proposals refused as stale. */
  readonly counts = { sent: 0, lost: 0, stale: 0, notLeader: 0 };

  /** The network of `world`. */
  constructor(world: NetWorld) {
    this.#world = world;
  }

  /** Sends `request` from `client` to `cluster`; `onReply` is called exactly once. */
  send(client: number, cluster: string, request: NetRequest, onReply: (r: NetReply) => void): void {
    const w = this.#world;
    const flight: InFlight = { id: this.#nextId++, cluster, request, onReply, done: false };
    this.counts.sent++;
    w.at(w.now + REQUEST_TIMEOUT_MS, () => {
      if (!flight.done) this.#hints.delete(cluster); // the hint may name a node that left
      this.#finish(flight, { kind: "failed" });
    });
    this.#deliver(client, flight, 0);
  }

  #deliver(client: number, flight: InFlight, hops: number): void {
    const w = this.#world;
    const sim = w.cluster(flight.cluster);
    const nodes = [...sim.nodes.values()].filter((n) => !n.reaped);
    const hinted = sim.nodes.get(this.#hints.get(flight.cluster) ?? "");
    const node = hinted !== undefined && w.chance(0.9) ? hinted : nodes[w.int(0, nodes.length - 1)];
    if (node === undefined) return;
    if (w.cut(client, flight.cluster) || (w.faulty && w.chance(0.03))) {
      this.counts.lost++;
      return;
    }
    w.at(w.now + w.int(1, w.faulty ? 15 : 3), () => this.#arrive(client, flight, node, hops));
  }

  #arrive(client: number, flight: InFlight, node: SimNode, hops: number): void {
    if (flight.done) return;
    const w = this.#world;
    const sim = w.cluster(flight.cluster);
    sim.advanceTo(w.now);
    if (node.raft === undefined) return; // down: the client times out
    if (node.pausedUntil > w.now) {
      w.at(node.pausedUntil, () => this.#arrive(client, flight, node, hops));
      return;
    }
    const r = flight.request;
    if (r.kind === "cmd") {
      try {
        this.#propose(flight, node, sim);
      } catch (e) {
        if (!(e instanceof NotLeaderError) && !(e instanceof ProposalDroppedError)) throw e;
        this.counts.notLeader++;
        if (e instanceof NotLeaderError && e.leader !== "") {
          this.#hints.set(flight.cluster, e.leader);
        } else this.#hints.delete(flight.cluster);
        if (hops < 3) {
          w.at(w.now + w.int(5, 20), () => this.#deliver(client, flight, hops + 1));
        }
      }
      return;
    }
    const context = `x${flight.id}`;
    try {
      node.raft.readIndex(context);
    } catch (e) {
      if (!(e instanceof NotLeaderError)) throw e;
      this.counts.notLeader++;
      if (e.leader !== "") this.#hints.set(flight.cluster, e.leader);
      if (hops < 3) w.at(w.now + w.int(5, 20), () => this.#deliver(client, flight, hops + 1));
      return;
    }
    this.#reads.set(context, { flight, inc: node.inc });
    const lead = node.raft.leader;
    if (lead !== "") this.#hints.set(flight.cluster, lead);
    sim.kick(node);
  }

  #propose(flight: InFlight, node: SimNode, sim: Simulation): void {
    const raft = node.raft!;
    if (raft.role !== "leader") throw new NotLeaderError(node.id, raft.leader);
    const cmd = (flight.request as Extract<NetRequest, { kind: "cmd" }>).cmd;
    const clockKey = `${flight.cluster}/${node.id}/${node.inc}`;
    const bank = node.sm.ext as Bank;
    const after = cmd.type === "commit" ? cmd.after ?? 0 : 0;
    const at = Math.max(
      this.#world.now * VS_PER_MS,
      (this.#vsLast.get(clockKey) ?? 0) + 1,
      bank.lastVs + 1,
      after + 1,
    );
    const raised = cmd.type === "commit" && cmd.vs !== undefined ? Math.max(at, cmd.vs) : at;
    this.#vsLast.set(clockKey, raised);
    const { index, term } = raft.propose(encodeBankEntry(at, cmd));
    this.#proposed.set(`${flight.cluster}/${node.id}/${node.inc}/${index}`, { flight, term });
    this.#hints.set(flight.cluster, node.id);
    sim.kick(node);
  }

  /** Cluster `cluster`'s node applied an extension entry: answer its proposer. */
  onApplied(cluster: string, node: SimNode, e: Entry, answer: unknown): void {
    const key = `${cluster}/${node.id}/${node.inc}/${e.index}`;
    const p = this.#proposed.get(key);
    if (p === undefined) return;
    this.#proposed.delete(key);
    if (p.term !== e.term) return; // another leader's entry took the index: time out
    const a = answer as BankAnswer;
    if ("stale" in a) {
      this.counts.stale++;
      return; // the client times out and sends again
    }
    this.#reply(p.flight, { kind: "answer", answer: a });
  }

  /** Serves the ReadStates of `node` that are this network's and applied. */
  serveReads(cluster: string, node: SimNode): void {
    const keep: { context: string; index: number }[] = [];
    for (const rs of node.readyReads) {
      const r = this.#reads.get(rs.context);
      if (r === undefined) {
        keep.push(rs);
        continue;
      }
      if (rs.index > node.sm.applied) {
        keep.push(rs);
        continue;
      }
      this.#reads.delete(rs.context);
      if (r.inc !== node.inc) continue;
      const bank = node.sm.ext as Bank;
      const req = r.flight.request;
      if (req.kind === "read") {
        const part = serveSnapshotRead(
          req.ranges,
          node.sm.applied,
          bank.txn,
          (range) => bank.read(range, this.#world.keys),
        );
        this.#reply(r.flight, { kind: "part", part });
      } else if (req.kind === "check") {
        const check = serveSnapshotCheck(req.spans, req.since, bank.txn, bank.touched);
        this.#reply(r.flight, { kind: "checked", check });
      }
    }
    node.readyReads = keep;
    void cluster;
  }

  #reply(flight: InFlight, reply: NetReply): void {
    const w = this.#world;
    if (flight.done) return;
    if (w.faulty && w.chance(0.03)) {
      this.counts.lost++;
      return;
    }
    w.at(w.now + w.int(1, w.faulty ? 15 : 3), () => this.#finish(flight, reply));
  }

  #finish(flight: InFlight, reply: NetReply): void {
    if (flight.done) return;
    flight.done = true;
    flight.onReply(reply);
  }
}

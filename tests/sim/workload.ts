/**
 * The clients: each issues one write or linearizable read at a time, to the leader it knows
 * (possibly a deposed one, as a real client with a cached leader would), to the current
 * leader, or to any node. Writes are acknowledged when applied with the term they were
 * proposed in; reads are checked against every write acknowledged before they began.
 *
 * @module
 */
import { type Entry, NONE, NotLeaderError, ProposalDroppedError } from "../../src/raft/mod.ts";
import type { NodeId } from "../../src/raft/mod.ts";
import type { SimNode } from "./node.ts";
import type { Simulation } from "./simulation.ts";
import { encodeWrite, type WriteCommand } from "./state_machine.ts";

/** Keys the clients write and read (few, so reads race writes). */
const KEYS = ["k0", "k1", "k2", "k3", "k4"];
/** A client gives up on a request after this long (its outcome stays unknown). */
const CLIENT_TIMEOUT_MS = 2_000;

interface Client {
  readonly id: number;
  seq: number;
  busyUntil: number;
  /** The leader this client last succeeded with. */
  hint: NodeId;
}

/** The simulated clients of one run. */
export class Workload {
  readonly #sim: Simulation;
  readonly #clients: Client[] = [];

  /** Creates the workload of `sim`; {@linkcode start} adds the clients. */
  constructor(sim: Simulation) {
    this.#sim = sim;
  }

  /** Adds `count` clients, each starting within 50 ms. */
  start(count: number): void {
    for (let c = 0; c < count; c++) {
      this.#clients.push({ id: c, seq: 0, busyUntil: 0, hint: NONE });
      this.#sim.schedule(this.#sim.prng.int(0, 50), { kind: "client", client: c });
    }
  }

  /** One client's turn: issue a request unless it waits for one; `retry` turns are extra. */
  step(clientId: number, retry = false): void {
    const sim = this.#sim;
    const client = this.#clients[clientId];
    if (!retry) sim.schedule(sim.now + sim.prng.int(5, 40), { kind: "client", client: clientId });
    if (client.busyUntil > sim.now) return;
    const node = this.#target(client);
    if (node === undefined) return;
    client.seq++;
    const key = sim.prng.pick(KEYS);
    try {
      if (sim.prng.chance(sim.config.rates.readShare)) this.#read(client, node, key);
      else this.#write(client, node, key);
      client.busyUntil = sim.now + CLIENT_TIMEOUT_MS;
    } catch (e) {
      if (e instanceof NotLeaderError) client.hint = e.leader;
      else if (!(e instanceof ProposalDroppedError)) throw e;
    }
    sim.kick(node);
  }

  /** The node a client asks: the leader it knew, the current leader, or any up node. */
  #target(client: Client): SimNode | undefined {
    const sim = this.#sim;
    const hinted = sim.nodes.get(client.hint);
    if (hinted?.raft !== undefined && sim.prng.chance(sim.config.rates.staleLeaderHint)) {
      return hinted;
    }
    const leader = sim.leader();
    if (leader !== undefined && sim.prng.chance(0.8)) return leader;
    const up = sim.upNodes();
    return up.length === 0 ? undefined : sim.prng.pick(up);
  }

  #write(client: Client, node: SimNode, key: string): void {
    const raft = node.raft!;
    const w: WriteCommand = { client: client.id, seq: client.seq, key, value: `s${client.seq}` };
    const { index, term } = raft.propose(encodeWrite(w));
    node.proposals.set(index, { term, client: client.id, key });
    client.hint = node.id;
  }

  #read(client: Client, node: SimNode, key: string): void {
    const raft = node.raft!;
    const context = `c${client.id}r${client.seq}`;
    raft.readIndex(context);
    const leading = raft.role === "leader";
    node.reads.set(context, {
      client: client.id,
      key,
      start: this.#sim.now,
      leaderTerm: leading || raft.leader !== NONE ? raft.term : undefined,
      beforeTermCommit: leading && raft.status().commit < node.termFirstIndex,
    });
    if (leading) client.hint = node.id;
  }

  /** A new leader: clients waiting for one retry at once, as real clients do. */
  onElected(node: SimNode): void {
    const sim = this.#sim;
    for (const c of this.#clients) {
      if (c.busyUntil > sim.now || !sim.prng.chance(0.5)) continue;
      c.hint = node.id;
      sim.schedule(sim.now + sim.prng.int(0, 3), { kind: "client", client: c.id, retry: true });
    }
  }

  /** Node `node` applied `e`; `write` is the command it carried, if any. */
  onApplied(node: SimNode, e: Entry, write: WriteCommand | undefined): void {
    const p = node.proposals.get(e.index);
    if (p === undefined) return;
    node.proposals.delete(e.index);
    this.#clients[p.client].busyUntil = 0;
    if (p.term === e.term && write !== undefined) {
      this.#sim.checker.onWriteAcked(p.key, e.index, this.#sim.now);
      this.#sim.stats.writeAcked++;
    }
  }

  /** Serves every ReadState whose index the node applied; checks each answer. */
  serveReads(node: SimNode): void {
    const sim = this.#sim;
    const waiting: { context: string; index: number }[] = [];
    for (const rs of node.readyReads) {
      if (rs.index > node.sm.applied) {
        waiting.push(rs);
        continue;
      }
      const r = node.reads.get(rs.context);
      if (r === undefined) continue;
      node.reads.delete(rs.context);
      sim.checker.onRead(node.id, r.key, node.sm.kv.get(r.key)?.rev ?? 0, r.start);
      sim.stats.readChecked++;
      if (r.leaderTerm !== undefined && sim.checker.highestLeaderTerm > r.leaderTerm) {
        sim.stats.deposedLeaderRead++;
      }
      if (r.beforeTermCommit) sim.stats.readBeforeTermCommit++;
      this.#clients[r.client].busyUntil = 0;
    }
    node.readyReads = waiting;
  }

  /** The node crashed: its clients stop waiting. */
  release(node: SimNode): void {
    for (const p of node.proposals.values()) this.#clients[p.client].busyUntil = 0;
    for (const r of node.reads.values()) this.#clients[r.client].busyUntil = 0;
  }
}

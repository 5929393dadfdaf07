/**
 * The deterministic simulation's multi-cluster mode: several Raft clusters (each the
 * single-cluster simulation, with its own faults: crashes, partitions, pauses, disk faults,
 * membership changes), a bank whose accounts are spread over them, and clients that move
 * money with cross-cluster transactions and audit it with snapshot reads over every cluster,
 * through a network of their own that drops, delays and cuts, and that crash mid-transaction.
 * Phase one runs the faults; phase two stops them, lets the clients finish, and requires a
 * final audit to succeed (every lock resolved). Then the history must be strictly
 * serializable (tests/sim/txn_checker.ts). One seeded PRNG drives everything.
 *
 * @module
 */
import { CHAOS_MS } from "./faults.ts";
import { EventQueue } from "./event_queue.ts";
import { Prng } from "./prng.ts";
import { SimViolation } from "./checker.ts";
import { type SimConfig, Simulation } from "./simulation.ts";
import { hashString } from "./state_machine.ts";
import { Bank } from "./txn_bank.ts";
import { checkBankHistory, type ReadOp, type WriteOp } from "./txn_checker.ts";
import { BankClient, type ClientWorld } from "./txn_clients.ts";
import { type NetWorld, TxnNet } from "./txn_net.ts";

/** What one multi-cluster seed draws. */
export interface TxnSimConfig {
  /** Clusters. */
  readonly clusters: number;
  /** Accounts. */
  readonly accounts: number;
  /** Bank clients. */
  readonly clients: number;
  /** Per chaos round: a client crashes. */
  readonly clientCrash: number;
  /** Per chaos round: a client's link to a cluster is cut for a while. */
  readonly clientCut: number;
}

/** The outcome of one multi-cluster seed. */
export interface TxnSimResult {
  /** The seed. */
  readonly seed: number;
  /** What it drew. */
  readonly config: TxnSimConfig;
  /** What happened. */
  readonly counts: Readonly<Record<string, number>>;
  /** The violated property, if any. */
  readonly violation?: string;
  /** Simulated ms it ran. */
  readonly timeMs: number;
}

/** The rates the multi-cluster mode scales down (per chaos round, per message, per event). */
const SCALED_RATES = new Set([
  "drop",
  "duplicate",
  "crash",
  "partition",
  "membership",
  "transfer",
  "pause",
  "leaderKill",
  "crashInPersist",
  "crashAfterPersist",
  "crashAfterVote",
  "isolateAfterAppend",
  "isolateAfterCommit",
]);

/** `config` with its fault rates per chaos round and per event scaled by `share`. */
function calmed(config: SimConfig, share: number): SimConfig {
  const r = config.rates;
  return {
    ...config,
    clients: Math.min(config.clients, 2),
    rates: Object.fromEntries(
      Object.entries(r).map(([k, v]) => [k, SCALED_RATES.has(k) ? (v as number) * share : v]),
    ) as unknown as SimConfig["rates"],
  };
}

/** One multi-cluster run. */
export class TxnSimulation implements NetWorld, ClientWorld {
  readonly prng: Prng;
  readonly config: TxnSimConfig;
  readonly clusters: readonly string[];
  readonly keys: readonly Uint8Array[];
  readonly net: TxnNet;
  readonly writes: WriteOp[] = [];
  readonly reads: ReadOp[] = [];
  readonly counts: Record<string, number> = {
    clientCrash: 0,
    clientCut: 0,
    audit: 0,
    plain: 0,
    cross: 0,
    crossCommitted: 0,
    crossUnknown: 0,
    lockWait: 0,
    resolve: 0,
    resolvedForward: 0,
    resolvedAbort: 0,
    readContended: 0,
    readFenced: 0,
    readGaveUp: 0,
    transferGaveUp: 0,
  };
  readonly #sims = new Map<string, Simulation>();
  readonly #owner = new Map<string, string>();
  readonly #events = new EventQueue<() => void>();
  readonly #clients: BankClient[] = [];
  readonly #cuts = new Map<string, number>();
  #now = 0;
  #faulty = true;

  /** Draws the seed's configuration and builds the clusters. */
  constructor(seed: number) {
    this.prng = new Prng(seed ^ 0x5eed7a11);
    const p = this.prng;
    this.config = {
      clusters: p.int(2, 4),
      accounts: p.int(3, 8),
      clients: p.int(2, 5),
      clientCrash: p.chance(0.2) ? 0 : p.next() * 0.05,
      clientCut: p.chance(0.3) ? 0 : p.next() * 0.05,
    };
    this.clusters = Array.from({ length: this.config.clusters }, (_, i) => `c${i}`);
    const enc = new TextEncoder();
    this.keys = Array.from({ length: this.config.accounts }, (_, i) => enc.encode(`acct/${i}`));
    // Rendezvous hashing, as CARP does: each account goes to the cluster scoring highest.
    for (const k of this.keys) {
      const name = new TextDecoder().decode(k);
      let best = this.clusters[0];
      let bestScore = -1;
      for (const c of this.clusters) {
        const score = new Prng(hashString(`${name}|${seed}|${c}`)).next();
        if (score > bestScore) [best, bestScore] = [c, score];
      }
      this.#owner.set(name, best);
    }
    this.net = new TxnNet(this);
    // Each cluster keeps every kind of fault, at a share of the single-cluster rates: with
    // several clusters, all of a transaction's participants must be up at once.
    const calm = 0.05 + p.next() * 0.45;
    for (const c of this.clusters) {
      const sim = new Simulation(p.int(1, 2 ** 31), {
        clusterId: c,
        extension: (state, applied) => new Bank(c, (k) => this.owner(k) === c, state, applied),
        onApplied: (node, e, answer) => this.net.onApplied(c, node, e, answer),
        serveReads: (node) => this.net.serveReads(c, node),
        onCrash: () => {},
        tune: (config) => calmed(config, calm),
      });
      this.#sims.set(c, sim);
    }
  }

  get now(): number {
    return this.#now;
  }

  get faulty(): boolean {
    return this.#faulty;
  }

  chance(p: number): boolean {
    return this.prng.chance(p);
  }

  int(lo: number, hi: number): number {
    return this.prng.int(lo, hi);
  }

  at(time: number, fn: () => void): void {
    this.#events.push(Math.max(time, this.#now), fn);
  }

  cluster(id: string): Simulation {
    return this.#sims.get(id)!;
  }

  owner(key: Uint8Array): string {
    return this.#owner.get(new TextDecoder().decode(key))!;
  }

  cut(client: number, cluster: string): boolean {
    return (this.#cuts.get(`${client}/${cluster}`) ?? 0) > this.#now;
  }

  /** Runs phase one for `faultMs`, then phase two within `healBudgetMs`; throws on a violation. */
  async run(faultMs: number, healBudgetMs: number): Promise<void> {
    for (const sim of this.#sims.values()) await sim.start();
    for (let i = 0; i < this.config.clients; i++) {
      const c = new BankClient(this, i);
      this.#clients.push(c);
      this.at(this.int(0, 50), () => c.next());
    }
    this.at(CHAOS_MS, () => this.#chaos());
    const deadline = faultMs + healBudgetMs;
    let healed = false;
    let finalAudit = "none" as "none" | "running" | "done";
    for (;;) {
      // The earliest event of any cluster or of the clients' world runs next.
      let next: Simulation | undefined;
      let t = this.#events.peekTime();
      for (const sim of this.#sims.values()) {
        const st = sim.nextTime();
        if (st !== undefined && (t === undefined || st < t)) [t, next] = [st, sim];
      }
      if (t === undefined) throw new SimViolation("liveness: nothing left to happen");
      this.#now = Math.max(this.#now, t);
      if (!healed && this.#now >= faultMs) {
        healed = true;
        this.#faulty = false;
        this.#cuts.clear();
        for (const sim of this.#sims.values()) {
          sim.advanceTo(this.#now);
          sim.heal();
        }
        for (const c of this.#clients) c.stopping = true;
      }
      if (this.#now > deadline) {
        const stuck = [...this.#sims].filter(([, s]) => !s.settled)
          .map(([id, s]) => `${id}: ${s.describeProgress()}`);
        throw new SimViolation(
          `liveness: ${healBudgetMs} ms after the faults stopped: ` +
            (stuck.length > 0
              ? stuck.join("; ")
              : `final audit ${finalAudit}, clients busy: ${
                this.#clients.filter((c) => c.busy).length
              }`),
        );
      }
      if (next !== undefined) next.step();
      else this.#events.pop()!.item();
      if (
        healed && finalAudit === "none" && this.#clients.every((c) => !c.busy) &&
        [...this.#sims.values()].every((s) => s.settled)
      ) {
        finalAudit = "running";
        const auditor = new BankClient(this, this.config.clients);
        const tryAudit = () =>
          auditor.audit((seen) => {
            if (seen === undefined) return this.at(this.#now + 50, tryAudit);
            finalAudit = "done";
          });
        tryAudit();
      }
      if (finalAudit === "done") break;
    }
    checkBankHistory(this.writes, this.reads);
  }

  #chaos(): void {
    if (!this.#faulty) return;
    const p = this.prng;
    for (const c of this.#clients) {
      if (p.chance(this.config.clientCrash)) c.crash(p.int(10, 400));
    }
    if (p.chance(this.config.clientCut)) {
      const client = p.int(0, this.config.clients - 1);
      const cluster = p.pick(this.clusters);
      this.#cuts.set(`${client}/${cluster}`, this.#now + p.int(50, 1500));
      this.counts.clientCut++;
    }
    this.at(this.#now + CHAOS_MS, () => this.#chaos());
  }
}

/** Runs one multi-cluster seed; a violation is returned, never thrown. */
export async function runTxnSimulation(
  seed: number,
  options: { faultMs?: number; healBudgetMs?: number } = {},
): Promise<TxnSimResult> {
  const sim = new TxnSimulation(seed);
  let violation: string | undefined;
  try {
    await sim.run(options.faultMs ?? 4_000, options.healBudgetMs ?? 15_000);
  } catch (e) {
    if (!(e instanceof Error)) throw e;
    violation = `${e.name}: ${e.message}`;
    if (!(e instanceof SimViolation)) violation += `\n${e.stack}`;
  }
  const counts: Record<string, number> = { ...sim.counts, ...sim.net.counts };
  counts.committed = sim.writes.filter((w) => w.status === "committed").length;
  counts.reads = sim.reads.length;
  return {
    seed,
    config: sim.config,
    counts,
    ...(violation === undefined ? {} : { violation }),
    timeMs: sim.now,
  };
}

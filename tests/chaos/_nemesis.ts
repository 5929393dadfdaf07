/**
 * The chaos test's nemesis: one fault at a time against one cluster's real processes, held
 * for a while and then undone: kill -9 and restart (the leader, a follower, or every node of
 * the cluster), SIGSTOP for longer than an election timeout, and, when the nodes run in
 * network namespaces, partitions: the leader or a node isolated, a bridge (two nodes that
 * cannot talk, both reaching the third), a one-way cut from the leader; and a reshard (a load
 * factor changed with `koi admin reshard`, keys moving between the clusters while the other
 * faults go on before and after it).
 *
 * @module
 */
import type { Prng } from "../sim/prng.ts";
import type { ChaosDeployment } from "./_deployment.ts";

/** The partitions the nemesis needs (NetLab in tests/chaos/_netns.ts provides them). */
export interface PartitionNetwork {
  /** `id` and every other node lose each other. */
  isolate(id: string): Promise<void>;
  /** `a` and `b` lose each other (both directions). */
  cut(a: string, b: string): Promise<void>;
  /** Packets from `from` to `to` are lost. */
  cutOneWay(from: string, to: string): Promise<void>;
  /** Every cut is undone. */
  heal(): Promise<void>;
}

/** The kinds of fault, as counted in the report. */
export const FAULT_KINDS = [
  "kill-leader",
  "kill-follower",
  "kill-cluster",
  "pause-leader",
  "pause-follower",
  "isolate-leader",
  "isolate-node",
  "bridge",
  "one-way",
  "reshard",
] as const;

/** One kind of fault. */
export type FaultKind = typeof FAULT_KINDS[number];

/** Options of {@linkcode runNemesis}. */
export interface NemesisOptions {
  readonly deployment: ChaosDeployment;
  /** Partitions, or undefined when the nodes share the host's network (then none). */
  readonly network: PartitionNetwork | undefined;
  readonly prng: Prng;
  readonly signal: AbortSignal;
  /** How long a fault lasts, in milliseconds ([min, max]). */
  readonly faultMs: readonly [number, number];
  /** The calm between faults, in milliseconds ([min, max]). */
  readonly calmMs: readonly [number, number];
  /** Each fault as it starts (for the run's log). */
  readonly log?: (line: string) => void;
  /** The kinds to draw from (default: all; partitions only with a network). */
  readonly kinds?: readonly FaultKind[];
}

/** Injects faults until the signal aborts, then undoes the last; the count of each kind. */
export async function runNemesis(options: NemesisOptions): Promise<Map<FaultKind, number>> {
  const { deployment: d, prng, signal, network } = options;
  const counts = new Map<FaultKind, number>();
  const kinds = (options.kinds ?? FAULT_KINDS).filter((k) =>
    network !== undefined || !isPartition(k)
  );
  const clusters = Object.keys(d.clusters);
  while (!signal.aborted) {
    await sleep(prng.int(...options.calmMs), signal);
    if (signal.aborted) break;
    const kind = prng.pick(kinds);
    const cluster = prng.pick(clusters);
    const nodes = d.clusters[cluster];
    const leader = await d.leaderOf(cluster);
    // A one-way cut starts at the leader: its appends get lost, its followers' answers not.
    const wantsLeader = kind.endsWith("leader") || kind === "one-way";
    const target = wantsLeader && leader !== undefined
      ? leader
      : prng.pick(nodes.filter((n) => n !== leader).concat(leader === undefined ? nodes : []));
    const undo = await inject(kind, target, nodes, d, network, prng);
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
    options.log?.(`${kind} ${kind === "kill-cluster" ? cluster : target}`);
    await sleep(prng.int(...options.faultMs), signal);
    await undo();
  }
  return counts;
}

function isPartition(kind: FaultKind): boolean {
  return kind === "isolate-leader" || kind === "isolate-node" || kind === "bridge" ||
    kind === "one-way";
}

/** Starts the fault; resolves with what undoes it. */
async function inject(
  kind: FaultKind,
  target: string,
  nodes: readonly string[],
  d: ChaosDeployment,
  network: PartitionNetwork | undefined,
  prng: Prng,
): Promise<() => Promise<void>> {
  switch (kind) {
    case "kill-leader":
    case "kill-follower":
      await d.kill(target);
      return () => Promise.resolve(d.start(target));
    case "kill-cluster":
      await Promise.all(nodes.map((n) => d.kill(n)));
      return () => Promise.resolve(nodes.forEach((n) => d.start(n)));
    case "pause-leader":
    case "pause-follower":
      d.pause(target);
      return () => Promise.resolve(d.resume(target));
    case "isolate-leader":
    case "isolate-node":
      await network!.isolate(target);
      return () => network!.heal();
    case "bridge": {
      // The target is the middle: the other two lose each other, both still reach it.
      const [left, right] = nodes.filter((n) => n !== target);
      await network!.cut(left, right);
      return () => network!.heal();
    }
    case "reshard": {
      // Runs to its end (or its deadline) while the workload goes on; nothing to undo.
      const code = await d.reshard();
      if (code !== 0) console.error(`  reshard: koi admin reshard exited ${code}`);
      return () => Promise.resolve();
    }
    case "one-way": {
      const others = nodes.filter((n) => n !== target);
      await network!.cutOneWay(target, prng.pick(others));
      return () => network!.heal();
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

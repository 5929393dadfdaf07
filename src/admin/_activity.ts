/**
 * What the dashboard shows beyond one status poll: each cluster's read and write rates (from
 * the nodes' `reads` and `writes` counters, over the last few seconds) and the recent leader
 * changes. Fed one {@linkcode ClustersView} per poll round; holds a bounded amount of history.
 *
 * @module
 */
import type { ClustersView } from "./_views.ts";

/** The window the rates are averaged over, in milliseconds. */
export const RATE_WINDOW_MS = 5_000;
/** Leader changes kept (the oldest are dropped). */
export const LEADER_CHANGES_MAX = 50;

/** One leader change: `to` is "" when the cluster lost its leader. */
export interface LeaderChange {
  /** When the admin saw it (ms since the epoch). */
  readonly at: number;
  /** The cluster. */
  readonly cluster: string;
  /** The leader before ("" when none). */
  readonly from: string;
  /** The leader now ("" when none). */
  readonly to: string;
  /** The new leader's term (0 when there is none). */
  readonly term: number;
}

/** A cluster's request rates. */
export interface ClusterRates {
  /** Gets and lists answered per second, by every node of the cluster. */
  readonly readsPerSecond: number;
  /** Writes acknowledged per second. */
  readonly writesPerSecond: number;
}

interface Sample {
  readonly at: number;
  readonly reads: number;
  readonly writes: number;
}

/** Rates and leader changes over the poll rounds it observed. */
export class DeploymentActivity {
  /** Per node, its counters at the last round it answered. */
  readonly #counters = new Map<string, { reads: number; writes: number }>();
  /** Per cluster, running totals of what its nodes counted, one sample per round. */
  readonly #samples = new Map<string, Sample[]>();
  readonly #leaders = new Map<string, string>();
  readonly #changes: LeaderChange[] = [];

  /** Takes in one poll round's view, seen at `at` (ms since the epoch). */
  observe(view: ClustersView, at: number): void {
    for (const cluster of view.clusters) {
      let reads = 0;
      let writes = 0;
      for (const node of cluster.nodes) {
        const s = node.status;
        if (s === null || s.reads === undefined || s.writes === undefined) continue;
        const before = this.#counters.get(node.id);
        // A counter that went down belongs to a restarted process: all of it is new.
        reads += before === undefined
          ? 0
          : s.reads >= before.reads
          ? s.reads - before.reads
          : s.reads;
        writes += before === undefined
          ? 0
          : s.writes >= before.writes
          ? s.writes - before.writes
          : s.writes;
        this.#counters.set(node.id, { reads: s.reads, writes: s.writes });
      }
      const samples = this.#samples.get(cluster.id) ?? [];
      const last = samples.at(-1);
      samples.push({
        at,
        reads: (last?.reads ?? 0) + reads,
        writes: (last?.writes ?? 0) + writes,
      });
      // Keep one sample older than the window: the rate spans the whole window.
      while (samples.length > 2 && samples[1].at <= at - RATE_WINDOW_MS) samples.shift();
      this.#samples.set(cluster.id, samples);
      this.#noteLeader(cluster.id, cluster.leader, view, at);
    }
  }

  #noteLeader(cluster: string, leader: string, view: ClustersView, at: number): void {
    const before = this.#leaders.get(cluster);
    if (before === leader || (before === undefined && leader === "")) {
      this.#leaders.set(cluster, leader);
      return;
    }
    this.#leaders.set(cluster, leader);
    const node = view.clusters.find((c) => c.id === cluster)?.nodes.find((n) => n.id === leader);
    this.#changes.push({
      at,
      cluster,
      from: before ?? "",
      to: leader,
      term: node?.status?.term ?? 0,
    });
    if (this.#changes.length > LEADER_CHANGES_MAX) this.#changes.shift();
  }

  /** The rates of cluster `id` over the last {@linkcode RATE_WINDOW_MS} (0 before two rounds). */
  rates(id: string): ClusterRates {
    const samples = this.#samples.get(id) ?? [];
    const first = samples[0];
    const last = samples.at(-1);
    if (first === undefined || last === undefined || last.at <= first.at) {
      return { readsPerSecond: 0, writesPerSecond: 0 };
    }
    const seconds = (last.at - first.at) / 1000;
    return {
      readsPerSecond: (last.reads - first.reads) / seconds,
      writesPerSecond: (last.writes - first.writes) / seconds,
    };
  }

  /** The recent leader changes, newest first. */
  leaderChanges(): readonly LeaderChange[] {
    return [...this.#changes].reverse();
  }
}

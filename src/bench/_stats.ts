/**
 * What a phase of a load run measured: per operation type the count, errors, misses and a
 * latency histogram; errors by kind; operations per cluster. Memory is fixed: histograms of
 * fixed size and one counter per type, kind and cluster.
 *
 * @module
 */
import { Histogram, type LatencySummary } from "./_histogram.ts";
import { OP_TYPES, type OpType } from "./_workload.ts";

/** One operation type's numbers. */
export interface OpTypeReport {
  /** Operations completed, failed ones included. */
  readonly ops: number;
  /** Operations that failed. */
  readonly errors: number;
  /** Reads that found no value (not errors: the key was never written). */
  readonly misses: number;
  /** `ops` over the phase's seconds. */
  readonly opsPerSecond: number;
  /** The latency of the successful operations, in milliseconds. */
  readonly latencyMs: LatencySummary;
}

/** One cluster's share. */
export interface ClusterReport {
  /** Operations on keys of this cluster, failed ones included. */
  readonly ops: number;
  /** Those that failed. */
  readonly errors: number;
}

/** What one phase (the preload, or the measured interval) measured. */
export interface PhaseReport {
  /** The phase's length in seconds: from its start to the end of its last operation. */
  readonly seconds: number;
  /** Operations completed, failed ones included. */
  readonly ops: number;
  /** Operations that failed. */
  readonly errors: number;
  /** errors / ops (0 when no operation completed). */
  readonly errorRate: number;
  /** ops / seconds. */
  readonly opsPerSecond: number;
  /** Per operation type that occurred, and `all`. */
  readonly byType: Readonly<Partial<Record<OpType | "all", OpTypeReport>>>;
  /** Failed operations by the target's error kind. */
  readonly errorsByKind: Readonly<Record<string, number>>;
  /** The first error message of each kind, to say what went wrong. */
  readonly errorSamples: Readonly<Record<string, string>>;
  /** Per cluster of the target, every one listed (also with 0). */
  readonly byCluster: Readonly<Record<string, ClusterReport>>;
}

interface TypeCounts {
  readonly latency: Histogram;
  ops: number;
  errors: number;
  misses: number;
}

/** Counts the operations of one phase. */
export class Recorder {
  readonly #types = new Map<OpType, TypeCounts>();
  readonly #errorsByKind = new Map<string, number>();
  readonly #samples = new Map<string, string>();
  readonly #clusters = new Map<string, { ops: number; errors: number }>();
  #ops = 0;
  #errors = 0;

  /** A recorder over the target's `clusters`, so that one with no operation shows as 0. */
  constructor(clusters: readonly string[]) {
    for (const id of clusters) this.#clusters.set(id, { ops: 0, errors: 0 });
  }

  /** Operations completed so far. */
  get ops(): number {
    return this.#ops;
  }

  /** Operations failed so far. */
  get errors(): number {
    return this.#errors;
  }

  /** A successful operation that took `ms`; `miss` for a read that found nothing. */
  success(type: OpType, cluster: string, ms: number, miss = false): void {
    const counts = this.#count(type, cluster, false);
    counts.latency.record(ms);
    if (miss) counts.misses++;
  }

  /** A failed operation, its error kind and message. */
  failure(type: OpType, cluster: string, kind: string, message: string): void {
    this.#count(type, cluster, true);
    this.#errorsByKind.set(kind, (this.#errorsByKind.get(kind) ?? 0) + 1);
    if (!this.#samples.has(kind)) this.#samples.set(kind, message);
  }

  /**
   * The report of the phase, `seconds` long. Numbers are rounded to what they can tell:
   * latencies to the microsecond, seconds to the millisecond, rates to 0.1 ops/s.
   */
  report(seconds: number): PhaseReport {
    const rate = (ops: number) => (seconds > 0 ? round(ops / seconds, 10) : 0);
    const byType: Partial<Record<OpType | "all", OpTypeReport>> = {};
    const all = new Histogram();
    let misses = 0;
    for (const type of OP_TYPES) {
      const counts = this.#types.get(type);
      if (counts === undefined) continue;
      all.add(counts.latency);
      misses += counts.misses;
      byType[type] = {
        ops: counts.ops,
        errors: counts.errors,
        misses: counts.misses,
        opsPerSecond: rate(counts.ops),
        latencyMs: micros(counts.latency.summary()),
      };
    }
    byType.all = {
      ops: this.#ops,
      errors: this.#errors,
      misses,
      opsPerSecond: rate(this.#ops),
      latencyMs: micros(all.summary()),
    };
    return {
      seconds: round(seconds, 1000),
      ops: this.#ops,
      errors: this.#errors,
      errorRate: this.#ops > 0 ? this.#errors / this.#ops : 0,
      opsPerSecond: rate(this.#ops),
      byType,
      errorsByKind: Object.fromEntries([...this.#errorsByKind].sort(([a], [b]) => cmp(a, b))),
      errorSamples: Object.fromEntries([...this.#samples].sort(([a], [b]) => cmp(a, b))),
      byCluster: Object.fromEntries([...this.#clusters].map(([id, c]) => [id, { ...c }])),
    };
  }

  #count(type: OpType, cluster: string, failed: boolean): TypeCounts {
    let counts = this.#types.get(type);
    if (counts === undefined) {
      counts = { latency: new Histogram(), ops: 0, errors: 0, misses: 0 };
      this.#types.set(type, counts);
    }
    let share = this.#clusters.get(cluster);
    if (share === undefined) {
      share = { ops: 0, errors: 0 }; // a cluster the table did not list: still counted
      this.#clusters.set(cluster, share);
    }
    counts.ops++;
    share.ops++;
    this.#ops++;
    if (failed) {
      counts.errors++;
      share.errors++;
      this.#errors++;
    }
    return counts;
  }
}

function round(x: number, per: number): number {
  return Math.round(x * per) / per;
}

function micros(l: LatencySummary): LatencySummary {
  const us = (ms: number) => round(ms, 1000);
  return {
    ...l,
    min: us(l.min),
    mean: us(l.mean),
    p50: us(l.p50),
    p95: us(l.p95),
    p99: us(l.p99),
    max: us(l.max),
  };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

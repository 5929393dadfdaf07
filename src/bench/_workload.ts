/**
 * What a load run asks for: the workloads (the operation mix), the key names, the key
 * distribution and the value written.
 *
 * @module
 */
import { type RandomSource, Rng } from "./_rng.ts";
import { type KeyChooser, ScrambledZipfianChooser, UniformChooser } from "./_zipfian.ts";

/**
 * The operation types, in report order. A YCSB "update" writes the whole value; `txn-one` is
 * an atomic write of two keys of one cluster (one Raft entry), `txn-cross` one of two keys of
 * different clusters (a cross-cluster transaction, docs/transactions.md).
 */
export const OP_TYPES = ["read", "update", "txn-one", "txn-cross"] as const;

/** One operation type. */
export type OpType = typeof OP_TYPES[number];

/** The workload names `--workload` accepts. */
export const WORKLOAD_NAMES = ["A", "B", "C", "W", "T"] as const;

/** One workload name. */
export type WorkloadName = typeof WORKLOAD_NAMES[number];

/** An operation mix. */
export interface Workload {
  /** The name: A, B, C (YCSB's) or W (write only, koi's). */
  readonly name: WorkloadName;
  /** The fraction of operations that are reads; the rest are updates (or transactions). */
  readonly readFraction: number;
  /** Whether the writes are two-key transactions, half within a cluster, half across. */
  readonly transactions?: boolean;
  /** What it models, for the report. */
  readonly description: string;
}

/** The workloads, by name. A, B and C are YCSB's core workloads of the same letter. */
export const WORKLOADS: Readonly<Record<WorkloadName, Workload>> = {
  A: { name: "A", readFraction: 0.5, description: "50 % reads, 50 % updates" },
  B: { name: "B", readFraction: 0.95, description: "95 % reads, 5 % updates" },
  C: { name: "C", readFraction: 1, description: "reads only" },
  W: { name: "W", readFraction: 0, description: "updates only" },
  T: {
    name: "T",
    readFraction: 0,
    transactions: true,
    description: "two-key atomic writes: half within one cluster, half across clusters",
  },
};

/** The key distributions `--distribution` accepts. */
export const DISTRIBUTIONS = ["zipfian", "uniform"] as const;

/** One key distribution. */
export type Distribution = typeof DISTRIBUTIONS[number];

/** The chooser of `distribution` over `keys` keys. */
export function keyChooser(
  distribution: Distribution,
  keys: number,
  random: RandomSource,
): KeyChooser {
  return distribution === "zipfian"
    ? new ScrambledZipfianChooser(keys, random)
    : new UniformChooser(keys, random);
}

/**
 * The name of key `index` of `keys`: `user` and the index zero-padded to the width of the
 * largest one (`user00042` of 100,000), so names sort like their indices.
 */
export function keyName(index: number, keys: number): string {
  return `user${String(index).padStart(String(keys - 1).length, "0")}`;
}

/** One operation to send. */
export interface Op {
  /** A read or an update. */
  readonly type: OpType;
  /** The key's name. */
  readonly key: string;
}

/**
 * The sequence of operations of a run: the type by the workload's mix, the key by the
 * distribution. Types, keys and the value come from three generators seeded from one seed,
 * so the same seed gives the same keys under every workload.
 */
export class OpStream {
  readonly #workload: Workload;
  readonly #keys: KeyChooser;
  readonly #types: Rng;

  /** The operations of `workload` over `keys` keys chosen by `distribution`, from `seed`. */
  constructor(workload: Workload, distribution: Distribution, keys: number, seed: number) {
    this.#workload = workload;
    this.#keys = keyChooser(distribution, keys, new Rng(seed));
    this.#types = new Rng(seed ^ 0x5bd1e995);
  }

  /** The next operation. */
  next(): Op {
    const dice = this.#types.next();
    const type: OpType = dice < this.#workload.readFraction
      ? "read"
      : !this.#workload.transactions
      ? "update"
      : this.#types.next() < 0.5
      ? "txn-one"
      : "txn-cross";
    return { type, key: keyName(this.#keys.next(), this.#keys.keys) };
  }
}

/**
 * The value every update writes: `bytes` printable ASCII letters and digits from `seed`.
 * One value for the whole run: what it costs to make one per write would be measured too.
 */
export function valueOf(bytes: number, seed: number): Uint8Array {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const random = new Rng(seed ^ 0x27d4eb2f);
  const value = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) {
    value[i] = alphabet.charCodeAt(random.nextUint32() % alphabet.length);
  }
  return value;
}

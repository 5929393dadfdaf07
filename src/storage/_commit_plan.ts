/** Deno.Kv's limit on one value, in bytes. */
export const KV_VALUE_BYTES_MAX = 65_536;
/** Deno.Kv's limit on mutations in one atomic commit. */
export const KV_MUTATIONS_MAX = 1_000;
/** Deno.Kv's limit on the total key and value bytes of one atomic commit. */
export const KV_COMMIT_BYTES_MAX = 819_200;
/** How koi splits large values: well under the value limit, so headers always fit. */
export const CHUNK_BYTES = 60 * 1024;

/** One write: a set when `value` is present, a delete otherwise. */
export interface KvMutation {
  readonly key: Deno.KvKey;
  readonly value?: unknown;
}

/** Mutations that must land in the same atomic commit. */
export interface MutationGroup {
  readonly mutations: readonly KvMutation[];
}

/**
 * Called before each Deno.Kv commit a storage makes; throwing aborts that commit and the rest
 * of its plan, as a crash at that point would. Tests inject faults with it.
 */
export type BeforeCommitHook = () => void;

/** Options of {@linkcode CommitPlan}. */
export interface CommitPlanOptions {
  /** Runs before every commit (fault injection in tests). */
  readonly beforeCommit?: BeforeCommitHook;
}

/** What running a plan cost. */
export interface CommitPlanResult {
  /** Deno.Kv commits made (each one fsync). */
  readonly commits: number;
  /** Key and value bytes written, as {@linkcode mutationBytes} counts them. */
  readonly bytes: number;
}

/** An upper bound of the bytes Deno.Kv counts for a key. */
function keyBytes(key: Deno.KvKey): number {
  let n = 2;
  for (const part of key) {
    if (typeof part === "string") n += part.length * 3 + 2;
    else if (part instanceof Uint8Array) n += part.length + 2;
    else n += 10;
  }
  return n;
}

/** An upper bound of the bytes Deno.Kv counts for a value. */
function valueBytes(value: unknown): number {
  if (value === undefined) return 0;
  if (value instanceof Uint8Array) return value.length + 8;
  if (typeof value === "number" || typeof value === "bigint") return 16;
  return JSON.stringify(value).length * 3 + 16; // small records only
}

/** An upper bound of the bytes Deno.Kv counts for one mutation. */
export function mutationBytes(m: KvMutation): number {
  return keyBytes(m.key) + valueBytes(m.value);
}

/**
 * Packs groups of mutations, in order, into as few Deno.Kv atomic commits as the limits
 * allow. A crash between two commits leaves every earlier commit applied and every later one
 * not, so callers order groups such that each prefix of commits is a consistent state.
 */
export class CommitPlan {
  readonly #commits: KvMutation[][] = [[]];
  readonly #beforeCommit: BeforeCommitHook | undefined;
  #bytes = 0;
  #reserveMutations = 0;
  #reserveBytes = 0;
  #closer: ((final: boolean) => readonly KvMutation[]) | undefined;

  /** Creates an empty plan. */
  constructor(options: CommitPlanOptions = {}) {
    this.#beforeCommit = options.beforeCommit;
  }

  /**
   * Keeps room in every commit for at most `mutations` writes of `bytes` that `closer` adds
   * when a commit is closed (e.g. the hard state and the last log index written so far).
   * `final` is true for the plan's last commit.
   */
  reserve(
    mutations: number,
    bytes: number,
    closer: (final: boolean) => readonly KvMutation[],
  ): void {
    this.#reserveMutations = mutations;
    this.#reserveBytes = bytes;
    this.#closer = closer;
  }

  /** Adds a group; starts a new commit when it does not fit the current one. */
  add(group: MutationGroup): void {
    let bytes = 0;
    for (const m of group.mutations) bytes += mutationBytes(m);
    const count = group.mutations.length;
    if (
      count + this.#reserveMutations > KV_MUTATIONS_MAX ||
      bytes + this.#reserveBytes > KV_COMMIT_BYTES_MAX
    ) {
      throw new RangeError(
        `Cannot plan a mutation group of ${count} writes and ${bytes} bytes: it exceeds one commit`,
      );
    }
    const current = this.#commits[this.#commits.length - 1];
    if (
      current.length + count + this.#reserveMutations > KV_MUTATIONS_MAX ||
      this.#bytes + bytes + this.#reserveBytes > KV_COMMIT_BYTES_MAX
    ) {
      this.#close(false);
      this.#commits.push([]);
      this.#bytes = 0;
    }
    this.#commits[this.#commits.length - 1].push(...group.mutations);
    this.#bytes += bytes;
  }

  /** Number of commits planned so far (the last one may still grow). */
  get size(): number {
    return this.#commits.length;
  }

  #close(final: boolean): void {
    if (this.#closer === undefined) return;
    const extra = this.#closer(final);
    let n = 0;
    let bytes = 0;
    for (const m of extra) {
      n++;
      bytes += mutationBytes(m);
    }
    if (n > this.#reserveMutations || bytes > this.#reserveBytes) {
      throw new RangeError(`Cannot close a commit: the closer wrote more than it reserved`);
    }
    this.#commits[this.#commits.length - 1].push(...extra);
  }

  /** Runs the commits in order; each is one fsync. The plan cannot be run twice. */
  async run(kv: Deno.Kv): Promise<CommitPlanResult> {
    this.#close(true);
    this.#closer = undefined;
    let commits = 0;
    let bytes = 0;
    for (const mutations of this.#commits.splice(0)) {
      if (mutations.length === 0) continue;
      const op = kv.atomic();
      for (const m of mutations) {
        if (m.value === undefined) op.delete(m.key);
        else op.set(m.key, m.value);
        bytes += mutationBytes(m);
      }
      this.#beforeCommit?.();
      const res = await op.commit();
      if (!res.ok) throw new Error("Cannot commit to Deno.Kv: a commit without checks failed");
      commits++;
    }
    return { commits, bytes };
  }
}

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

/**
 * Packs groups of mutations, in order, into as few Deno.Kv atomic commits as the limits
 * allow. A crash between two commits leaves every earlier commit applied and every later one
 * not, so callers order groups such that each prefix of commits is a consistent state.
 */
export class CommitPlan {
  readonly #commits: KvMutation[][] = [[]];
  #bytes = 0;
  #reserveMutations = 0;
  #reserveBytes = 0;
  #closer: (() => readonly KvMutation[]) | undefined;

  /**
   * Keeps room in every commit for mutations that `closer` adds when a commit is closed
   * (e.g. the record of the last log index written so far).
   */
  reserve(mutations: number, bytes: number, closer: () => readonly KvMutation[]): void {
    this.#reserveMutations = mutations;
    this.#reserveBytes = bytes;
    this.#closer = closer;
  }

  /** Adds a group; starts a new commit when it does not fit the current one. */
  add(group: MutationGroup): void {
    let bytes = 0;
    for (const m of group.mutations) bytes += keyBytes(m.key) + valueBytes(m.value);
    const count = group.mutations.length;
    if (
      count + this.#reserveMutations > KV_MUTATIONS_MAX ||
      bytes + this.#reserveBytes > KV_COMMIT_BYTES_MAX
    ) {
      throw new RangeError(
        `A mutation group of ${count} writes and ${bytes} bytes exceeds one commit`,
      );
    }
    const current = this.#commits[this.#commits.length - 1];
    if (
      current.length + count + this.#reserveMutations > KV_MUTATIONS_MAX ||
      this.#bytes + bytes + this.#reserveBytes > KV_COMMIT_BYTES_MAX
    ) {
      this.#close();
      this.#commits.push([]);
      this.#bytes = 0;
    }
    this.#commits[this.#commits.length - 1].push(...group.mutations);
    this.#bytes += bytes;
  }

  #close(): void {
    if (this.#closer !== undefined) this.#commits[this.#commits.length - 1].push(...this.#closer());
  }

  /** Runs the commits in order; returns how many it made (each is one fsync). */
  async run(kv: Deno.Kv): Promise<number> {
    this.#close();
    this.#closer = undefined;
    let made = 0;
    for (const mutations of this.#commits) {
      if (mutations.length === 0) continue;
      const op = kv.atomic();
      for (const m of mutations) {
        if (m.value === undefined) op.delete(m.key);
        else op.set(m.key, m.value);
      }
      const res = await op.commit();
      if (!res.ok) throw new Error("Deno.Kv commit failed without a check: impossible");
      made++;
    }
    return made;
  }
}

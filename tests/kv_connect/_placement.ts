/**
 * Where the conformance scenarios' keys land in a koi deployment, so that an atomic scenario
 * can run on keys of one cluster (koi's fast path: one Raft entry) and again on keys spread over
 * every cluster (a cross-cluster transaction). koi's CARP table routes a Deno KV key by its whole key bytes (the tuple
 * encoding of `_key_codec.ts`); the same table (from the admin's `GET /v1/carp`, or built
 * locally with the test deployment's shape when only `:memory:` runs) gives the same keys on
 * both sides of a comparison, so the observations, which name keys, stay comparable.
 *
 * @module
 */
import { CarpTable } from "../../mod.ts";
import { encodeKey } from "./_key_codec.ts";

/** Which store a scenario runs against. */
export type Target = "memory" | "koi";

/** What a scenario may ask about its store and its keys. */
export interface ScenarioContext {
  /** The store under test (scenarios must behave the same on both; koi-only ones check koi). */
  readonly target: Target;
  /** The cluster ids of the routing table, in byte order. */
  readonly clusters: readonly string[];
  /** How long a key set with `expireIn` may stay visible after it expired, in ms. */
  readonly expiryDeadlineMs: number;
  /** How long a change may take to show up in a watch or an eventual read, in ms. */
  readonly changeDeadlineMs: number;
  /** The cluster that owns `key`. */
  ownerOf(key: Deno.KvKey): string;
  /** `n` keys `[...base, "k<i>"]` (smallest i first) owned by the cluster owning `[...base, "k0"]`. */
  sameCluster(base: Deno.KvKey, n: number): Deno.KvKey[];
  /** `n` keys `[...base, "k<i>"]` owned by `n` different clusters (first clusters by id). */
  distinctClusters(base: Deno.KvKey, n: number): Deno.KvKey[];
  /**
   * `n` keys `[...base, "k<i>"]` spread over the clusters: the j-th owned by cluster
   * `j mod clusters` (so an atomic write of them spans every cluster: a transaction).
   */
  spreadClusters(base: Deno.KvKey, n: number): Deno.KvKey[];
}

/** The cluster ids and load factors of the conformance deployment. */
export const CONFORMANCE_CLUSTERS: readonly string[] = ["alpha", "beta"];

/** The routing table the conformance deployment has (for `:memory:`-only runs). */
export function conformanceTable(): CarpTable {
  return new CarpTable({
    scheme: "carp64",
    epoch: 1,
    members: CONFORMANCE_CLUSTERS.map((id) => ({ id, loadFactor: 1 })),
  });
}

const SEARCH_MAX = 100_000;

/** A context over `table` for `target`. */
export function scenarioContext(
  target: Target,
  table: CarpTable,
  options: { expiryDeadlineMs: number; changeDeadlineMs?: number },
): ScenarioContext {
  const ownerOf = (key: Deno.KvKey) => table.owner(encodeKey(key));
  const clusters = table.members.map((m) => m.id).sort();
  return {
    target,
    clusters,
    expiryDeadlineMs: options.expiryDeadlineMs,
    changeDeadlineMs: options.changeDeadlineMs ?? 10_000,
    ownerOf,
    sameCluster(base, n) {
      const owner = ownerOf([...base, "k0"]);
      const keys: Deno.KvKey[] = [];
      for (let i = 0; keys.length < n; i++) {
        if (i > SEARCH_MAX) throw new Error(`No ${n} keys of one cluster under ${base}`);
        const k = [...base, `k${i}`];
        if (ownerOf(k) === owner) keys.push(k);
      }
      return keys;
    },
    distinctClusters(base, n) {
      if (n > clusters.length) {
        throw new RangeError(`${n} clusters asked for; the table has ${clusters.length}`);
      }
      return clusters.slice(0, n).map((cluster) => {
        for (let i = 0; i <= SEARCH_MAX; i++) {
          const k = [...base, `k${i}`];
          if (ownerOf(k) === cluster) return k;
        }
        throw new Error(`No key of cluster ${cluster} under ${base}`);
      });
    },
    spreadClusters(base, n) {
      const used = new Set<number>();
      return Array.from({ length: n }, (_, j) => {
        const cluster = clusters[j % clusters.length];
        for (let i = 0; i <= SEARCH_MAX; i++) {
          const k = [...base, `k${i}`];
          if (!used.has(i) && ownerOf(k) === cluster) {
            used.add(i);
            return k;
          }
        }
        throw new Error(`No key of cluster ${cluster} under ${base}`);
      });
    },
  };
}

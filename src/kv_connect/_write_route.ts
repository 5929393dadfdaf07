/**
 * Which cluster an atomic write goes to: the one that owns every key it checks or mutates.
 * A `M_SET_SUFFIX_VERSIONSTAMPED_KEY` mutation's key is only a prefix (the node appends the
 * commit's versionstamp and picks one whose final key it owns), so it does not decide the
 * cluster, unless the write has nothing else: then the first one's prefix owner takes them all. Keys of more
 * than one cluster are refused before anything is sent: atomic operations across clusters
 * are not supported yet.
 *
 * @module
 */
import { type AtomicWrite, MutationType } from "./_datapath.ts";
import { KvConnectError } from "./_errors.ts";

/** Where a write goes: the key that routes it (followed after `421`), or, for none, a cluster. */
export type WriteTarget =
  | { readonly key: Uint8Array; readonly cluster: string }
  | { readonly key: undefined; readonly cluster: string };

/** The most clusters a refusal names; more are counted. */
const CLUSTERS_NAMED_MAX = 5;

/**
 * The target of `write` under `owner` (a key's cluster); `anyCluster` takes a write with no
 * key at all. Throws {@linkcode KvConnectError} 400 naming the clusters when the keys belong
 * to more than one.
 */
export function writeTarget(
  write: Pick<AtomicWrite, "checks" | "mutations">,
  owner: (key: Uint8Array) => string,
  anyCluster: string,
): WriteTarget {
  const decide = deciding(write);
  // Only versionstamped keys: any one cluster can take them all (its leader picks a
  // versionstamp whose final keys it owns), so the first prefix's owner does.
  const keys = decide.length > 0 ? decide : write.mutations.slice(0, 1).map((m) => m.key);
  if (keys.length === 0) return { key: undefined, cluster: anyCluster };
  const clusters = new Map<string, Uint8Array>();
  for (const key of keys) {
    const cluster = owner(key);
    if (!clusters.has(cluster)) clusters.set(cluster, key);
  }
  if (clusters.size > 1) {
    const ids = [...clusters.keys()].sort();
    const named = ids.slice(0, CLUSTERS_NAMED_MAX);
    const list = named.length === 2
      ? `${named[0]} and ${named[1]}`
      : `${named.slice(0, -1).join(", ")} and ${named[named.length - 1]}`;
    const more = ids.length > named.length ? ` (and ${ids.length - named.length} more)` : "";
    throw new KvConnectError(
      400,
      `This atomic operation touches keys of clusters ${list}${more}; atomic operations ` +
        "across clusters are not supported yet: split it into one atomic operation per " +
        "cluster (nothing was written)",
    );
  }
  const [[cluster, key]] = clusters;
  return { key, cluster };
}

/**
 * Whether the keys `write` checks or mutates (a versionstamped key's prefix aside) belong to
 * more than one cluster: it is then a cross-cluster transaction.
 */
export function spansClusters(
  write: Pick<AtomicWrite, "checks" | "mutations">,
  owner: (key: Uint8Array) => string,
): boolean {
  let first: string | undefined;
  for (const key of deciding(write)) {
    const cluster = owner(key);
    if (first === undefined) first = cluster;
    else if (cluster !== first) return true;
  }
  return false;
}

/** The keys that decide where a write goes: all but versionstamped keys' prefixes. */
function deciding(write: Pick<AtomicWrite, "checks" | "mutations">): Uint8Array[] {
  return [
    ...write.checks.map((c) => c.key),
    ...write.mutations
      .filter((m) => m.mutationType !== MutationType.SET_SUFFIX_VERSIONSTAMPED_KEY)
      .map((m) => m.key),
  ];
}

/**
 * Whether applying `write` twice leaves what applying it once does: no checks (a second try
 * would fail them and report a failure for a write that happened), and only sets, deletes,
 * mins and maxes (a sum adds twice, a versionstamped key is made twice).
 */
export function isRepeatable(write: Pick<AtomicWrite, "checks" | "mutations">): boolean {
  const repeatable: readonly number[] = [
    MutationType.SET,
    MutationType.DELETE,
    MutationType.MIN,
    MutationType.MAX,
  ];
  return write.checks.length === 0 &&
    write.mutations.every((m) => repeatable.includes(m.mutationType));
}

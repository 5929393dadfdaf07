/**
 * The merge of a range read asked of every cluster: each cluster answers the first `limit`
 * entries of the range it holds (in key order, or reverse key order), and the first `limit`
 * of all of them are the range's answer.
 *
 * @module
 */
import { compareBytes, equalBytes } from "../client/internal.ts";
import type { KvEntry } from "./_datapath.ts";

/** One cluster's entries of a range. */
export interface ClusterEntries {
  /** The cluster that answered. */
  readonly cluster: string;
  /** Its entries, in the range's order. */
  readonly entries: readonly KvEntry[];
}

/**
 * The first `limit` entries of the clusters' answers in key order (descending with
 * `reverse`). A key two clusters hold (left behind by a routing change) shows once, from the
 * cluster `owner` names if it is one of them.
 */
export function mergeRange(
  parts: readonly ClusterEntries[],
  range: { readonly limit: number; readonly reverse: boolean },
  owner: (key: Uint8Array) => string,
): KvEntry[] {
  const all: { entry: KvEntry; cluster: string }[] = [];
  for (const part of parts) {
    for (const entry of part.entries) all.push({ entry, cluster: part.cluster });
  }
  const sign = range.reverse ? -1 : 1;
  all.sort((a, b) => sign * compareBytes(a.entry.key, b.entry.key));
  const merged: { entry: KvEntry; cluster: string }[] = [];
  for (const item of all) {
    const previous = merged[merged.length - 1];
    if (previous !== undefined && equalBytes(previous.entry.key, item.entry.key)) {
      if (owner(item.entry.key) === item.cluster) merged[merged.length - 1] = item;
      continue;
    }
    if (merged.length === range.limit) break;
    merged.push(item);
  }
  return merged.map((m) => m.entry);
}

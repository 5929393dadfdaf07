/**
 * Listing: one page of keys of every cluster, asked of all clusters at once and merged in
 * unsigned byte order.
 */

import { compareBytes, decodeBase64Url, equalBytes, toBytes, utf8Lossy } from "./_bytes.ts";
import type { Call } from "./_call.ts";
import { isRev } from "./_checks.ts";
import { type Answer, jsonOf } from "./_http.ts";
import { LIST_ANSWER_BYTES_MAX } from "./_limits.ts";
import type { Sender } from "./_retry.ts";
import { isObject, type RoutingTable } from "./_table.ts";
import type { ListItem, ListPage } from "./_types.ts";
import { KoiError } from "./errors.ts";

/**
 * Asks every cluster of `table` for the page `query` names (at most `limit` keys each) and
 * merges the answers. One cluster failing fails the page: the others are stopped, and the
 * first failure that is not such a stop is thrown.
 */
export async function listClusters(
  sender: Sender,
  table: RoutingTable,
  query: string,
  limit: number,
  call: Call,
): Promise<ListPage> {
  const stop = new AbortController();
  const clusterCall: Call = { ...call, signal: AbortSignal.any([call.signal, stop.signal]) };
  const parts = table.clusters.map(async (cluster) => {
    try {
      const answer = await sender.run({
        method: "GET",
        cluster: cluster.id,
        query,
        headers: {},
        answerBytesMax: LIST_ANSWER_BYTES_MAX,
        what: `list of cluster ${cluster.id}`,
      }, clusterCall);
      return parseListAnswer(answer, cluster.id);
    } catch (error) {
      stop.abort(); // one cluster failed: the page cannot be complete
      throw error;
    }
  });
  const settled = await Promise.allSettled(parts);
  const failed =
    settled.find((s): s is PromiseRejectedResult =>
      s.status === "rejected" && !(s.reason instanceof KoiError && s.reason.code === "aborted" &&
        !call.signal.aborted)
    ) ?? settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed !== undefined) throw failed.reason;
  const pages = settled.map((s) => (s as PromiseFulfilledResult<ClusterPage>).value);
  return mergePages(pages, limit, (key) => table.carp.owner(key));
}

/** One cluster's answer to a listing. */
export interface ClusterPage {
  readonly cluster: string;
  readonly items: readonly { readonly key: Uint8Array; readonly rev: number }[];
  readonly more: boolean;
}

/** Reads one cluster's answer to a listing: `{items: [{key_b64 or key, rev}], more}`. */
function parseListAnswer(answer: Answer, cluster: string): ClusterPage {
  const json = jsonOf(answer);
  const bad = (what: string): never => {
    throw new KoiError("bad_response", `list of cluster ${cluster}: ${what}`, { cluster });
  };
  if (!isObject(json) || !Array.isArray(json.items) || typeof json.more !== "boolean") {
    return bad("the answer is not {items, more}");
  }
  const items = json.items.map((item) => {
    if (!isObject(item) || !isRev(item.rev)) return bad("an item is not {key, rev}");
    const key = typeof item.key_b64 === "string"
      ? decodeBase64Url(item.key_b64)
      : typeof item.key === "string"
      ? toBytes(item.key)
      : undefined;
    if (key === undefined) return bad("an item has no valid key");
    return { key, rev: item.rev };
  });
  return { cluster, items, more: json.more };
}

/**
 * Merges the clusters' pages (each the first `limit` keys of its cluster after the same
 * bound) into the first `limit` keys overall. A key held by two clusters (left behind by a
 * routing change) shows once, from the cluster `owner` names if it is one of them.
 */
export function mergePages(
  pages: readonly ClusterPage[],
  limit: number,
  owner: (key: Uint8Array) => string,
): ListPage {
  const all: ListItem[] = [];
  for (const page of pages) {
    for (const item of page.items) {
      all.push({
        key: item.key,
        keyText: utf8Lossy(item.key),
        rev: item.rev,
        cluster: page.cluster,
      });
    }
  }
  all.sort((a, b) => compareBytes(a.key, b.key));
  const merged: ListItem[] = [];
  for (const item of all) {
    const previous = merged[merged.length - 1];
    if (previous !== undefined && equalBytes(previous.key, item.key)) {
      if (owner(item.key) === item.cluster) merged[merged.length - 1] = item;
      continue;
    }
    merged.push(item);
  }
  const items = merged.slice(0, limit);
  const more = merged.length > limit || pages.some((p) => p.more);
  return more && items.length > 0
    ? { items, more, next: items[items.length - 1].key }
    : { items, more: more && items.length > 0 };
}

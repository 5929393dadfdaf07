/**
 * The chaos test's clients: concurrent workers that read, write, compare-and-set and delete a
 * few keys of every cluster through the routing client, every call recorded in one history.
 * Written values are unique, so a read names the write it saw.
 *
 * @module
 */
import { connect, type HistoryRecorder, type KoiClient } from "../../mod.ts";
import type { Prng } from "../sim/prng.ts";

/** Options of {@linkcode runWorkload}. */
export interface WorkloadOptions {
  readonly adminUrl: string;
  /** Concurrent clients. */
  readonly workers: number;
  /** Keys per cluster. */
  readonly keysPerCluster: number;
  /** Each call's budget: under faults, calls end in time as unknown or failed. */
  readonly callTimeoutMs: number;
  /** Stops when aborted. */
  readonly signal: AbortSignal;
  readonly prng: Prng;
}

/** The keys of the run: `keysPerCluster` of each cluster, found through the routing table. */
export function chooseKeys(client: KoiClient, clusters: string[], perCluster: number): string[] {
  const byCluster = new Map(clusters.map((c) => [c, [] as string[]]));
  for (let i = 0; [...byCluster.values()].some((k) => k.length < perCluster); i++) {
    if (i > 100_000) throw new Error("Cannot find keys of every cluster");
    const key = `chaos-${i}`;
    const mine = byCluster.get(client.where(key).cluster);
    if (mine !== undefined && mine.length < perCluster) mine.push(key);
  }
  return [...byCluster.values()].flat();
}

/** Runs the workers until the signal aborts; resolves with the shared history. */
export async function runWorkload(
  options: WorkloadOptions,
  keys: string[],
  history: HistoryRecorder,
): Promise<void> {
  const clients: KoiClient[] = [];
  try {
    for (let w = 0; w < options.workers; w++) {
      clients.push(
        await connect(options.adminUrl, {
          history,
          clientId: `w${w}`,
          timeoutMs: options.callTimeoutMs,
          attemptTimeoutMs: Math.min(1_000, options.callTimeoutMs),
        }),
      );
    }
    await Promise.all(clients.map((c, w) => worker(c, w, keys, options)));
  } finally {
    for (const c of clients) c.close();
  }
}

async function worker(
  client: KoiClient,
  w: number,
  keys: string[],
  options: WorkloadOptions,
): Promise<void> {
  const { prng, signal } = options;
  const seen = new Map<string, number>(); // the last rev this worker saw of each key
  let n = 0;
  while (!signal.aborted) {
    const key = prng.pick(keys);
    const dice = prng.next();
    const value = `w${w}-${n++}`;
    try {
      if (dice < 0.45) {
        const hit = await client.getText(key);
        if (hit === null) seen.delete(key);
        else seen.set(key, hit.rev);
      } else if (dice < 0.75) {
        seen.set(key, (await client.put(key, value)).rev);
      } else if (dice < 0.93) {
        const ifRev = seen.get(key);
        if (ifRev === undefined) {
          seen.set(key, (await client.put(key, value, { ifAbsent: true })).rev);
        } else {
          seen.set(key, (await client.put(key, value, { ifRev })).rev);
        }
      } else {
        await client.delete(key);
        seen.delete(key);
      }
    } catch {
      // Recorded in the history; a failed condition or an unknown outcome is part of the run.
      seen.delete(key);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/**
 * Reads every key once more through a fresh client with a generous deadline (recorded in the
 * same history), retrying until each read succeeds or `timeoutMs` passes: the final state
 * every acknowledged write must be consistent with.
 */
export async function finalReads(
  adminUrl: string,
  keys: string[],
  history: HistoryRecorder,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  using client = await connect(adminUrl, { history, clientId: "final", timeoutMs: 5_000 });
  let failed = 0;
  for (const key of keys) {
    for (;;) {
      try {
        await client.get(key);
        break;
      } catch (error) {
        if (Date.now() > deadline) {
          failed++;
          console.error(`final read of ${key} failed: ${error}`);
          break;
        }
      }
    }
  }
  return failed;
}

/**
 * Retrying a write that failed on a full or failing disk (the node driver retries the same
 * Ready until it succeeds): the mirror does not move on a failure, the retry of the same batch
 * lands whole, and nothing the failed attempt prepared is lost or deleted by mistake.
 */
import assert from "node:assert/strict";
import type { Entry, Membership, ReceivedSnapshot } from "../raft/mod.ts";
import { KvLogStorage } from "./kv_log_storage.ts";

const membership: Membership = { voters: ["a"], outgoing: [], learners: [] };

/** Fails every commit while `full` (what Deno.Kv throws on a full disk), counting commits. */
class FullDisk {
  full = false;
  /** Fail only from this commit on (counted from when `full` was set), -1: every one. */
  failFrom = -1;
  commits = 0;
  readonly hook = (): void => {
    if (!this.full) return;
    if (this.failFrom >= 0 && this.commits++ < this.failFrom) return;
    throw new TypeError("database or disk is full");
  };
}

function entries(from: number, n: number, bytes: number): Entry[] {
  return Array.from({ length: n }, (_, i) => ({
    index: from + i,
    term: 1,
    type: "normal" as const,
    data: new Uint8Array(bytes).fill((from + i) % 251),
  }));
}

function snapshotAt(index: number, bytes: number): ReceivedSnapshot {
  return { meta: { index, term: 1, membership }, data: new Uint8Array(bytes).fill(index % 251) };
}

async function snapshotIds(kv: Deno.Kv): Promise<number[]> {
  const ids = new Set<number>();
  for await (const e of kv.list({ prefix: ["snap"] })) ids.add(e.key[1] as number);
  return [...ids].sort((a, b) => a - b);
}

async function withStore(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "koi-retry-" });
  try {
    await fn(`${dir}/koi.kv`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("KvLogStorage retry: a multi-commit persist that failed part way lands whole when retried", async () => {
  await withStore(async (path) => {
    const disk = new FullDisk();
    const kv = await Deno.openKv(path);
    const s = await KvLogStorage.open(kv, { beforeCommit: disk.hook });
    await s.persist({ entries: entries(1, 2, 10), hardState: { term: 1, vote: "a", commit: 0 } });
    // 40 entries of 50 KB: several commits; the second one fails.
    const batch = { entries: entries(3, 40, 50_000), hardState: { term: 2, vote: "a", commit: 2 } };
    disk.full = true;
    disk.failFrom = 1;
    await assert.rejects(s.persist(batch), /database or disk is full/);
    assert.equal(s.lastIndex(), 2, "the mirror does not move on a failed write");
    assert.deepEqual(s.hardState(), { term: 1, vote: "a", commit: 0 });
    disk.full = false;
    await s.persist(batch);
    assert.equal(s.lastIndex(), 42);
    await s.idle();
    kv.close();
    const kv2 = await Deno.openKv(path);
    try {
      const again = await KvLogStorage.open(kv2);
      assert.equal(again.lastIndex(), 42);
      assert.deepEqual(again.hardState(), { term: 2, vote: "a", commit: 2 });
      assert.deepEqual(again.entries(3, 43), batch.entries);
    } finally {
      kv2.close();
    }
  });
});

Deno.test("KvLogStorage retry: a received snapshot retried after a failure keeps the previous one's chunks a generation", async () => {
  await withStore(async (path) => {
    const disk = new FullDisk();
    const kv = await Deno.openKv(path);
    try {
      const s = await KvLogStorage.open(kv, { beforeCommit: disk.hook });
      await s.persist({ snapshot: snapshotAt(10, 100_000), entries: [] });
      await s.persist({ snapshot: snapshotAt(20, 100_000), entries: [] });
      await s.idle();
      const [, second] = await snapshotIds(kv); // the first one is kept a generation too
      disk.full = true;
      await assert.rejects(s.persist({ snapshot: snapshotAt(30, 100_000), entries: [] }));
      disk.full = false;
      await s.persist({ snapshot: snapshotAt(30, 100_000), entries: [] });
      await s.idle();
      const ids = await snapshotIds(kv);
      // Current: the one at 30; kept for transfers still reading it: the one at 20.
      assert.ok(ids.includes(second), `the snapshot at 20 (id ${second}) was deleted: ${ids}`);
      assert.equal(ids.length, 2, `only two generations are kept: ${ids}`);
      assert.equal(s.snapshot().meta.index, 30);
    } finally {
      kv.close();
    }
  });
});

Deno.test("KvLogStorage retry: garbage a failed background deletion left is deleted after the next write that succeeds", async () => {
  await withStore(async (path) => {
    const disk = new FullDisk();
    const kv = await Deno.openKv(path);
    try {
      const s = await KvLogStorage.open(kv, { beforeCommit: disk.hook });
      await s.persist({
        entries: entries(1, 30, 1000),
        hardState: { term: 1, vote: "a", commit: 30 },
      });
      // The snapshot's chunk and switch commits succeed; its deletions of the log then fail.
      disk.full = true;
      disk.failFrom = 2;
      await s.createSnapshot(20, { membership, data: new Uint8Array(1000) });
      await s.idle();
      const logKeys = async () => {
        let n = 0;
        for await (const _ of kv.list({ prefix: ["log"] })) n++;
        return n;
      };
      assert.equal(await logKeys(), 30, "the compacted entries are still on disk");
      assert.equal(s.stats().backgroundErrors, 1);
      disk.full = false;
      await s.persist({ entries: entries(31, 1, 1000) });
      await s.idle();
      assert.equal(await logKeys(), 11, "entries 21..31 are left");
    } finally {
      kv.close();
    }
  });
});

import assert from "node:assert/strict";
import { STORAGE_CASES, type StorageUnderTest } from "../raft/storage_conformance.ts";
import type { Entry } from "../raft/mod.ts";
import { KvLogStorage } from "./kv_log_storage.ts";

/** Runs `fn` with an opener of KvLogStorage over a fresh Deno.Kv file; closes everything. */
async function withKvStorage(
  fn: (open: () => Promise<StorageUnderTest>) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "koi-kvlog-" });
  const path = `${dir}/raft.kv`;
  const handles: Deno.Kv[] = [];
  const openKv = async () => {
    for (const h of handles.splice(0)) h.close(); // one writer at a time, as in a node
    const kv = await Deno.openKv(path);
    handles.push(kv);
    return KvLogStorage.open(kv);
  };
  try {
    await fn(async () => ({ storage: await openKv(), reopen: openKv }));
  } finally {
    for (const h of handles) h.close();
    await Deno.remove(dir, { recursive: true });
  }
}

for (const c of STORAGE_CASES) {
  Deno.test(`KvLogStorage conformance: ${c.name}`, () => withKvStorage((open) => c.run(open)));
}

function entry(index: number, term: number, bytes: number): Entry {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (index * 31 + i) & 0xff;
  return { index, term, type: "normal", data };
}

Deno.test("KvLogStorage: a typical Ready batch costs exactly one Deno.Kv commit", async () => {
  await withKvStorage(async (open) => {
    const { storage } = await open();
    const kv = storage as KvLogStorage;
    const entries = Array.from({ length: 200 }, (_, i) => entry(i + 1, 1, 100));
    await kv.persist({ entries, hardState: { term: 1, vote: "a", commit: 150 } });
    assert.deepEqual(kv.stats(), { persists: 1, persistCommits: 1, snapshotCommits: 0 });
  });
});

Deno.test("KvLogStorage: entries over Deno.Kv's value and commit limits survive a reopen", async () => {
  await withKvStorage(async (open) => {
    const { storage, reopen } = await open();
    // 1 MiB entries are chunked; 3 of them exceed one 800 KiB commit and one 64 KiB value.
    const big = [entry(1, 1, 1 << 20), entry(2, 1, 10), entry(3, 2, (1 << 20) + 7)];
    await storage.persist({ entries: big, hardState: { term: 2, vote: "", commit: 3 } });
    assert.ok((storage as KvLogStorage).stats().persistCommits > 1);
    const again = await reopen!();
    assert.equal(again.lastIndex(), 3);
    assert.deepEqual(again.entries(1, 4), big);
    // Replacing the suffix with a small entry drops the big one for good.
    await again.append([entry(3, 3, 5)]);
    const third = await reopen!();
    assert.deepEqual(third.entries(3, 4), [entry(3, 3, 5)]);
  });
});

Deno.test("KvLogStorage: more than 1,000 entries in one batch are split and all survive", async () => {
  await withKvStorage(async (open) => {
    const { storage, reopen } = await open();
    const entries = Array.from({ length: 2_500 }, (_, i) => entry(i + 1, 1, 8));
    await storage.persist({ entries, hardState: { term: 1, vote: "", commit: 2_500 } });
    assert.equal((storage as KvLogStorage).stats().persistCommits, 3);
    const again = await reopen!();
    assert.equal(again.lastIndex(), 2_500);
    assert.equal(again.initialState().hardState.commit, 2_500);
  });
});

Deno.test("KvLogStorage: a snapshot of several MiB round trips and compacts", async () => {
  await withKvStorage(async (open) => {
    const { storage, reopen } = await open();
    await storage.append(Array.from({ length: 10 }, (_, i) => entry(i + 1, 1, 8)));
    const data = entry(0, 1, 3 << 20).data;
    const membership = { voters: ["a", "b", "c"], outgoing: [], learners: [] };
    await storage.createSnapshot(8, { membership, data });
    const again = await reopen!();
    assert.equal(again.firstIndex(), 9);
    assert.deepEqual(again.snapshot().data, data);
    assert.deepEqual(again.snapshot().meta, { index: 8, term: 1, membership });
  });
});

Deno.test("KvLogStorage: a corrupted snapshot chunk is detected on open", async () => {
  const dir = await Deno.makeTempDir({ prefix: "koi-kvlog-" });
  try {
    let kv = await Deno.openKv(`${dir}/raft.kv`);
    const storage = await KvLogStorage.open(kv);
    await storage.append([entry(1, 1, 8)]);
    await storage.createSnapshot(1, {
      membership: { voters: ["a"], outgoing: [], learners: [] },
      data: entry(0, 1, 100).data,
    });
    for await (const { key } of kv.list({ prefix: ["snap"] })) {
      await kv.set(key, new Uint8Array(100)); // flip the data
    }
    kv.close();
    kv = await Deno.openKv(`${dir}/raft.kv`);
    try {
      await assert.rejects(KvLogStorage.open(kv), /checksum mismatch/);
    } finally {
      kv.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { STORAGE_CASES, type StorageUnderTest } from "../raft/storage_conformance.ts";
import type { Entry } from "../raft/mod.ts";
import { encodeEntry } from "./_codec.ts";
import { KvLogStorage, type KvLogStorageOptions } from "./kv_log_storage.ts";

/** Byte equality without assert.deepEqual's slow diff of large arrays. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

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
    const { persists, persistCommits, snapshotCommits } = kv.stats();
    assert.deepEqual({ persists, persistCommits, snapshotCommits }, {
      persists: 1,
      persistCommits: 1,
      snapshotCommits: 0,
    });
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

/** Opens a KvLogStorage on a fresh Deno.Kv file; `reopen` closes it and opens it again. */
async function withStore(
  fn: (ctx: {
    storage: KvLogStorage;
    reopen: (options?: KvLogStorageOptions) => Promise<KvLogStorage>;
  }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "koi-kvlog-" });
  let kv = await Deno.openKv(`${dir}/raft.kv`);
  try {
    const storage = await KvLogStorage.open(kv);
    await fn({
      storage,
      reopen: async (options) => {
        kv.close();
        kv = await Deno.openKv(`${dir}/raft.kv`);
        return KvLogStorage.open(kv, options);
      },
    });
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const VOTERS = { voters: ["a", "b", "c"], outgoing: [], learners: [] };

Deno.test("KvLogStorage: a persist of only a new commit index makes no Deno.Kv commit", async () => {
  await withStore(async ({ storage, reopen }) => {
    await storage.persist({
      entries: Array.from({ length: 10 }, (_, i) => entry(i + 1, 1, 8)),
      hardState: { term: 1, vote: "a", commit: 2 },
    });
    const before = storage.stats();
    await storage.persist({ entries: [], hardState: { term: 1, vote: "a", commit: 9 } });
    const after = storage.stats();
    assert.equal(after.persistCommits, before.persistCommits, "no commit");
    assert.equal(after.bytesWritten, before.bytesWritten, "no bytes");
    assert.equal(after.persistsSkipped, before.persistsSkipped + 1);
    assert.equal(after.persists, before.persists + 1);
    assert.deepEqual(storage.hardState(), { term: 1, vote: "a", commit: 9 }, "the mirror moved");
    // A crash now loses only the lagging commit index.
    const crashed = await reopen();
    assert.deepEqual(crashed.hardState(), { term: 1, vote: "a", commit: 2 });
    assert.equal(crashed.lastIndex(), 10);
  });
});

Deno.test("KvLogStorage: a lagging commit index is written with the next commit", async () => {
  await withStore(async ({ storage, reopen }) => {
    await storage.persist({
      entries: [entry(1, 1, 8)],
      hardState: { term: 1, vote: "", commit: 0 },
    });
    await storage.setHardState({ term: 1, vote: "", commit: 1 }); // skipped
    await storage.append([entry(2, 1, 8)]); // carries commit 1
    assert.deepEqual((await reopen()).hardState(), { term: 1, vote: "", commit: 1 });
  });
});

Deno.test("KvLogStorage: a new term or vote alone is still committed before persist resolves", async () => {
  await withStore(async ({ storage, reopen }) => {
    await storage.setHardState({ term: 3, vote: "b", commit: 0 });
    assert.equal(storage.stats().persistCommits, 1);
    assert.deepEqual((await reopen()).hardState(), { term: 3, vote: "b", commit: 0 });
  });
});

Deno.test("KvLogStorage: a commit index below the snapshot is raised to it at open", async () => {
  await withStore(async ({ storage, reopen }) => {
    await storage.persist({
      entries: Array.from({ length: 10 }, (_, i) => entry(i + 1, 1, 8)),
      hardState: { term: 1, vote: "a", commit: 2 },
    });
    await storage.setHardState({ term: 1, vote: "a", commit: 8 }); // skipped
    await storage.createSnapshot(8, { membership: VOTERS, data: new Uint8Array(10) });
    const snapshotOnly = await reopen({ beforeCommit: () => {} });
    assert.equal(snapshotOnly.hardState().commit, 8);
  });
});

Deno.test("KvLogStorage: a persist issued during a large createSnapshot completes before it", async () => {
  await withStore(async ({ storage }) => {
    await storage.append(Array.from({ length: 20 }, (_, i) => entry(i + 1, 1, 8)));
    const done: string[] = [];
    const snapshot = storage.createSnapshot(10, {
      membership: VOTERS,
      data: entry(0, 1, 12 << 20).data, // 12 MiB: about 17 chunk commits
    }).then((s) => {
      done.push("snapshot");
      return s;
    });
    // Let the first chunk commits start, then persist behind them.
    while (storage.stats().snapshotCommits < 2) await new Promise((r) => setTimeout(r, 0));
    await storage.persist({
      entries: [entry(21, 1, 8)],
      hardState: { term: 1, vote: "", commit: 5 },
    });
    done.push("persist");
    const chunkCommitsAtPersist = storage.stats().snapshotCommits;
    const made = await snapshot;
    assert.deepEqual(done, ["persist", "snapshot"]);
    assert.ok(chunkCommitsAtPersist < storage.stats().snapshotCommits);
    assert.equal(made.meta.index, 10);
    assert.equal(storage.lastIndex(), 21);
  });
});

Deno.test("KvLogStorage: createSnapshot takes the data as an async iterable of chunks", async () => {
  await withStore(async ({ storage, reopen }) => {
    await storage.persist({
      entries: Array.from({ length: 5 }, (_, i) => entry(i + 1, 1, 8)),
      hardState: { term: 1, vote: "", commit: 4 },
    });
    const whole = entry(0, 1, 1_000_003).data;
    async function* pieces() {
      for (let i = 0; i < whole.length; i += 77_777) yield whole.slice(i, i + 77_777);
    }
    const made = await storage.createSnapshot(4, { membership: VOTERS, data: pieces() });
    assert.ok(!(made.data instanceof Uint8Array), "the storage does not keep the bytes in memory");
    assert.ok(sameBytes(await made.data.load(0, made.data.length), whole));
    await storage.idle();
    const again = await reopen();
    assert.ok(sameBytes(again.snapshot().data as Uint8Array, whole), "open reads the bytes");
    assert.equal(again.firstIndex(), 5);
    assert.equal(again.stats().openCommits, 0, "the background jobs left no garbage");
  });
});

Deno.test("KvLogStorage: logBytes() follows appends, truncations, compaction, snapshots and reopen", async () => {
  await withStore(async ({ storage, reopen }) => {
    const sizeOf = (es: Entry[]) => es.reduce((n, e) => n + encodeEntry(e).length, 0);
    assert.equal(storage.logBytes(), 0);
    const log = Array.from({ length: 10 }, (_, i) => entry(i + 1, 1, i === 4 ? 100_000 : 10));
    await storage.append(log);
    assert.equal(storage.logBytes(), sizeOf(log));
    const replaced = [entry(7, 2, 30), entry(8, 2, 40)];
    await storage.append(replaced);
    const current = [...log.slice(0, 6), ...replaced];
    assert.equal(storage.logBytes(), sizeOf(current));
    await storage.createSnapshot(5, { membership: VOTERS, data: new Uint8Array(3) });
    assert.equal(storage.logBytes(), sizeOf(current.slice(5)));
    assert.equal((await reopen()).logBytes(), sizeOf(current.slice(5)));
    const again = await reopen();
    const after = [entry(21, 3, 5)];
    await again.persist({
      snapshot: { meta: { index: 20, term: 3, membership: VOTERS }, data: new Uint8Array(4) },
      entries: after,
    });
    assert.equal(again.logBytes(), sizeOf(after));
  });
});

Deno.test("KvLogStorage: the incarnation id is made once, kept across reopens, distinct per store", async () => {
  let first = "";
  await withStore(async ({ storage, reopen }) => {
    first = storage.incarnation;
    assert.match(first, /^[0-9a-f-]{36}$/);
    await storage.append([entry(1, 1, 8)]);
    assert.equal((await reopen()).incarnation, first);
    assert.equal((await reopen()).stats().openCommits, 0, "made once");
  });
  await withStore(({ storage }) => {
    assert.notEqual(storage.incarnation, first);
    return Promise.resolve();
  });
});

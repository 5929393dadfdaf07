import assert from "node:assert/strict";
import type { Entry, Membership } from "../raft/mod.ts";
import { CHUNK_BYTES } from "./_commit_plan.ts";
import { KvLogStorage } from "./kv_log_storage.ts";
import { KvSnapshotReader, SNAPSHOT_READER_CHUNKS_MAX } from "./kv_snapshot_reader.ts";

const VOTERS: Membership = { voters: ["a"], outgoing: [], learners: [] };

function entry(index: number): Entry {
  return { index, term: 1, type: "normal", data: new Uint8Array([index]) };
}

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed + (i >> 8)) & 0xff);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A storage over a fresh Deno.Kv file holding a snapshot of `data` at index 3. */
async function withSnapshot(
  data: Uint8Array,
  fn: (storage: KvLogStorage, kv: Deno.Kv) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "koi-snapreader-" });
  const kv = await Deno.openKv(`${dir}/raft.kv`);
  try {
    const storage = await KvLogStorage.open(kv);
    await storage.persist({
      entries: [entry(1), entry(2), entry(3), entry(4)],
      hardState: { term: 1, vote: "a", commit: 4 },
    });
    await storage.createSnapshot(3, { membership: VOTERS, data });
    await fn(storage, kv);
    await storage.idle();
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function readerOf(storage: KvLogStorage): KvSnapshotReader {
  const data = storage.snapshot().data;
  assert.ok(data instanceof KvSnapshotReader, "the storage holds a reader, not the bytes");
  return data;
}

Deno.test("KvSnapshotReader: a piece not in memory is 'not yet', then served from the store", async () => {
  const data = bytes(5 * CHUNK_BYTES + 123, 1);
  await withSnapshot(data, async (storage) => {
    const reader = readerOf(storage);
    assert.equal(reader.length, data.length);
    const at = CHUNK_BYTES - 10; // spans two chunks
    assert.equal(reader.read(at, 100), undefined);
    assert.ok(sameBytes(await reader.load(at, 100), data.subarray(at, at + 100)));
    assert.ok(sameBytes(reader.read(at, 100)!, data.subarray(at, at + 100)), "now a hit");
    // The last piece is cut at the end; past the end is empty.
    const tail = await reader.load(data.length - 50, 1000);
    assert.ok(sameBytes(tail, data.subarray(data.length - 50)));
    assert.equal(reader.read(data.length, 10)!.length, 0);
    assert.equal(reader.stats.failures, 0);
  });
});

Deno.test("KvSnapshotReader: a transfer read in order waits only for its first piece (the next is fetched ahead)", async () => {
  const data = bytes(40 * CHUNK_BYTES + 7, 2);
  await withSnapshot(data, async (storage) => {
    const reader = readerOf(storage);
    const piece = 3 * CHUNK_BYTES;
    const joined = new Uint8Array(data.length);
    assert.equal(reader.read(0, piece), undefined, "the first piece is fetched");
    for (let at = 0; at < data.length; at += piece) {
      // Between two asks the core waits a round trip to the follower, in which the fetch
      // ahead completes: wait for it as that would.
      await reader.idle();
      const out = reader.read(at, piece);
      assert.ok(out instanceof Uint8Array, `the piece at ${at} was fetched ahead`);
      joined.set(out, at);
      assert.ok(reader.chunksHeld <= 2 * 3 + 1, `${reader.chunksHeld} chunks held`);
    }
    assert.ok(sameBytes(joined, data));
    assert.equal(reader.stats.misses, 1);
  });
});

Deno.test("KvSnapshotReader: memory stays bounded however the snapshot is read", async () => {
  const parts = SNAPSHOT_READER_CHUNKS_MAX + 40;
  const data = bytes(parts * CHUNK_BYTES, 3);
  await withSnapshot(data, async (storage) => {
    const reader = readerOf(storage);
    let seed = 7;
    for (let i = 0; i < 40; i++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      const at = (seed % parts) * CHUNK_BYTES + (seed % 1000);
      const out = await reader.load(at, 2 * CHUNK_BYTES);
      assert.ok(sameBytes(out, data.subarray(at, at + 2 * CHUNK_BYTES)));
      // The bound, plus the chunks of one read and of its fetch ahead.
      assert.ok(reader.chunksHeld <= SNAPSHOT_READER_CHUNKS_MAX + 6, `${reader.chunksHeld} held`);
    }
  });
});

Deno.test("KvSnapshotReader: a snapshot's chunks outlive it by one generation, then the old reader reports them gone, counted, never wrong bytes", async () => {
  const data = bytes(8 * CHUNK_BYTES, 4);
  await withSnapshot(data, async (storage) => {
    const old = readerOf(storage);
    assert.ok(sameBytes(await old.load(0, 10), data.subarray(0, 10)));
    await storage.createSnapshot(4, { membership: VOTERS, data: bytes(100, 5) });
    await storage.idle();
    // A transfer of the old one can still finish (or frequent snapshots would starve it).
    assert.ok(
      sameBytes(await old.load(CHUNK_BYTES, 10), data.subarray(CHUNK_BYTES, CHUNK_BYTES + 10)),
    );
    await storage.persist({ entries: [entry(5)], hardState: { term: 1, vote: "a", commit: 5 } });
    await storage.createSnapshot(5, { membership: VOTERS, data: bytes(100, 5) });
    await storage.idle(); // two generations on, the old chunks are deleted in the background
    assert.equal(old.read(7 * CHUNK_BYTES, 10), undefined);
    await assert.rejects(() => old.load(7 * CHUNK_BYTES, 10), /gone/);
    assert.equal(old.read(7 * CHUNK_BYTES, 10), null, "gone for good");
    assert.equal(old.stats.failures, 1);
    assert.equal(storage.stats().snapshotReadFailures, 1);
    assert.equal(old.read(7 * CHUNK_BYTES, 10), null, "it stays gone");
    const current = readerOf(storage);
    assert.ok(sameBytes(await current.load(0, 100), bytes(100, 5)));
  });
});

Deno.test("KvLogStorage holds no snapshot bytes in memory after createSnapshot, a received snapshot, or open", async () => {
  const data = bytes(2 * CHUNK_BYTES + 1, 6);
  await withSnapshot(data, async (storage, kv) => {
    readerOf(storage); // after createSnapshot
    const received = bytes(CHUNK_BYTES + 9, 7);
    await storage.applySnapshot({
      meta: { index: 10, term: 2, membership: VOTERS },
      data: received,
    });
    assert.ok(sameBytes(await readerOf(storage).load(0, received.length), received));
    await storage.idle();
    const again = await KvLogStorage.open(kv);
    const opened = again.snapshot().data;
    assert.ok(opened instanceof Uint8Array && sameBytes(opened, received), "open reads the bytes");
    again.releaseSnapshotBytes();
    assert.ok(sameBytes(await readerOf(again).load(0, received.length), received));
  });
});

Deno.test("KvSnapshotReader: a failed read of the store is retried by the next read (not gone)", async () => {
  const chunk = bytes(CHUNK_BYTES, 8);
  let calls = 0;
  const kv = {
    list() {
      calls++;
      if (calls === 1) throw new Error("disk I/O error");
      return (async function* () {
        yield { key: ["snap", 1, 0], value: chunk, versionstamp: "0" };
      })();
    },
  } as unknown as Deno.Kv;
  const errors: unknown[] = [];
  const reader = new KvSnapshotReader(kv, {
    meta: { index: 3, term: 1, membership: VOTERS },
    id: 1,
    parts: 1,
    bytes: CHUNK_BYTES,
    checksum: 0,
  }, { onError: (e) => errors.push(e) });
  assert.equal(reader.read(0, 10), undefined);
  await reader.idle();
  assert.equal(errors.length, 1);
  assert.ok(sameBytes(await reader.load(0, 10), chunk.subarray(0, 10)), "the next read fetched");
  assert.equal(calls, 2);
});

Deno.test("KvSnapshotReader: a failed fetch does not call onFetched (a listener that reads again would spin on a failing store)", async () => {
  let calls = 0;
  const kv = {
    list() {
      calls++;
      throw new Error("disk I/O error");
    },
  } as unknown as Deno.Kv;
  let fetched = 0;
  const reader: KvSnapshotReader = new KvSnapshotReader(kv, {
    meta: { index: 3, term: 1, membership: VOTERS },
    id: 1,
    parts: 1,
    bytes: CHUNK_BYTES,
    checksum: 0,
  }, {
    onFetched: () => {
      fetched++;
      if (fetched < 5) reader.read(0, 10); // what the leader does when told (bounded here)
    },
  });
  assert.equal(reader.read(0, 10), undefined);
  await reader.idle(); // waits out every fetch the listener started
  assert.equal(fetched, 0);
  assert.equal(calls, 1, "one fetch for one read");
});

Deno.test("KvSnapshotReader: a descriptor whose chunks cannot hold its bytes is gone, not waited for", async () => {
  const kv = { list: () => (async function* () {})() } as unknown as Deno.Kv;
  const reader = new KvSnapshotReader(kv, {
    meta: { index: 3, term: 1, membership: VOTERS },
    id: 1,
    parts: 1,
    bytes: 3 * CHUNK_BYTES,
    checksum: 0,
  });
  assert.equal(reader.read(2 * CHUNK_BYTES, 10), null);
  await assert.rejects(() => reader.load(2 * CHUNK_BYTES, 10), /gone/);
});

Deno.test("KvSnapshotReader: the storage's listener hears when a miss's bytes arrived, and they are then a hit", async () => {
  const data = bytes(3 * CHUNK_BYTES, 7);
  await withSnapshot(data, async (storage) => {
    const reader = readerOf(storage);
    let calls = 0;
    let heard!: () => void;
    const arrived = new Promise<void>((resolve) => (heard = resolve));
    storage.onSnapshotBytesFetched(() => {
      calls++;
      heard();
    });
    assert.equal(reader.read(0, 100), undefined);
    await arrived;
    assert.ok(calls >= 1);
    assert.ok(sameBytes(reader.read(0, 100)!, data.subarray(0, 100)), "a hit once heard");
  });
});

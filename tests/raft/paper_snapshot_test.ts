/**
 * Log compaction, one test per rule of the Raft paper (§7): each server snapshots its applied
 * state and discards the log before it; a leader sends InstallSnapshot, in chunks, to a
 * follower that needs entries it has discarded.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Message, NodeId, Snapshot, SnapshotReader } from "../../src/raft/mod.ts";
import { appliedTexts, TestCluster } from "./harness.ts";

const CHUNK = 4;
const DATA = Uint8Array.from({ length: 50 }, (_, i) => (i * 37 + 11) & 0xff);

/** Elects a, cuts c off, commits 10 entries with b, and compacts a's log into a snapshot. */
async function leaderWithSnapshot(): Promise<{ c: TestCluster; snap: Snapshot }> {
  const c = await TestCluster.create(["a", "b", "c"], {
    limits: { snapshotChunkBytes: CHUNK },
  });
  c.elect("a");
  c.propose("a", "early");
  c.isolate("c");
  for (let i = 0; i < 10; i++) c.propose("a", `x=${i}`);
  const a = c.node("a");
  const applied = a.raft.status().applied;
  assert.equal(applied, 13);
  const snap = a.storage.createSnapshot(applied, { membership: a.raft.membership, data: DATA });
  assert.equal(a.storage.firstIndex(), applied + 1, "the log before it is discarded");
  return { c, snap };
}

function snapsTo(c: TestCluster, to: NodeId, from = 0): Message[] {
  return c.delivered.slice(from).filter((m) => m.type === "snap" && m.to === to);
}

Deno.test("§7: a follower behind the leader's compacted log catches up through InstallSnapshot sent in chunks", async () => {
  const { c, snap } = await leaderWithSnapshot();
  const f = c.node("c");
  assert.equal(f.storage.lastIndex(), 3);
  c.heal();
  for (let i = 0; i < 5 && f.raft.status().commit < snap.meta.index; i++) c.tick("a");
  const chunks = snapsTo(c, "c");
  assert.equal(chunks.length, Math.ceil(DATA.length / CHUNK), "one message per chunk");
  assert.deepEqual(chunks.map((m) => m.type === "snap" ? m.offset : -1), [
    0,
    4,
    8,
    12,
    16,
    20,
    24,
    28,
    32,
    36,
    40,
    44,
    48,
  ]);
  const joined = chunks.flatMap((m) => m.type === "snap" ? [...m.chunk] : []);
  assert.deepEqual(Uint8Array.from(joined), DATA);
  assert.ok(chunks.every((m) => m.type === "snap" && m.chunk.length <= CHUNK));
  // The follower holds the snapshot in place of the log it never received.
  assert.deepEqual(f.storage.snapshot().data, DATA);
  assert.deepEqual(f.storage.snapshot().meta, snap.meta);
  assert.equal(f.storage.firstIndex(), snap.meta.index + 1);
  assert.ok(f.raft.status().commit >= snap.meta.index);
  assert.ok(f.raft.status().applied >= snap.meta.index);
  assert.deepEqual(f.raft.membership, c.node("a").raft.membership);
  // And replication goes on from there with ordinary entries.
  const x = c.propose("a", "after");
  c.tick("a");
  assert.equal(f.raft.status().commit, x);
  assert.deepEqual(appliedTexts(f).slice(-1), ["after"]);
});

Deno.test("§7: a follower that still holds the entries it needs is sent no snapshot", async () => {
  const { c } = await leaderWithSnapshot();
  c.propose("a", "after");
  c.tick("a", 3);
  assert.deepEqual(snapsTo(c, "b"), [], "b is up to date");
  assert.deepEqual(appliedTexts(c.node("b")).slice(-1), ["after"]);
});

Deno.test("§7: a lost snapshot chunk is sent again and the transfer resumes where it stopped", async () => {
  const { c, snap } = await leaderWithSnapshot();
  c.heal();
  const f = c.node("c");
  let dropped = 0;
  const lossy = (m: Message) => {
    if (m.type === "snap" && m.offset === 20 && dropped < 2) {
      dropped++;
      return false;
    }
    return true;
  };
  for (let i = 0; i < 10 && f.raft.status().commit < snap.meta.index; i++) {
    c.node("a").raft.tick();
    c.deliverAll(lossy);
  }
  assert.equal(dropped, 2);
  assert.deepEqual(f.storage.snapshot().data, DATA);
  const offsets = snapsTo(c, "c").map((m) => m.type === "snap" ? m.offset : -1);
  assert.equal(offsets.filter((o) => o === 0).length, 1, "not restarted from scratch");
  assert.equal(offsets.length, Math.ceil(DATA.length / CHUNK));
});

Deno.test("§7: a follower restarted after installing a snapshot starts from it", async () => {
  const { c, snap } = await leaderWithSnapshot();
  c.heal();
  c.tick("a", 3);
  c.propose("a", "after");
  const f = c.restart("c");
  assert.equal(f.raft.status().firstIndex, snap.meta.index + 1);
  assert.deepEqual(f.raft.membership, snap.meta.membership);
  c.tick("a", 2);
  // It re-applies only what follows the snapshot; the rest is in the snapshot's data.
  assert.deepEqual(appliedTexts(f), ["after"]);
  assert.ok(f.applied.every((e) => e.index > snap.meta.index));
});

Deno.test("§7 + §4.2.1: a new server whose missing entries were compacted away starts from a snapshot", async () => {
  const { c, snap } = await leaderWithSnapshot();
  c.heal();
  c.tick("a", 3);
  c.addEmptyNode("d");
  c.node("a").raft.proposeMembership([{ type: "addLearner", id: "d" }]);
  c.deliverAll();
  c.tick("a", 3);
  const d = c.node("d");
  assert.ok(snapsTo(c, "d").length >= Math.ceil(DATA.length / CHUNK));
  assert.deepEqual(d.storage.snapshot().data, DATA);
  assert.equal(d.storage.firstIndex(), snap.meta.index + 1);
  assert.deepEqual(d.raft.membership, m(["a", "b", "c"], ["d"]));
  assert.equal(d.raft.status().commit, c.node("a").raft.status().commit);
  c.propose("a", "after");
  assert.deepEqual(appliedTexts(d), ["after"], "only entries after the snapshot are applied");
});

function m(voters: NodeId[], learners: NodeId[]) {
  return { voters, outgoing: [], learners };
}

Deno.test({
  // Regression: a follower refused an oversized snapshot by answering snapResp{offset: 0}, and
  // the leader resent chunk 0 at once: a tight snap/snapResp loop. A refusal now gets no
  // answer, so the leader retries at heartbeat pace, as for a lost chunk.
  name:
    "§7: a follower that cannot take a snapshot (larger than its snapshotBytesMax) is retried at heartbeat pace, not in a tight loop",
  fn: async () => {
    const c = await TestCluster.create(["a", "b", "c"], {
      limits: { snapshotChunkBytes: CHUNK, snapshotBytesMax: 10 },
    });
    c.elect("a");
    c.isolate("c");
    for (let i = 0; i < 5; i++) c.propose("a", `x=${i}`);
    const a = c.node("a");
    a.storage.createSnapshot(a.raft.status().applied, {
      membership: a.raft.membership,
      data: DATA,
    });
    c.heal();
    for (let tick = 1; tick <= 5; tick++) {
      const from = c.delivered.length;
      c.tick("a");
      assert.ok(snapsTo(c, "c", from).length <= 2, `tick ${tick}: snap messages in one tick`);
    }
    assert.equal(c.node("a").raft.role, "leader", "the rest of the cluster goes on");
    c.propose("a", "after");
    assert.deepEqual(appliedTexts(c.node("b")).slice(-1), ["after"]);
  },
});

/**
 * A reader that answers "not yet" the first `misses` times each offset is asked, as a
 * storage reading its snapshot from disk does, then the bytes.
 */
function slowReader(data: Uint8Array, misses: number): SnapshotReader & { asked: number[] } {
  const seen = new Map<number, number>();
  const asked: number[] = [];
  return {
    asked,
    length: data.length,
    read(offset, bytes) {
      asked.push(offset);
      const n = seen.get(offset) ?? 0;
      seen.set(offset, n + 1);
      return n < misses ? undefined : data.subarray(offset, offset + bytes);
    },
    load: (offset, bytes) => Promise.resolve(data.subarray(offset, offset + bytes)),
  };
}

Deno.test("§7: a chunk the storage does not hold in memory yet is sent once it does, at the next heartbeat answer", async () => {
  const { c, snap } = await leaderWithSnapshot();
  const reader = slowReader(DATA, 1);
  c.node("a").storage.replaceSnapshotData(reader);
  c.heal();
  const f = c.node("c");
  for (let i = 0; i < 40 && f.raft.status().commit < snap.meta.index; i++) c.tick("a");
  assert.deepEqual(f.storage.snapshot().data, DATA, "the follower holds the leader's bytes");
  const offsets = snapsTo(c, "c").map((m) => m.type === "snap" ? m.offset : -1);
  const expected = Array.from({ length: Math.ceil(DATA.length / CHUNK) }, (_, i) => i * CHUNK);
  assert.deepEqual(offsets, expected, "each chunk sent once, in order, none while missing");
  assert.ok(reader.asked.length >= 2 * expected.length, "every chunk was asked for again");
});

Deno.test("§7: once the storage says it fetched the missing bytes, the leader sends the chunk at once, not at the next heartbeat answer", async () => {
  const { c, snap } = await leaderWithSnapshot();
  const reader = slowReader(DATA, 1);
  const a = c.node("a");
  a.storage.replaceSnapshotData(reader);
  c.heal();
  const f = c.node("c");
  for (let i = 0; i < 40 && reader.asked.length === 0; i++) c.tick("a");
  assert.ok(reader.asked.length > 0, "the transfer started");
  const chunks = Math.ceil(DATA.length / CHUNK);
  // No tick from here on: only the storage's word moves the transfer.
  for (let i = 0; i < 2 * chunks && f.raft.status().commit < snap.meta.index; i++) {
    a.raft.snapshotBytesFetched();
    c.deliverAll();
  }
  assert.ok(f.raft.status().commit >= snap.meta.index, "installed without a heartbeat");
  assert.deepEqual(f.storage.snapshot().data, DATA);
  const offsets = snapsTo(c, "c").map((m) => m.type === "snap" ? m.offset : -1);
  assert.deepEqual(offsets, Array.from({ length: chunks }, (_, i) => i * CHUNK));
  c.node("c").raft.snapshotBytesFetched(); // a follower has nothing to send
});

/** A reader of `data` whose bytes can be taken away, as a storage deleting old chunks does. */
function goneableReader(data: Uint8Array): SnapshotReader & { gone: boolean } {
  const r = {
    gone: false,
    length: data.length,
    read: (offset: number, bytes: number) => r.gone ? null : data.subarray(offset, offset + bytes),
    load: (offset: number, bytes: number) => Promise.resolve(data.subarray(offset, offset + bytes)),
  };
  return r;
}

/** Sends half of a transfer to c, then has the leader commit more and compact again. */
async function transferOvertaken() {
  const { c, snap } = await leaderWithSnapshot();
  const reader = goneableReader(DATA);
  c.node("a").storage.replaceSnapshotData(reader);
  c.heal();
  const f = c.node("c");
  const held = (m: Message) => m.type !== "snap" || m.offset < DATA.length / 2;
  for (let i = 0; i < 20; i++) {
    c.node("a").raft.tick();
    c.deliverAll(held);
  }
  assert.ok(f.raft.status().commit < snap.meta.index, "the first transfer is not complete");
  c.isolate("c");
  for (let i = 0; i < 3; i++) c.propose("a", `y=${i}`);
  const a = c.node("a");
  const newer = Uint8Array.from({ length: 30 }, (_, i) => (i * 13 + 5) & 0xff);
  const applied = a.raft.status().applied;
  const snap2 = a.storage.createSnapshot(applied, { membership: a.raft.membership, data: newer });
  return { c, f, snap, snap2, reader, newer, before: c.delivered.length };
}

Deno.test("§7: a transfer whose bytes are gone moves to the leader's newer snapshot, from its start", async () => {
  const { c, f, snap2, reader, newer, before } = await transferOvertaken();
  reader.gone = true; // the storage deleted the old snapshot's chunks
  c.heal();
  for (let i = 0; i < 40 && f.raft.status().commit < snap2.meta.index; i++) c.tick("a");
  assert.deepEqual(f.storage.snapshot().meta, snap2.meta, "the follower installed the newer one");
  assert.deepEqual(f.storage.snapshot().data, newer);
  const later = snapsTo(c, "c", before);
  assert.ok(later.every((m) => m.type === "snap" && m.meta.index === snap2.meta.index));
  assert.equal(later[0].type === "snap" ? later[0].offset : -1, 0, "from its start");
});

Deno.test("§7: a transfer whose bytes are still there finishes although the leader took a newer snapshot", async () => {
  const { c, f, snap, snap2, before } = await transferOvertaken();
  c.heal();
  for (let i = 0; i < 40 && f.raft.status().commit < snap2.meta.index; i++) c.tick("a");
  const later = snapsTo(c, "c", before);
  assert.ok(later.length > 0 && later[0].type === "snap");
  assert.equal(later[0].meta.index, snap.meta.index, "the transfer under way went on");
  assert.ok(later[0].offset > 0, "from where it stood");
  assert.ok(f.raft.status().commit >= snap2.meta.index, "and the follower caught up");
});

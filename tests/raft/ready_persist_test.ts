/**
 * What may leave before a persist, and what only after (Raft dissertation §10.2.1): a node
 * never vouches for, applies or commits on disk what is not durable on it yet, even when one
 * Ready persists only a prefix of its unstable entries (`persistBytesMax`).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  bootstrapStorage,
  type Entry,
  MemoryStorage,
  type Message,
  Raft,
  type RaftOptions,
} from "../../src/raft/mod.ts";
import { append, seededRandom } from "./harness.ts";

function entries(from: number, to: number, term: number, bytes: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) {
    out.push({ index: i, term, type: "normal", data: new Uint8Array(bytes) });
  }
  return out;
}

async function node(
  id: string,
  voters: string[],
  limits: RaftOptions["limits"] = {},
): Promise<{ raft: Raft; storage: MemoryStorage }> {
  const storage = new MemoryStorage();
  await bootstrapStorage(storage, voters);
  const raft = new Raft({
    id,
    storage,
    electionTicks: 10,
    heartbeatTicks: 1,
    random: seededRandom(7),
    applied: 0,
    limits,
  });
  return { raft, storage };
}

Deno.test("§10.2.1: a Ready that persists a prefix of the entries acknowledges, applies and commits on disk only that prefix", async () => {
  // Each entry counts 24 + 50 bytes: two fit in 200, so the 10 entries take five Readys.
  const { raft, storage } = await node("b", ["a", "b", "c"], { persistBytesMax: 200 });
  raft.step(append("a", "b", 2, 1, 1, entries(2, 11, 2, 50), 11));
  const acked: number[] = [];
  let readys = 0;
  const applied: number[] = [];
  while (raft.hasReady()) {
    const rd = raft.ready();
    readys++;
    // Committed entries come out durable already: they may be applied before the persist.
    const durableBefore = storage.lastIndex();
    for (const e of rd.committedEntries) {
      assert.ok(e.index <= durableBefore, `applying ${e.index} with ${durableBefore} durable`);
      applied.push(e.index);
    }
    storage.persist({ snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState });
    const durable = storage.lastIndex();
    for (const m of [...rd.messages, ...rd.messagesAfterPersist]) {
      if (m.type !== "appResp") continue;
      assert.ok(m.index <= durable, `acknowledged ${m.index} with only ${durable} durable`);
      acked.push(m.index);
    }
    assert.ok(storage.hardState().commit <= durable);
    raft.advance();
    // What this persist made durable (and was committed) is handed out right after it.
    for (const e of raft.readyToApply().committedEntries) {
      assert.ok(e.index <= durable, `applying ${e.index} with only ${durable} durable`);
      applied.push(e.index);
    }
  }
  assert.equal(readys, 5);
  assert.deepEqual(applied, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], "each entry once, in order");
  assert.deepEqual(acked, [11], "one acknowledgement, once everything is durable");
  assert.equal(raft.status().applied, 11);
});

Deno.test("§10.2.1: acknowledgements held back for an old term are dropped when the term changes", async () => {
  const { raft, storage } = await node("b", ["a", "b", "c"], { persistBytesMax: 200 });
  raft.step(append("a", "b", 2, 1, 1, entries(2, 11, 2, 50), 1));
  const rd = raft.ready(); // persists 2..3; the acknowledgement of 11 waits
  storage.persist({ entries: rd.entries, hardState: rd.hardState });
  raft.advance();
  // A candidate of term 3 (with a longer log) asks for our vote before we persisted the rest.
  raft.step({ type: "vote", from: "c", to: "b", term: 3, index: 20, logTerm: 2, transfer: true });
  const sent: Message[] = [];
  while (raft.hasReady()) {
    const r = raft.ready();
    storage.persist({ entries: r.entries, hardState: r.hardState });
    sent.push(...r.messages, ...r.messagesAfterPersist);
    raft.advance();
  }
  assert.ok(!sent.some((m) => m.type === "appResp"), "no answer to the deposed leader");
  assert.ok(sent.some((m) => m.type === "voteResp" && !m.reject && m.term === 3));
});

Deno.test("§10.2.1: a single voter leads, and sends to anyone, only once its term and vote are durable", async () => {
  const { raft, storage } = await node("a", ["a"]);
  let ticks = 0;
  while (raft.role === "follower") {
    raft.tick();
    ticks++;
    assert.ok(ticks < 100);
  }
  // Its own vote is counted like any other: once durable. Until then it is no leader, so it
  // sends nothing (to learners, say) that a crash could make it contradict in the same term.
  assert.equal(raft.role, "candidate");
  assert.deepEqual(raft.readyMessages(), []);
  const rd = raft.ready();
  assert.equal(rd.hardState?.vote, "a");
  storage.persist({ entries: rd.entries, hardState: rd.hardState });
  raft.advance();
  assert.equal(raft.role, "leader");
});

Deno.test("§10.2.1: a leader sends appends before persisting them but commits only once they are durable on a quorum including itself or others", async () => {
  const { raft, storage } = await node("a", ["a"]);
  while (raft.role !== "leader") {
    raft.tick();
    while (raft.hasReady()) {
      const rd = raft.ready();
      storage.persist({ entries: rd.entries, hardState: rd.hardState });
      raft.advance();
    }
  }
  const before = raft.status().commit;
  const { index } = raft.propose(new Uint8Array([1]));
  assert.equal(raft.status().commit, before, "not durable on the only voter yet");
  const rd = raft.ready();
  assert.equal(rd.committedEntries.length, 0);
  storage.persist({ entries: rd.entries, hardState: rd.hardState });
  raft.advance();
  assert.equal(raft.status().commit, index);
  assert.equal(raft.status().stableIndex, index);
});

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

/** Persists every Ready of `raft` and answers what it sent (undelivered). */
function drain(raft: Raft, storage: MemoryStorage): Message[] {
  const sent: Message[] = [];
  while (raft.hasReady()) {
    const rd = raft.ready();
    sent.push(...rd.messages);
    storage.persist({ snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState });
    sent.push(...rd.messagesAfterPersist);
    raft.advance();
  }
  return sent;
}

/** Follower `from`'s acknowledgement to leader `a` of its log up to `index`. */
function ack(from: string, term: number, index: number): Message {
  return { type: "appResp", from, to: "a", term, index, reject: false, rejectHint: 0, logTerm: 0 };
}

/** Makes `a` (of voters a, b, c) leader with b's votes; answers the leader's term. */
function elect(raft: Raft, storage: MemoryStorage): number {
  for (let ticks = 0; raft.role !== "leader"; ticks++) {
    assert.ok(ticks < 100, "no election");
    raft.tick();
    for (const m of drain(raft, storage)) {
      if ((m.type === "vote" || m.type === "preVote") && m.to === "b") {
        const type = m.type === "vote" ? "voteResp" : "preVoteResp";
        raft.step({ type, from: "b", to: "a", term: m.term, reject: false });
      }
    }
  }
  drain(raft, storage);
  return raft.term;
}

Deno.test("§10.2.1: a leader applies an entry its followers made durable while its own write of it still runs; a follower never applies what is not durable on it", async () => {
  const { raft, storage } = await node("a", ["a", "b", "c"]);
  const term = elect(raft, storage);
  for (const f of ["b", "c"]) {
    raft.step(ack(f, term, raft.status().lastIndex));
  }
  drain(raft, storage);
  const { index } = raft.propose(new Uint8Array([7]));
  const rd = raft.ready(); // the leader's write of the entry starts and does not end yet
  assert.ok(rd.entries.some((e) => e.index === index));
  assert.equal(storage.lastIndex(), index - 1, "not durable on the leader");
  // Both followers made it durable: it is committed without the leader's own write.
  for (const f of ["b", "c"]) {
    raft.step(ack(f, term, index));
  }
  assert.equal(raft.status().commit, index);
  const now = raft.readyToApply().committedEntries;
  assert.deepEqual(now.map((e) => e.index), [index], "applied before the leader's write ends");
  assert.equal(raft.status().applied, index);
  storage.persist({ entries: rd.entries, hardState: rd.hardState });
  raft.advance();
  assert.deepEqual(raft.readyToApply().committedEntries, [], "each entry once");
  assert.ok((storage.hardState().commit) <= storage.lastIndex());

  // A follower is told the commit index with the entry; it applies it only once durable.
  const f = await node("b", ["a", "b", "c"]);
  const e = { index: 2, term: 2, type: "normal" as const, data: new Uint8Array(1) };
  f.raft.step(append("a", "b", 2, 1, 1, [e], 2));
  const frd = f.raft.ready();
  assert.equal(f.raft.status().commit, 2);
  assert.ok(!frd.committedEntries.some((x) => x.index === 2));
  assert.ok(!f.raft.readyToApply().committedEntries.some((x) => x.index === 2));
  f.storage.persist({ entries: frd.entries, hardState: frd.hardState });
  f.raft.advance();
  assert.deepEqual(f.raft.readyToApply().committedEntries.map((x) => x.index), [2]);
});

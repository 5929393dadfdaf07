/**
 * §7 InstallSnapshot in chunks: a follower assembles a snapshot from the chunks of one
 * transfer only, bound to the sender, its term, the snapshot's index and term and its length,
 * and frees the buffer when the transfer completes or the term or leader changes.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  bootstrapStorage,
  MemoryStorage,
  type Message,
  Raft,
  type SnapshotMeta,
} from "../../src/raft/mod.ts";
import { seededRandom } from "./harness.ts";

const MEMBERSHIP = { voters: ["a", "b", "f"], outgoing: [], learners: [] };

interface Transfer {
  readonly from: string;
  readonly term: number;
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

function transfer(from: string, term: number, index: number, fill: number): Transfer {
  return {
    from,
    term,
    meta: { index, term: 2, membership: MEMBERSHIP },
    data: new Uint8Array(12).fill(fill),
  };
}

function chunk(t: Transfer, offset: number, size = 4): Message {
  return {
    type: "snap",
    from: t.from,
    to: "f",
    term: t.term,
    meta: t.meta,
    offset,
    total: t.data.length,
    chunk: t.data.subarray(offset, offset + size),
  };
}

async function follower(): Promise<{ raft: Raft; storage: MemoryStorage }> {
  const storage = new MemoryStorage();
  await bootstrapStorage(storage, ["a", "b", "f"]);
  const raft = new Raft({
    id: "f",
    storage,
    electionTicks: 10,
    heartbeatTicks: 1,
    random: seededRandom(3),
  });
  return { raft, storage };
}

/** Drains the Readys; returns the snapshots handed out and the messages sent. */
function drain(raft: Raft, storage: MemoryStorage): { snapshots: Uint8Array[]; sent: Message[] } {
  const snapshots: Uint8Array[] = [];
  const sent: Message[] = [];
  while (raft.hasReady()) {
    const rd = raft.ready();
    storage.persist({ snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState });
    if (rd.snapshot !== undefined) snapshots.push(rd.snapshot.data);
    sent.push(...rd.messages, ...rd.messagesAfterPersist);
    raft.advance();
  }
  return { snapshots, sent };
}

Deno.test("§7: a chunk of a second leader's transfer of the same snapshot does not continue the first one", async () => {
  const { raft, storage } = await follower();
  const first = transfer("a", 2, 10, 1);
  const second = transfer("b", 3, 10, 2); // same index, term and length; other bytes
  raft.step(chunk(first, 0));
  drain(raft, storage);
  assert.equal(raft.status().snapshotReceived, 4);
  raft.step(chunk(second, 4));
  const { snapshots, sent } = drain(raft, storage);
  assert.deepEqual(snapshots, []);
  assert.equal(raft.status().snapshotReceived, 0, "the term changed: the buffer is freed");
  assert.ok(
    sent.some((m) => m.type === "snapResp" && m.to === "b" && m.offset === 0),
    "the new leader is told to start over",
  );
  for (const offset of [0, 4, 8]) raft.step(chunk(second, offset));
  assert.deepEqual(drain(raft, storage).snapshots, [second.data]);
  assert.equal(raft.status().snapshotReceived, 0, "freed once complete");
});

Deno.test("§7: a later chunk of another snapshot from the same leader is dropped and counted", async () => {
  const { raft, storage } = await follower();
  const older = transfer("a", 2, 10, 1);
  const newer = transfer("a", 2, 11, 2);
  raft.step(chunk(newer, 0));
  drain(raft, storage);
  const before = raft.status();
  raft.step(chunk(older, 4)); // a delayed chunk of an abandoned transfer
  assert.equal(raft.droppedMessages().snapshotChunk, 1);
  assert.deepEqual(raft.status(), before);
  assert.equal(raft.hasReady(), false);
});

Deno.test("§7: interleaved chunks of two leaders' transfers never assemble a mixed snapshot", async () => {
  const transfers = [
    transfer("a", 2, 10, 1),
    transfer("b", 3, 10, 2), // the next leader, same snapshot metadata
    transfer("b", 3, 12, 3), // that leader's newer snapshot
    transfer("a", 4, 10, 4), // a leads again later: same snapshot metadata, other bytes
  ];
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.nat(transfers.length - 1), fc.constantFrom(0, 4, 8)), {
        minLength: 1,
        maxLength: 40,
      }),
      async (steps) => {
        const { raft, storage } = await follower();
        for (const [t, offset] of steps) {
          raft.step(chunk(transfers[t], offset));
          for (const data of drain(raft, storage).snapshots) {
            assert.ok(
              transfers.some((x) =>
                x.data.length === data.length && data.every((b) => b === x.data[0])
              ),
              `a mixed snapshot was assembled: ${data}`,
            );
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});

/**
 * Committed entries per second through the pure Raft core: a 3-node cluster in one process,
 * MemoryStorage as disks, messages delivered in memory. Measures the core's own cost (log,
 * replication, commit, Ready handling), without fsync or network.
 *
 *   deno bench bench/raft_bench.ts
 *
 * @module
 */
import { bootstrapStorage, MemoryStorage, type Message, Raft } from "../src/raft/mod.ts";

const PAYLOAD = new Uint8Array(100).fill(7); // a 100-byte command
const COMPACT_EVERY = 10_000;

interface BenchNode {
  raft: Raft;
  storage: MemoryStorage;
  applied: number;
}

async function makeCluster(): Promise<Map<string, BenchNode>> {
  const ids = ["a", "b", "c"];
  const nodes = new Map<string, BenchNode>();
  let seed = 1;
  for (const id of ids) {
    const storage = new MemoryStorage();
    await bootstrapStorage(storage, ids);
    const s = seed++;
    nodes.set(id, {
      raft: new Raft({
        id,
        storage,
        electionTicks: 10,
        heartbeatTicks: 1,
        random: () => (s * 0.137) % 1,
      }),
      storage,
      applied: 0,
    });
  }
  return nodes;
}

/** Runs every node's Ready and delivers messages until the cluster is quiet. */
function settle(nodes: Map<string, BenchNode>): void {
  let inflight: Message[] = [];
  for (;;) {
    for (const n of nodes.values()) {
      while (n.raft.hasReady()) {
        const rd = n.raft.ready();
        n.storage.persist({ snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState });
        for (const m of [...rd.messages, ...rd.messagesAfterPersist]) inflight.push(m);
        const last = rd.committedEntries.at(-1);
        if (last !== undefined) n.applied = last.index;
        n.raft.advance();
        // As the node's driver does: what this persist made durable and committed, at once.
        const now = n.raft.readyToApply().committedEntries.at(-1);
        if (now !== undefined) n.applied = now.index;
        if (n.applied - n.storage.snapshot().meta.index > COMPACT_EVERY) {
          n.storage.createSnapshot(n.applied, {
            membership: n.raft.membership,
            data: new Uint8Array(0),
          });
        }
      }
    }
    if (inflight.length === 0) return;
    const batch = inflight;
    inflight = [];
    for (const m of batch) nodes.get(m.to)!.raft.step(m);
  }
}

/** Every node applied up to `index`: the benchmark measures real commits. */
function assertApplied(nodes: Map<string, BenchNode>, index: number): void {
  for (const [id, n] of nodes) {
    if (n.applied < index) throw new Error(`node ${id} applied ${n.applied} < ${index}`);
  }
}

async function leaderCluster(): Promise<{ nodes: Map<string, BenchNode>; leader: BenchNode }> {
  const nodes = await makeCluster();
  const a = nodes.get("a")!;
  while (a.raft.role !== "leader") {
    a.raft.tick();
    settle(nodes);
  }
  return { nodes, leader: a };
}

const single = await leaderCluster();
Deno.bench({
  group: "commit",
  name: "3 nodes, 1 entry per proposal (100 B)",
  baseline: true,
  fn() {
    const { index } = single.leader.raft.propose(PAYLOAD);
    settle(single.nodes);
    assertApplied(single.nodes, index);
  },
});

const batch = await leaderCluster();
const COMMANDS = Array.from({ length: 64 }, () => PAYLOAD);
Deno.bench({
  group: "commit",
  name: "3 nodes, 64 entries per proposal (100 B each)",
  fn() {
    const { index } = batch.leader.raft.proposeMany(COMMANDS);
    settle(batch.nodes);
    assertApplied(batch.nodes, index + COMMANDS.length - 1);
  },
});

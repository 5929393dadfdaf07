/**
 * Safety, one test per property of the Raft paper (§5.4, Figure 3): Figure 8 (commitment of
 * entries from earlier terms), Leader Completeness and State Machine Safety, plus a seeded
 * random walk of partitions, crashes and proposals that checks every property of Figure 3 after
 * each step.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type Entry,
  MembershipChangeError,
  membersOf,
  type Message,
  type NodeId,
  NotLeaderError,
  ProposalDroppedError,
  TransferLeaderError,
} from "../../src/raft/mod.ts";
import { appliedTexts, partition, seededRandom, TestCluster, tickUntil } from "./harness.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

const encoder = new TextEncoder();

/** The whole log a node persisted (from its first index). */
function logOf(c: TestCluster, id: NodeId): Entry[] {
  const s = c.node(id).storage;
  return s.entries(s.firstIndex(), s.lastIndex() + 1);
}

/** The terms of a node's log, index by index. */
function termsOf(c: TestCluster, id: NodeId): number[] {
  return logOf(c, id).map((e) => e.term);
}

/** Whether node `id` holds an entry at `index` with `term` (so it accepts an append after it). */
function holds(c: TestCluster, id: NodeId, index: number, term: number): boolean {
  const s = c.node(id).storage;
  return index <= s.lastIndex() && s.term(index) === term;
}

// ---------------------------------------------------------------------------------------------
// Figure 8

const S = ["s1", "s2", "s3", "s4", "s5"];

/**
 * Builds Figure 8 (a)-(c). Figure 8 is about basic Raft, so pre-vote and check-quorum are off;
 * one entry per AppendEntries lets S1 hand S3 the term-2 entry without its term-4 entry.
 * Index 1 (term 1) is the bootstrap entry every server holds, as in the figure; each leader's
 * entry is its election no-op.
 */
async function figure8c(): Promise<TestCluster> {
  const c = await TestCluster.create(S, {
    preVote: false,
    checkQuorum: false,
    limits: { appendEntriesMax: 1 },
  });
  const s1 = c.node("s1").raft;
  const s5 = c.node("s5").raft;

  // (a) S1 is leader in term 2 and replicates its entry at index 2 to S2 only.
  tickUntil(
    c,
    "s1",
    () => s1.role === "leader",
    (m) => !(m.from === "s1" && m.to !== "s2" && (m.type === "app" || m.type === "heartbeat")),
  );
  assert.equal(s1.term, 2);
  assert.deepEqual(S.map((id) => termsOf(c, id)), [[1, 2], [1, 2], [1], [1], [1]], "(a)");
  assert.equal(s1.status().commit, 1, "(a) 2 of 5 is no majority");

  // (b) S1 crashes; S5 is elected in term 3 with votes from S3, S4 and itself, and accepts a
  // different entry at index 2.
  c.isolate("s1");
  tickUntil(
    c,
    "s5",
    () => s5.role === "leader",
    (m) => !(m.from === "s5" && (m.type === "app" || m.type === "heartbeat")),
  );
  assert.equal(s5.term, 3);
  const voters = c.delivered.filter((m) => m.type === "voteResp" && m.to === "s5" && !m.reject);
  assert.deepEqual(voters.map((m) => m.from).sort(), ["s3", "s4"], "(b) S2's log is newer");
  assert.deepEqual(S.map((id) => termsOf(c, id)), [[1, 2], [1, 2], [1], [1], [1, 3]], "(b)");

  // (c) S5 crashes; S1 restarts, is elected in term 4 and replicates its term-2 entry to S3.
  // The network then loses every append that would give S3 the term-4 entry, and S4 hears
  // nothing but the vote requests.
  c.heal();
  c.isolate("s5");
  c.restart("s1");
  const r1 = c.node("s1").raft;
  tickUntil(c, "s1", () => r1.role === "leader", (m) => {
    if (m.from === "s1" && m.to === "s4") return m.type === "vote";
    if (m.type === "app" && m.to === "s3" && m.entries.some((e) => e.term === 4)) {
      return !holds(c, "s3", m.index, m.logTerm); // only the probes S3 rejects get through
    }
    return true;
  });
  assert.equal(r1.term, 4);
  return c;
}

Deno.test("Figure 8 (a)-(c): an entry of an earlier term stored on a majority is not committed by counting replicas", async () => {
  const c = await figure8c();
  const s1 = c.node("s1").raft;
  // S2 also took S1's term-4 no-op (index 3); S3 has the term-2 entry but not index 3.
  assert.deepEqual(S.map((id) => termsOf(c, id)), [
    [1, 2, 4],
    [1, 2, 4],
    [1, 2],
    [1],
    [1, 3],
  ]);
  // S1 knows index 2 is on S1, S2 and S3: a majority...
  const match = Object.fromEntries(s1.status().progress.map((p) => [p.id, p.match]));
  assert.ok(match.s2 >= 2 && match.s3 >= 2, JSON.stringify(match));
  // ...and still must not commit it: it is from term 2, not the current term 4.
  assert.equal(s1.status().commit, 1);
  for (const id of S) {
    assert.equal(c.node(id).raft.status().commit, 1, id);
    assert.deepEqual(c.node(id).applied.map((e) => e.index), [1], `${id} applied nothing new`);
  }
});

Deno.test("Figure 8 (d): S5 can still be elected and overwrite the term-2 entry, so it was right not to commit it", async () => {
  const c = await figure8c();
  // S1 crashes; S5 comes back.
  c.heal();
  c.isolate("s1");
  c.restart("s5");
  assert.equal(c.elect("s5"), "s5");
  const s5 = c.node("s5").raft;
  assert.ok(s5.term >= 5);
  c.tick("s5", 3);
  for (const id of ["s2", "s3", "s4", "s5"]) {
    assert.deepEqual(termsOf(c, id), [1, 3, s5.term], `${id}: index 2 now holds term 3`);
    assert.equal(c.node(id).raft.status().commit, 3, id);
  }
  // The term-2 entry that had been on a majority is gone, and nobody ever applied it.
  for (const id of S) {
    assert.ok(!c.node(id).applied.some((e) => e.index === 2 && e.term === 2), id);
  }
  c.heal();
  c.tick("s5", 3);
  assert.deepEqual(termsOf(c, "s1"), [1, 3, s5.term], "S1's term-2 entry is overwritten too");
  for (const id of S) {
    assert.deepEqual(c.node(id).applied.slice(-2).map((e) => [e.index, e.term]), [
      [2, 3],
      [3, s5.term],
    ], id);
  }
});

Deno.test("Figure 8 (e): once S1 commits an entry of term 4, the term-2 entry before it is committed and S5 cannot be elected", async () => {
  const c = await figure8c();
  const s1 = c.node("s1").raft;
  // S1 replicates its term-4 entry to S3 (S4 still hears nothing, S5 is down).
  tickUntil(
    c,
    "s1",
    () => s1.status().commit === 3,
    (m) => !(m.from === "s1" && m.to === "s4"),
    5,
  );
  assert.deepEqual(S.map((id) => termsOf(c, id)), [
    [1, 2, 4],
    [1, 2, 4],
    [1, 2, 4],
    [1],
    [1, 3],
  ]);
  assert.equal(s1.status().commit, 3, "index 3 of term 4 and, before it, index 2 commit");
  assert.deepEqual(c.node("s1").applied.map((e) => [e.index, e.term]), [[1, 1], [2, 2], [3, 4]]);

  // S1 crashes; S5 comes back and campaigns again and again: S2 and S3 refuse.
  c.heal();
  c.isolate("s1");
  c.restart("s5");
  const s5 = c.node("s5").raft;
  for (let i = 0; i < 200; i++) {
    c.tick("s5");
    assert.notEqual(s5.role, "leader", "S5 lacks a committed entry and cannot win");
  }
  assert.ok(s5.term > 5, "it did campaign");
  // A server with the committed entries wins and S5's term-3 entry is overwritten.
  assert.equal(c.elect("s2"), "s2");
  c.tick("s2", 3);
  for (const id of ["s2", "s3", "s4", "s5"]) {
    assert.deepEqual(termsOf(c, id).slice(0, 3), [1, 2, 4], id);
    assert.deepEqual(c.node(id).applied.slice(0, 3).map((e) => [e.index, e.term]), [
      [1, 1],
      [2, 2],
      [3, 4],
    ], id);
  }
});

// ---------------------------------------------------------------------------------------------
// §5.4 Safety properties

Deno.test("§5.4.1 Leader Completeness: whoever wins the next election holds every committed entry", async () => {
  const ids = ["a", "b", "c", "d", "e"];
  for (const lagging of [["d", "e"], ["c", "e"], ["b", "d"]]) {
    const c = await TestCluster.create(ids, { preVote: false, checkQuorum: false });
    c.elect("a");
    c.isolate(lagging[0]);
    c.isolate(lagging[1]);
    for (let i = 0; i < 5; i++) c.propose("a", `x=${i}`);
    const committed = logOf(c, "a").slice(0, c.node("a").raft.status().commit);
    assert.equal(committed.length, 7, "committed by a and two others");
    // The leader crashes; everybody else, including the lagging nodes, competes.
    c.heal();
    c.isolate("a");
    const candidates = ids.filter((id) => id !== "a");
    for (let round = 0; round < 200 && c.leader() === "a"; round++) {
      for (const id of candidates) c.tick(id);
    }
    const leader = c.leader();
    assert.ok(leader !== "a" && leader !== "", `lagging ${lagging}: someone won`);
    assert.ok(!lagging.includes(leader), `lagging ${lagging}: ${leader} lacks committed entries`);
    assert.deepEqual(logOf(c, leader).slice(0, committed.length), committed);
    // The lagging nodes did campaign (their terms moved on) and were refused.
    assert.ok(
      c.delivered.some((m) => m.type === "vote" && lagging.includes(m.from)) ||
        lagging.every((id) => c.node(id).raft.term > 2),
    );
  }
});

Deno.test("§5.4.3 State Machine Safety: after crashes and leader changes every node applied the same sequence", async () => {
  const ids = ["a", "b", "c"];
  const c = await TestCluster.create(ids);
  const seen = new Map<NodeId, string[]>(ids.map((id) => [id, []]));
  const record = () => {
    for (const id of ids) {
      seen.get(id)!.push(...appliedTexts(c.node(id)).slice(seen.get(id)!.length));
    }
  };
  let n = 0;
  for (const leader of ["a", "b", "c", "a", "b"]) {
    c.heal();
    if (c.leader() !== leader) {
      const old = c.leader();
      if (old !== "") c.node(old).raft.transferLeader(leader);
      c.deliverAll();
      if (c.leader() !== leader) c.elect(leader);
    }
    assert.equal(c.leader(), leader);
    for (let i = 0; i < 3; i++) c.propose(leader, `v${n++}`);
    // One follower crashes after the proposals and loses everything not on its disk.
    const follower = ids.find((id) => id !== leader)!;
    record();
    c.restart(follower);
    seen.set(follower, []); // it re-applies from the start
    c.tickAll(2);
    record();
  }
  c.tickAll(2);
  record();
  const want = Array.from({ length: n }, (_, i) => `v${i}`);
  for (const id of ids) assert.deepEqual(appliedTexts(c.node(id)), want, id);
});

// ---------------------------------------------------------------------------------------------
// Figure 3, checked after every step of a seeded random walk

interface Walk {
  /** term -> the one leader of that term. */
  leaders: Map<number, NodeId>;
  /** index -> the entry the first node to apply that index applied. */
  applied: Map<number, Entry>;
  /** index -> the lowest term of a leader known to have committed it. */
  committedIn: Map<number, { term: number; entry: Entry }>;
}

function sameEntry(x: Entry, y: Entry): boolean {
  return x.index === y.index && x.term === y.term && x.type === y.type &&
    x.data.length === y.data.length && x.data.every((b, i) => b === y.data[i]);
}

function checkFigure3(c: TestCluster, w: Walk, where: string): void {
  const ids = [...c.nodes.keys()];
  const logs = new Map(ids.map((id) => [id, logOf(c, id)]));
  /** The entry at `index` in `id`'s log; undefined when compacted or beyond the end. */
  const at = (id: NodeId, index: number): Entry | undefined => {
    const log = logs.get(id)!;
    return log.length === 0 ? undefined : log[index - log[0].index];
  };
  for (const id of ids) {
    const r = c.node(id).raft;
    // Election Safety: at most one leader can be elected in a given term.
    if (r.role === "leader") {
      const other = w.leaders.get(r.term);
      assert.ok(other === undefined || other === id, `${where}: ${other} and ${id} lead ${r.term}`);
      w.leaders.set(r.term, id);
      // Remember what this leader committed, and in which term.
      for (const e of logs.get(id)!) {
        if (e.index > r.status().commit) break;
        const known = w.committedIn.get(e.index);
        if (known === undefined || known.term > r.term) {
          w.committedIn.set(e.index, { term: r.term, entry: e });
        }
      }
    }
  }
  for (const id of ids) {
    const r = c.node(id).raft;
    const snapIndex = c.node(id).storage.snapshot().meta.index;
    // Leader Completeness: a leader holds every entry committed in an earlier term (entries
    // it compacted into its snapshot count as held).
    if (r.role === "leader") {
      for (const [index, { term, entry }] of w.committedIn) {
        if (term >= r.term || index <= snapIndex) continue;
        const mine = at(id, index);
        assert.ok(
          mine !== undefined && sameEntry(mine, entry),
          `${where}: leader ${id} of term ${r.term} lacks entry ${index} committed in ${term}`,
        );
      }
    }
    // State Machine Safety: no two nodes apply different entries at one index.
    for (const e of c.node(id).applied) {
      const first = w.applied.get(e.index);
      if (first === undefined) w.applied.set(e.index, e);
      else assert.ok(sameEntry(first, e), `${where}: ${id} applied a different entry ${e.index}`);
    }
    // Log Matching: same index and term means identical logs up to there (where both logs
    // still hold entries).
    const mine = logs.get(id)!;
    for (const other of ids) {
      const theirs = logs.get(other)!;
      if (other <= id || mine.length === 0 || theirs.length === 0) continue;
      const lo = Math.max(mine[0].index, theirs[0].index);
      let k = Math.min(mine.at(-1)!.index, theirs.at(-1)!.index);
      while (k >= lo && at(id, k)!.term !== at(other, k)!.term) k--;
      for (let j = lo; j <= k; j++) {
        assert.ok(
          sameEntry(at(id, j)!, at(other, j)!),
          `${where}: ${id} and ${other} differ at ${j}`,
        );
      }
    }
  }
}

Deno.test("Figure 3: Election Safety, Log Matching, Leader Completeness and State Machine Safety hold through random partitions and crashes", async () => {
  const ids = ["a", "b", "c", "d", "e"];
  let leadersSeen = 0;
  let committed = 0;
  for (let seed = 1; seed <= 12; seed++) {
    const rnd = seededRandom(seed * 7919);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const c = await TestCluster.create(ids, {
      seed,
      preVote: seed % 3 !== 0,
      checkQuorum: seed % 2 === 0,
      limits: { appendEntriesMax: 1 + (seed % 4) },
    });
    const w: Walk = { leaders: new Map(), applied: new Map(), committedIn: new Map() };
    let proposals = 0;
    for (let step = 0; step < 250; step++) {
      const dice = rnd();
      if (dice < 0.55) {
        c.tickAll();
      } else if (dice < 0.75) {
        const leader = c.leader();
        if (leader !== "") {
          try {
            c.propose(leader, `s${seed}-${proposals++}`);
          } catch (e) {
            if (!(e instanceof NotLeaderError || e instanceof ProposalDroppedError)) throw e;
          }
        }
      } else if (dice < 0.83) {
        c.heal();
        const shuffled = [...ids].sort(() => rnd() - 0.5);
        const k = 1 + Math.floor(rnd() * 2);
        partition(c, shuffled.slice(0, k), shuffled.slice(k));
      } else if (dice < 0.9) {
        c.heal();
      } else if (dice < 0.95) {
        c.restart(pick(ids));
      } else {
        // A lossy moment: drop a random half of what is in flight.
        c.deliverAll(() => rnd() < 0.5);
      }
      checkFigure3(c, w, `seed ${seed} step ${step}`);
    }
    c.heal();
    c.tickAll(6 * 10);
    checkFigure3(c, w, `seed ${seed} end`);
    leadersSeen += w.leaders.size;
    committed += w.applied.size;
  }
  assert.ok(leadersSeen >= 12 * 2, `the walk produced only ${leadersSeen} leaders`);
  assert.ok(committed >= 12 * 10, `the walk committed only ${committed} entries`);
});

Deno.test("Figure 3 and §6.4: the properties hold, and every read sees every earlier commit, through membership changes, transfers and compaction", async () => {
  const pool = ["a", "b", "c", "d", "e", "f", "g"];
  let reads = 0;
  let changes = 0;
  let snapshots = 0;
  for (let seed = 1; seed <= 16; seed++) {
    const rnd = seededRandom(seed * 104729);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const c = await TestCluster.create(["a", "b", "c"], {
      seed,
      preVote: seed % 4 !== 1,
      checkQuorum: seed % 3 !== 1,
      heartbeatTicks: 1 + (seed % 3),
      limits: { appendEntriesMax: 1 + (seed % 3), snapshotChunkBytes: 1 + (seed % 5) },
    });
    const w: Walk = { leaders: new Map(), applied: new Map(), committedIn: new Map() };
    const readFloor = new Map<string, number>(); // context -> highest commit when requested
    const checkedReads = new Set<string>();
    const delayed: Message[] = [];
    let n = 0;
    const maxCommit = () =>
      Math.max(...[...c.nodes.values()].map((node) => node.raft.status().commit));
    for (let step = 0; step < 300; step++) {
      const dice = rnd();
      const leader = c.leader();
      const lr = leader === "" ? undefined : c.node(leader).raft;
      try {
        if (dice < 0.45) {
          c.tickAll();
        } else if (dice < 0.6) {
          if (lr !== undefined) c.propose(leader, `s${seed}-${n++}`);
        } else if (dice < 0.67) {
          if (lr !== undefined) {
            const ms = lr.membership;
            const members = membersOf(ms);
            const kind = rnd();
            const fresh = pool.find((id) => !c.nodes.has(id));
            if (kind < 0.35 && fresh !== undefined) {
              c.addEmptyNode(fresh);
              lr.proposeMembership([{ type: rnd() < 0.5 ? "addLearner" : "addVoter", id: fresh }]);
            } else if (kind < 0.6 && ms.learners.length > 0) {
              lr.proposeMembership([{ type: "addVoter", id: pick(ms.learners) }]);
            } else if (members.length > 2) {
              lr.proposeMembership([{ type: "remove", id: pick(members) }]);
            }
            c.deliverAll();
            changes++;
          }
        } else if (dice < 0.71) {
          if (lr !== undefined) {
            lr.transferLeader(pick(lr.membership.voters));
            c.deliverAll();
          }
        } else if (dice < 0.79) {
          const id = pick([...c.nodes.keys()]);
          const ctx = `r${seed}-${step}`;
          const floor = maxCommit();
          c.node(id).raft.readIndex(ctx);
          readFloor.set(ctx, floor);
          c.deliverAll();
        } else if (dice < 0.84) {
          const id = pick([...c.nodes.keys()]);
          const node = c.node(id);
          const applied = node.raft.status().applied;
          if (applied > node.storage.snapshot().meta.index && applied <= node.storage.lastIndex()) {
            const s = node.storage;
            const configs = s.entries(s.firstIndex(), applied + 1).filter((e) =>
              e.type === "config"
            );
            const membership = configs.at(-1)?.membership ?? s.snapshot().meta.membership;
            s.createSnapshot(applied, { membership, data: encoder.encode(`${applied}`) });
            snapshots++;
          }
        } else if (dice < 0.9) {
          c.heal();
          const ids = [...c.nodes.keys()].sort(() => rnd() - 0.5);
          partition(
            c,
            ids.slice(0, 1 + Math.floor(rnd() * 2)),
            ids.slice(1 + Math.floor(rnd() * 2)),
          );
        } else if (dice < 0.93) {
          c.heal();
        } else if (dice < 0.97) {
          // A messy network moment: messages are reordered, duplicated, lost and delayed.
          for (let round = 0; round < 50; round++) {
            c.processReady();
            if (rnd() < 0.3) c.inflight.push(...delayed.splice(0, 3));
            const batch = c.inflight.splice(0).flatMap((msg) => {
              const x = rnd();
              if (x < 0.1) return [];
              if (x < 0.2) {
                delayed.push(msg);
                return [];
              }
              return x < 0.3 ? [msg, msg] : [msg];
            });
            if (batch.length === 0) break;
            for (const msg of batch.sort(() => rnd() - 0.5)) {
              const to = c.nodes.get(msg.to);
              if (to === undefined || c.cut.has(`${msg.from}->${msg.to}`)) continue;
              c.delivered.push(msg);
              to.raft.step(msg);
            }
          }
        } else {
          c.restart(pick([...c.nodes.keys()]));
        }
      } catch (e) {
        const expected = e instanceof NotLeaderError || e instanceof ProposalDroppedError ||
          e instanceof MembershipChangeError || e instanceof TransferLeaderError;
        if (!expected) throw new Error(`seed ${seed} step ${step}: ${e}`, { cause: e });
      }
      const where = `seed ${seed} step ${step}`;
      checkFigure3(c, w, where);
      for (const node of c.nodes.values()) {
        for (const rs of node.readStates) {
          if (checkedReads.has(rs.context)) continue;
          checkedReads.add(rs.context);
          const floor = readFloor.get(rs.context)!;
          assert.ok(rs.index >= floor, `${where}: read ${rs.context} at ${rs.index} < ${floor}`);
          reads++;
        }
      }
    }
    // Liveness once the network is healed: a leader emerges and commits a new entry on every
    // member of its configuration.
    c.heal();
    let live = false;
    for (let round = 0; round < 50 && !live; round++) {
      c.tickAll(10);
      const l = c.leader();
      if (l === "") continue;
      let last: number;
      try {
        last = c.propose(l, `final-${round}`);
      } catch (e) {
        if (e instanceof ProposalDroppedError) continue;
        throw e;
      }
      c.tickAll(10);
      const l2 = c.leader();
      if (l2 === "") continue;
      live = membersOf(c.node(l2).raft.membership).every((id) =>
        c.node(id).raft.status().commit >= last
      );
    }
    const dump = () =>
      [...c.nodes.values()].map((node) => {
        const st = node.raft.status();
        return `${st.id}: ${st.role} t${st.term} lead=${st.leader} commit=${st.commit} last=${st.lastIndex} m=${
          JSON.stringify(st.membership)
        }`;
      }).join("\n");
    assert.ok(live, `seed ${seed}: not live after healing\n${dump()}`);
    checkFigure3(c, w, `seed ${seed} end`);
  }
  assert.ok(reads >= 50, `only ${reads} reads answered`);
  assert.ok(changes >= 20, `only ${changes} membership changes tried`);
  assert.ok(snapshots >= 20, `only ${snapshots} snapshots taken`);
});

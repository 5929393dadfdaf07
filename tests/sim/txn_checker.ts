/**
 * The checker of the multi-cluster mode: strict serializability of the bank's history.
 *
 * Every transfer checks the versionstamps of both accounts it writes, so each account's
 * versions form one chain and every write names its predecessor; every value names the
 * operation that wrote it. The history is strictly serializable iff the graph of those chains,
 * of what each read observed (a read comes after the writer of what it saw and before the
 * writer of the next version), and of real time (an operation that ended before another began
 * comes first) has no cycle. Also: no two commits on one version (a lost update), no write of
 * a failed operation visible, and every snapshot of all accounts sums to the opening total.
 *
 * @module
 */
import { keyString } from "../../src/txn/mod.ts";
import { SimViolation } from "./checker.ts";

/** A write operation (a transfer's commit attempt). */
export interface WriteOp {
  /** The operation id: the `by` of what it writes. */
  readonly id: string;
  /** When it was sent. */
  readonly start: number;
  /** When its answer came (Infinity: none). */
  end: number;
  /** What the answer said. */
  status: "committed" | "failed" | "unknown";
  /** Its versionstamp, once committed. */
  vs: number;
  /** The versions it checked (every key it writes). */
  readonly checks: readonly { readonly key: Uint8Array; readonly vs: number }[];
  /** The accounts it writes. */
  readonly writes: readonly Uint8Array[];
}

/** A snapshot read. */
export interface ReadOp {
  /** When it was sent. */
  readonly start: number;
  /** When it answered. */
  readonly end: number;
  /** What it saw. */
  readonly seen: readonly { readonly key: Uint8Array; readonly vs: number; readonly by: string }[];
}

/** Checks a finished history; throws {@linkcode SimViolation} on the first problem. */
export function checkBankHistory(writes: readonly WriteOp[], reads: readonly ReadOp[]): void {
  const byId = new Map(writes.map((w) => [w.id, w]));
  // What reads saw settles the unknown: a visible write committed.
  for (const r of reads) {
    for (const s of r.seen) {
      if (s.by === "") continue;
      const w = byId.get(s.by);
      if (w === undefined) throw new SimViolation(`txn: a read saw a write of unknown op ${s.by}`);
      if (w.status === "failed") {
        throw new SimViolation(
          `txn: a read saw the write of ${w.id}, which was answered as failed`,
        );
      }
      if (w.status === "unknown") {
        w.status = "committed";
        w.vs = s.vs;
      }
      if (w.vs !== s.vs) {
        throw new SimViolation(`txn: ${w.id} committed at ${w.vs} but a read saw it at ${s.vs}`);
      }
    }
  }
  const committed = writes.filter((w) => w.status === "committed");
  // Per account: version -> writer, and previous version -> writer of the next.
  const writerOf = new Map<string, number>(); // `${key}@${vs}` -> node
  const nextOf = new Map<string, number>();
  const nodes = committed.length + reads.length;
  committed.forEach((w, i) => {
    for (const key of w.writes) {
      const k = keyString(key);
      writerOf.set(`${k}@${w.vs}`, i);
      const prev = w.checks.find((c) => keyString(c.key) === k);
      if (prev === undefined) throw new SimViolation(`txn: ${w.id} writes without a check`);
      if (w.vs <= prev.vs) {
        throw new SimViolation(`txn: ${w.id}'s versionstamp ${w.vs} is not above ${prev.vs}`);
      }
      const slot = `${k}@${prev.vs}`;
      const other = nextOf.get(slot);
      if (other !== undefined) {
        throw new SimViolation(
          `txn: lost update: ${committed[other].id} and ${w.id} both replaced version ${prev.vs}`,
        );
      }
      nextOf.set(slot, i);
    }
  });
  const edges: number[][] = Array.from({ length: nodes }, () => []);
  committed.forEach((w, i) => {
    for (const c of w.checks) {
      const from = writerOf.get(`${keyString(c.key)}@${c.vs}`);
      if (c.vs !== 0 && from === undefined) {
        throw new SimViolation(`txn: ${w.id} checked a version no commit wrote: ${c.vs}`);
      }
      if (from !== undefined) edges[from].push(i);
    }
  });
  reads.forEach((r, j) => {
    const node = committed.length + j;
    for (const s of r.seen) {
      const k = keyString(s.key);
      const from = writerOf.get(`${k}@${s.vs}`);
      if (from !== undefined) edges[from].push(node);
      const to = nextOf.get(`${k}@${s.vs}`);
      if (to !== undefined) edges[node].push(to);
    }
  });
  addRealTimeEdges(
    edges,
    [...committed.map((w) => ({ start: w.start, end: w.end })), ...reads],
  );
  const cycle = findCycle(edges);
  if (cycle !== undefined) {
    const name = (n: number) =>
      n < committed.length
        ? `${committed[n].id} [${committed[n].start}, ${committed[n].end}]`
        : n < nodes
        ? `read [${reads[n - committed.length].start}, ${reads[n - committed.length].end}]`
        : "";
    throw new SimViolation(
      `txn: not strictly serializable: a cycle through ${
        cycle.filter((n) => n < nodes).map(name).join(" -> ")
      }`,
    );
  }
}

/**
 * Real time as O(n) edges: one node per distinct end time, in order, each pointing to the next;
 * an operation points to its end's node, and the last end before an operation's start points
 * to it. Reachability is then exactly "ended before the other began".
 */
function addRealTimeEdges(edges: number[][], ops: readonly { start: number; end: number }[]): void {
  const ends = [...new Set(ops.map((o) => o.end).filter((e) => e !== Infinity))].sort((a, b) =>
    a - b
  );
  const base = edges.length;
  for (let i = 0; i < ends.length; i++) edges.push(i + 1 < ends.length ? [base + i + 1] : []);
  const slot = new Map(ends.map((e, i) => [e, base + i]));
  ops.forEach((o, n) => {
    if (o.end !== Infinity) edges[n].push(slot.get(o.end)!);
    // the last end strictly before the start
    let lo = 0;
    let hi = ends.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (ends[mid] < o.start) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found >= 0) edges[base + found].push(n);
  });
}

/** A cycle of the graph (node list), or undefined; iterative DFS. */
function findCycle(edges: readonly number[][]): number[] | undefined {
  const state = new Uint8Array(edges.length); // 0 new, 1 on stack, 2 done
  const parent = new Int32Array(edges.length).fill(-1);
  for (let root = 0; root < edges.length; root++) {
    if (state[root] !== 0) continue;
    const stack: [number, number][] = [[root, 0]];
    state[root] = 1;
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const [n, i] = top;
      if (i >= edges[n].length) {
        state[n] = 2;
        stack.pop();
        continue;
      }
      top[1]++;
      const m = edges[n][i];
      if (state[m] === 1) {
        const cycle = [m];
        for (let x = n; x !== m && x !== -1; x = parent[x]) cycle.push(x);
        return cycle.reverse();
      }
      if (state[m] === 0) {
        state[m] = 1;
        parent[m] = n;
        stack.push([m, 0]);
      }
    }
  }
  return undefined;
}

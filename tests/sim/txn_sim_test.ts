import assert from "node:assert/strict";
import { checkBankHistory, type ReadOp, type WriteOp } from "./txn_checker.ts";
import { runTxnSimulation } from "./txn_simulation.ts";

/** The multi-cluster seeds `deno task test` runs (the long sweep: `deno task sim --txn --seeds 5000`). */
const SEEDS_PER_TEST = 150;
const TESTS = 2;

for (let t = 0; t < TESTS; t++) {
  const from = 1 + t * SEEDS_PER_TEST;
  const to = from + SEEDS_PER_TEST - 1;
  Deno.test(`multi-cluster simulation: seeds ${from}..${to} keep the bank strictly serializable`, async () => {
    const failures: string[] = [];
    let committed = 0;
    for (let seed = from; seed <= to; seed++) {
      const r = await runTxnSimulation(seed);
      committed += r.counts.crossCommitted;
      if (r.violation !== undefined) {
        failures.push(`seed ${seed}: ${r.violation}\n  replay: deno task sim --txn --seed ${seed}`);
      }
    }
    if (failures.length > 0) throw new Error(failures.join("\n"));
    assert.ok(committed > SEEDS_PER_TEST, `only ${committed} cross-cluster commits: no coverage`);
  });
}

Deno.test("multi-cluster simulation: seeds replay identically", async () => {
  for (const seed of [1, 2, 3, 42]) {
    const a = await runTxnSimulation(seed);
    const b = await runTxnSimulation(seed);
    assert.deepStrictEqual(a, b, `seed ${seed} ran differently twice`);
  }
});

const enc = new TextEncoder();
const A = enc.encode("acct/0");
const B = enc.encode("acct/1");

function write(
  id: string,
  start: number,
  end: number,
  vs: number,
  prev: [number, number],
): WriteOp {
  return {
    id,
    start,
    end,
    status: "committed",
    vs,
    checks: [{ key: A, vs: prev[0] }, { key: B, vs: prev[1] }],
    writes: [A, B],
  };
}

Deno.test("bank checker: a serial history passes", () => {
  checkBankHistory(
    [write("t1", 0, 10, 5, [0, 0]), write("t2", 20, 30, 8, [5, 5])],
    [{ start: 12, end: 15, seen: [{ key: A, vs: 5, by: "t1" }, { key: B, vs: 5, by: "t1" }] }],
  );
});

Deno.test("bank checker: two commits replacing one version are a lost update", () => {
  assert.throws(
    () => checkBankHistory([write("t1", 0, 10, 5, [0, 0]), write("t2", 0, 10, 6, [0, 0])], []),
    /lost update/,
  );
});

Deno.test("bank checker: a read that saw half of a commit is a cycle", () => {
  const reads: ReadOp[] = [{
    start: 12,
    end: 15,
    seen: [{ key: A, vs: 5, by: "t1" }, { key: B, vs: 0, by: "" }],
  }];
  assert.throws(() => checkBankHistory([write("t1", 0, 10, 5, [0, 0])], reads), /cycle/);
});

Deno.test("bank checker: a read that misses a commit answered before it began is a cycle", () => {
  const reads: ReadOp[] = [{
    start: 12,
    end: 15,
    seen: [{ key: A, vs: 0, by: "" }, { key: B, vs: 0, by: "" }],
  }];
  assert.throws(() => checkBankHistory([write("t1", 0, 10, 5, [0, 0])], reads), /cycle/);
  // The same read concurrent with the commit may come first.
  checkBankHistory([write("t1", 0, 13, 5, [0, 0])], reads);
});

Deno.test("bank checker: a visible write of a failed operation is refused; an unknown one counts", () => {
  const seen: ReadOp[] = [{ start: 20, end: 25, seen: [{ key: A, vs: 5, by: "t1" }] }];
  const failed = { ...write("t1", 0, 10, 0, [0, 0]), status: "failed" as const };
  assert.throws(() => checkBankHistory([failed], seen), /answered as failed/);
  const unknown = { ...write("t1", 0, Infinity, 0, [0, 0]), status: "unknown" as const };
  checkBankHistory([unknown], seen);
  assert.equal(unknown.status, "committed");
  assert.equal(unknown.vs, 5);
});

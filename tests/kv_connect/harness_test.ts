/**
 * The conformance harness itself: observations keep apart what Deno KV keeps apart, compare
 * versionstamps only by order and equality, and a difference, an error or a timeout on the
 * subject's side fails the scenario while an exclusion is reported, not compared.
 */
import assert from "node:assert/strict";
import { compareResults, type Results, runScenarios, summarize } from "./_harness.ts";
import { finalize, norm, vs } from "./_observe.ts";
import { conformanceTable, scenarioContext } from "./_placement.ts";
import type { Scenario } from "./_scenarios.ts";

Deno.test("kv connect harness: values are tagged so that nothing is confused", () => {
  const pairs: [unknown, unknown][] = [
    [0, -0],
    [null, undefined],
    [5, 5n],
    [5n, new Deno.KvU64(5n)],
    [new Uint8Array([1]), new Int8Array([1])],
    // deno-lint-ignore no-sparse-arrays
    [[1, , 3], [1, undefined, 3]],
    [new Map([[1, 2]]), { 1: 2 }],
    [new Set([1]), [1]],
    [new Date(0), 0],
    ["1", 1],
  ];
  for (const [a, b] of pairs) {
    assert.notDeepEqual(norm(a), norm(b), `${Deno.inspect(a)} vs ${Deno.inspect(b)}`);
  }
  // deno-lint-ignore no-explicit-any
  const cyclic: any = { a: 1 };
  cyclic.me = cyclic;
  assert.deepEqual(norm(cyclic), { Object: { a: 1, me: { cycle: 1 } } });
});

Deno.test("kv connect harness: versionstamps become ranks (order and equality only)", () => {
  const a = "00000000000000050000", b = "0000000000000a000000", c = "00000000000000070000";
  assert.deepEqual(finalize({ x: [vs(b), vs(a)], y: vs(c), z: vs(b), n: vs(null) }), {
    x: ["vs2", "vs0"],
    y: "vs1",
    z: "vs2",
    n: null,
  });
  // Other stamps with the same order give the same observation.
  const d = "10000000000000000000", e = "20000000000000000000", f = "30000000000000000000";
  assert.deepEqual(
    finalize([vs(f), vs(d), vs(e), vs(f)]),
    finalize([vs(c), vs(a), vs("00000000000000060000"), vs(c)]),
  );
  assert.equal(finalize(vs("nothex")), "vs?nothex");
  assert.throws(() => finalize({ raw: 5n }), /not JSON/);
});

Deno.test("kv connect harness: differences, errors and timeouts fail; exclusions do not", async () => {
  const ctx = scenarioContext("memory", conformanceTable(), { expiryDeadlineMs: 1_000 });
  let flip = false;
  const scenarios: Scenario[] = [
    { name: "same", run: () => Promise.resolve({ v: 1 }) },
    { name: "differs", run: () => Promise.resolve({ v: flip ? 2 : 1 }) },
    {
      name: "errs",
      run: () => flip ? Promise.reject(new Error("boom")) : Promise.resolve(1),
    },
    { name: "hangs", run: () => flip ? new Promise(() => {}) : Promise.resolve(1) },
    { name: "excluded", excluded: "differs on purpose", run: () => Promise.resolve(flip) },
    { name: "koi", koiOnly: true, run: () => Promise.resolve("checked") },
  ];
  const kv = await Deno.openKv(":memory:");
  try {
    const reference: Results = await runScenarios(kv, ctx, { scenarios, timeoutMs: 200 });
    flip = true;
    const subject = await runScenarios(kv, ctx, { scenarios, timeoutMs: 200 });
    assert.equal(subject.hangs.status, "timeout");
    const verdicts = compareResults(reference, subject, scenarios);
    const byName = Object.fromEntries(verdicts.map((v) => [v.name, v]));
    assert.equal(byName.same.passed, true);
    assert.equal(byName.differs.passed, false);
    assert.match(byName.differs.detail, /first difference/);
    assert.equal(byName.errs.passed, false);
    assert.match(byName.errs.detail, /boom/);
    assert.equal(byName.hangs.passed, false);
    assert.equal(byName.excluded.kind, "excluded");
    assert.equal(byName.excluded.passed, true);
    assert.equal(byName.koi.kind, "skipped");
    assert.match(
      summarize("t", verdicts),
      /4 run, 1 passed, 3 failed, 1 excluded, 1 skipped/,
    );
  } finally {
    kv.close();
  }
});

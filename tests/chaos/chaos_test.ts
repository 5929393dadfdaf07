/**
 * The bounded chaos run of `deno task test`: one randomised run (printed seed) of 20 seconds
 * of kills, pauses and, when the machine allows network namespaces, partitions, against two
 * 3-node clusters of real processes; the whole history must be linearizable, also after
 * every node was killed and restarted. `deno task chaos --runs 50` is the long version.
 */
import assert from "node:assert/strict";
import { formatReport, MIN_OK_PER_SECOND, reportPasses } from "./main.ts";
import { checkHistory } from "./linearizability.ts";
import { runChaos } from "./run_chaos.ts";

const SECONDS = 20;

Deno.test({
  name: "chaos: a randomised run of kills, pauses and partitions stays linearizable",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const seed = Number(Deno.env.get("KOI_CHAOS_SEED") ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`chaos seed ${seed} (KOI_CHAOS_SEED=${seed} repeats it)`);
    const report = await runChaos({ seed, seconds: SECONDS });
    const text = formatReport(report, SECONDS);
    console.log(text);
    assert.equal(report.check.violations.length, 0, text);
    assert.equal(report.check.undecided.length, 0, text);
    assert.ok(report.ops.ok >= MIN_OK_PER_SECOND * SECONDS, text);
    const injected = Object.values(report.faults).reduce((a, b) => a + b, 0);
    assert.ok(injected >= 3, `only ${injected} faults in ${SECONDS} s`);
    assert.ok(reportPasses(report, SECONDS), text);
    // The same history with one read's answer made stale must fail: the recorder, the
    // conversion and the checker are wired so that a violation would show.
    const entries = [...report.entries];
    const last = entries.findLastIndex((e) =>
      e.op.f === "read" && e.outcome === "ok" && e.result !== null && e.process.startsWith("final-")
    );
    assert.ok(last >= 0, "a final read found a value");
    entries[last] = { ...entries[last], result: { value: "never-written", rev: 1 } };
    const broken = checkHistory(entries);
    assert.equal(broken.ok, false);
    assert.equal(broken.violations.length, 1);
  },
});

/**
 * The bounded transactional chaos run of `deno task test`: one randomised run (printed seed)
 * of kills, pauses and, when the machine allows network namespaces, partitions, against two
 * 3-node clusters of real processes, while workers move money between accounts of both
 * clusters with cross-cluster transactions and audit it with snapshot reads; the history
 * must be strictly serializable, also after every node was killed and restarted.
 * `deno task chaos --bank --runs 20` is the long version.
 */
import assert from "node:assert/strict";
import { checkBankHistory } from "../sim/txn_checker.ts";
import { runBankChaos } from "./run_bank_chaos.ts";

const SECONDS = 15;

Deno.test({
  name:
    "chaos: cross-cluster transfers and audits under kills, pauses and partitions stay strictly serializable",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const seed = Number(Deno.env.get("KOI_CHAOS_SEED") ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`bank chaos seed ${seed} (KOI_CHAOS_SEED=${seed} repeats it)`);
    const r = await runBankChaos({ seed, seconds: SECONDS });
    console.log(JSON.stringify(r));
    assert.equal(r.violation, "", r.violation);
    assert.ok(r.crossCommitted >= 20, `only ${r.crossCommitted} cross-cluster commits`);
    assert.ok((r.counts.audit ?? 0) >= 5, `only ${r.counts.audit ?? 0} audits`);
    const injected = Object.values(r.faults).reduce((a, b) => a + b, 0);
    assert.ok(injected >= 3, `only ${injected} faults in ${SECONDS} s`);
    // The same history with one commit told twice must fail: the recording and the checker
    // are wired so that a violation would show.
    const writes = r.history.writes.map((w) => ({ ...w }));
    const twice = writes.find((w) => w.status === "committed" && !w.id.includes("init"))!;
    writes.push({ ...twice, id: `${twice.id}.again`, vs: twice.vs + 1 });
    assert.throws(() => checkBankHistory(writes, r.history.reads), /lost update/);
  },
});

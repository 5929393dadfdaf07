/**
 * koi's KV Connect conformance suite: every scenario of `_scenarios.ts` against
 * `Deno.openKv(":memory:")` (the reference) and against a koi deployment through
 * `Deno.openKv(url)`, asserting equal observations, with a printed summary of what ran,
 * passed, failed, was excluded (koi is expected to differ, and why) or skipped.
 *
 * - The sanity test compares `:memory:` with a second `:memory:` driven the same way as koi
 *   (through the runner program in its own process): the scenarios must be deterministic and
 *   the runner's JSON must carry every observation. It runs everywhere.
 * - The koi test starts 2 clusters of 3 nodes (`alpha`, `beta`) with `[kv_connect]` from source
 *   on free ports, reads the token from the admin's `DENO_KV_ACCESS_TOKEN=` line and runs the
 *   scenarios in a child process whose environment alone holds the token (tests of one
 *   `deno test --parallel` run can share a process, and Deno's client reads the token from the
 *   process environment). It is ignored while config.toml refuses `[kv_connect]`
 *   (`KOI_KVC_REQUIRE=1` runs it anyway).
 *
 * The reference's slow scenario (expiry: Deno's SQLite backend sweeps expired keys about once a
 * minute after the database opens) runs in the background, so it overlaps with the
 * deployment's start; `KOI_KVC_SLOW=0` skips it in the koi test, and the sanity test runs it
 * only with `KOI_KVC_SLOW=1`. `KOI_KVC_ONLY=name,name` runs only those scenarios.
 */
import assert from "node:assert/strict";
import {
  compareResults,
  failures,
  parseRunnerOutput,
  runnerArgs,
  runScenarios,
  summarize,
} from "./_harness.ts";
import type { Results, RunnerArgs } from "./_harness.ts";
import { deploymentToml, kvConnectMissing, withKvConnect } from "./_deployment.ts";
import { CONFORMANCE_CLUSTERS, conformanceTable, scenarioContext } from "./_placement.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/** Deno's :memory: sweeps expired keys about once a minute after it opens. */
const MEMORY_EXPIRY_MS = 75_000;
/** koi deletes an expired key through its log within about a second; room for a busy CI. */
const KOI_EXPIRY_MS = 10_000;

const only = Deno.env.get("KOI_KVC_ONLY")?.split(",").filter((s) => s !== "");

/** Runs the scenarios in a child process (`_harness.ts` as a program); kills it by PID on timeout. */
async function runChild(
  args: RunnerArgs,
  env: Record<string, string>,
  timeoutMs: number,
): Promise<Results> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, ...runnerArgs(args)],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, timeoutMs);
  try {
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    if (out.code !== 0) {
      throw new Error(
        `The scenario runner exited ${out.code} (${out.signal ?? "no signal"}):\n` +
          `${stdout.slice(-3000)}\n${stderr.slice(-3000)}`,
      );
    }
    return parseRunnerOutput(stdout);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name: "kv connect conformance: :memory: against a second :memory: (scenarios are deterministic)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const slow = Deno.env.get("KOI_KVC_SLOW") === "1";
    const table = conformanceTable();
    const kv = await Deno.openKv(":memory:");
    try {
      const [reference, subject] = await Promise.all([
        runScenarios(
          kv,
          scenarioContext("memory", table, { expiryDeadlineMs: MEMORY_EXPIRY_MS }),
          { slow, only },
        ),
        runChild(
          {
            target: "memory",
            url: ":memory:",
            table: table.toJSON(),
            expiryDeadlineMs: MEMORY_EXPIRY_MS,
            slow,
            only,
          },
          {},
          300_000,
        ),
      ]);
      const verdicts = compareResults(reference, subject);
      console.log(summarize("KV Connect conformance, :memory: vs :memory: (sanity)", verdicts));
      assert.equal(failures(verdicts), "");
      // Every compared scenario observed something on both sides (no error, no timeout).
      for (const [name, r] of Object.entries(reference)) {
        assert.ok(r.status === "observed" || r.status === "skipped", `${name}: ${r.status}`);
      }
    } finally {
      kv.close();
    }
  },
});

const missing = kvConnectMissing();

Deno.test({
  name: "kv connect conformance: koi (2 clusters of 3 nodes) through Deno.openKv(url) " +
    `matches :memory:${missing === undefined ? "" : ` (ignored: ${missing})`}`,
  ignore: missing !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const slow = Deno.env.get("KOI_KVC_SLOW") !== "0";
    const table = conformanceTable();
    // The reference runs while the deployment starts: its keys come from the same routing
    // table (checked below against the admin's), so the observations name the same keys.
    const kv = await Deno.openKv(":memory:");
    try {
      const reference = runScenarios(
        kv,
        scenarioContext("memory", table, { expiryDeadlineMs: MEMORY_EXPIRY_MS }),
        { slow, only },
      );
      let subject: Results | undefined;
      await withKvConnect(deploymentToml(CONFORMANCE_CLUSTERS, 3), async (d) => {
        assert.deepEqual(d.table, table.toJSON(), "the deployment routes as the reference assumes");
        subject = await runChild(
          {
            target: "koi",
            url: d.url,
            table: d.table,
            expiryDeadlineMs: KOI_EXPIRY_MS,
            slow,
            only,
          },
          { DENO_KV_ACCESS_TOKEN: d.token },
          600_000,
        );
      });
      const verdicts = compareResults(await reference, subject!);
      console.log(summarize("KV Connect conformance, koi vs :memory:", verdicts));
      for (const v of verdicts.filter((v) => v.kind === "excluded")) {
        console.log(`excluded ${v.name}: ${v.detail}`);
      }
      assert.equal(failures(verdicts), "");
    } finally {
      kv.close();
    }
  },
});

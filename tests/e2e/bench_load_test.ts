/**
 * `koi bench load` end to end: a short run against the default deployment (3 clusters of 3
 * nodes on free ports) through the command line, read back as JSON; and its flags.
 */
import assert from "node:assert/strict";
import { withAdmin } from "./_admin.ts";
import { freePorts } from "./_cluster.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Runs `koi bench load <args>`; its exit code, stdout and stderr. */
async function benchLoad(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}cli.ts`, "bench", "load", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000), // a hung run is killed rather than hang the suite
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: o.code, out: text(o.stdout), err: text(o.stderr) };
}

interface Phase {
  seconds: number;
  ops: number;
  errors: number;
  opsPerSecond: number;
  errorsByKind: Record<string, number>;
  byType: Record<string, { ops: number; errors: number; latencyMs: Record<string, number> }>;
  byCluster: Record<string, { ops: number; errors: number }>;
}

Deno.test({
  name: "koi bench load: 5 s of workload A over the default deployment, every cluster, no error",
  sanitizeResources: false,
  async fn() {
    await withAdmin(undefined, async (admin) => {
      const carp = await admin.json<{ clusters: { id: string }[] }>("/v1/carp");
      const run = await benchLoad(
        ...["--admin", admin.url, "--seconds", "5", "--keys", "1000", "--clients", "8"],
        "--json",
      );
      assert.equal(run.code, 0, run.err);
      const report = JSON.parse(run.out) as {
        target: string;
        workload: string;
        clients: number;
        ok: boolean;
        measured: Phase;
      };
      assert.equal(report.target, "koi");
      assert.equal(report.workload, "A");
      assert.equal(report.clients, 8);
      assert.equal(report.ok, true);
      const m = report.measured;
      assert.ok(m.ops > 0, "operations were measured");
      assert.equal(m.errors, 0, JSON.stringify(m.errorsByKind));
      assert.deepEqual(m.errorsByKind, {});
      assert.ok(m.seconds >= 5 && m.seconds < 15, `${m.seconds} s`);
      assert.ok(m.opsPerSecond > 0);
      for (const type of ["read", "update"]) {
        const l = m.byType[type].latencyMs;
        assert.ok(m.byType[type].ops > 0, type);
        assert.ok(0 < l.p50 && l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.max, type);
      }
      assert.deepEqual(Object.keys(m.byCluster).sort(), carp.clusters.map((c) => c.id).sort());
      for (const [id, c] of Object.entries(m.byCluster)) assert.ok(c.ops > 0, `cluster ${id}`);
      const total = Object.values(m.byCluster).reduce((n, c) => n + c.ops, 0);
      assert.equal(total, m.ops);
    });
  },
});

Deno.test("koi bench load: --help, strict flags (exit 2), an admin that does not answer (exit 1)", async () => {
  const help = await benchLoad("--help");
  assert.equal(help.code, 0);
  for (
    const flag of [
      "--admin",
      "--workload",
      "--distribution",
      "--keys",
      "--value-bytes",
      "--clients",
      "--seconds",
      "--ops",
      "--warmup-seconds",
      "--preload",
      "--consistency",
      "--seed",
      "--timeout",
      "--max-error-rate",
      "--json",
    ]
  ) {
    assert.match(help.out, new RegExp(`^ +${flag} `, "m"), flag);
  }
  for (
    const [args, message] of [
      [["--bogus"], /Unknown option '--bogus'/],
      [["--workload", "Z"], /Invalid --workload: Z; expected one of A, B, C, W, T/],
      [["--keys", "0"], /Invalid --keys: 0/],
      [["--consistency", "eventual"], /Invalid --consistency: eventual/],
      [["--seconds", "0"], /Invalid --seconds: 0/],
      [["--max-error-rate", "2"], /Invalid --max-error-rate: 2/],
      [["extra"], /Unexpected argument 'extra'/],
    ] as const
  ) {
    const run = await benchLoad(...args);
    assert.equal(run.code, 2, `${args}: ${run.err}`);
    assert.match(run.err, message);
  }
  const [port] = freePorts(1);
  const down = await benchLoad("--admin", `127.0.0.1:${port}`, "--timeout", "300");
  assert.equal(down.code, 1, down.err);
  assert.match(down.err, /cannot reach the deployment of admin 127\.0\.0\.1:\d+/);
  assert.equal(down.out, "");
});

/**
 * The etcd drivers of `koi bench load` against a real etcd: one single-member etcd (Debian's
 * etcd-server) on free loopback ports with its data in a temporary folder, stopped by its PID
 * when the test ends; skipped, saying why, where `etcd` is not installed. And the flags that
 * choose an etcd target, which need no etcd.
 */
import assert from "node:assert/strict";
import { EtcdGrpcTarget } from "../../src/bench/_etcd_grpc.ts";
import { EtcdHttpTarget } from "../../src/bench/_etcd_http.ts";
import type { LoadTarget } from "../../src/bench/_target.ts";
import { freePorts, waitFor } from "./_cluster.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Why the test cannot run here, or undefined when `etcd` is installed. */
async function missingEtcd(): Promise<string | undefined> {
  try {
    const o = await new Deno.Command("etcd", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return o.success ? undefined : `etcd --version exited ${o.code}`;
  } catch (error) {
    return error instanceof Deno.errors.NotFound
      ? "etcd is not installed (apt-get install -y etcd-server)"
      : String(error);
  }
}

const MISSING = await missingEtcd();
if (MISSING !== undefined) console.log(`bench_etcd_test: skipped: ${MISSING}`);

/** A single-member etcd on free ports; `stop` ends it by PID and removes its data. */
class EtcdProcess {
  private constructor(
    readonly dir: string,
    readonly child: Deno.ChildProcess,
    readonly endpoint: string,
  ) {}

  /** The server's version, as `GET /version` says. */
  version = "";

  static async start(): Promise<EtcdProcess> {
    const dir = await Deno.makeTempDir({ prefix: "koi-etcd-e2e-" });
    const [client, peer] = freePorts(2);
    const c = `http://127.0.0.1:${client}`;
    const p = `http://127.0.0.1:${peer}`;
    const log = await Deno.open(`${dir}/etcd.log`, { write: true, create: true });
    const child = new Deno.Command("etcd", {
      args: [
        ...["--name", "e1", "--data-dir", `${dir}/data`],
        ...["--listen-client-urls", c, "--advertise-client-urls", c],
        ...["--listen-peer-urls", p, "--initial-advertise-peer-urls", p],
        ...["--initial-cluster", `e1=${p}`, "--log-level", "error", "--logger", "zap"],
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    child.stderr.pipeTo(log.writable).catch(() => {}); // closes the log when etcd ends
    const etcd = new EtcdProcess(dir, child, `127.0.0.1:${client}`);
    try {
      await waitFor(
        async () => {
          const r = await fetch(`${c}/health`, { signal: AbortSignal.timeout(1_000) });
          return r.ok && (await r.json()).health === "true";
        },
        "etcd healthy",
        15_000,
      );
      etcd.version = (await (await fetch(`${c}/version`)).json()).etcdserver;
    } catch (error) {
      await etcd.stop();
      throw error;
    }
    return etcd;
  }

  /** SIGSTOP / SIGCONT / SIGKILL, by PID. */
  signal(signal: Deno.Signal): void {
    Deno.kill(this.child.pid, signal);
  }

  /** The value stored under `key`, read through the gateway, or null. */
  async value(key: string): Promise<Uint8Array | null> {
    const r = await fetch(`http://${this.endpoint}/v3/kv/range`, {
      method: "POST",
      body: JSON.stringify({ key: btoa(key) }),
    });
    const range = await r.json() as { kvs?: { value?: string }[] };
    const kv = range.kvs?.[0];
    return kv === undefined ? null : Uint8Array.fromBase64(kv.value ?? "");
  }

  async stop(): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.child.status;
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** The kind `target` gives the failure of `op`; fails the test when `op` succeeds. */
async function failureKind(target: LoadTarget, op: () => Promise<unknown>): Promise<string> {
  try {
    await op();
  } catch (error) {
    return target.errorKind(error);
  }
  throw new Error(`${target.name}: the operation succeeded`);
}

/**
 * Runs `koi bench load <args>` to its end; its exit code, stdout and stderr. A process that
 * has not exited 30 s after it started (a gRPC channel or a socket left open keeps it alive)
 * is killed and fails the test.
 */
async function benchLoad(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}cli.ts`, "bench", "load", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    child.kill("SIGKILL");
  }, 30_000);
  try {
    const o = await child.output();
    const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
    assert.ok(!hung, `koi bench load ${args.join(" ")} did not exit: ${text(o.stderr)}`);
    return { code: o.code, out: text(o.stdout), err: text(o.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

const CONNECT = [
  ["etcd-grpc", (e: string[]) => EtcdGrpcTarget.connect(e, { timeoutMs: 500 })],
  ["etcd-http", (e: string[]) => EtcdHttpTarget.connect(e, { timeoutMs: 500 })],
] as const;

Deno.test({
  name: "etcd targets against a real etcd: values, misses, the CLI, a stopped and a dead etcd",
  ignore: MISSING !== undefined,
  async fn(t) {
    const etcd = await EtcdProcess.start();
    // Each target is closed before its step ends: the sanitizers fail a step that leaks an
    // op or a resource (a gRPC channel, a pooled connection).
    const withTargets = async (fn: (target: LoadTarget) => Promise<void>) => {
      for (const [, connect] of CONNECT) {
        const target = await connect([etcd.endpoint]);
        try {
          await fn(target);
        } finally {
          await target.close();
        }
      }
    };
    try {
      await t.step(
        "put then get, linearizable and serializable; a missing key is a miss",
        () =>
          withTargets(async (target) => {
            assert.equal(target.details.endpoints, etcd.endpoint);
            assert.match(String(target.details.version), /^3\.\d+\.\d+/, "the server's version");
            assert.deepEqual(target.clusters, ["etcd"]);
            const key = `${target.name}/k1`;
            const value = crypto.getRandomValues(new Uint8Array(100));
            assert.equal(await target.get(key, { stale: false }), false);
            assert.equal(await target.get(key, { stale: true }), false);
            await target.put(key, value);
            assert.equal(await target.get(key, { stale: false }), true);
            assert.equal(await target.get(key, { stale: true }), true);
            assert.deepEqual(await etcd.value(key), value, "the bytes put are the bytes stored");
            assert.equal(await target.get(`${target.name}/never-written`, { stale: false }), false);
          }),
      );

      await t.step("koi bench load --target etcd-grpc / etcd-http: a short run exits", async () => {
        for (const [name] of CONNECT) {
          const run = await benchLoad(
            ...["--target", name, "--etcd", etcd.endpoint, "--keys", "100", "--preload"],
            ...["--seconds", "0.5", "--warmup-seconds", "0", "--clients", "4", "--json"],
          );
          assert.equal(run.code, 0, run.err);
          const report = JSON.parse(run.out);
          assert.equal(report.target, name);
          assert.deepEqual(report.deployment, { endpoints: etcd.endpoint, version: etcd.version });
          assert.equal(report.preload.ops, 100);
          assert.ok(report.measured.ops > 0);
          assert.equal(report.measured.errors, 0, JSON.stringify(report.measured.errorSamples));
          assert.equal(report.measured.byType.read.misses, 0, "the preload wrote every key");
          assert.deepEqual(Object.keys(report.measured.byCluster), ["etcd"]);
        }
      });

      await t.step(
        "a stopped etcd (SIGSTOP): timeout within the budget",
        () =>
          withTargets(async (target) => {
            await target.get("warm", { stale: false }); // the connection is open
            etcd.signal("SIGSTOP");
            try {
              const t0 = performance.now();
              const kind = await failureKind(target, () => target.put("k2", new Uint8Array(1)));
              assert.equal(kind, "timeout", target.name);
              assert.ok(performance.now() - t0 < 3_000, `${target.name}: within the budget`);
            } finally {
              etcd.signal("SIGCONT");
            }
          }),
      );

      await t.step("a dead etcd (SIGKILL): unavailable, and connect fails", async () => {
        const targets = await Promise.all(CONNECT.map(([, connect]) => connect([etcd.endpoint])));
        try {
          etcd.signal("SIGKILL");
          await etcd.child.status;
          for (const target of targets) {
            const kind = await failureKind(target, () => target.get("k1", { stale: false }));
            assert.equal(kind, "unavailable", target.name);
            assert.equal(
              await failureKind(target, () => target.put("k1", new Uint8Array(1))),
              "unavailable",
              target.name,
            );
          }
        } finally {
          await Promise.all(targets.map((target) => target.close()));
        }
        for (const [name, connect] of CONNECT) {
          await assert.rejects(() => connect([etcd.endpoint]), /./, name);
        }
        const down = await benchLoad("--target", "etcd-grpc", "--etcd", etcd.endpoint);
        assert.equal(down.code, 1, down.err);
        assert.match(down.err, /cannot reach etcd at 127\.0\.0\.1:\d+ \(etcd-grpc\)/);
      });
    } finally {
      await etcd.stop();
    }
  },
});

Deno.test("koi bench load: --target and --etcd in the usage; their misuse is exit 2", async () => {
  const help = await benchLoad("--help");
  assert.equal(help.code, 0);
  for (const flag of ["--target", "--etcd"]) assert.match(help.out, new RegExp(`^ +${flag} `, "m"));
  for (
    const [args, message] of [
      [["--target", "etcd"], /Invalid --target: etcd; expected one of koi, etcd-grpc, etcd-http/],
      [["--etcd", "127.0.0.1:2379"], /--etcd needs --target etcd-grpc or etcd-http/],
      [["--target", "etcd-grpc", "--admin", "x"], /--admin is for --target koi, not etcd-grpc/],
      [["--target", "etcd-http", "--etcd", "https://h:1"], /Invalid --etcd: .*only http:\/\//],
      [["--target", "etcd-http", "--etcd", ","], /Invalid --etcd: expected host:port/],
    ] as const
  ) {
    const run = await benchLoad(...args);
    assert.equal(run.code, 2, `${args}: ${run.err}`);
    assert.match(run.err, message);
  }
});

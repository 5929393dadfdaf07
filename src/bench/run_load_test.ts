import assert from "node:assert/strict";
import type { LoadTarget, ReadOptions } from "./_target.ts";
import { WORKLOADS } from "./_workload.ts";
import { type LoadOptions, type LoadProgress, runLoad } from "./run_load.ts";

/** An error with a code, as the koi client throws. */
class CodedError extends Error {
  constructor(readonly code: string) {
    super(`failed: ${code}`);
  }
}

/**
 * A store in memory on a fake clock: every operation takes `latencyMs` of it (so durations
 * are exact and tests need no sleeping), `fail` may make one throw.
 */
class FakeTarget implements LoadTarget {
  readonly name = "fake";
  readonly details = { where: "memory" };
  readonly clusters = ["x", "y", "z"];
  readonly data = new Map<string, Uint8Array>();
  readonly calls: { type: "get" | "put"; key: string; stale?: boolean }[] = [];
  clock = 0;
  closed = false;
  fail: (n: number, type: "get" | "put") => string | undefined = () => undefined;

  constructor(readonly latencyMs = 1) {}

  readonly now = (): number => this.clock;

  clusterOf(key: string): string {
    return this.clusters[key.charCodeAt(key.length - 1) % 3];
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    await this.#op("put", key);
    this.data.set(key, value);
  }

  async get(key: string, options: ReadOptions): Promise<boolean> {
    await this.#op("get", key, options.stale);
    return this.data.has(key);
  }

  errorKind(error: unknown): string {
    return error instanceof CodedError ? error.code : "other";
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  async #op(type: "get" | "put", key: string, stale?: boolean): Promise<void> {
    const n = this.calls.push({ type, key, ...(stale === undefined ? {} : { stale }) });
    await Promise.resolve(); // answer later, as a store does: other callers go meanwhile
    this.clock += this.latencyMs;
    const code = this.fail(n, type);
    if (code !== undefined) throw new CodedError(code);
  }
}

function options(target: FakeTarget, more: Partial<LoadOptions> = {}): LoadOptions {
  return {
    target,
    workload: WORKLOADS.A,
    distribution: "zipfian",
    keys: 1000,
    valueBytes: 10,
    clients: 4,
    warmupSeconds: 0,
    consistency: "linearizable",
    seed: 1,
    preload: false,
    now: target.now,
    ...more,
  };
}

Deno.test("runLoad: stops at --ops; counts every operation by type and by cluster", async () => {
  const target = new FakeTarget();
  const report = await runLoad(options(target, { ops: 1000 }));
  const m = report.measured;
  assert.equal(m.ops, 1000);
  assert.equal(target.calls.length, 1000);
  assert.equal(m.errors, 0);
  const { read, update, all } = m.byType;
  assert.equal(read!.ops + update!.ops, 1000);
  assert.equal(read!.ops, target.calls.filter((c) => c.type === "get").length);
  assert.ok(Math.abs(read!.ops / 1000 - 0.5) < 0.06, `reads ${read!.ops}`);
  assert.equal(all!.ops, 1000);
  assert.equal(all!.latencyMs.count, 1000);
  // The fake serves one operation per 1 ms of its clock, so 1000 take 1000 ms and each of
  // the 4 callers waits for the other 3 (Little's law: 4 in flight at 1000/s is 4 ms).
  assert.equal(all!.latencyMs.p50, 4);
  assert.equal(all!.latencyMs.max, 4);
  assert.equal(m.seconds, 1);
  assert.equal(m.opsPerSecond, 1000);
  assert.deepEqual(Object.keys(m.byCluster), ["x", "y", "z"]);
  const perCluster = { x: 0, y: 0, z: 0 } as Record<string, number>;
  for (const c of target.calls) perCluster[target.clusterOf(c.key)]++;
  for (const id of target.clusters) assert.equal(m.byCluster[id].ops, perCluster[id], id);
  // No preload: reads of keys never written miss, which is no error.
  assert.ok(read!.misses > 0);
  assert.equal(report.preload, null);
  assert.deepEqual(report.limit, { seconds: null, ops: 1000 });
  assert.equal(target.closed, false, "the runner leaves closing to its caller");
});

Deno.test("runLoad: errors are counted by kind, per type and cluster, without latency", async () => {
  const target = new FakeTarget();
  target.fail = (n, type) =>
    n % 10 === 0 ? "timeout" : n % 7 === 0 && type === "put" ? "unavailable" : undefined;
  const report = await runLoad(options(target, { ops: 700 }));
  const m = report.measured;
  const expected = { timeout: 0, unavailable: 0 } as Record<string, number>;
  target.calls.forEach((c, i) => {
    const code = target.fail(i + 1, c.type);
    if (code !== undefined) expected[code]++;
  });
  assert.equal(expected.timeout, 70);
  assert.deepEqual(m.errorsByKind, expected);
  assert.equal(m.errors, expected.timeout + expected.unavailable);
  assert.equal(m.errorRate, m.errors / 700);
  assert.equal(m.byType.read!.errors + m.byType.update!.errors, m.errors);
  assert.equal(m.byType.all!.latencyMs.count, 700 - m.errors, "failed operations have no latency");
  const clusterErrors = Object.values(m.byCluster).reduce((a, c) => a + c.errors, 0);
  assert.equal(clusterErrors, m.errors);
  assert.deepEqual(Object.keys(m.errorSamples), ["timeout", "unavailable"]);
  assert.equal(m.errorSamples.timeout, "failed: timeout");
});

Deno.test("runLoad: stops after --seconds; the warm-up is not counted", async () => {
  const target = new FakeTarget();
  const report = await runLoad(options(target, { seconds: 0.5, warmupSeconds: 0.2 }));
  const m = report.measured;
  // 1 ms of the clock per operation: about 200 warm-up operations, then about 500 measured
  // (a caller that took one just before the end finishes it).
  assert.ok(m.ops >= 500 && m.ops <= 504, `${m.ops} measured`);
  const warmup = target.calls.length - m.ops;
  assert.ok(warmup >= 200 && warmup <= 204, `${warmup} in the warm-up`);
  assert.ok(m.seconds >= 0.5 && m.seconds <= 0.504, `${m.seconds} s`);
  assert.deepEqual(report.limit, { seconds: 0.5, ops: null });
});

Deno.test("runLoad: the sooner of --seconds and --ops ends the run", async () => {
  const short = await runLoad(options(new FakeTarget(), { seconds: 10, ops: 50 }));
  assert.equal(short.measured.ops, 50);
  const brief = await runLoad(options(new FakeTarget(), { seconds: 0.1, ops: 1_000_000 }));
  assert.ok(brief.measured.ops <= 104, `${brief.measured.ops}`);
  await assert.rejects(() => runLoad(options(new FakeTarget())), RangeError);
});

Deno.test("runLoad: on the real clock it stops after the duration", async () => {
  const target = new FakeTarget(0);
  const started = performance.now();
  const report = await runLoad({ ...options(target, { seconds: 0.2 }), now: undefined });
  const took = performance.now() - started;
  assert.ok(took >= 200 && took < 2000, `${took} ms`);
  assert.ok(report.measured.ops > 0);
  assert.ok(report.measured.seconds >= 0.2 && report.measured.seconds < 2);
});

Deno.test("runLoad: --preload writes every key once first; then reads find them", async () => {
  const target = new FakeTarget();
  const phases: LoadProgress[] = [];
  const report = await runLoad(
    options(target, {
      keys: 300,
      ops: 400,
      workload: WORKLOADS.C,
      preload: true,
      warmupSeconds: 0.05,
      consistency: "stale",
      onProgress: (p) => phases.push(p),
    }),
  );
  const preload = report.preload!;
  assert.equal(preload.ops, 300);
  assert.equal(preload.byType.update!.ops, 300);
  const written = target.calls.slice(0, 300);
  assert.ok(written.every((c) => c.type === "put"));
  assert.equal(new Set(written.map((c) => c.key)).size, 300, "each key once");
  assert.equal(target.data.size, 300);
  assert.equal(report.measured.byType.read!.misses, 0);
  assert.equal(report.measured.byType.update, undefined, "workload C: reads only");
  assert.ok(target.calls.slice(300).every((c) => c.type === "get" && c.stale === true));
  // Progress: preload, warm-up, measure, in that order, each phase ending at 1.
  const order = phases.map((p) => p.phase).filter((p, i, all) => p !== all[i - 1]);
  assert.deepEqual(order, ["preload", "warmup", "measure"]);
  assert.equal(phases.at(-1)!.fraction, 1);
  assert.equal(phases.at(-1)!.ops, 400);
  assert.ok(phases.every((p) => p.fraction >= 0 && p.fraction <= 1));
});

Deno.test("runLoad: one seed, one sequence of operations", async () => {
  const keysOf = async (seed: number) => {
    const target = new FakeTarget();
    await runLoad(options(target, { ops: 200, clients: 1, seed }));
    return target.calls.map((c) => `${c.type} ${c.key}`);
  };
  assert.deepEqual(await keysOf(9), await keysOf(9));
  assert.notDeepEqual(await keysOf(9), await keysOf(10));
});

Deno.test("runLoad: workload T sends two-key transactions, half within a cluster, half across", async () => {
  const target = new FakeTarget();
  const sent: { key: string; partner: "one" | "cross" }[] = [];
  const transacting = Object.assign(target, {
    async transact(key: string, partner: "one" | "cross", _value: Uint8Array) {
      sent.push({ key, partner });
      await Promise.resolve();
      target.clock += 2;
    },
  });
  const report = await runLoad(options(transacting, { ops: 400, workload: WORKLOADS.T }));
  const { "txn-one": one, "txn-cross": cross, read, update } = report.measured.byType;
  assert.equal(read, undefined);
  assert.equal(update, undefined);
  assert.equal(one!.ops + cross!.ops, 400);
  assert.equal(one!.ops, sent.filter((s) => s.partner === "one").length);
  assert.ok(Math.abs(one!.ops / 400 - 0.5) < 0.1, `txn-one ${one!.ops}`);
  assert.equal(report.measured.errors, 0);
  // A store without transactions fails each one, counted as errors.
  const plain = await runLoad(options(new FakeTarget(), { ops: 10, workload: WORKLOADS.T }));
  assert.equal(plain.measured.errors, 10);
});

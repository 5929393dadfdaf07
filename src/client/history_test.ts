/** The history recorder: what a client records of each call, and how it classifies failures. */
import assert from "node:assert/strict";
import { FakeDeployment } from "./_fake_test_util.ts";
import { connect, HistoryRecorder, KoiError } from "./mod.ts";

const ONE_NODE = { clusters: [{ id: "a", nodes: ["a1"] }] };
const text = (b: Uint8Array | null | undefined) =>
  b === null || b === undefined ? b : new TextDecoder().decode(b);

Deno.test("history: each call is recorded with its invocation, end, outcome and answer", async () => {
  const d = FakeDeployment.start(ONE_NODE);
  try {
    let clock = 100;
    const history = new HistoryRecorder({ now: () => clock++ });
    using koi = await connect(d.adminUrl, { history, clientId: "c1" });
    const value = new TextEncoder().encode("v1");
    const { rev } = await koi.put("k", value);
    value[0] = 0; // the recorder copied it
    assert.equal((await koi.getText("k"))?.value, "v1");
    assert.equal(await koi.get("absent"), null);
    const failed = await koi.put("k", "v2", { ifRev: rev + 100 }).catch((e) => e);
    assert.ok(failed instanceof KoiError && failed.code === "precondition_failed");
    assert.equal((await koi.delete("k", { ifRev: rev })).deleted, true);
    const ops = history.operations();
    assert.deepEqual(ops.map((o) => [o.id, o.f, text(o.key), o.outcome]), [
      [0, "put", "k", "ok"],
      [1, "get", "k", "ok"],
      [2, "get", "absent", "ok"],
      [3, "put", "k", "fail"],
      [4, "delete", "k", "ok"],
    ]);
    assert.ok(ops.every((o) => o.client.startsWith("c1-") && o.invokeMs < o.endMs));
    assert.ok(ops.every((o, i) => i === 0 || ops[i - 1].endMs < o.invokeMs), "sequential");
    assert.equal(text(ops[0].value), "v1");
    assert.deepEqual(ops[0].result, { rev });
    assert.equal(text(ops[1].result?.value), "v1");
    assert.equal(ops[1].result?.rev, rev);
    assert.equal(ops[2].result?.value, null);
    assert.equal(ops[3].ifRev, rev + 100);
    assert.equal(ops[3].errorCode, "precondition_failed");
    assert.equal(ops[3].result, undefined);
    assert.equal(ops[4].ifRev, rev);
    assert.equal(ops[4].result?.deleted, true);
    assert.equal(history.dropped, 0);
  } finally {
    await d.close();
  }
});

Deno.test("history: a write that timed out is unknown, a read that timed out failed, and an operation in flight is pending", async () => {
  const d = FakeDeployment.start(ONE_NODE);
  try {
    const history = new HistoryRecorder();
    using koi = await connect(d.adminUrl, { history, attemptTimeoutMs: 100 });
    let release!: () => void;
    const hung = new Promise<void>((r) => release = r);
    d.nodeHook = async () => {
      await hung;
      return undefined;
    };
    const put = await koi.put("k", "v", { timeoutMs: 300 }).catch((e) => e);
    assert.ok(put instanceof KoiError && put.outcomeUnknown, String(put));
    const get = await koi.get("k", { timeoutMs: 300 }).catch((e) => e);
    assert.ok(get instanceof KoiError);
    const inFlight = koi.put("k2", "v", { timeoutMs: 5_000 });
    const [w, r, p] = history.operations();
    assert.equal(w.outcome, "unknown");
    assert.equal(w.errorCode, put.code);
    assert.equal(r.outcome, "fail");
    assert.equal(p.outcome, "pending");
    assert.equal(p.endMs, Infinity);
    release();
    d.nodeHook = undefined;
    await inFlight;
    assert.equal(p.outcome, "ok");
    assert.ok(Number.isFinite(p.endMs));
  } finally {
    await d.close();
  }
});

Deno.test("history: a full recorder counts what it drops; shared by two clients it interleaves them", async () => {
  const d = FakeDeployment.start(ONE_NODE);
  try {
    const history = new HistoryRecorder({ operationsMax: 3 });
    using a = await connect(d.adminUrl, { history, clientId: "a" });
    using b = await connect(d.adminUrl, { history, clientId: "b" });
    await a.put("k", "1");
    await b.get("k");
    await a.delete("k");
    await b.put("k", "2");
    assert.deepEqual(history.operations().map((o) => o.client.split("-")[0]), ["a", "b", "a"]);
    assert.equal(history.dropped, 1);
    assert.throws(() => new HistoryRecorder({ operationsMax: -1 }), /operationsMax/);
    await assert.rejects(
      // deno-lint-ignore no-explicit-any
      () => connect(d.adminUrl, { history: {} as any }),
      /Invalid history/,
    );
  } finally {
    await d.close();
  }
});

/** Deadlines, typed failures, close() and abort signals. */
import assert from "node:assert/strict";
import net from "node:net";
import { error, FakeDeployment, freePorts, waitFor } from "./_fake_test_util.ts";
import { connect, KoiError, KoiHttpError, TimeoutError, UnavailableError } from "./mod.ts";

const THREE_NODES = { clusters: [{ id: "a", nodes: ["a1", "a2", "a3"] }] };
/** What a call may take beyond its timeoutMs on a loaded 2-core machine. */
const SLACK_MS = 700;

async function timed<T>(body: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  const value = await body();
  return { value, ms: Date.now() - started };
}

Deno.test("deadline: a cluster without a leader fails with UnavailableError in time", async () => {
  const d = FakeDeployment.start(THREE_NODES);
  try {
    using koi = await connect(d.adminUrl, { retryBaseMs: 5, retryMaxMs: 50 });
    d.nodeHook = () => error(503, "no_leader", "No leader known", { "retry-after": "1" });
    const { value: e, ms } = await timed(() =>
      koi.put("k", "v", { timeoutMs: 400 }).catch((e) => e)
    );
    assert.ok(e instanceof UnavailableError, String(e));
    assert.equal(e.code, "unavailable");
    assert.equal(e.cluster, "a");
    assert.equal(e.outcomeUnknown, true, "a write that got no_leader may still apply");
    assert.ok(e.attempts >= 3, `${e.attempts} attempts`);
    assert.equal(e.attempts, d.requests.length);
    assert.ok(e.cause instanceof KoiHttpError && e.cause.code === "no_leader");
    assert.match(e.message, /answered 503 no_leader/);
    assert.ok(ms < 400 + SLACK_MS, `took ${ms} ms`);
    assert.equal(new Set(d.requests.map((r) => r.node)).size, 3, "every node was asked");
    // overloaded is a refusal: the write was not applied.
    d.nodeHook = () => error(503, "overloaded", "Too many writes wait", { "retry-after": "1" });
    const busy = await koi.put("k", "v", { timeoutMs: 200 }).catch((e) => e);
    assert.ok(busy instanceof UnavailableError);
    assert.equal(busy.outcomeUnknown, false);
    // So is disk_failed: a node whose disk fails refuses writes before proposing them.
    d.nodeHook = () => error(503, "disk_failed", "The data dir is full", { "retry-after": "1" });
    const full = await koi.put("k", "v", { timeoutMs: 200 }).catch((e) => e);
    assert.ok(full instanceof UnavailableError);
    assert.equal(full.outcomeUnknown, false);
    // A read is never outcome-unknown.
    const read = await koi.get("k", { timeoutMs: 200 }).catch((e) => e);
    assert.ok(read instanceof UnavailableError);
    assert.equal(read.outcomeUnknown, false);
  } finally {
    await d.close();
  }
});

Deno.test("deadline: retry-after is honoured when the call has time left", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  try {
    using koi = await connect(d.adminUrl);
    let once = true;
    d.nodeHook = () => {
      if (!once) return undefined;
      once = false;
      return error(503, "no_leader", "No leader known", { "retry-after": "1" });
    };
    const { ms } = await timed(() => koi.put("k", "v"));
    assert.ok(ms >= 950, `retried after ${ms} ms, before retry-after`);
    assert.equal(d.requests.length, 2);
  } finally {
    await d.close();
  }
});

Deno.test("deadline: nodes that refuse connections: UnavailableError, the write's outcome unknown", async () => {
  const d = FakeDeployment.start(THREE_NODES);
  try {
    using koi = await connect(d.adminUrl, { retryBaseMs: 5, retryMaxMs: 50 });
    for (const node of d.cluster("a").nodes) await node.stop();
    const { value: e, ms } = await timed(() =>
      koi.put("k", "v", { timeoutMs: 300 }).catch((e) => e)
    );
    assert.ok(e instanceof UnavailableError, String(e));
    // Deno's fetch reports only the refusal of its own retry on a new connection (see the
    // next test): a refused connection does not prove that nothing was sent.
    assert.equal(e.outcomeUnknown, true);
    assert.match(e.message, /connection refused/);
    assert.ok(e.attempts >= 3);
    assert.ok(ms < 300 + SLACK_MS, `took ${ms} ms`);
  } finally {
    await d.close();
  }
});

Deno.test("deadline: a write received on a kept-alive connection whose node then died is outcome-unknown, though fetch reports the refusal of its retry", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  const node = d.cluster("a").nodes[0];
  await node.stop();
  // A node on a1's port that answers the first write, reads the second one and dies: Deno's
  // fetch then sends it again on a new connection, which is refused, and reports only that.
  const seen: string[] = [];
  const server = net.createServer((socket) => {
    socket.on("data", (data) => {
      seen.push(data.toString().split("\r\n")[0]);
      if (seen.length === 1) {
        socket.write(
          'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{"rev":5}',
        );
      } else {
        server.close();
        socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(node.port, "127.0.0.1", resolve));
  try {
    using koi = await connect(d.adminUrl, { retryBaseMs: 5, retryMaxMs: 50 });
    assert.equal((await koi.put("k", "v1")).rev, 5);
    const e = await koi.put("k", "v2", { timeoutMs: 300 }).catch((e) => e);
    assert.ok(e instanceof UnavailableError, String(e));
    assert.match(e.message, /connection refused/);
    assert.equal(seen.length, 2, "the node received the second write");
    assert.equal(e.outcomeUnknown, true, "the received write may have been applied");
  } finally {
    server.close();
    await d.close();
  }
});

Deno.test("deadline: nodes that never answer: TimeoutError at the deadline", async () => {
  const d = FakeDeployment.start(THREE_NODES);
  try {
    using koi = await connect(d.adminUrl, { attemptTimeoutMs: 150, timeoutMs: 500 });
    d.nodeHook = (_request, node) => node.hang();
    const { value: e, ms } = await timed(() => koi.get("k").catch((e) => e));
    assert.ok(e instanceof TimeoutError, String(e));
    assert.equal(e.timeoutMs, 500);
    assert.equal(e.outcomeUnknown, false);
    assert.ok(e.attempts >= 3, `${e.attempts} attempts`);
    assert.match(e.message, /did not answer within/);
    assert.ok(ms >= 490 && ms < 500 + SLACK_MS, `took ${ms} ms`);
  } finally {
    await d.close();
  }
});

Deno.test("deadline: connect gives up on an unreachable admin within connectTimeoutMs", async () => {
  const [port] = freePorts(1);
  const { value: e, ms } = await timed(() =>
    connect(`http://127.0.0.1:${port}`, { connectTimeoutMs: 300, retryMaxMs: 50 }).catch((e) => e)
  );
  assert.ok(e instanceof UnavailableError, String(e));
  assert.match(
    e.message,
    /No routing table from the admin http:\/\/127\.0\.0\.1:\d+ within 300 ms/,
  );
  assert.match(e.message, /connection refused/);
  assert.ok(ms < 300 + SLACK_MS, `took ${ms} ms`);
});

Deno.test("deadline: connect reports an admin that stays starting", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  try {
    d.adminHook = () =>
      error(503, "starting", "Cluster b has no leader yet", { "retry-after": "1" });
    const e = await connect(d.adminUrl, { connectTimeoutMs: 300 }).catch((e) => e);
    assert.ok(e instanceof UnavailableError, String(e));
    assert.match(e.message, /503 starting: Cluster b has no leader yet/);
  } finally {
    await d.close();
  }
});

Deno.test("close: calls in flight fail with code closed, later ones at once", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  try {
    const koi = await connect(d.adminUrl);
    d.nodeHook = (_request, node) => node.hang();
    const pending = koi.put("k", "v").catch((e) => e);
    const read = koi.get("k").catch((e) => e);
    await waitFor(() => d.requests.length === 2, "both requests at the node");
    koi.close();
    assert.equal(koi.closed, true);
    const [write, got] = await Promise.all([pending, read]);
    assert.ok(write instanceof KoiError && write.code === "closed", String(write));
    assert.equal(write.outcomeUnknown, true);
    assert.equal(got.code, "closed");
    assert.equal(got.outcomeUnknown, false);
    const later = await koi.get("k").catch((e) => e);
    assert.equal(later.code, "closed");
    assert.equal(d.requests.length, 2, "nothing sent after close");
    koi.close(); // idempotent
  } finally {
    await d.close();
  }
});

Deno.test("abort: the caller's signal aborts a call with code aborted", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  try {
    using koi = await connect(d.adminUrl);
    d.nodeHook = (_request, node) => node.hang();
    const controller = new AbortController();
    const pending = koi.get("k", { signal: controller.signal }).catch((e) => e);
    await waitFor(() => d.requests.length === 1, "the request at the node");
    controller.abort(new Error("user gave up"));
    const e = await pending;
    assert.ok(e instanceof KoiError && e.code === "aborted", String(e));
    assert.equal((e.cause as Error).message, "user gave up");
  } finally {
    await d.close();
  }
});

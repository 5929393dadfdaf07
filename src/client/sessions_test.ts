/** Request-id sessions: one write in flight per client id, seq grows, retries keep it. */
import assert from "node:assert/strict";
import { error, FakeDeployment } from "./_fake_test_util.ts";
import { connect, KoiHttpError, TimeoutError } from "./mod.ts";
import { SessionPool } from "./_sessions.ts";

const ONE = { clusters: [{ id: "a", nodes: ["a1"] }] };

function split(requestId: string | null): { client: string; seq: number } {
  assert.ok(requestId !== null, "the write carries x-request-id");
  const at = requestId.lastIndexOf(":");
  return { client: requestId.slice(0, at), seq: Number(requestId.slice(at + 1)) };
}

Deno.test("sessions: sequential writes share one client id with a growing seq", async () => {
  const d = FakeDeployment.start(ONE);
  try {
    using koi = await connect(d.adminUrl, { clientId: "app" });
    await koi.put("a", "1");
    await koi.put("b", "2");
    await koi.delete("a");
    await koi.get("b");
    const ids = d.requests.map((r) => r.requestId);
    assert.equal(ids[3], null, "reads carry no request id");
    const writes = ids.slice(0, 3).map(split);
    assert.match(writes[0].client, /^app-[0-9a-f]{16}-1$/);
    assert.equal(koi.clientId, writes[0].client.replace(/-1$/, ""));
    assert.ok(writes.every((w) => w.client === writes[0].client));
    assert.deepEqual(writes.map((w) => w.seq), [1, 2, 3]);
  } finally {
    await d.close();
  }
});

Deno.test("sessions: concurrent writes never share a client id; sessions are reused after", async () => {
  const d = FakeDeployment.start(ONE);
  try {
    using koi = await connect(d.adminUrl);
    const n = 8;
    // Hold every PUT until all n are in flight at once, then let them through.
    let release!: () => void;
    const allIn = new Promise<void>((resolve) => (release = resolve));
    d.nodeHook = async (request) => {
      if (request.method !== "PUT") return undefined;
      if (d.requests.filter((r) => r.method === "PUT").length === n) release();
      await allIn;
      return undefined;
    };
    const round = async () => {
      const before = d.requests.length;
      await Promise.all(Array.from({ length: n }, (_, i) => koi.put(`k${i}`, "v")));
      return d.requests.slice(before).map((r) => split(r.requestId));
    };
    const first = await round();
    assert.equal(new Set(first.map((w) => w.client)).size, n, "n writes, n client ids");
    assert.ok(first.every((w) => w.seq === 1));
    d.nodeHook = undefined;
    const second = await round();
    assert.deepEqual(
      new Set(second.map((w) => w.client)),
      new Set(first.map((w) => w.client)),
      "the free sessions are reused",
    );
    assert.ok(second.every((w) => w.seq === 2), "each with its next seq");
  } finally {
    await d.close();
  }
});

Deno.test("sessions: a write with an unknown outcome advances the seq; the next write takes seq + 1", async () => {
  const d = FakeDeployment.start(ONE);
  try {
    using koi = await connect(d.adminUrl, { retryBaseMs: 1 });
    d.nodeHook = (_request, node) => node.hang();
    const started = Date.now();
    const e = await koi.put("k", "lost", { timeoutMs: 300 }).catch((e) => e);
    const elapsed = Date.now() - started;
    assert.ok(e instanceof TimeoutError, String(e));
    assert.equal(e.code, "timeout");
    assert.equal(e.outcomeUnknown, true);
    assert.equal(e.cluster, "a");
    assert.match(e.message, /may or may not have been applied/);
    assert.ok(elapsed >= 290 && elapsed < 1_000, `took ${elapsed} ms`);
    d.nodeHook = undefined;
    await koi.put("k", "next");
    const [lost, next] = d.requests.map((r) => split(r.requestId));
    assert.equal(next.client, lost.client);
    assert.equal(next.seq, lost.seq + 1, "never the same seq for another write");
  } finally {
    await d.close();
  }
});

Deno.test("sessions: stale_request before any attempt may have applied moves to a new id", async () => {
  const d = FakeDeployment.start(ONE);
  try {
    using koi = await connect(d.adminUrl);
    let once = true;
    d.nodeHook = () => {
      if (!once) return undefined;
      once = false;
      return error(409, "stale_request", "Stale request id: the client's last applied seq is 9");
    };
    await koi.put("k", "v");
    await koi.put("k", "w");
    const [refused, retried, later] = d.requests.map((r) => split(r.requestId));
    assert.notEqual(retried.client, refused.client);
    assert.equal(retried.seq, 1);
    assert.equal(later.client, retried.client, "the retired id is never used again");
    assert.equal(later.seq, 2);
    assert.equal(d.cluster("a").text("k"), "w");
  } finally {
    await d.close();
  }
});

Deno.test("sessions: stale_request after an attempt that may have applied is outcome unknown", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1", "a2"] }] });
  try {
    using koi = await connect(d.adminUrl, { attemptTimeoutMs: 150 });
    d.node("a1").hook = (_request, node) => node.hang();
    d.node("a2").hook = () => error(409, "stale_request", "Stale request id");
    const e = await koi.put("k", "v").catch((e) => e);
    assert.ok(e instanceof KoiHttpError, String(e));
    assert.equal(e.code, "stale_request");
    assert.equal(e.status, 409);
    assert.equal(e.outcomeUnknown, true);
    assert.equal(e.node, "a2");
    assert.deepEqual(d.requests.map((r) => r.node), ["a1", "a2"]);
  } finally {
    await d.close();
  }
});

Deno.test("sessions: the pool lends free sessions first and puts unsettled ones last", () => {
  const pool = new SessionPool("p");
  const s1 = pool.acquire();
  const s2 = pool.acquire();
  assert.deepEqual([s1.id, s1.seq, s2.id, s2.seq], ["p-1", 1, "p-2", 1]);
  pool.release(s1, false); // outcome unknown: reused last
  pool.release(s2, true);
  const next = pool.acquire();
  assert.deepEqual([next.id, next.seq], ["p-2", 2]);
  const after = pool.acquire();
  assert.deepEqual([after.id, after.seq], ["p-1", 2]);
  assert.equal(pool.created, 2);
  const fresh = pool.replace();
  assert.deepEqual([fresh.id, fresh.seq], ["p-3", 1]);
});

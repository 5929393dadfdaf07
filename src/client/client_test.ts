/** The routing client against fake nodes and a fake admin: routing, leaders, retries, 421. */
import assert from "node:assert/strict";
import { error, FakeDeployment, json, keyOwnedBy, waitFor } from "./_fake_test_util.ts";
import {
  connect,
  KoiError,
  KoiHttpError,
  PreconditionFailedError,
  UnavailableError,
} from "./mod.ts";

/** One cluster of three nodes. */
const ONE = { clusters: [{ id: "a", nodes: ["a1", "a2", "a3"] }] };

const THREE = {
  clusters: [
    { id: "a", nodes: ["a1", "a2", "a3"] },
    { id: "b", nodes: ["b1", "b2", "b3"] },
    { id: "c", nodes: ["c1", "c2", "c3"] },
  ],
};

/** Runs `body` with a fake deployment and a client connected to it; closes both. */
async function withClient(
  spec: Parameters<typeof FakeDeployment.start>[0],
  body: (d: FakeDeployment, koi: Awaited<ReturnType<typeof connect>>) => Promise<void>,
  options: Parameters<typeof connect>[1] = {},
): Promise<void> {
  const d = FakeDeployment.start(spec);
  try {
    const koi = await connect(d.adminUrl, { retryBaseMs: 1, retryMaxMs: 20, ...options });
    try {
      await body(d, koi);
    } finally {
      koi.close();
    }
  } finally {
    await d.close();
  }
}

Deno.test("client: every key request goes to the cluster CARP names, and only there", async () => {
  await withClient(THREE, async (d, koi) => {
    assert.equal(koi.epoch, 1);
    assert.deepEqual(koi.table.clusters.map((c) => c.id), ["a", "b", "c"]);
    const owners = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const key = `user:${i}`;
      const owner = koi.table.carp.owner(key);
      owners.add(owner);
      assert.equal(koi.where(key).cluster, owner);
      const before = d.requests.length;
      const { rev } = await koi.put(key, `v${i}`);
      assert.equal(d.cluster(owner).text(key), `v${i}`);
      const hit = await koi.getText(key);
      assert.deepEqual(hit, { value: `v${i}`, rev });
      const sent = d.requests.slice(before);
      assert.equal(sent.length, 2);
      assert.ok(
        sent.every((r) => r.cluster === owner),
        `${key} went to ${sent.map((r) => r.node)}`,
      );
    }
    assert.equal(owners.size, 3, "30 keys spread over all three clusters");
    assert.equal(await koi.get("absent"), null);
  });
});

Deno.test("client: requests go to the table's leader hint, then to x-koi-leader's node", async () => {
  const spec = { clusters: [{ id: "a", nodes: ["a1", "a2", "a3"] }] };
  const d = FakeDeployment.start(spec);
  d.cluster("a").leader = "a2";
  try {
    using koi = await connect(d.adminUrl, { readFrom: "leader" });
    assert.equal(koi.where("k").leader?.id, "a2");
    await koi.put("k", "1");
    assert.deepEqual(d.requests.map((r) => r.node), ["a2"]);
    // Leadership moves: a2 answers (it still serves in the fake) and names a3.
    d.cluster("a").leader = "a3";
    await koi.get("k");
    assert.equal(koi.where("k").leader?.id, "a3");
    await koi.get("k");
    await koi.delete("k");
    assert.deepEqual(d.requests.map((r) => r.node), ["a2", "a2", "a3", "a3"]);
  } finally {
    await d.close();
  }
});

Deno.test("client: reads spread over the members in turn (readFrom any, the default); writes go to the leader", async () => {
  await withClient(ONE, async (d, koi) => {
    d.cluster("a").leader = "a2";
    await koi.put("k", "1");
    const before = d.requests.length;
    for (let i = 0; i < 6; i++) await koi.get("k", i % 2 === 0 ? {} : { consistency: "stale" });
    await koi.list({ prefix: "k" });
    await koi.put("k", "2");
    const nodes = d.requests.slice(before).map((r) => r.node);
    const reads = nodes.slice(0, 7);
    for (const id of ["a1", "a2", "a3"]) {
      assert.ok(reads.filter((n) => n === id).length >= 2, `${id} served reads: ${reads}`);
    }
    assert.equal(nodes.at(-1), "a2", "the write went to the leader");
  });
});

Deno.test("client: a spread read that a member fails is retried on another member", async () => {
  await withClient(ONE, async (d, koi) => {
    await koi.put("k", "1");
    d.nodeHook = (_request, node) =>
      node.id === "a3" ? error(503, "unavailable", "no leader here") : undefined;
    const before = d.requests.length;
    for (let i = 0; i < 6; i++) assert.equal((await koi.getText("k"))?.value, "1");
    assert.ok(d.requests.slice(before).some((r) => r.node === "a3"), "a3 had its turns");
  });
});

Deno.test("client: readFrom leader sends every read to the leader; an unknown readFrom is refused", async () => {
  await withClient(ONE, async (d, koi) => {
    d.cluster("a").leader = "a3";
    await koi.put("k", "1");
    const before = d.requests.length;
    for (let i = 0; i < 4; i++) await koi.get("k", { consistency: "stale" });
    assert.deepEqual(d.requests.slice(before).map((r) => r.node), ["a3", "a3", "a3", "a3"]);
  }, { readFrom: "leader" });
  const d = FakeDeployment.start(ONE);
  try {
    await assert.rejects(
      // deno-lint-ignore no-explicit-any
      connect(d.adminUrl, { readFrom: "followers" as any }),
      (e) => e instanceof KoiError && e.code === "bad_request" && /readFrom/.test(e.message),
    );
  } finally {
    await d.close();
  }
});

Deno.test("client: a 503 is retried on the cluster; the write keeps its request id", async () => {
  await withClient({ clusters: [{ id: "a", nodes: ["a1"] }] }, async (d, koi) => {
    let refusals = 3;
    d.nodeHook = (request) =>
      request.method === "PUT" && refusals-- > 0
        ? error(503, "no_leader", "No leader known", { "retry-after": "0" })
        : undefined;
    const { rev } = await koi.put("k", "v");
    assert.ok(rev >= 1);
    const puts = d.requests.filter((r) => r.method === "PUT");
    assert.equal(puts.length, 4);
    assert.equal(new Set(puts.map((r) => r.requestId)).size, 1, "one id for all attempts");
    assert.match(puts[0].requestId!, /^koi-[0-9a-f]{16}-1:1$/);
    assert.equal(d.cluster("a").applied, 1);
  });
});

Deno.test("client: a refused connection moves to the next node of the cluster", async () => {
  await withClient({ clusters: [{ id: "a", nodes: ["a1", "a2", "a3"] }] }, async (d, koi) => {
    await d.node("a1").stop(); // the leader hint
    d.cluster("a").leader = "";
    const { rev } = await koi.put("k", "v");
    assert.equal(d.cluster("a").text("k"), "v");
    assert.deepEqual(d.requests.map((r) => r.node), ["a2"]);
    // The dead node is tried last for a while: the next call goes to a2 directly.
    assert.deepEqual(await koi.getText("k"), { value: "v", rev });
    assert.deepEqual(d.requests.map((r) => r.node), ["a2", "a2"]);
  });
});

Deno.test("client: an attempt that hangs is abandoned for another node with the same id", async () => {
  await withClient({ clusters: [{ id: "a", nodes: ["a1", "a2"] }] }, async (d, koi) => {
    d.node("a1").hook = (_request, node) => node.hang();
    const started = Date.now();
    await koi.put("k", "v");
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 150 && elapsed < 2_000, `took ${elapsed} ms`);
    const ids = d.requests.map((r) => `${r.node} ${r.requestId}`);
    assert.equal(ids.length, 2, ids.join(", "));
    assert.equal(d.requests[0].node, "a1");
    assert.equal(d.requests[1].node, "a2");
    assert.equal(d.requests[0].requestId, d.requests[1].requestId);
    assert.equal(d.cluster("a").applied, 1);
  }, { attemptTimeoutMs: 200 });
});

Deno.test("client: 421 refetches the table and follows the admin's newer epoch", async () => {
  const d = FakeDeployment.start({
    clusters: [{ id: "a", nodes: ["a1"] }, { id: "b", nodes: ["b1"] }],
  });
  try {
    // The client starts with epoch 1: only cluster a. The nodes and then the admin move to
    // epoch 2 with a and b.
    d.setTable({ epoch: 1, scheme: "carp64", clusters: [{ id: "a", loadFactor: 1 }] });
    using koi = await connect(d.adminUrl, { retryBaseMs: 1 });
    assert.equal(koi.epoch, 1);
    const two = {
      epoch: 2,
      scheme: "carp64" as const,
      clusters: [{ id: "a", loadFactor: 1 }, { id: "b", loadFactor: 1 }],
    };
    d.setTable(two);
    const key = keyOwnedBy(d.nodeTable, "b");
    assert.equal(koi.where(key).cluster, "a");
    await koi.put(key, "v");
    assert.equal(d.cluster("b").text(key), "v");
    assert.equal(koi.epoch, 2);
    assert.equal(koi.where(key).cluster, "b");
    assert.deepEqual(d.requests.map((r) => `${r.node} ${r.method}`), ["a1 PUT", "b1 PUT"]);
    assert.equal(d.requests[0].requestId, d.requests[1].requestId);
    assert.deepEqual(d.adminRequests, ["/v1/carp", "/v1/carp"]);
  } finally {
    await d.close();
  }
});

Deno.test("client: a cluster that fails at every node makes it refetch the table, once a second", async () => {
  const d = FakeDeployment.start({
    clusters: [{ id: "a", nodes: ["a1"] }, { id: "b", nodes: ["b1", "b2"] }],
  });
  try {
    using koi = await connect(d.adminUrl, { retryBaseMs: 1, retryMaxMs: 20 });
    const key = keyOwnedBy(d.nodeTable, "b");
    // b is drained and stopped: it answers nothing (no 421), and the admin serves a table
    // without it. The client learns of it from the admin and goes to a.
    await d.node("b1").stop();
    await d.node("b2").stop();
    d.setTable({ epoch: 2, scheme: "carp64", clusters: [{ id: "a", loadFactor: 1 }] });
    await koi.put(key, "v", { timeoutMs: 3_000 });
    assert.equal(d.cluster("a").text(key), "v");
    assert.equal(koi.epoch, 2);
    assert.equal(koi.where(key).cluster, "a");
    assert.deepEqual(d.adminRequests, ["/v1/carp", "/v1/carp"]);
    // A cluster that is down while the admin has nothing newer: the admin is asked at most
    // once a second, not on every round of retries.
    d.setTable({
      epoch: 3,
      scheme: "carp64",
      clusters: [{ id: "a", loadFactor: 1 }, { id: "b", loadFactor: 1 }],
    });
    await koi.refresh();
    const before = d.adminRequests.length;
    const started = Date.now();
    await assert.rejects(koi.getText(key, { timeoutMs: 1_500 }), UnavailableError);
    const seconds = (Date.now() - started) / 1000;
    const asked = d.adminRequests.length - before;
    assert.ok(asked >= 1 && asked <= Math.ceil(seconds) + 1, `the admin was asked ${asked} times`);
  } finally {
    await d.close();
  }
});

Deno.test("client: a call that joins another call's refetch of the table still ends at its own deadline", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  let release = () => {};
  try {
    using koi = await connect(d.adminUrl, { retryBaseMs: 1, retryMaxMs: 20 });
    await d.node("a1").stop();
    const gate = new Promise<void>((r) => release = r);
    d.adminHook = (_request, path) =>
      path === "/v1/carp" ? gate.then(() => error(503, "unavailable", "later")) : undefined;
    // The first call starts a refetch that hangs for its whole budget (3 s)...
    const long = koi.getText("k", { timeoutMs: 3_000 }).catch((e) => e);
    await waitFor(() => d.adminRequests.length === 2, "the refetch started");
    // ...the second joins it, and must not wait past its own 300 ms for it.
    const started = Date.now();
    await assert.rejects(koi.getText("k", { timeoutMs: 300 }), UnavailableError);
    const ms = Date.now() - started;
    assert.ok(ms < 1_500, `the 300 ms call took ${ms} ms`);
    release();
    assert.ok(await long instanceof KoiError);
  } finally {
    release();
    await d.close();
  }
});

Deno.test("client: a listing asks the clusters of the newer table when one of its clusters left", async () => {
  const d = FakeDeployment.start({
    clusters: [{ id: "a", nodes: ["a1"] }, { id: "b", nodes: ["b1"] }],
  });
  try {
    using koi = await connect(d.adminUrl, { retryBaseMs: 1, retryMaxMs: 20 });
    d.cluster("a").set("k1", "1");
    d.cluster("a").set("k2", "2");
    // b is drained (its keys are on a) and stopped; the admin's table no longer has it.
    await d.node("b1").stop();
    d.setTable({ epoch: 2, scheme: "carp64", clusters: [{ id: "a", loadFactor: 1 }] });
    const page = await koi.list({ timeoutMs: 2_000 });
    assert.deepEqual(page.items.map((i) => new TextDecoder().decode(i.key)), ["k1", "k2"]);
    assert.equal(koi.epoch, 2);
  } finally {
    await d.close();
  }
});

Deno.test("client: 421 with an admin that is not newer goes to x-koi-owner", async () => {
  const d = FakeDeployment.start({
    clusters: [{ id: "a", nodes: ["a1"] }, { id: "b", nodes: ["b1"] }],
  });
  try {
    using koi = await connect(d.adminUrl, { retryBaseMs: 1 });
    // The nodes run epoch 2 with other load factors; the admin still serves epoch 1.
    const heavyB = {
      epoch: 2,
      scheme: "carp64" as const,
      clusters: [{ id: "a", loadFactor: 1 }, { id: "b", loadFactor: 50 }],
    };
    d.setTable(heavyB, "nodes");
    let key = "";
    for (let i = 0; !key; i++) {
      if (koi.table.carp.owner(`k${i}`) === "a" && d.nodeTable.owner(`k${i}`) === "b") {
        key = `k${i}`;
      }
    }
    await koi.put(key, "v");
    assert.equal(d.cluster("b").text(key), "v");
    assert.equal(koi.epoch, 1, "the admin's table stays in use");
    assert.deepEqual(d.requests.map((r) => r.node), ["a1", "b1"]);
    assert.deepEqual(d.adminRequests, ["/v1/carp", "/v1/carp"]);
  } finally {
    await d.close();
  }
});

Deno.test("client: 4xx answers other than 421 are not retried and keep their code", async () => {
  await withClient({ clusters: [{ id: "a", nodes: ["a1", "a2"] }] }, async (d, koi) => {
    d.nodeHook = () => error(400, "bad_request", "Invalid something");
    const e = await koi.put("k", "v").catch((e) => e);
    assert.ok(e instanceof KoiHttpError, String(e));
    assert.equal(e.code, "bad_request");
    assert.equal(e.status, 400);
    assert.equal(e.cluster, "a");
    assert.equal(e.node, "a1");
    assert.equal(e.outcomeUnknown, false);
    assert.match(e.message, /put "k": node a1 \(127\.0\.0\.1:\d+\) answered 400 bad_request/);
    assert.equal(d.requests.length, 1);
  });
});

Deno.test("client: conditional writes and PreconditionFailedError.currentRev", async () => {
  await withClient({ clusters: [{ id: "a", nodes: ["a1"] }] }, async (d, koi) => {
    const { rev } = await koi.put("k", "1", { ifAbsent: true });
    assert.equal(d.requests[0].headers.get("if-none-match"), "*");
    const again = await koi.put("k", "2", { ifAbsent: true }).catch((e) => e);
    assert.ok(again instanceof PreconditionFailedError);
    assert.equal(again.code, "precondition_failed");
    assert.equal(again.currentRev, rev);
    assert.equal(again.outcomeUnknown, false);
    const { rev: rev2 } = await koi.put("k", "2", { ifRev: rev });
    assert.equal(d.requests.at(-1)!.headers.get("if-match"), `"${rev}"`);
    const stale = await koi.delete("k", { ifRev: rev }).catch((e) => e);
    assert.ok(stale instanceof PreconditionFailedError);
    assert.equal(stale.currentRev, rev2);
    assert.deepEqual(await koi.delete("k", { ifRev: rev2 }), { rev: rev2 + 2, deleted: true });
    const gone = await koi.delete("k", { ifRev: rev2 }).catch((e) => e);
    assert.ok(gone instanceof PreconditionFailedError);
    assert.equal(gone.currentRev, undefined);
    assert.equal((await koi.delete("k")).deleted, false);
    assert.equal(d.cluster("a").text("k"), undefined);
  });
});

Deno.test("client: stale reads say so; linearizable ones do not", async () => {
  await withClient({ clusters: [{ id: "a", nodes: ["a1"] }] }, async (d, koi) => {
    d.cluster("a").set("k", "v");
    assert.equal((await koi.getText("k", { consistency: "stale" }))?.value, "v");
    assert.equal((await koi.getText("k"))?.value, "v");
    assert.deepEqual(d.requests.map((r) => r.query.get("consistency")), ["stale", null]);
    await koi.list({ consistency: "stale" });
    assert.equal(d.requests.at(-1)!.query.get("consistency"), "stale");
  });
});

Deno.test("client: every key round-trips as base64url, dot segments and binary included", async () => {
  await withClient(THREE, async (d, koi) => {
    const keys: (string | Uint8Array)[] = [
      "a/../b",
      ".",
      "..",
      "%2e%2e",
      "with space?#&=+",
      "ключ/😀",
      new Uint8Array([0, 0x80, 0xfe]),
      "x".repeat(1024),
    ];
    for (const key of keys) {
      const value = new Uint8Array([1, 2, 3, typeof key === "string" ? key.length % 256 : 9]);
      await koi.put(key, value);
      const hit = await koi.get(key);
      assert.deepEqual(hit?.value, value, String(key));
      assert.ok(d.requests.every((r) => r.query.has("key_b64") && !r.query.has("key")));
    }
    const listed = [];
    for await (const item of koi.scan({ pageSize: 3 })) listed.push(item.key);
    assert.equal(listed.length, keys.length);
    assert.ok(listed.some((k) => k.length === 3 && k[0] === 0 && k[1] === 0x80));
  });
});

Deno.test("client: connect retries while the admin answers 503 starting", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  try {
    let starting = 3;
    d.adminHook = (_request, path) =>
      path === "/v1/carp" && starting-- > 0
        ? error(503, "starting", "Waiting for leaders", { "retry-after": "0" })
        : undefined;
    using koi = await connect(d.adminUrl, { retryBaseMs: 1 });
    assert.equal(koi.epoch, 1);
    assert.deepEqual(d.adminRequests, ["/v1/carp", "/v1/carp", "/v1/carp", "/v1/carp"]);
  } finally {
    await d.close();
  }
});

Deno.test("client: connect refuses an invalid table and a non-503 error at once", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  try {
    d.adminHook = () => json(200, { epoch: 0, scheme: "carp64", clusters: [] });
    const bad = await connect(d.adminUrl).catch((e) => e);
    assert.ok(bad instanceof KoiError);
    assert.equal(bad.code, "bad_response");
    assert.match(bad.message, /invalid routing table: epoch 0/);
    d.adminHook = () =>
      json(200, {
        epoch: 1,
        scheme: "carp64",
        clusters: [{ id: "a", loadFactor: 0, leader: "", nodes: [{ id: "a1", http: "h:1" }] }],
      });
    const carp = await connect(d.adminUrl).catch((e) => e);
    assert.equal(carp.code, "bad_response");
    assert.match(carp.message, /load factor/i);
    d.adminHook = () => error(404, "not_found", "No such route");
    const notAdmin = await connect(d.adminUrl).catch((e) => e);
    assert.ok(notAdmin instanceof KoiHttpError);
    assert.equal(notAdmin.status, 404);
    assert.equal(d.adminRequests.length, 3);
  } finally {
    await d.close();
  }
});

Deno.test("client: the admin URL may be host:port", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  try {
    using koi = await connect(d.adminUrl.replace("http://", ""));
    assert.equal(koi.adminUrl.origin, d.adminUrl);
    const bad = await connect("ftp://x").catch((e) => e);
    assert.equal(bad.code, "bad_request");
    // A colon without a port is a typo, not port 80.
    for (const typo of ["127.0.0.1:", "http://127.0.0.1:/", "[::1]:"]) {
      const e = await connect(typo, { timeoutMs: 200 }).catch((e) => e);
      assert.equal(e.code, "bad_request", `${typo}: ${e}`);
      assert.match(e.message, /no port after ':'/);
    }
  } finally {
    await d.close();
  }
});

Deno.test("client: refresh() picks up a newer table and keeps learned leaders", async () => {
  await withClient({ clusters: [{ id: "a", nodes: ["a1", "a2"] }] }, async (d, koi) => {
    d.cluster("a").leader = "a2";
    await koi.get("k"); // a1 answers, naming a2
    assert.equal(koi.where("k").leader?.id, "a2");
    d.cluster("a").leader = "";
    d.setTable({ epoch: 5, scheme: "carp64", clusters: [{ id: "a", loadFactor: 2 }] });
    const table = await koi.refresh();
    assert.equal(table.epoch, 5);
    assert.equal(koi.epoch, 5);
    assert.equal(koi.where("k").leader?.id, "a2", "the admin knew none; the learned one stays");
    d.setTable({ epoch: 4, scheme: "carp64", clusters: [{ id: "a", loadFactor: 2 }] });
    assert.equal((await koi.refresh()).epoch, 5, "an older table is ignored");
  });
});

Deno.test("client: clusters that keep naming each other's owner end in UnavailableError", async () => {
  const d = FakeDeployment.start({
    clusters: [{ id: "a", nodes: ["a1"] }, { id: "b", nodes: ["b1"] }],
  });
  try {
    // Long pauses between short attempts: the deadline falls in a pause, not in an attempt
    // (which would leave the outcome unknown), however slow a loaded machine makes one.
    using koi = await connect(d.adminUrl, { retryBaseMs: 100, retryMaxMs: 200 });
    const wrong = (owner: string) => () =>
      error(421, "wrong_shard", `Wrong shard: it belongs to cluster ${owner}`, {
        "x-koi-epoch": "1",
        "x-koi-owner": owner,
      });
    d.node("a1").hook = wrong("b");
    d.node("b1").hook = wrong("a");
    const e = await koi.put("k", "v", { timeoutMs: 1500 }).catch((e) => e);
    assert.ok(e instanceof UnavailableError, String(e));
    assert.equal(e.outcomeUnknown, false, "a 421 is a refusal");
    assert.match(e.message, /answered 421 wrong_shard/);
    const nodes = d.requests.map((r) => r.node);
    assert.ok(nodes.includes("a1") && nodes.includes("b1"), nodes.join(","));
    assert.ok(d.adminRequests.length >= 2, "the table was refetched");
  } finally {
    await d.close();
  }
});

/** A node's `409 locked` for key "k", held by `txn` (primary a) for another minute. */
function lockedAnswer(txn: string, message: string): Response {
  return error(409, "locked", message, {
    "x-koi-lock-txn": txn,
    "x-koi-lock-primary": "a",
    "x-koi-lock-deadline": String(Date.now() + 60_000),
    "x-koi-lock-key": btoa("k"),
    "x-koi-lock-write": "true",
  });
}

Deno.test("client: a write that meets a lock waits and tries again within its deadline", async () => {
  await withClient(ONE, async (d, koi) => {
    let tries = 0;
    d.nodeHook = (request) => {
      if (!new URL(request.url).pathname.startsWith("/v1/kv") || request.method !== "PUT") {
        return undefined;
      }
      if (++tries > 2) return undefined;
      return lockedAnswer("young.1", "A key is locked");
    };
    await koi.put("k", "v");
    assert.equal(tries, 3);
  });
});

Deno.test("client: a key locked until the deadline ends the call as locked, not unavailable", async () => {
  await withClient(ONE, async (d, koi) => {
    let tries = 0;
    d.nodeHook = (request) => {
      if (!new URL(request.url).pathname.startsWith("/v1/kv")) return undefined;
      tries++;
      return lockedAnswer("old.7", "A key is locked by transaction old.7 (primary cluster a)");
    };
    const e = await koi.get("k", { timeoutMs: 600 }).catch((e) => e);
    assert.ok(e instanceof KoiHttpError && !(e instanceof UnavailableError), String(e));
    assert.equal(e.code, "locked");
    assert.equal(e.status, 409);
    assert.equal(e.headers?.get("x-koi-lock-txn"), "old.7");
    assert.match(e.message, /stayed locked by a transaction in flight for 600 ms/);
    assert.match(e.message, /transaction old\.7 \(primary cluster a\)/);
    assert.ok(tries >= 2, `it tried again first (${tries})`);
  });
});

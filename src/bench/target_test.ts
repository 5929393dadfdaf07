/** KoiTarget through the real client against the client's fake deployment (HTTP on loopback). */
import assert from "node:assert/strict";
import { error, FakeDeployment } from "../client/_fake_test_util.ts";
import { KoiTarget } from "./_target.ts";
import { WORKLOADS } from "./_workload.ts";
import { runLoad } from "./run_load.ts";

const THREE = {
  clusters: [
    { id: "a", nodes: ["a1", "a2"] },
    { id: "b", nodes: ["b1", "b2"] },
    { id: "c", nodes: ["c1", "c2"] },
  ],
};

Deno.test("KoiTarget: routes by CARP, reads and writes, names errors by the client's codes", async () => {
  const d = FakeDeployment.start(THREE);
  try {
    const target = await KoiTarget.connect(d.adminUrl, { timeoutMs: 5_000 });
    try {
      assert.equal(target.name, "koi");
      assert.deepEqual(target.clusters, ["a", "b", "c"]);
      assert.equal(target.details.epoch, 1);
      assert.equal(target.details.scheme, "carp64");
      assert.equal(await target.get("user1", { stale: false }), false);
      await target.put("user1", new TextEncoder().encode("v"));
      assert.equal(await target.get("user1", { stale: true }), true);
      const seen = d.requests.filter((r) => r.key !== undefined);
      assert.ok(seen.every((r) => r.cluster === target.clusterOf("user1")));
      assert.deepEqual(seen.map((r) => r.query.get("consistency")), [null, null, "stale"]);
      // Cluster b refuses writes with 507 (not retried): kind insufficient_storage.
      d.nodeHook = (request, node) =>
        node.cluster.id === "b" && request.method === "PUT"
          ? error(507, "insufficient_storage", "disk full")
          : undefined;
      const report = await runLoad({
        target,
        workload: WORKLOADS.A,
        distribution: "uniform",
        keys: 200,
        valueBytes: 16,
        clients: 8,
        ops: 300,
        warmupSeconds: 0,
        consistency: "linearizable",
        seed: 5,
        preload: false,
      });
      const m = report.measured;
      assert.equal(m.ops, 300);
      for (const id of ["a", "b", "c"]) assert.ok(m.byCluster[id].ops > 0, id);
      assert.deepEqual(Object.keys(m.errorsByKind), ["insufficient_storage"]);
      assert.equal(m.errors, m.byCluster.b.errors);
      assert.equal(m.errors, m.byType.update!.errors);
      assert.equal(m.byCluster.a.errors + m.byCluster.c.errors, 0);
      assert.match(m.errorSamples.insufficient_storage, /disk full/);
      assert.equal(target.errorKind(new Error("x")), "other");
    } finally {
      await target.close();
    }
  } finally {
    await d.close();
  }
});

Deno.test("KoiTarget: connect fails with the client's error when no admin answers", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  const url = d.adminUrl;
  await d.close();
  await assert.rejects(() => KoiTarget.connect(url, { timeoutMs: 300 }), /routing table/);
});

import assert from "node:assert/strict";
import { appliedTexts, TestCluster } from "./harness.ts";

Deno.test("three nodes elect a leader and replicate a committed entry to all", async () => {
  const c = await TestCluster.create(["a", "b", "c"]);
  assert.equal(c.elect("a"), "a");
  c.propose("a", "x=1");
  for (const id of ["a", "b", "c"]) {
    assert.deepEqual(appliedTexts(c.node(id)), ["x=1"], id);
    assert.equal(c.node(id).raft.status().commit, 3); // bootstrap config, no-op, x=1
  }
});

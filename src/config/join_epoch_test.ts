import assert from "node:assert/strict";
import { ADMIN, assertConfigError, clusterToml, MINIMAL, nodeToml, parse } from "./_test_util.ts";

Deno.test("routing.epoch defaults to 1 and accepts integers >= 1", () => {
  assert.equal(parse(MINIMAL).routing.epoch, 1);
  assert.equal(parse(`[routing]\nepoch = 7\n` + MINIMAL).routing.epoch, 7);
});

Deno.test("routing.epoch must be an integer >= 1", () => {
  for (const bad of ["0", "-1", "1.5", `"2"`]) {
    assertConfigError(`[routing]\nepoch = ${bad}\n` + MINIMAL, "routing.epoch");
  }
});

Deno.test("a node may join later; founding members are the others", () => {
  const cfg = parse(
    ADMIN + clusterToml("a", [nodeToml("a1", 1), nodeToml("a2", 2, "join = true")]),
  );
  assert.deepEqual(cfg.clusters[0].nodes.map((n) => n.join), [false, true]);
});

Deno.test("join must be a boolean, and a cluster needs a founding member", () => {
  assertConfigError(
    ADMIN + clusterToml("a", [nodeToml("a1", 1, `join = "yes"`)]),
    "clusters[0].nodes[0].join",
  );
  assertConfigError(
    ADMIN + clusterToml("a", [nodeToml("a1", 1, "join = true")]),
    "clusters[0].nodes",
    "no node can found the cluster",
  );
});

import assert from "node:assert/strict";
import { CarpTable } from "../carp/mod.ts";
import { encodeRouteCommand, KvStateMachine, type TableSpec } from "../storage/mod.ts";
import { NodeRouting } from "./_routing.ts";
import { WrongShardError } from "./errors.ts";

const OLD: TableSpec = {
  scheme: "carp64",
  epoch: 1,
  members: [{ id: "a", loadFactor: 1 }, { id: "d", loadFactor: 1 }],
};
const NEW: TableSpec = { scheme: "carp64", epoch: 2, members: [{ id: "a", loadFactor: 1 }] };

Deno.test("node routing: once replicated, the routing state decides even against a newer config.toml", () => {
  // Cluster d was drained (its state says: table {a} of epoch 2, nothing of it is d's); its
  // nodes start again with a config.toml of a later epoch that lists d as an owner.
  const sm = new KvStateMachine({ clusterId: "d" });
  const route = (c: Parameters<typeof encodeRouteCommand>[0]) =>
    sm.apply({ index: sm.applied + 1, term: 1, type: "normal", data: encodeRouteCommand(c) });
  assert.equal(route({ type: "begin", from: OLD, to: NEW })?.ok, true);
  route({ type: "fence", epoch: 2, upTo: null });
  assert.equal(route({ type: "finish", epoch: 2 })?.ok, true);
  const routing = new NodeRouting("d", 5, () => "d", () => sm);
  const key = Array.from({ length: 50 }, (_, i) => `k${i}`).find((k) =>
    new CarpTable(OLD).owner(k) === "d"
  )!;
  const bytes = new TextEncoder().encode(key);
  assert.deepEqual(routing.ownership(bytes), { owned: false, owner: "a" });
  assert.equal(routing.epoch(), 2);
  assert.throws(() => routing.checkStillOwned(bytes), WrongShardError);
  // Before any move, config.toml's table decides.
  const fresh = new NodeRouting("d", 5, () => "d", () => new KvStateMachine({ clusterId: "d" }));
  assert.deepEqual(fresh.ownership(bytes), { owned: true, owner: "d" });
  assert.equal(fresh.epoch(), 5);
});

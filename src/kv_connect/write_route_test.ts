/** Which cluster an atomic write goes to, the refusal across clusters, and repeatability. */
import assert from "node:assert/strict";
import { type Check, type Mutation, MutationType } from "./_datapath.ts";
import { KvConnectError } from "./_errors.ts";
import { isRepeatable, writeTarget } from "./_write_route.ts";

const key = (s: string) => new TextEncoder().encode(s);
/** Keys route to the cluster named by their first letter. */
const owner = (k: Uint8Array) => String.fromCharCode(k[0]);
const check = (k: string): Check => ({ key: key(k), versionstamp: new Uint8Array() });
const mutation = (k: string, type: number = MutationType.SET): Mutation => ({
  key: key(k),
  value: { data: new Uint8Array(), encoding: 3 },
  mutationType: type,
  expireAtMs: 0n,
  sumMin: new Uint8Array(),
  sumMax: new Uint8Array(),
  sumClamp: false,
});
const VS = MutationType.SET_SUFFIX_VERSIONSTAMPED_KEY;

Deno.test("write route: the one cluster of every checked and mutated key", () => {
  const t = writeTarget(
    { checks: [check("a1")], mutations: [mutation("a2"), mutation("a3")] },
    owner,
    "z",
  );
  assert.equal(t.cluster, "a");
  assert.deepEqual(t.key, key("a1"));
  assert.equal(
    writeTarget({ checks: [], mutations: [mutation("b9", MutationType.DELETE)] }, owner, "z")
      .cluster,
    "b",
  );
});

Deno.test("write route: versionstamped keys follow the others, or their own prefix alone", () => {
  const mixed = writeTarget(
    { checks: [], mutations: [mutation("c1", VS), mutation("a1")] },
    owner,
    "z",
  );
  assert.equal(mixed.cluster, "a");
  const alone = writeTarget({ checks: [], mutations: [mutation("c1", VS)] }, owner, "z");
  assert.equal(alone.cluster, "c");
  assert.deepEqual(alone.key, key("c1"));
  // Versionstamped keys under prefixes of different clusters: one cluster takes them all.
  const prefixes = writeTarget(
    { checks: [], mutations: [mutation("c1", VS), mutation("a1", VS)] },
    owner,
    "z",
  );
  assert.equal(prefixes.cluster, "c");
  const empty = writeTarget({ checks: [], mutations: [] }, owner, "z");
  assert.deepEqual(empty, { key: undefined, cluster: "z" });
});

Deno.test("write route: keys of several clusters are a 400 naming them, sorted", () => {
  const refusal = (ids: string[]) => {
    try {
      writeTarget(
        {
          checks: [check(`${ids[0]}0`)],
          mutations: ids.slice(1).map((c) => mutation(`${c}1`)),
        },
        owner,
        "z",
      );
    } catch (error) {
      assert.ok(error instanceof KvConnectError);
      assert.equal(error.status, 400);
      return error.message;
    }
    assert.fail("not refused");
  };
  assert.match(
    refusal(["b", "a"]),
    /^This atomic operation touches keys of clusters a and b; atomic operations across clusters are not supported yet/,
  );
  assert.match(refusal(["c", "a", "b", "a"]), /clusters a, b and c;/);
  assert.match(refusal([..."abcdefg"]), /clusters a, b, c, d and e \(and 2 more\);/);
  assert.match(refusal(["a", "b"]), /nothing was written/);
});

Deno.test("write route: repeatable = no checks, and only set, delete, min, max", () => {
  const m = (...types: number[]) => types.map((t, i) => mutation(`a${i}`, t));
  assert.ok(
    isRepeatable({
      checks: [],
      mutations: m(MutationType.SET, MutationType.DELETE, MutationType.MIN, MutationType.MAX),
    }),
  );
  assert.ok(!isRepeatable({ checks: [check("a")], mutations: m(MutationType.SET) }));
  assert.ok(!isRepeatable({ checks: [], mutations: m(MutationType.SET, MutationType.SUM) }));
  assert.ok(!isRepeatable({ checks: [], mutations: m(VS) }));
});

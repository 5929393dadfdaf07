import assert from "node:assert/strict";
import fc from "fast-check";
import { checkCarp64Hashes } from "./_carp64.ts";
import { carpMemberHash } from "./_draft.ts";
import {
  CarpConfigError,
  type CarpMember,
  type CarpScheme,
  CarpTable,
  carpTableFromConfig,
} from "./mod.ts";

const SCHEMES: readonly CarpScheme[] = ["carp", "carp64"];
const KEYS = randomKeys(200_000, 20240611);

/** `count` distinct-looking random keys from a seeded xorshift32 (deterministic). */
function randomKeys(count: number, seed: number): string[] {
  let s = seed | 0;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0).toString(36);
  };
  return Array.from({ length: count }, () => `k:${next()}${next()}`);
}

function equalMembers(count: number): CarpMember[] {
  return Array.from({ length: count }, (_, i) => ({ id: `cluster-${i + 1}`, loadFactor: 1 }));
}

function table(scheme: CarpScheme, members: readonly CarpMember[]): CarpTable {
  return new CarpTable({ scheme, epoch: 1, members });
}

function owners(t: CarpTable, keys: readonly string[] = KEYS): string[] {
  return keys.map((k) => t.owner(k));
}

function shares(t: CarpTable): Map<string, number> {
  const counts = new Map<string, number>(t.members.map((m) => [m.id, 0]));
  for (const id of owners(t)) counts.set(id, counts.get(id)! + 1);
  return new Map([...counts].map(([id, n]) => [id, n / KEYS.length]));
}

/** Pairs `[before, after]` of the keys whose owner changed. */
function moves(before: readonly string[], after: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < before.length; i++) {
    if (before[i] !== after[i]) out.push([before[i], after[i]]);
  }
  return out;
}

Deno.test("table: owner is deterministic and the same for a string and its UTF-8 bytes", () => {
  const encoder = new TextEncoder();
  for (const scheme of SCHEMES) {
    const a = table(scheme, equalMembers(5));
    const b = table(scheme, equalMembers(5));
    fc.assert(
      fc.property(fc.string(), (key) => {
        const owner = a.owner(key);
        assert.equal(b.owner(key), owner);
        assert.equal(a.owner(key), owner);
        assert.equal(a.owner(encoder.encode(key)), owner);
      }),
      { numRuns: 500 },
    );
  }
});

Deno.test("table: the order members are listed in does not change any owner", () => {
  const members: CarpMember[] = [
    { id: "b", loadFactor: 2 },
    { id: "a", loadFactor: 1 },
    { id: "d", loadFactor: 1 },
    { id: "c", loadFactor: 3 },
  ];
  for (const scheme of SCHEMES) {
    const reference = owners(table(scheme, members), KEYS.slice(0, 5000));
    fc.assert(
      fc.property(fc.shuffledSubarray(members, { minLength: 4 }), (shuffled) => {
        assert.deepEqual(owners(table(scheme, shuffled), KEYS.slice(0, 5000)), reference);
      }),
      { numRuns: 10 },
    );
  }
});

Deno.test("table: pinned owners of a 1:2:3 table (docs/carp.md)", () => {
  const members = [{ id: "a", loadFactor: 1 }, { id: "b", loadFactor: 2 }, {
    id: "c",
    loadFactor: 3,
  }];
  const keys = ["foo", "bar", "baz", "user:42", "ключ", "", "key-1", "key-2"];
  assert.deepEqual(owners(table("carp64", members), keys), [
    "b",
    "b",
    "a",
    "c",
    "b",
    "c",
    "c",
    "b",
  ]);
  assert.deepEqual(owners(table("carp", members), keys), ["a", "c", "b", "c", "b", "b", "c", "c"]);
});

Deno.test("table: carp64 shares are w_i / sum(w) over 200k random keys (equal and 1:2:3:4)", () => {
  for (const [id, share] of shares(table("carp64", equalMembers(10)))) {
    assert.ok(Math.abs(share - 0.1) < 0.004, `${id}: ${share}`);
  }
  const weighted = [1, 2, 3, 4].map((w) => ({ id: `w${w}`, loadFactor: w }));
  for (const [id, share] of shares(table("carp64", weighted))) {
    const expected = Number(id.slice(1)) / 10;
    assert.ok(Math.abs(share - expected) < 0.005, `${id}: ${share} (expected ${expected})`);
  }
});

Deno.test("table: adding an 11th equal cluster moves ~1/11 of keys, all of them to it", () => {
  for (const scheme of SCHEMES) {
    const before = owners(table(scheme, equalMembers(10)));
    const after = owners(table(scheme, equalMembers(11)));
    const moved = moves(before, after);
    for (const [, to] of moved) {
      assert.equal(to, "cluster-11", `${scheme}: moved between old clusters`);
    }
    const fraction = moved.length / KEYS.length;
    // carp's correlated scores give 9.5–10.8 % (docs/carp.md); carp64 is within noise of 1/11
    const tolerance = scheme === "carp64" ? 0.004 : 0.02;
    assert.ok(Math.abs(fraction - 1 / 11) < tolerance, `${scheme}: moved ${fraction}`);
  }
});

/** Six clusters with load factors 1, 2, 3, 4, 1, 2; cluster-3's replaced by `loadFactor`. */
function weightedMembers(loadFactor = 3): CarpMember[] {
  return [1, 2, 3, 4, 1, 2].map((w, i) => ({
    id: `cluster-${i + 1}`,
    loadFactor: i === 2 ? loadFactor : w,
  }));
}

Deno.test("table: carp64: changing one load factor moves keys only to or from that member", () => {
  for (const base of [equalMembers(10), weightedMembers()]) {
    const before = owners(table("carp64", base));
    const total = base.reduce((sum, m) => sum + m.loadFactor, 0);
    const old = base[2].loadFactor;
    for (const loadFactor of [old * 2, old / 2]) {
      const members = base.map((m) => m.id === "cluster-3" ? { ...m, loadFactor } : m);
      const moved = moves(before, owners(table("carp64", members)));
      for (const [from, to] of moved) {
        if (loadFactor > old) assert.equal(to, "cluster-3", `${from} -> ${to}`);
        else assert.equal(from, "cluster-3", `${from} -> ${to}`);
      }
      // cluster-3's share goes from old / total to w / (total - old + w)
      const expected = Math.abs(loadFactor / (total - old + loadFactor) - old / total);
      const fraction = moved.length / KEYS.length;
      assert.ok(Math.abs(fraction - expected) < 0.004, `moved ${fraction}, expected ${expected}`);
    }
  }
});

Deno.test("table: carp (the draft) moves keys between unchanged members when one load factor changes", () => {
  // the draft's multipliers depend on each other: a known weakness, kept for exactness
  const before = owners(table("carp", weightedMembers()));
  const moved = moves(before, owners(table("carp", weightedMembers(6))));
  const between = moved.filter(([from, to]) => from !== "cluster-3" && to !== "cluster-3");
  assert.ok(between.length > 0.001 * KEYS.length, `${between.length} moved between others`);
});

Deno.test("table: one member owns every key", () => {
  for (const scheme of SCHEMES) {
    const t = table(scheme, [{ id: "solo", loadFactor: 0.1 }]);
    assert.ok(owners(t, KEYS.slice(0, 1000)).every((id) => id === "solo"));
  }
});

Deno.test("table: scheme, epoch and members are kept (members frozen, in the given order)", () => {
  const given = [{ id: "b", loadFactor: 2 }, { id: "a", loadFactor: 1 }];
  const t = new CarpTable({ scheme: "carp64", epoch: 7, members: given });
  assert.equal(t.scheme, "carp64");
  assert.equal(t.epoch, 7);
  assert.deepEqual(t.members, given);
  assert.ok(Object.isFrozen(t.members) && Object.isFrozen(t.members[0]));
  given[0].loadFactor = 100; // the table keeps its own copy
  assert.equal(t.members[0].loadFactor, 2);
  assert.deepEqual(JSON.parse(JSON.stringify(t)), {
    scheme: "carp64",
    epoch: 7,
    members: [{ id: "b", loadFactor: 2 }, { id: "a", loadFactor: 1 }],
  });
});

Deno.test("table: carpTableFromConfig takes routing and the clusters' ids and load factors", () => {
  const config = {
    path: "",
    routing: { scheme: "carp" as const, epoch: 3 },
    clusters: [
      { id: "node-1", loadFactor: 1, nodes: [] },
      { id: "node-2", loadFactor: 1, nodes: [] },
    ],
  };
  const t = carpTableFromConfig(config);
  assert.equal(t.scheme, "carp");
  assert.equal(t.epoch, 3);
  assert.deepEqual(t.members, [{ id: "node-1", loadFactor: 1 }, { id: "node-2", loadFactor: 1 }]);
  assert.equal(t.owner("foo"), "node-1");
});

function assertConfigError(fn: () => unknown, pattern: RegExp, ids?: string[]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof CarpConfigError);
    assert.equal(error.name, "CarpConfigError");
    assert.match(error.message, pattern);
    if (ids !== undefined) assert.deepEqual(error.ids, ids);
    return true;
  });
}

Deno.test("table: validation: scheme, epoch, members, ids and load factors", () => {
  const ok = [{ id: "a", loadFactor: 1 }];
  const build = (options: Record<string, unknown>) => () =>
    new CarpTable({ scheme: "carp64", epoch: 1, members: ok, ...options } as never);
  assertConfigError(
    build({ scheme: "rendezvous" }),
    /^Invalid CARP scheme: .*"carp64", got "rendezvous"$/,
  );
  for (const epoch of [0, -1, 1.5, NaN, "1"]) {
    assertConfigError(build({ epoch }), /^Invalid CARP epoch: must be an integer >= 1, got /);
  }
  assertConfigError(build({ members: [] }), /^Invalid CARP members: need at least one member/);
  assertConfigError(build({ members: [{ id: "", loadFactor: 1 }] }), /member 0 needs a non-empty/);
  assertConfigError(
    build({ members: [{ id: "a", loadFactor: 1 }, { id: "a", loadFactor: 2 }] }),
    /^Duplicate CARP member id: "a" appears twice$/,
    ["a", "a"],
  );
  for (const loadFactor of [0, -1, NaN, Infinity, -Infinity, "1", undefined]) {
    for (const scheme of SCHEMES) {
      assertConfigError(
        build({ scheme, members: [{ id: "a", loadFactor: 1 }, { id: "b", loadFactor }] }),
        /^Invalid load factor of CARP member "b": must be a finite number > 0, got /,
        ["b"],
      );
    }
  }
});

Deno.test("table: validation: carp rejects ids whose member hashes are equal or differ only in the top bit", () => {
  // found by search: the draft's byte hash is nearly linear, so short ids collide easily
  assert.equal(carpMemberHash("y8w"), carpMemberHash("z68"));
  assert.equal(carpMemberHash("m6ng") ^ carpMemberHash("tnksz9"), 0x80000000 | 0);
  const members = (
    a: string,
    b: string,
  ) => [{ id: a, loadFactor: 1 }, { id: "ok", loadFactor: 1 }, {
    id: b,
    loadFactor: 3,
  }];
  assertConfigError(
    () => table("carp", members("y8w", "z68")),
    /^CARP member ids collide under scheme "carp": "y8w" and "z68" have member hashes 0x6e10f6b5 and 0x6e10f6b5, which are equal, so they would tie on every key; rename one$/,
    ["y8w", "z68"],
  );
  assertConfigError(
    () => table("carp", members("tnksz9", "m6ng")),
    /"m6ng" and "tnksz9" have member hashes 0x2a084e10 and 0xaa084e10, which differ only in the top bit, which the mix drops/,
    ["m6ng", "tnksz9"],
  );
  // carp64 tells them apart
  assert.equal(table("carp64", members("y8w", "z68")).members.length, 3);
});

Deno.test("table: validation: carp64 rejects equal 64-bit member hashes", () => {
  assertConfigError(
    () => checkCarp64Hashes(["x", "y", "z"], [[1, 2], [3, 4], [1, 2]]),
    /^CARP member ids collide under scheme "carp64": "x" and "z" have the same member hash 0x0000000100000002/,
    ["x", "z"],
  );
  checkCarp64Hashes(["x", "y"], [[1, 2], [2, 1]]);
});

/**
 * koi's KV Connect conformance scenarios: each one drives a `Deno.Kv` through the documented
 * API and returns what it observed, normalized (`_observe.ts`) so that `Deno.openKv(":memory:")`
 * and a koi deployment reached with `Deno.openKv(url)` give equal observations when koi behaves
 * as Deno KV does. Written from the documented behaviour of the Deno KV API.
 *
 * Rules every scenario keeps:
 *
 * - its keys start with its own name (`p`), so all of them can share one database, and it never
 *   lists outside `p`;
 * - it is deterministic and timing-free: what may take time (expiry, watch emissions, eventual
 *   reads) is polled with a deadline and observed as "eventually", never as "how soon";
 * - versionstamps are observed only through {@linkcode vs} (their order and equalities);
 * - an expected error is observed as "threw", never by its message or class (Deno's local and
 *   remote databases word them differently);
 * - an atomic scenario runs twice: on keys of one koi cluster (`ctx.sameCluster`: one Raft
 *   entry) and on keys spread over every cluster (`ctx.spreadClusters`: a cross-cluster
 *   transaction), named `…/one-cluster` and `…/across-clusters`.
 *
 * Kinds: compared (the default), `excluded` (koi is expected to differ: run on both sides for
 * information, not compared), `koiOnly` (asserts koi's own behaviour; not run on `:memory:`),
 * `slow` (takes up to a minute on `:memory:`, whose SQLite backend sweeps expired keys once a
 * minute; run in the background next to the others).
 *
 * @module
 */
import assert from "node:assert/strict";
import { collect, commit, entry, eventually, key, kvs, norm, outcome, vs } from "./_observe.ts";
import { encodeKey } from "./_key_codec.ts";
import type { ScenarioContext } from "./_placement.ts";

/** One scenario: `run(kv, ctx, p)` with `p = [name]`, the prefix of all its keys. */
export interface Scenario {
  /** Unique; also the first part of every key the scenario writes. */
  readonly name: string;
  /** Runs the scenario; its result is the observation (JSON after `finalize`). */
  readonly run: (kv: Deno.Kv, ctx: ScenarioContext, p: Deno.KvKey) => Promise<unknown>;
  /** Why koi is expected to differ: run on both sides and printed, not compared. */
  readonly excluded?: string;
  /** Asserts koi's own behaviour (throws on failure); not run against `:memory:`. */
  readonly koiOnly?: boolean;
  /** Why it is slow; slow scenarios run in the background while the others run. */
  readonly slow?: string;
}

const U64_MAX = 2n ** 64n - 1n;
const u64 = (n: bigint) => new Deno.KvU64(n);

/** A scenario key prefix + rest. */
const k = (p: Deno.KvKey, ...rest: Deno.KvKeyPart[]): Deno.KvKey => [...p, ...rest];

/** Sets `n` keys `[...p, i]` (value i) in parallel batches of 25. */
async function setNumbered(kv: Deno.Kv, p: Deno.KvKey, n: number): Promise<void> {
  for (let from = 0; from < n; from += 25) {
    await Promise.all(
      Array.from({ length: Math.min(25, n - from) }, (_, j) => kv.set(k(p, from + j), from + j)),
    );
  }
}

/** The second part of listed keys (the scenarios' "name" of a key under `p`). */
function seconds(entries: readonly Deno.KvEntry<unknown>[]): unknown {
  return entries.map((e) => norm(e.key.length === 2 ? e.key[1] : e.key.slice(1)));
}

async function listed(
  kv: Deno.Kv,
  selector: Deno.KvListSelector,
  options?: Deno.KvListOptions,
): Promise<unknown> {
  return await outcome(() => collect(kv.list(selector, options)), seconds);
}

/** Reads a watch stream until `cond` holds for an emission (or the deadline passes). */
async function readUntil(
  reader: ReadableStreamDefaultReader<Deno.KvEntryMaybe<unknown>[]>,
  cond: (entries: Deno.KvEntryMaybe<unknown>[]) => boolean,
  deadlineMs: number,
): Promise<Deno.KvEntryMaybe<unknown>[] | "no such emission before the deadline"> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const left = until - Date.now();
    if (left <= 0) return "no such emission before the deadline";
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), left)));
    const next = await Promise.race([reader.read(), timeout]);
    clearTimeout(timer);
    if (next === "timeout" || next.done) return "no such emission before the deadline";
    if (cond(next.value)) return next.value;
  }
}

/** `[...p, tail]` whose encoded size is exactly `bytes` (tail: a string of "x"). */
function keyOfSize(p: Deno.KvKey, bytes: number): Deno.KvKey {
  const base = encodeKey(k(p, "")).length;
  return k(p, "x".repeat(bytes - base));
}

/** `[...p, tail]` whose encoded size is exactly `bytes` (tail: bytes with 0x00s escaped). */
function bytesKeyOfSize(p: Deno.KvKey, bytes: number): Deno.KvKey {
  const extra = bytes - encodeKey(k(p, new Uint8Array())).length;
  const part = new Uint8Array(Math.floor(extra / 2) + (extra % 2));
  if (extra % 2 === 1) part[part.length - 1] = 0x01; // one unescaped byte fixes the parity
  return k(p, part);
}

/** Every value type Deno KV stores (the V8 serializer's, plus KvU64 and raw bytes). */
const VALUES: readonly [string, unknown][] = [
  ["string", "hello"],
  ["empty string", ""],
  ["unicode string", "ünïcødé ✓ 🐟 \0 nul"],
  ["long string", "abcdefghij".repeat(2_000)],
  ["integer", 42],
  ["negative float", -1.25],
  ["zero", 0],
  ["negative zero", -0],
  ["NaN", NaN],
  ["Infinity", Infinity],
  ["-Infinity", -Infinity],
  ["max safe integer", Number.MAX_SAFE_INTEGER],
  ["bigint", 12345678901234567890123n],
  ["negative bigint", -5n],
  ["true", true],
  ["false", false],
  ["null", null],
  ["undefined", undefined],
  ["Uint8Array", new Uint8Array([0, 1, 2, 254, 255])],
  ["empty Uint8Array", new Uint8Array()],
  ["8-byte Uint8Array", new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0])],
  ["Int16Array", new Int16Array([-1, 2, 300])],
  ["Float64Array", new Float64Array([0.5, -0])],
  ["ArrayBuffer", new Uint8Array([7, 8, 9]).buffer],
  ["Date", new Date(Date.UTC(2024, 1, 29, 12, 34, 56, 789))],
  ["invalid Date", new Date(NaN)],
  ["RegExp", /a+(b|c)?\d*$/gimsu],
  ["Map", new Map<unknown, unknown>([["a", 1], [2, { b: 3n }], [true, null]])],
  ["Set", new Set<unknown>([1, "two", 3n, undefined])],
  ["object", { a: 1, b: { c: [1, 2, { d: "e" }] }, "": null, "ü": undefined }],
  ["array", [1, "two", [3, [4]], { five: 5 }]],
  // deno-lint-ignore no-sparse-arrays
  ["sparse array", [1, , 3]],
  ["empty object", {}],
  ["nested collections", { m: new Map([[1, new Set([new Date(0), /x/])]]), s: new Set([[1]]) }],
  ["RangeError", new RangeError("boom")],
  ["KvU64", u64(123n)],
  ["KvU64 zero", u64(0n)],
  ["KvU64 max", u64(U64_MAX)],
  ["KvU64 in an object", { n: u64(5n) }],
];

/** The key part types and their edge cases, in no particular order. */
const PARTS: readonly Deno.KvKeyPart[] = [
  "b",
  "",
  "a",
  "a\0b",
  "a\0",
  "ab",
  "ünï",
  new Uint8Array([1]),
  new Uint8Array([]),
  new Uint8Array([0]),
  new Uint8Array([0, 0xff]),
  1,
  0,
  -0,
  -1,
  0.5,
  -0.5,
  Infinity,
  -Infinity,
  NaN,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  2 ** 53,
  0n,
  1n,
  -1n,
  255n,
  256n,
  2n ** 64n,
  -(2n ** 64n),
  2n ** 100n,
  true,
  false,
];

/** Every scenario, in the order they run. */
export const SCENARIOS: readonly Scenario[] = [
  {
    name: "values/every-type",
    async run(kv, _ctx, p) {
      const out = [];
      for (const [label, value] of VALUES) {
        const set = await outcome(() => kv.set(k(p, label), value), commit);
        out.push({ label, set, get: entry(await kv.get(k(p, label))) });
      }
      // The same values through getMany (10 at a time) and list.
      const many = [];
      for (let i = 0; i < VALUES.length; i += 10) {
        many.push(...await kv.getMany(VALUES.slice(i, i + 10).map(([l]) => k(p, l))));
      }
      return { out, many: kvs(many), list: kvs(await collect(kv.list({ prefix: p }))) };
    },
  },
  {
    name: "values/references-and-unclonable",
    async run(kv, _ctx, p) {
      const shared = { x: 1 };
      await kv.set(k(p, "shared"), { a: shared, b: shared });
      // deno-lint-ignore no-explicit-any
      const cyclic: any = { name: "loop" };
      cyclic.self = cyclic;
      await kv.set(k(p, "cycle"), cyclic);
      // deno-lint-ignore no-explicit-any
      const got = (await kv.getMany<any[]>([k(p, "shared"), k(p, "cycle")])).map((e) => e.value);
      return {
        shared: norm(got[0]),
        sharedIsOneObject: got[0].a === got[0].b,
        cycle: norm(got[1]),
        cycleIsItself: got[1].self === got[1],
        function: await outcome(() => kv.set(k(p, "fn"), () => 1)),
        symbol: await outcome(() => kv.set(k(p, "sym"), Symbol("s"))),
        objectWithFunction: await outcome(() => kv.set(k(p, "objfn"), { f() {} })),
        nothingWritten: kvs(await collect(kv.list({ prefix: k(p, "fn") }))),
      };
    },
  },
  {
    name: "keys/part-types-and-order",
    async run(kv, _ctx, p) {
      for (const [i, part] of PARTS.entries()) await kv.set(k(p, part), i);
      const multi: Deno.KvKey[] = [
        k(p, "m", 1, "x"),
        k(p, "m", 1n),
        k(p, "m", true, new Uint8Array([2])),
        k(p, "m", "", ""),
        k(p, "m", ""),
        k(p, "m"),
      ];
      for (const [i, key] of multi.entries()) await kv.set(key, 100 + i);
      const all = await collect(kv.list<number>({ prefix: p }));
      const each = [];
      for (const part of PARTS) {
        const e = await kv.get<number>(k(p, part));
        each.push([norm(part), e.value, key(e.key)]);
      }
      return {
        order: all.map((e) => [key(e.key.slice(1)), e.value]),
        each,
        negativeZeroIsItsOwnKey: (await kv.get(k(p, -0))).value !== (await kv.get(k(p, 0))).value,
      };
    },
  },
  {
    name: "keys/invalid",
    async run(kv, _ctx, p) {
      const bad = (part: unknown) => k(p, part as Deno.KvKeyPart);
      return {
        setEmptyKey: await outcome(() => kv.set([], 1)),
        getEmptyKey: await outcome(() => kv.get([]), entry),
        deleteEmptyKey: await outcome(() => kv.delete([])),
        nullPart: await outcome(() => kv.set(bad(null), 1)),
        undefinedPart: await outcome(() => kv.set(bad(undefined), 1)),
        objectPart: await outcome(() => kv.set(bad({}), 1)),
        symbolPart: await outcome(() => kv.set(bad(Symbol("s")), 1)),
        arrayPart: await outcome(() => kv.set(bad(["nested"]), 1)),
        datePart: await outcome(() => kv.set(bad(new Date(0)), 1)),
        getWithBadPart: await outcome(() => kv.get(bad(null))),
        nothingWritten: kvs(await collect(kv.list({ prefix: p }))),
      };
    },
  },
  {
    name: "set/overwrite",
    async run(kv, _ctx, p) {
      const first = await kv.set(k(p, "x"), "one");
      const afterFirst = entry(await kv.get(k(p, "x")));
      const second = await kv.set(k(p, "x"), { two: 2 });
      const afterSecond = entry(await kv.get(k(p, "x")));
      const third = await kv.set(k(p, "x"), "one");
      return {
        first: commit(first),
        afterFirst,
        second: commit(second),
        afterSecond,
        third: commit(third),
        afterThird: entry(await kv.get(k(p, "x"))),
      };
    },
  },
  {
    name: "delete",
    async run(kv, _ctx, p) {
      await kv.set(k(p, "a"), "A");
      await kv.set(k(p, "b"), "B");
      await kv.set(k(p, "a", "child"), "child of a");
      const deleted = await kv.delete(k(p, "a"));
      const missing = await outcome(() => kv.delete(k(p, "never-set")));
      const again = await outcome(() => kv.delete(k(p, "a")));
      const get = entry(await kv.get(k(p, "a")));
      const recreated = await kv.set(k(p, "a"), "A again");
      const list = kvs(await collect(kv.list({ prefix: p })));
      await kv.delete(k(p, "b"));
      return {
        deletedReturns: norm(deleted),
        missing,
        again,
        get,
        recreated: commit(recreated),
        list,
        afterDeletingB: kvs(await collect(kv.list({ prefix: p }))),
      };
    },
  },
  {
    name: "getMany",
    async run(kv, _ctx, p) {
      for (const n of [1, 2, 3, 5, 8, 13]) await kv.set(k(p, n), `v${n}`);
      const ten = [13, 1, 4, 2, 2, 6, 3, 99, 8, 5].map((n) => k(p, n));
      return {
        ten: await outcome(() => kv.getMany(ten), (es) => es.map(entry)),
        one: await outcome(() => kv.getMany([k(p, 8)]), (es) => es.map(entry)),
        none: await outcome(() => kv.getMany([]), (es) => es.map(entry)),
        allMissing: await outcome(() => kv.getMany([k(p, 0), k(p, -1)]), kvs),
        eleven: await outcome(() => kv.getMany([...ten, k(p, 1)])),
      };
    },
  },
  {
    name: "list/prefix",
    async run(kv, _ctx, p) {
      const keys: Deno.KvKey[] = [
        p,
        k(p, "a"),
        k(p, "a", "x"),
        k(p, "a", "y", 1),
        k(p, "a", 0),
        k(p, "a", new Uint8Array()),
        k(p, "a", true),
        k(p, "a\0"),
        k(p, "ab"),
        k(p, "b"),
        k(p, 1),
        k(p, new Uint8Array([0x61])),
      ];
      for (const [i, key] of keys.entries()) await kv.set(key, i);
      return {
        underP: kvs(await collect(kv.list({ prefix: p }))),
        underA: kvs(await collect(kv.list({ prefix: k(p, "a") }))),
        underAY: kvs(await collect(kv.list({ prefix: k(p, "a", "y") }))),
        underNothing: kvs(await collect(kv.list({ prefix: k(p, "zzz") }))),
        leaf: kvs(await collect(kv.list({ prefix: k(p, "a", "y", 1) }))),
      };
    },
  },
  {
    name: "list/ranges",
    async run(kv, _ctx, p) {
      await setNumbered(kv, p, 10);
      return {
        startEnd: await listed(kv, { start: k(p, 3), end: k(p, 7) }),
        startBetweenKeys: await listed(kv, { start: k(p, 2.5), end: k(p, 6.5) }),
        startEqualsEnd: await listed(kv, { start: k(p, 4), end: k(p, 4) }),
        startAfterEnd: await listed(kv, { start: k(p, 7), end: k(p, 3) }),
        startEndReverse: await listed(kv, { start: k(p, 3), end: k(p, 7) }, { reverse: true }),
        startEndLimit: await listed(kv, { start: k(p, 3), end: k(p, 7) }, { limit: 2 }),
        prefixStart: await listed(kv, { prefix: p, start: k(p, 5) }),
        prefixEnd: await listed(kv, { prefix: p, end: k(p, 5) }),
        prefixStartReverse: await listed(kv, { prefix: p, start: k(p, 5) }, { reverse: true }),
        prefixEndReverseLimit: await listed(kv, { prefix: p, end: k(p, 5) }, {
          reverse: true,
          limit: 3,
        }),
        prefixStartOutside: await listed(kv, { prefix: k(p, 5), start: k(p, 6) }),
        prefixEndOutside: await listed(kv, { prefix: k(p, 5), end: k(p, 4) }),
      };
    },
  },
  {
    name: "list/reverse-limit-batchSize",
    async run(kv, _ctx, p) {
      await setNumbered(kv, p, 12);
      const out: Record<string, unknown> = {
        all: await listed(kv, { prefix: p }),
        reverse: await listed(kv, { prefix: p }, { reverse: true }),
        limit3: await listed(kv, { prefix: p }, { limit: 3 }),
        reverseLimit3: await listed(kv, { prefix: p }, { reverse: true, limit: 3 }),
        limitOverCount: await listed(kv, { prefix: p }, { limit: 50 }),
        limit0: await listed(kv, { prefix: p }, { limit: 0 }),
        limitNegative: await listed(kv, { prefix: p }, { limit: -1 }),
        batchSize0: await listed(kv, { prefix: p }, { batchSize: 0 }),
        limit5batch2: await listed(kv, { prefix: p }, { limit: 5, batchSize: 2 }),
        reverseBatch3: await listed(kv, { prefix: p }, { reverse: true, batchSize: 3 }),
      };
      for (const batchSize of [1, 2, 5, 11, 12, 13, 500, 1000]) {
        out[`batch${batchSize}`] = await listed(kv, { prefix: p }, { batchSize });
      }
      return out;
    },
  },
  {
    name: "list/cursor",
    async run(kv, _ctx, p) {
      await setNumbered(kv, p, 10);
      /** Pages of `limit` from new list calls, each resuming from the previous cursor. */
      const pages = async (selector: Deno.KvListSelector, options: Deno.KvListOptions) => {
        const out = [];
        let cursor: string | undefined;
        for (let i = 0; i < 12; i++) {
          const iter = kv.list(selector, { ...options, cursor });
          const page = await collect(iter);
          out.push({ page: seconds(page), cursorEmpty: iter.cursor === "" });
          if (page.length === 0 || iter.cursor === "") break;
          cursor = iter.cursor;
        }
        return out;
      };
      // Stop after 4 entries of an unlimited listing; resume from its cursor.
      const iter = kv.list({ prefix: p }, { batchSize: 3 });
      const head = [];
      for await (const e of iter) {
        head.push(e);
        if (head.length === 4) break;
      }
      const tail = await collect(kv.list({ prefix: p }, { cursor: iter.cursor }));
      const rIter = kv.list({ prefix: p }, { reverse: true });
      const rHead = [];
      for await (const e of rIter) {
        rHead.push(e);
        if (rHead.length === 3) break;
      }
      const rTail = await collect(kv.list({ prefix: p }, { reverse: true, cursor: rIter.cursor }));
      return {
        forward3: await pages({ prefix: p }, { limit: 3 }),
        forward5: await pages({ prefix: p }, { limit: 5 }),
        reverse4: await pages({ prefix: p }, { limit: 4, reverse: true }),
        prefixStart: await pages({ prefix: p, start: k(p, 4) }, { limit: 2 }),
        startEnd: await pages({ start: k(p, 1), end: k(p, 8) }, { limit: 3 }),
        startEndReverse: await pages({ start: k(p, 1), end: k(p, 8) }, {
          limit: 3,
          reverse: true,
        }),
        broken: { head: seconds(head), tail: seconds(tail) },
        brokenReverse: { head: seconds(rHead), tail: seconds(rTail) },
        badCursor: await listed(kv, { prefix: p }, { cursor: "not a cursor!" }),
      };
    },
  },
  {
    name: "list/many-entries",
    async run(kv, _ctx, p) {
      await setNumbered(kv, p, 250);
      const all = await collect(kv.list<number>({ prefix: p }));
      const limited = kv.list<number>({ prefix: p }, { limit: 120, batchSize: 7 });
      const first120 = await collect(limited);
      const rest = await collect(kv.list<number>({ prefix: p }, { cursor: limited.cursor }));
      return {
        count: all.length,
        inOrder: all.every((e, i) => e.value === i && e.key[1] === i),
        reverseFirst5: seconds(await collect(kv.list({ prefix: p }, { reverse: true, limit: 5 }))),
        first120Last: first120.at(-1)?.value ?? null,
        restCount: rest.length,
        restFirst: rest[0]?.value ?? null,
        batch500Count: (await collect(kv.list({ prefix: p }, { batchSize: 500 }))).length,
      };
    },
  },
  {
    name: "reads/consistency",
    async run(kv, ctx, p) {
      await kv.set(k(p, "x"), "v1");
      await kv.set(k(p, "y"), "w1");
      await kv.set(k(p, "x"), "v2");
      const eventual = { consistency: "eventual" } as const;
      const strong = { consistency: "strong" } as const;
      return {
        strongGet: entry(await kv.get(k(p, "x"), strong)),
        strongMany: kvs(await kv.getMany([k(p, "x"), k(p, "y")], strong)),
        strongList: kvs(await collect(kv.list({ prefix: p }, strong))),
        eventualGetSeesIt: await eventually(
          async () => (await kv.get(k(p, "x"), eventual)).value === "v2",
          ctx.changeDeadlineMs,
        ),
        eventualManySeesIt: await eventually(
          async () =>
            (await kv.getMany([k(p, "x"), k(p, "y")], eventual)).map((e) => e.value).join() ===
              "v2,w1",
          ctx.changeDeadlineMs,
        ),
        eventualListSeesIt: await eventually(
          async () =>
            (await collect(kv.list({ prefix: p }, eventual))).map((e) => e.value).join() ===
              "v2,w1",
          ctx.changeDeadlineMs,
        ),
      };
    },
  },
  ...bothPlacements("atomic/check-null", (keysOf) => ({
    async run(kv, ctx, p) {
      const [a, b] = keysOf(ctx, p, 2);
      const create = await kv.atomic().check({ key: a, versionstamp: null }).set(a, "first")
        .commit();
      const again = await kv.atomic().check({ key: a, versionstamp: null }).set(a, "second")
        .set(b, "b too").commit();
      const absentB = await kv.atomic().check({ key: b, versionstamp: null }).commit();
      await kv.delete(a);
      const afterDelete = await kv.atomic().check({ key: a, versionstamp: null }).set(a, "third")
        .commit();
      return {
        create: commit(create),
        again: commit(again),
        absentB: commit(absentB),
        afterDelete: commit(afterDelete),
        state: (await kv.getMany([a, b])).map(entry),
      };
    },
  })),
  ...bothPlacements("atomic/check-versionstamp", (keysOf) => ({
    async run(kv, ctx, p) {
      const [a, b, c] = keysOf(ctx, p, 3);
      await kv.set(a, 1);
      await kv.set(b, "b");
      const first = await kv.get(a);
      const current = await kv.atomic().check(first).set(a, 2).commit();
      const stale = await kv.atomic().check(first).set(a, 3).set(c, "c").delete(b).commit();
      const now = await kv.get(a);
      const bEntry = await kv.get(b);
      const mixed = await kv.atomic().check(now).check({ key: b, versionstamp: first.versionstamp })
        .set(a, 4).commit();
      const both = await kv.atomic().check(now).check(bEntry).set(a, 5).commit();
      const wrongKey = await kv.atomic().check({ key: c, versionstamp: now.versionstamp })
        .set(c, "c").commit();
      const malformed = await outcome(() =>
        kv.atomic().check({ key: a, versionstamp: "not-a-versionstamp" }).commit()
      );
      return {
        first: entry(first),
        current: commit(current),
        stale: commit(stale),
        afterStale: (await kv.getMany([a, b, c])).map(entry),
        mixed: commit(mixed),
        both: commit(both),
        wrongKey: commit(wrongKey),
        malformed,
        final: (await kv.getMany([a, b, c])).map(entry),
      };
    },
  })),
  ...bothPlacements("atomic/all-or-nothing", (keysOf) => ({
    async run(kv, ctx, p) {
      const [a, b, c, d, e] = keysOf(ctx, p, 5);
      await kv.set(a, u64(10n));
      await kv.set(c, "old");
      await kv.set(d, "to be deleted");
      const before = await kv.getMany([a, b, c, d, e]);
      const applied = await kv.atomic().sum(a, 5n).set(b, "new").set(c, { changed: true })
        .delete(d).max(e, 7n).commit();
      const after = await kv.getMany([a, b, c, d, e]);
      const refused = await kv.atomic().check(before[0]).sum(a, 1n).set(b, "refused")
        .delete(c).set(d, "refused").min(e, 1n).commit();
      // (A write that fails on a sum/min/max: "atomic/failing-u64-op-with-other-mutations".)
      return {
        before: before.map(entry),
        applied: commit(applied),
        after: after.map(entry),
        refused: commit(refused),
        afterRefused: (await kv.getMany([a, b, c, d, e])).map(entry),
      };
    },
  })),
  ...bothPlacements("atomic/same-key-in-order", (keysOf) => ({
    async run(kv, ctx, p) {
      const [a, b, c, d, e] = keysOf(ctx, p, 5);
      await kv.set(c, "existing");
      const r = await kv.atomic()
        .set(a, u64(1n)).sum(a, 2n)
        .set(b, "x").delete(b)
        .delete(c).set(c, "y")
        .sum(d, 1n).sum(d, 1n)
        .set(e, "first").set(e, "second")
        .commit();
      return { r: commit(r), state: (await kv.getMany([a, b, c, d, e])).map(entry) };
    },
  })),
  {
    name: "atomic/u64-sum-min-max",
    async run(kv, _ctx, p) {
      const op = async (
        name: string,
        initial: bigint | null,
        mutate: (a: Deno.AtomicOperation, key: Deno.KvKey) => Deno.AtomicOperation,
      ) => {
        const key = k(p, name);
        if (initial !== null) await kv.set(key, u64(initial));
        const r = await outcome(() => mutate(kv.atomic(), key).commit(), commit);
        return [name, r, entry(await kv.get(key))];
      };
      return [
        await op("sum", 10n, (a, key) => a.sum(key, 5n)),
        await op("sum wraps at 2^64", U64_MAX, (a, key) => a.sum(key, 2n)),
        await op("sum max+max", U64_MAX, (a, key) => a.sum(key, U64_MAX)),
        await op("sum zero", 3n, (a, key) => a.sum(key, 0n)),
        await op("sum on missing", null, (a, key) => a.sum(key, 7n)),
        await op("sum 0 on missing", null, (a, key) => a.sum(key, 0n)),
        await op("min lower", 5n, (a, key) => a.min(key, 3n)),
        await op("min higher", 5n, (a, key) => a.min(key, 9n)),
        await op("min on missing", null, (a, key) => a.min(key, 4n)),
        await op("max higher", 5n, (a, key) => a.max(key, 9n)),
        await op("max lower", 5n, (a, key) => a.max(key, 3n)),
        await op("max on missing", null, (a, key) => a.max(key, 4n)),
        await op("max of max", U64_MAX, (a, key) => a.max(key, U64_MAX - 1n)),
        await op("sum operand too large", 1n, (a, key) => a.sum(key, 2n ** 64n)),
        await op("sum negative operand", 1n, (a, key) => a.sum(key, -1n)),
        ["KvU64 out of range", await outcome(() => u64(2n ** 64n))],
        ["KvU64 negative", await outcome(() => u64(-1n))],
      ];
    },
  },
  {
    name: "atomic/u64-ops-on-other-values",
    async run(kv, _ctx, p) {
      const others: [string, unknown][] = [
        ["number", 5],
        ["string", "5"],
        ["bigint", 5n],
        ["8 raw bytes", new Uint8Array([5, 0, 0, 0, 0, 0, 0, 0])],
        ["object", { value: 5n }],
      ];
      const out = [];
      for (const [label, value] of others) {
        const key = k(p, label);
        await kv.set(key, value);
        out.push({
          label,
          sum: await outcome(() => kv.atomic().sum(key, 1n).commit(), commit),
          min: await outcome(() => kv.atomic().min(key, 1n).commit(), commit),
          max: await outcome(() => kv.atomic().max(key, 1n).commit(), commit),
          after: entry(await kv.get(key)),
        });
      }
      return {
        out,
        numberOperand: await outcome(() =>
          kv.atomic().sum(k(p, "number"), 1 as unknown as bigint).commit()
        ),
      };
    },
  },
  {
    name: "atomic/failing-u64-op-with-other-mutations",
    excluded: "Deno 2.9.6's SQLite backend (:memory:) commits the mutations before a sum/min/max " +
      "that fails on a value that is not a KvU64 and drops the rest (the commit throws); koi " +
      "refuses the whole write (400) and applies nothing: koi/failing-u64-op-applies-nothing",
    run: failingU64Op,
  },
  {
    name: "koi/failing-u64-op-applies-nothing",
    koiOnly: true,
    async run(kv, ctx, p) {
      const seen = await failingU64Op(kv, ctx, p) as { threw: unknown; after: unknown };
      assert.deepEqual(seen.threw, { threw: true }, "the write is refused");
      assert.deepEqual(seen.after, {
        before: "<missing>",
        notU64: 5,
        after: "<missing>",
        check: "checked",
      }, "nothing of the refused write was applied");
      return "refused; nothing applied";
    },
  },
  {
    name: "atomic/commit-versionstamp-key",
    async run(kv, _ctx, p) {
      const log = k(p, "log");
      const alone = await kv.atomic().set(k(log, kv.commitVersionstamp()), "alone").commit();
      const withOther = await kv.atomic().set(k(log, kv.commitVersionstamp()), "with another")
        .set(k(p, "marker"), "marker").commit();
      const viaSet = await kv.set(k(log, kv.commitVersionstamp()), "kv.set");
      const entries = await collect(kv.list<string>({ prefix: log }));
      return {
        commits: [alone, withOther, viaSet].map(commit),
        listed: entries.map((e) => ({
          // The last part is the commit's versionstamp: observed as a versionstamp.
          lastPart: typeof e.key[2] === "string" ? vs(e.key[2]) : norm(e.key[2]),
          parts: e.key.length,
          value: e.value,
          vs: vs(e.versionstamp),
          lastPartIsItsVersionstamp: e.key[2] === e.versionstamp,
        })),
        marker: entry(await kv.get(k(p, "marker"))),
        inDelete: await outcome(() => kv.atomic().delete(k(log, kv.commitVersionstamp())).commit()),
        inCheck: await outcome(() =>
          kv.atomic().check({ key: k(log, kv.commitVersionstamp()), versionstamp: null }).commit()
        ),
        inSum: await outcome(() => kv.atomic().sum(k(log, kv.commitVersionstamp()), 1n).commit()),
        notLast: await outcome(() =>
          kv.atomic().set(k(log, kv.commitVersionstamp(), "x"), 1).commit()
        ),
        asWholeKey: await outcome(() => kv.atomic().set([kv.commitVersionstamp()], 1).commit()),
        inGet: await outcome(() => kv.get(k(log, kv.commitVersionstamp()))),
        countAfterRefusals: (await collect(kv.list({ prefix: log }))).length,
      };
    },
  },
  {
    name: "atomic/commit-versionstamp-two-keys",
    async run(kv, _ctx, p) {
      const r = await kv.atomic().set(k(p, "x", kv.commitVersionstamp()), "x")
        .set(k(p, "y", kv.commitVersionstamp()), "y").commit();
      const entries = await collect(kv.list<string>({ prefix: p }));
      return {
        r: commit(r),
        listed: entries.map((e) => [e.key[1], vs(String(e.key[2])), e.value, vs(e.versionstamp)]),
      };
    },
  },
  {
    name: "atomic/empty-and-check-only",
    async run(kv, ctx, p) {
      const [a] = ctx.sameCluster(p, 1);
      const empty = await kv.atomic().commit();
      const checkOnly = await kv.atomic().check({ key: a, versionstamp: null }).commit();
      await kv.set(a, "now it exists");
      const checkOnlyFails = await kv.atomic().check({ key: a, versionstamp: null }).commit();
      const second = await kv.atomic().commit();
      return {
        empty: commit(empty),
        checkOnly: commit(checkOnly),
        checkOnlyFails: commit(checkOnlyFails),
        second: commit(second),
        state: entry(await kv.get(a)),
      };
    },
  },
  {
    name: "versionstamps/order-in-one-cluster",
    async run(kv, ctx, p) {
      const [a, b] = ctx.sameCluster(p, 2);
      const s1 = await kv.set(a, 1);
      const s2 = await kv.set(a, 2);
      const s3 = await kv.set(b, 3);
      const s4 = await kv.atomic().set(a, 4).set(b, 5).commit();
      const afterS4 = await kv.getMany([a, b]);
      const failed = await kv.atomic().check({ key: a, versionstamp: null }).set(b, 6).commit();
      const afterFailed = await kv.getMany([a, b]);
      await kv.delete(a);
      const s5 = await kv.set(a, 7);
      return {
        commits: [s1, s2, s3, s4, failed, s5].map(commit),
        afterS4: afterS4.map(entry),
        afterFailed: afterFailed.map(entry),
        final: (await kv.getMany([a, b])).map(entry),
      };
    },
  },
  {
    name: "versionstamps/order-across-clusters",
    async run(kv, ctx, p) {
      const keys = ctx.distinctClusters(p, ctx.clusters.length);
      const seen = [];
      for (let round = 0; round < 4; round++) {
        for (const key of keys) {
          const r = await kv.set(key, round);
          seen.push(vs(r.versionstamp));
          seen.push(vs((await kv.get(key)).versionstamp));
        }
      }
      return seen;
    },
  },
  {
    name: "expiry/expireIn",
    slow: "Deno's :memory: database sweeps expired keys about once a minute",
    async run(kv, ctx, p) {
      const long = k(p, "long"), short = k(p, "short"), atomic = k(p, "atomic");
      const renewed = k(p, "renewed"), zero = k(p, "zero");
      await kv.set(long, "stays", { expireIn: 3_600_000 });
      await kv.set(short, "goes", { expireIn: 200 });
      await kv.atomic().set(atomic, "goes too", { expireIn: 200 }).commit();
      await kv.set(zero, "goes at once", { expireIn: 0 });
      // An expiring key set again without expireIn is kept for good.
      await kv.set(renewed, "first", { expireIn: 200 });
      await kv.set(renewed, "second");
      const longRightAway = entry(await kv.get(long));
      const gone = await eventually(
        async () => (await kv.getMany([short, atomic, zero])).every((e) => e.versionstamp === null),
        ctx.expiryDeadlineMs,
        100,
      );
      return {
        longRightAway,
        negative: await outcome(() => kv.set(k(p, "negative"), 1, { expireIn: -1 })),
        fractional: await outcome(() => kv.set(k(p, "fraction"), 1, { expireIn: 0.5 })),
        expiredKeysGone: gone,
        left: kvs(await collect(kv.list({ prefix: p }))),
      };
    },
  },
  {
    name: "watch/one-cluster",
    run: (kv, ctx, p) => watchScenario(kv, ctx, ctx.sameCluster(p, 2)),
  },
  {
    name: "watch/across-clusters",
    run: (kv, ctx, p) => watchScenario(kv, ctx, ctx.distinctClusters(p, 2)),
  },
  {
    name: "limits/key-size",
    async run(kv, _ctx, p) {
      const out = [];
      for (const size of [2047, 2048, 2049, 2050]) {
        for (
          const [kind, key] of [["string", keyOfSize(p, size)], [
            "bytes",
            bytesKeyOfSize(p, size),
          ]] as const
        ) {
          out.push({
            size,
            kind,
            encoded: encodeKey(key).length,
            set: await outcome(() => kv.set(key, size)),
            get: await outcome(() => kv.get(key), (e) => e.value),
            atomicCheck: await outcome(
              () => kv.atomic().check({ key, versionstamp: null }).commit(),
              commit,
            ),
            delete: await outcome(() => kv.delete(key)),
            getAfterDelete: await outcome(() => kv.get(key), (e) => e.value),
          });
        }
      }
      await kv.set(keyOfSize(p, 2048), "listed");
      return { out, listed: (await collect(kv.list({ prefix: p }))).map((e) => e.value) };
    },
  },
  {
    name: "limits/value-size",
    async run(kv, ctx, p) {
      const bytes = (n: number) => new Uint8Array(n).fill(7);
      const out: Record<string, unknown> = {};
      for (const n of [65535, 65536, 65537]) {
        out[`bytes${n}`] = await outcome(() => kv.set(k(p, "bytes", n), bytes(n)), commit);
      }
      // A one-byte string of n characters serializes to n + 6 bytes (V8 header, tag, length).
      for (const n of [65530, 65531]) {
        out[`string${n}`] = await outcome(() => kv.set(k(p, "string", n), "s".repeat(n)), commit);
      }
      out.read = (await collect(kv.list<Uint8Array | string>({ prefix: p }))).map((e) => [
        key(e.key.slice(1)),
        e.value.length,
      ]);
      // An atomic write carries at most 800 KiB of keys and values.
      const keys = ctx.sameCluster(k(p, "atomic"), 13);
      const within = kv.atomic();
      for (const key of keys.slice(0, 12)) within.set(key, bytes(65536));
      out.atomic12x64KiB = await outcome(() => within.commit(), commit);
      const over = kv.atomic();
      for (const key of keys) over.set(key, bytes(65536));
      out.atomic13x64KiB = await outcome(() => over.commit(), commit);
      out.atomicCount = (await collect(kv.list({ prefix: k(p, "atomic") }))).length;
      return out;
    },
  },
  {
    name: "limits/atomic-checks-and-mutations",
    async run(kv, ctx, p) {
      const keys = ctx.sameCluster(p, 1001);
      const checks = (n: number) => {
        const a = kv.atomic();
        for (const key of keys.slice(0, n)) a.check({ key, versionstamp: null });
        return a.commit();
      };
      const mutations = (n: number) => {
        const a = kv.atomic();
        for (const [i, key] of keys.slice(0, n).entries()) a.set(key, i);
        return a.commit();
      };
      return {
        checks100: await outcome(() => checks(100), commit),
        checks101: await outcome(() => checks(101), commit),
        mutations1001: await outcome(() => mutations(1001), commit),
        countAfter1001: (await collect(kv.list({ prefix: p }))).length,
        mutations1000: await outcome(() => mutations(1000), commit),
        countAfter1000: (await collect(kv.list({ prefix: p }))).length,
      };
    },
  },
  {
    name: "queues/enqueue",
    excluded: "koi does not serve queues (nodes refuse an atomic write with enqueues); Deno's " +
      "own KV Connect client refuses enqueue too, so it cannot be compared",
    async run(kv, ctx, p) {
      const [a] = ctx.sameCluster(p, 1);
      return {
        enqueue: await outcome(() => kv.enqueue({ hello: "queue" }), commit),
        inAtomic: await outcome(() => kv.atomic().set(a, 1).enqueue("m").commit(), commit),
        setWithIt: entry(await kv.get(a)),
      };
    },
  },
  {
    name: "atomic/across-clusters",
    async run(kv, ctx, p) {
      const [a, b] = ctx.distinctClusters(p, 2);
      const both = await outcome(() => kv.atomic().set(a, "a").set(b, "b").commit(), commit);
      const [ea, eb] = await kv.getMany([a, b]);
      const sums = await outcome(
        () => kv.atomic().sum(k(p, "n1"), 1n).sum(k(p, "n2"), 2n).commit(),
        commit,
      );
      return {
        commit: both,
        state: [ea, eb].map(entry),
        oneVersionstamp: ea.versionstamp === eb.versionstamp,
        sums,
        sumState: (await kv.getMany([k(p, "n1"), k(p, "n2")])).map(entry),
      };
    },
  },
  {
    name: "atomic/commit-versionstamp-across-clusters",
    async run(kv, ctx, p) {
      const [a, b] = ctx.distinctClusters(p, 2);
      const r = await kv.atomic().set(a, "a").set(k(p, "log", kv.commitVersionstamp()), "x")
        .set(b, "b").commit();
      const listed = await collect(kv.list<string>({ prefix: k(p, "log") }));
      const [ea, eb] = await kv.getMany([a, b]);
      return {
        r: commit(r),
        listed: listed.map((e) => [vs(String(e.key[2])), e.value, vs(e.versionstamp)]),
        sameStamp: ea.versionstamp === eb.versionstamp &&
          listed[0]?.versionstamp === ea.versionstamp && listed[0]?.key[2] === ea.versionstamp,
      };
    },
  },
  {
    name: "koi/cross-cluster-atomic",
    koiOnly: true,
    async run(kv, ctx, p) {
      const [a, b] = ctx.distinctClusters(p, 2);
      assert.notEqual(ctx.ownerOf(a), ctx.ownerOf(b));
      const done = await kv.atomic().check({ key: a, versionstamp: null }).set(a, "a").set(b, "b")
        .commit();
      assert.ok(done.ok);
      const [ea, eb] = await kv.getMany([a, b]);
      assert.equal(ea.versionstamp, done.versionstamp, "the commit's versionstamp, on every key");
      assert.equal(eb.versionstamp, done.versionstamp);
      // A check that fails in one cluster: nothing of the write applies in the other.
      const failed = await kv.atomic().check(ea).check({ key: b, versionstamp: null })
        .set(a, "not applied").set(b, "not applied").commit();
      assert.equal(failed.ok, false);
      const [fa, fb] = await kv.getMany([a, b]);
      assert.equal(fa.value, "a");
      assert.equal(fb.value, "b");
      // A sum on a value that is not a u64, in one cluster: refused, nothing applied anywhere.
      await assert.rejects(kv.atomic().set(a, "x").sum(b, 1n).commit());
      assert.equal((await kv.get(a)).value, "a");
      // A versionstamped key in a transaction over several clusters: its suffix is the
      // commit's versionstamp, like every key's.
      const logged = await kv.atomic().set(a, 1).set(b, 2)
        .set(k(p, "log", kv.commitVersionstamp()), 3).commit();
      assert.ok(logged.ok);
      const [entryLog] = await collect(kv.list({ prefix: k(p, "log") }));
      assert.equal(entryLog.key[2], logged.versionstamp);
      assert.equal(entryLog.versionstamp, logged.versionstamp);
      assert.equal((await kv.get(a)).versionstamp, logged.versionstamp);
      return "one versionstamp; all or nothing; a versionstamped key takes it too";
    },
  },
];

/** The `n` keys of `p` for one placement (see {@linkcode bothPlacements}). */
type KeysOf = (ctx: ScenarioContext, p: Deno.KvKey, n: number) => Deno.KvKey[];

/**
 * A scenario twice: `<name>/one-cluster` on keys of one cluster (koi's single Raft entry) and
 * `<name>/across-clusters` on keys spread over every cluster (a cross-cluster transaction).
 */
function bothPlacements(
  name: string,
  make: (keysOf: KeysOf) => Omit<Scenario, "name">,
): Scenario[] {
  return [
    { name: `${name}/one-cluster`, ...make((ctx, p, n) => ctx.sameCluster(p, n)) },
    { name: `${name}/across-clusters`, ...make((ctx, p, n) => ctx.spreadClusters(p, n)) },
  ];
}

/** A write whose sum meets a number, between two sets; what is left of it. */
async function failingU64Op(kv: Deno.Kv, ctx: ScenarioContext, p: Deno.KvKey): Promise<unknown> {
  const [before, notU64, after, check] = ctx.sameCluster(p, 4);
  await kv.set(notU64, 5);
  await kv.set(check, "checked");
  const current = await kv.get(check);
  const threw = await outcome(() =>
    kv.atomic().check(current).set(before, "before").sum(notU64, 1n).set(after, "after").commit()
  );
  const [b, n, a, c] = await kv.getMany<unknown[]>([before, notU64, after, check]);
  const show = (e: Deno.KvEntryMaybe<unknown>) => e.versionstamp === null ? "<missing>" : e.value;
  return {
    threw,
    after: { before: show(b), notU64: show(n), after: show(a), check: show(c) },
    checkUnchanged: c.versionstamp === current.versionstamp,
  };
}

async function watchScenario(
  kv: Deno.Kv,
  ctx: ScenarioContext,
  [a, b]: Deno.KvKey[],
): Promise<unknown> {
  const before = await kv.set(b, "before");
  const stream = kv.watch([a, b]);
  const reader = stream.getReader();
  try {
    const first = await readUntil(reader, () => true, ctx.changeDeadlineMs);
    const setA = await kv.set(a, "after");
    const sawSet = await readUntil(reader, (es) => es[0].value === "after", ctx.changeDeadlineMs);
    const deleteB = await kv.delete(b);
    const sawDelete = await readUntil(
      reader,
      (es) => es[1].versionstamp === null,
      ctx.changeDeadlineMs,
    );
    const show = (x: Deno.KvEntryMaybe<unknown>[] | string) =>
      typeof x === "string" ? x : x.map(entry);
    return {
      before: commit(before),
      first: show(first),
      setA: commit(setA),
      sawSet: show(sawSet),
      deleteB: norm(deleteB),
      sawDelete: show(sawDelete),
      // More than 10 keys: refused before anything is sent (no stream to cancel).
      tooMany: await outcome(() => {
        const s = kv.watch(Array.from({ length: 11 }, (_, i) => k(a, i)));
        s.cancel().catch(() => {});
      }),
    };
  } finally {
    await reader.cancel().catch(() => {});
  }
}

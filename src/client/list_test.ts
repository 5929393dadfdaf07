/** Listing across clusters: merge in byte order, paging, against a model. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { compareBytes, encodeBase64Url } from "./_bytes.ts";
import { error, FakeDeployment } from "./_fake_test_util.ts";
import { mergePages } from "./_list.ts";
import { connect, UnavailableError } from "./mod.ts";

const THREE = {
  clusters: [
    { id: "a", nodes: ["a1"] },
    { id: "b", nodes: ["b1"] },
    { id: "c", nodes: ["c1"] },
  ],
};

Deno.test("list: pages merge every cluster in byte order; more and next page on", async () => {
  const d = FakeDeployment.start(THREE);
  try {
    using koi = await connect(d.adminUrl);
    d.cluster("a").set("user:1");
    d.cluster("b").set("user:2");
    d.cluster("c").set("user:3");
    d.cluster("a").set("user:4");
    d.cluster("b").set("other");
    const first = await koi.list({ prefix: "user:", limit: 2 });
    assert.deepEqual(first.items.map((i) => i.keyText), ["user:1", "user:2"]);
    assert.deepEqual(first.items.map((i) => i.cluster), ["a", "b"]);
    assert.equal(first.more, true);
    assert.equal(new TextDecoder().decode(first.next), "user:2");
    // Every cluster was asked for `limit` keys with base64url bounds.
    const asked = d.requests.slice(-3);
    assert.deepEqual(asked.map((r) => r.cluster).sort(), ["a", "b", "c"]);
    for (const r of asked) {
      assert.equal(r.query.get("limit"), "2");
      assert.equal(r.query.get("prefix_b64"), encodeBase64Url(new TextEncoder().encode("user:")));
      assert.equal(r.query.get("after_b64"), "");
    }
    const second = await koi.list({ prefix: "user:", limit: 2, after: first.next });
    assert.deepEqual(second.items.map((i) => i.keyText), ["user:3", "user:4"]);
    assert.equal(second.more, false);
    assert.equal(second.next, undefined);
    const everything = await koi.list();
    assert.equal(everything.items.length, 5);
    assert.equal(everything.more, false);
  } finally {
    await d.close();
  }
});

Deno.test("list: one cluster that cannot answer fails the whole page", async () => {
  const d = FakeDeployment.start(THREE);
  try {
    using koi = await connect(d.adminUrl, { retryMaxMs: 20 });
    d.node("b1").hook = () => error(503, "no_leader", "No leader", { "retry-after": "1" });
    const e = await koi.list({ timeoutMs: 300 }).catch((e) => e);
    assert.ok(e instanceof UnavailableError, String(e));
    assert.equal(e.cluster, "b");
    assert.match(e.message, /list of cluster b/);
  } finally {
    await d.close();
  }
});

Deno.test("list: a key held by two clusters shows once, from its owner", () => {
  const k = (s: string) => new TextEncoder().encode(s);
  const page = mergePages(
    [
      { cluster: "a", items: [{ key: k("x"), rev: 5 }, { key: k("y"), rev: 6 }], more: false },
      { cluster: "b", items: [{ key: k("x"), rev: 9 }], more: false },
    ],
    10,
    (key) => (key[0] === 0x78 ? "b" : "a"),
  );
  assert.deepEqual(page.items.map((i) => [i.keyText, i.cluster, i.rev]), [
    ["x", "b", 9],
    ["y", "a", 6],
  ]);
  assert.equal(page.more, false);
});

// Keys over a tiny alphabet (so prefixes and shared keys are common), never starting 0xFF.
const keyArb = fc.uint8Array({ minLength: 1, maxLength: 4, min: 0, max: 4 })
  .map((bytes) => Uint8Array.from(bytes, (b) => [0, 1, 0x61, 0x80, 0xfe][b]));

Deno.test("list: paging with random limits returns the sorted union, each key once", async () => {
  const d = FakeDeployment.start(THREE);
  try {
    using koi = await connect(d.adminUrl);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(keyArb, { maxLength: 25 }), { minLength: 3, maxLength: 3 }),
        fc.option(fc.uint8Array({ minLength: 1, maxLength: 1, min: 0, max: 1 }), {
          nil: undefined,
        }),
        fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 8 }),
        async (sets, prefixPick, limits) => {
          const prefix = prefixPick?.map((b) => [0, 0x61][b]);
          const model = new Map<string, Uint8Array>();
          ["a", "b", "c"].forEach((id, i) => {
            const cluster = d.cluster(id);
            cluster.data.clear();
            for (const key of sets[i]) {
              cluster.set(key);
              const matches = prefix === undefined ||
                (key.length >= prefix.length && key[0] === prefix[0]);
              if (matches) model.set(encodeBase64Url(key), key);
            }
          });
          const expected = [...model.values()].sort(compareBytes);
          const got: Uint8Array[] = [];
          let after: Uint8Array | undefined;
          for (let page = 0;; page++) {
            const limit = limits[page % limits.length];
            const result = await koi.list({ limit, after, ...(prefix ? { prefix } : {}) });
            assert.ok(result.items.length <= limit);
            got.push(...result.items.map((i) => i.key));
            if (!result.more) break;
            assert.equal(result.items.length, limit, "a page short of limit says more: false");
            assert.deepEqual(result.next, result.items.at(-1)!.key);
            after = result.next;
            assert.ok(page < 100, "paging terminates");
          }
          assert.deepEqual(got.map(encodeBase64Url), expected.map(encodeBase64Url));
        },
      ),
      { numRuns: 60 },
    );
  } finally {
    await d.close();
  }
});

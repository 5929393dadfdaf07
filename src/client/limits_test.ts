/** Arguments the client refuses before sending anything, with the node's codes. */
import assert from "node:assert/strict";
import { FakeDeployment } from "./_fake_test_util.ts";
import { connect, KEY_BYTES_MAX, KoiError, KoiHttpError, VALUE_BYTES_MAX } from "./mod.ts";

Deno.test("limits: bad keys, values, conditions and limits are refused client-side", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  try {
    using koi = await connect(d.adminUrl);
    const refused = async (what: string, code: string, call: () => Promise<unknown>) => {
      const e = await call().then(() => undefined, (e) => e);
      assert.ok(e instanceof KoiError, `${what}: ${e}`);
      assert.ok(!(e instanceof KoiHttpError), `${what}: refused by the client, not a node`);
      assert.equal(e.code, code, what);
      return e;
    };
    const long = "k".repeat(KEY_BYTES_MAX + 1);
    const e = await refused("empty key", "bad_request", () => koi.get(""));
    assert.match(e.message, /must be 1 to 1024 bytes, got 0/);
    await refused("long key", "bad_request", () => koi.put(long, "v"));
    await refused("2-byte chars over the limit", "bad_request", () => koi.delete("é".repeat(513)));
    await refused("system key", "bad_request", () => koi.get(new Uint8Array([0xff, 1])));
    const big = await refused(
      "value over 1 MiB",
      "too_large",
      () => koi.put("k", new Uint8Array(VALUE_BYTES_MAX + 1)),
    );
    assert.match(big.message, /1048577 bytes, the limit is 1048576/);
    await refused("ifRev 0", "bad_request", () => koi.put("k", "v", { ifRev: 0 }));
    await refused("ifRev 1.5", "bad_request", () => koi.delete("k", { ifRev: 1.5 }));
    await refused(
      "both conditions",
      "bad_request",
      () => koi.put("k", "v", { ifRev: 3, ifAbsent: true }),
    );
    await refused("limit 0", "bad_request", () => koi.list({ limit: 0 }));
    await refused("limit 1001", "bad_request", () => koi.list({ limit: 1001 }));
    await refused("limit 2.5", "bad_request", () => koi.list({ limit: 2.5 }));
    await refused("long prefix", "bad_request", () => koi.list({ prefix: long }));
    await refused(
      "system prefix",
      "bad_request",
      () => koi.list({ prefix: new Uint8Array([0xff]) }),
    );
    await refused(
      "consistency",
      "bad_request",
      () => koi.get("k", { consistency: "eventual" as "stale" }),
    );
    await refused("timeout", "bad_request", () => koi.get("k", { timeoutMs: 0 }));
    await refused("where", "bad_request", () => Promise.resolve().then(() => koi.where(long)));
    assert.equal(d.requests.length, 0, "nothing was sent");
    // The limits themselves are allowed.
    await koi.put("k".repeat(KEY_BYTES_MAX), new Uint8Array(VALUE_BYTES_MAX));
    assert.equal((await koi.get("k".repeat(KEY_BYTES_MAX)))?.value.length, VALUE_BYTES_MAX);
    assert.equal((await koi.list({ limit: 1000 })).items.length, 1);
    assert.equal(d.requests.length, 3);
  } finally {
    await d.close();
  }
});

Deno.test("limits: connect refuses bad options before any request", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  try {
    for (
      const options of [
        { timeoutMs: -1 },
        { attemptTimeoutMs: Infinity },
        { clientId: "has space" },
        { clientId: "" },
        { retryMaxMs: -5 },
      ]
    ) {
      const e = await connect(d.adminUrl, options).catch((e) => e);
      assert.equal(e.code, "bad_request", JSON.stringify(options));
    }
    assert.equal(d.adminRequests.length, 0);
  } finally {
    await d.close();
  }
});

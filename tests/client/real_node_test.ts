/**
 * The routing client and `koi client` against a real `koi node` (one single-node cluster,
 * `tests/e2e/_cluster.ts`), behind a stand-in admin that serves its `/v1/carp`: checks the
 * client's reading of the real node API (base64url keys, etags, listings with `key_b64`,
 * conditions, request ids).
 */
import assert from "node:assert/strict";
import { ProcessCluster } from "../e2e/_cluster.ts";
import { connect, PreconditionFailedError, VALUE_BYTES_MAX } from "../../mod.ts";
import { koiCommand } from "./_cli_test_util.ts";

Deno.test("client against a real node: data plane, conditions, listing, concurrency", async () => {
  const cluster = await ProcessCluster.create(["a1"]);
  const node = cluster.node("a1");
  const admin = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) =>
      new URL(request.url).pathname === "/v1/carp"
        ? Response.json({
          epoch: 1,
          scheme: "carp64",
          clusters: [{
            id: "a",
            loadFactor: 1,
            leader: "",
            nodes: [{ id: "a1", http: node.http }],
          }],
        })
        : Response.json({ error: { code: "not_found", message: "no" } }, { status: 404 }),
  );
  try {
    cluster.startAll();
    await cluster.leader(30_000);
    const adminUrl = `http://127.0.0.1:${admin.addr.port}`;
    using koi = await connect(adminUrl, { timeoutMs: 15_000 });

    const { rev } = await koi.put("greeting", "hello");
    assert.deepEqual(await koi.getText("greeting"), { value: "hello", rev });
    assert.equal(koi.where("greeting").leader?.id, "a1", "learned from x-koi-leader");
    assert.deepEqual(await koi.getText("greeting", { consistency: "stale" }), {
      value: "hello",
      rev,
    });
    assert.equal(await koi.get("absent"), null);

    // Keys the URL path cannot carry, binary keys, the largest value.
    const odd = ["a/../b", "..", "%2e", "sp ace#?&", new Uint8Array([0x80, 0, 0xfe])];
    for (const key of odd) await koi.put(key, typeof key === "string" ? key : "bin");
    for (const key of odd) {
      const hit = await koi.getText(key);
      assert.equal(hit?.value, typeof key === "string" ? key : "bin", String(key));
    }
    const big = new Uint8Array(VALUE_BYTES_MAX).fill(7);
    await koi.put("big", big);
    assert.deepEqual((await koi.get("big"))?.value, big);

    // Conditions.
    const created = await koi.put("user:1", "Ada", { ifAbsent: true });
    const refused = await koi.put("user:1", "Bob", { ifAbsent: true }).catch((e) => e);
    assert.ok(refused instanceof PreconditionFailedError, String(refused));
    assert.equal(refused.currentRev, created.rev);
    // The node knows the key only by its key_b64; the message names it as it was given.
    assert.match(refused.message, new RegExp(`: key "user:1" has rev ${created.rev}$`));
    const long = `user:${"é".repeat(60)}`;
    const absent = await koi.delete(long, { ifRev: 1 }).catch((e) => e);
    assert.ok(absent instanceof PreconditionFailedError, String(absent));
    assert.ok(
      absent.message.endsWith(`: key ${JSON.stringify(long)} does not exist`),
      absent.message,
    );
    const updated = await koi.put("user:1", "Ada L.", { ifRev: created.rev });
    assert.ok(updated.rev > created.rev);
    const removed = await koi.delete("user:1", { ifRev: updated.rev });
    assert.equal(removed.deleted, true);
    assert.ok(removed.rev > updated.rev);
    assert.equal((await koi.delete("user:1")).deleted, false);

    // Concurrent writes: distinct sessions, so none is refused as stale_request.
    const writes = await Promise.all(
      Array.from({ length: 24 }, (_, i) => koi.put(`user:${String(i).padStart(2, "0")}`, "x")),
    );
    assert.equal(new Set(writes.map((w) => w.rev)).size, 24);

    // Listing: byte order, paging, exact binary keys.
    const keys: string[] = [];
    let page = await koi.list({ prefix: "user:", limit: 5 });
    for (;;) {
      keys.push(...page.items.map((i) => i.keyText));
      if (!page.more) break;
      page = await koi.list({ prefix: "user:", limit: 5, after: page.next });
    }
    assert.deepEqual(
      keys,
      Array.from({ length: 24 }, (_, i) => `user:${String(i).padStart(2, "0")}`),
    );
    const all = [];
    for await (const item of koi.scan({ pageSize: 7 })) all.push(item.key);
    assert.ok(all.some((k) => k.length === 3 && k[0] === 0x80 && k[1] === 0 && k[2] === 0xfe));

    // The command line on the same node.
    const [exe, ...args] = koiCommand(["get", "a/../b"]);
    const o = await new Deno.Command(exe, {
      args,
      env: { KOI_ADMIN: adminUrl },
      stdin: "null",
    }).output();
    assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
    assert.equal(new TextDecoder().decode(o.stdout), "a/../b");
  } catch (error) {
    console.error(cluster.logs());
    throw error;
  } finally {
    await admin.shutdown();
    await cluster.close();
  }
});

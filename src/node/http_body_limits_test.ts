/**
 * Each node route's own body limit applies before the body is read: found by the attack, a
 * declared length over a route's limit but under the server-wide one (2 MiB + 64 KiB) waited
 * 10 s for its body and got a 408 instead of a prompt 413.
 */
import assert from "node:assert/strict";
import { harness } from "./_fake_service_test_util.ts";
import { MANAGEMENT_BODY_BYTES_MAX, nodeBodyBytesMaxOf, VALUE_BYTES_MAX } from "./http.ts";
import { ROUTE_BODY_BYTES_MAX } from "./_http_route.ts";
import { KVC_BODY_BYTES_MAX } from "./_http_kvc.ts";
import { TXN_BODY_BYTES_MAX } from "./_http_txn.ts";
import { withServer } from "../http/_server_test_util.ts";

const TEXT = new TextEncoder();

Deno.test("node body limits: each route's limit is the one its handler reads with", () => {
  const of = nodeBodyBytesMaxOf();
  assert.equal(of("PUT", "/v1/kv/a"), VALUE_BYTES_MAX);
  assert.equal(of("PUT", "/v1/kv?key_b64=YQ"), VALUE_BYTES_MAX);
  assert.equal(of("POST", "/v1/kvc/snapshot_read"), KVC_BODY_BYTES_MAX);
  assert.equal(of("POST", "/v1/kvc/prepare"), TXN_BODY_BYTES_MAX);
  assert.equal(of("POST", "/v1/txn/read"), TXN_BODY_BYTES_MAX);
  assert.equal(of("POST", "/v1/route"), ROUTE_BODY_BYTES_MAX);
  for (
    const [method, target] of [["POST", "/v1/members"], ["DELETE", "/v1/kv/a"], ["POST", "/x"]]
  ) {
    assert.equal(of(method, target), MANAGEMENT_BODY_BYTES_MAX, `${method} ${target}`);
  }
  assert.equal(nodeBodyBytesMaxOf(10)("PUT", "/v1/kv/a"), 10);
});

Deno.test("node body limits: a real server answers a declared length over the route's limit at once", async () => {
  const { app, service } = harness();
  const limits = { bodyBytesMax: ROUTE_BODY_BYTES_MAX };
  await withServer(limits, app.fetch, async (server) => {
    const ask = async (head: string) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      const started = Date.now();
      await conn.write(TEXT.encode(`${head}\r\n\r\n`));
      const text = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
      return { text, ms: Date.now() - started };
    };
    const heads = [
      `PUT /v1/kv/x1 HTTP/1.1\r\nhost: x\r\ncontent-length: ${2 << 20}`,
      `PUT /v1/kv/x1 HTTP/1.1\r\nhost: x\r\ncontent-length: ${2 << 20}\r\nexpect: 100-continue`,
      `POST /v1/members HTTP/1.1\r\nhost: x\r\ncontent-length: 102400`,
      `POST /v1/txn/read HTTP/1.1\r\nhost: x\r\ncontent-length: ${2 << 20}`,
    ];
    for (const head of heads) {
      const { text, ms } = await ask(head);
      assert.match(text, /^HTTP\/1\.1 413 /, head);
      assert.match(text, /"too_large"/, head);
      assert.ok(ms < 3_000, `${head}: answered after ${ms} ms`);
    }
    assert.equal(service.calls.length, 0, "nothing reached the service");
    // A value of exactly the limit is taken.
    const ok = await fetch(`http://127.0.0.1:${server.port}/v1/kv/x1`, {
      method: "PUT",
      body: new Uint8Array(VALUE_BYTES_MAX),
    });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  }, { bodyBytesMaxOf: nodeBodyBytesMaxOf() });
});

/**
 * Issue 10, item E: every key reachable (base64url keys, dot segments refused), HEAD, /healthz
 * without a leader, and `POST /v1/members {"id"}` with the addresses from config.toml.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { errorOf, harness } from "./_fake_service_test_util.ts";
import { decodeBase64Url, encodeBase64Url, refusedTarget } from "./_http_keys.ts";
import { HttpServer } from "../http/server.ts";

const TEXT = new TextEncoder();

function b64(bytes: Uint8Array | string): string {
  return encodeBase64Url(typeof bytes === "string" ? TEXT.encode(bytes) : bytes);
}

Deno.test("healthz: 503 no_leader while no leader is known, 200 with one", async () => {
  const { app, service } = harness({ leader: "" });
  let response = await app.request("/healthz");
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "1");
  assert.equal((await errorOf(response)).code, "no_leader");
  service.leaderId = "n2";
  response = await app.request("/healthz");
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { ok: true, leader: "n2" });
});

Deno.test("HEAD /v1/kv/k answers GET's headers (content-length, etag) without a body", async () => {
  const { app, service } = harness();
  const rev = service.seed("k", "hello");
  const response = await app.request("/v1/kv/k", { method: "HEAD" });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-length"), "5");
  assert.equal(response.headers.get("etag"), `"${rev}"`);
  assert.equal(response.headers.get("x-koi-leader"), "n1");
  assert.equal(await response.text(), "");
  const missing = await app.request("/v1/kv/nope", { method: "HEAD" });
  assert.equal(missing.status, 404);
});

Deno.test("key_b64: any byte string can be written, read, listed and deleted", async () => {
  const { app } = harness();
  const key = new Uint8Array([0x00, 0x2e, 0x2e, 0x2f, 0xc3, 0x28, 0xfe]); // NUL, "../", bad UTF-8
  const k = b64(key);
  let response = await app.request(`/v1/kv?key_b64=${k}`, { method: "PUT", body: "v1" });
  assert.equal(response.status, 200, await response.clone().text());
  response = await app.request(`/v1/kv?key_b64=${k}`);
  assert.equal(response.status, 200);
  assert.equal(await response.text(), "v1");
  response = await app.request(`/v1/kv?prefix_b64=${b64(key.subarray(0, 2))}`);
  const page = await response.json();
  assert.equal(page.items.length, 1);
  assert.equal(page.items[0].key_b64, k);
  assert.deepEqual(decodeBase64Url(page.items[0].key_b64, "key"), key);
  response = await app.request(`/v1/kv?key_b64=${k}`, { method: "DELETE" });
  assert.equal(response.status, 200);
  assert.equal((await response.json()).deleted, true);
  response = await app.request(`/v1/kv?key_b64=${k}`);
  assert.equal(response.status, 404);
  // A UTF-8 key is the same key either way.
  await app.request("/v1/kv/caf%C3%A9", { method: "PUT", body: "x" });
  response = await app.request(`/v1/kv?key_b64=${b64("café")}`);
  assert.equal(await response.text(), "x");
});

Deno.test("key_b64: reserved 0xFF keys, bad base64url and missing keys are 400", async () => {
  const { app, service } = harness();
  const cases: [string, string, RegExp][] = [
    ["PUT", `/v1/kv?key_b64=${b64(new Uint8Array([0xff, 1]))}`, /reserved for koi/],
    ["GET", `/v1/kv?key_b64=${b64(new Uint8Array([0xff]))}`, /reserved for koi/],
    ["GET", `/v1/kv?prefix_b64=${b64(new Uint8Array([0xff]))}`, /reserved for koi/],
    ["GET", "/v1/kv?key_b64=a+b", /not base64url/],
    ["GET", "/v1/kv?key_b64=A", /impossible length/],
    ["GET", "/v1/kv?key_b64=", /1 to 1024 bytes/],
    ["GET", "/v1/kv?key_b64=QR", /trailing bits/],
    ["PUT", "/v1/kv", /Missing key/],
    ["DELETE", "/v1/kv", /Missing key/],
    ["GET", `/v1/kv/k?key_b64=${b64("k")}`, /not both/],
    ["GET", `/v1/kv?prefix=a&prefix_b64=${b64("a")}`, /not both/],
  ];
  for (const [method, path, message] of cases) {
    const response = await app.request(path, { method, body: method === "PUT" ? "v" : null });
    assert.equal(response.status, 400, `${method} ${path}`);
    assert.match((await errorOf(response)).message, message, `${method} ${path}`);
  }
  assert.equal(service.calls.length, 0);
});

Deno.test("base64url: encode and decode are inverse, and decode accepts one spelling", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const text = encodeBase64Url(bytes);
      assert.match(text, /^[A-Za-z0-9_-]*$/);
      assert.deepEqual(decodeBase64Url(text, "k"), bytes);
      assert.equal(
        text,
        btoa(String.fromCharCode(...bytes)).replace(/=+$/, "").replaceAll("+", "-").replaceAll(
          "/",
          "_",
        ),
      );
    }),
  );
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(..."AQg_-=+/.x"), maxLength: 12 }), (text) => {
      let bytes: Uint8Array;
      try {
        bytes = decodeBase64Url(text, "k");
      } catch {
        return;
      }
      assert.equal(encodeBase64Url(bytes), text.replace(/=+$/, ""));
    }),
  );
});

Deno.test("request targets: either refused, or URL parsing keeps the path's meaning", () => {
  // deno-fmt-ignore
  const pieces = ["a", "/", ".", "..", "%2e", "%2E", "%2e%2E", ".%2e", "%", "%2F", "\\", "#", "?",
    "é", " ", "%5C"];
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...pieces), { maxLength: 8 }), (parts) => {
      const target = `/v1/kv/${parts.join("")}`;
      if (refusedTarget(target) !== undefined) return;
      const path = target.split("?")[0];
      const parsed = new URL(`http://127.0.0.1${target}`).pathname;
      // Only percent-encoding of characters a URL cannot carry differs; the decoded text is
      // the same, so the key is the one the client named.
      const decode = (text: string) => {
        try {
          return decodeURIComponent(text);
        } catch {
          return "malformed: answered 400 either way";
        }
      };
      assert.equal(decode(parsed), decode(path), target);
    }),
  );
});

Deno.test("a real server refuses dot segments: PUT /v1/kv/zz/%2e%2e/t5 does not write t5", async () => {
  const { app, service } = harness();
  const server = await HttpServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    fetch: app.fetch,
    refuseTarget: refusedTarget,
  });
  try {
    for (const path of ["/v1/kv/zz/%2e%2e/t5", "/v1/kv/zz/../t5", "/v1/kv/./t5", "/v1/kv/%2E"]) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await conn.write(
        TEXT.encode(
          `PUT ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 1\r\n\r\nv`,
        ),
      );
      const answer = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
      assert.match(answer, /^HTTP\/1\.1 400 /, path);
      assert.match(answer, /key_b64/, path);
    }
    assert.equal(service.calls.length, 0, "nothing reached the service");
    const ok = await fetch(`http://127.0.0.1:${server.port}/v1/kv/zz%2F..%2Ft5`, {
      method: "PUT",
      body: "v",
    });
    assert.equal(ok.status, 200, "an encoded slash keeps the key whole");
    await ok.body?.cancel();
    const written = service.calls.find((c) => c.op === "write");
    assert.ok(written?.op === "write");
    const mutation = written.command.mutations[0];
    assert.equal(new TextDecoder().decode(mutation.key), "zz/../t5");
  } finally {
    await server.close(100);
  }
});

Deno.test("a percent-encoded route name is refused: PUT /v1/%6bv/k2 does not write v/k2", async () => {
  const { app, service } = harness();
  const server = await HttpServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    fetch: app.fetch,
    refuseTarget: refusedTarget,
  });
  try {
    for (const target of ["/v1/%6bv/k2", "/v1/%6Dembers/a4", "/%761/kv/k", "/v1/kv%2Fk"]) {
      assert.match(refusedTarget(target) ?? "", /route names/, target);
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await conn.write(
        TEXT.encode(
          `PUT ${target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 1\r\n\r\nv`,
        ),
      );
      const answer = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
      assert.match(answer, /^HTTP\/1\.1 400 /, target);
    }
    assert.equal(service.calls.length, 0, "nothing reached the service");
    assert.equal(refusedTarget("/v1/kv/%6bv/k2"), undefined, "the key itself may be encoded");
  } finally {
    await server.close(100);
  }
});

Deno.test("members: POST {id} takes the addresses of a node config.toml knows", async () => {
  const members = new Map([["a4", { raft: "127.0.0.1:7104", http: "127.0.0.1:7204" }]]);
  const { app, service } = harness({}, { members });
  let response = await app.request("/v1/members", { method: "POST", body: '{"id":"a4"}' });
  assert.equal(response.status, 200, await response.clone().text());
  assert.deepEqual(service.calls.at(-1), {
    op: "addMember",
    member: { id: "a4", raft: "127.0.0.1:7104", http: "127.0.0.1:7204", voter: false },
  });
  response = await app.request("/v1/members", {
    method: "POST",
    body: '{"id":"a4","voter":true,"http":"127.0.0.1:7204"}',
  });
  assert.equal(response.status, 200, "the address config.toml has may be repeated");
  assert.deepEqual(service.calls.at(-1), {
    op: "addMember",
    member: { id: "a4", raft: "127.0.0.1:7104", http: "127.0.0.1:7204", voter: true },
  });
  // An address that contradicts config.toml is refused: it would divert the member's traffic.
  const calls = service.calls.length;
  response = await app.request("/v1/members", {
    method: "POST",
    body: '{"id":"a4","voter":true,"raft":"127.0.0.1:1"}',
  });
  assert.equal(response.status, 400);
  assert.match((await errorOf(response)).message, /config\.toml with raft 127\.0\.0\.1:7104/);
  assert.equal(service.calls.length, calls, "nothing reached the service");
  response = await app.request("/v1/members", { method: "POST", body: '{"id":"a9"}' });
  assert.equal(response.status, 400);
  assert.match((await errorOf(response)).message, /node a9 is not in config\.toml/);
});

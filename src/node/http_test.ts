import assert from "node:assert/strict";
import { errorOf, harness } from "./_fake_service_test_util.ts";
import {
  createNodeApp,
  KEY_BYTES_MAX,
  LIST_LIMIT_DEFAULT,
  LIST_LIMIT_MAX,
  VALUE_BYTES_MAX,
} from "./http.ts";

const utf8 = new TextEncoder();

function bytesOf(text: string): Uint8Array {
  return utf8.encode(text);
}

Deno.test("limits are the named constants of docs/api.md", () => {
  assert.equal(KEY_BYTES_MAX, 1024);
  assert.equal(VALUE_BYTES_MAX, 1_048_576);
  assert.equal(LIST_LIMIT_MAX, 1000);
  assert.equal(LIST_LIMIT_DEFAULT, 100);
});

Deno.test("createNodeApp refuses out-of-range options", () => {
  const { service } = harness();
  assert.throws(() => createNodeApp({ service, keyBytesMax: 0 }), RangeError);
  assert.throws(() => createNodeApp({ service, valueBytesMax: 1.5 }), RangeError);
  assert.throws(() => createNodeApp({ service, listLimitMax: -1 }), RangeError);
  assert.throws(() => createNodeApp({ service, forwardTimeoutMs: NaN }), RangeError);
  assert.throws(() => createNodeApp({ service, secret: "" }), RangeError);
});

// ---- GET /v1/kv/{key}

Deno.test("GET key: 200 with the raw value, octet-stream, etag and x-koi-leader", async () => {
  const { app, service } = harness();
  const rev = service.seed("k", new Uint8Array([0, 255, 7]));
  const response = await app.request("/v1/kv/k");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/octet-stream");
  assert.equal(response.headers.get("etag"), `"${rev}"`);
  assert.equal(response.headers.get("x-koi-leader"), "n1");
  assert.deepEqual(new Uint8Array(await response.arrayBuffer()), new Uint8Array([0, 255, 7]));
  assert.deepEqual(service.calls, [{ op: "get", key: bytesOf("k"), stale: false }]);
});

Deno.test("GET key: 404 not_found when absent", async () => {
  const { app } = harness();
  const response = await app.request("/v1/kv/missing");
  assert.equal(response.status, 404);
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.equal((await errorOf(response)).code, "not_found");
});

Deno.test("GET key: HEAD answers the headers without the body", async () => {
  const { app, service } = harness();
  service.seed("k", "value");
  const response = await app.request("/v1/kv/k", { method: "HEAD" });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("etag"), '"1"');
  assert.equal(response.body, null);
});

Deno.test("GET key: consistency=stale is served by a follower, never forwarded", async () => {
  const { app, service, forwarded } = harness({ leader: "n2" });
  service.seed("k", "v");
  const response = await app.request("/v1/kv/k?consistency=stale");
  assert.equal(response.status, 200);
  assert.equal(await response.text(), "v");
  assert.equal(forwarded.length, 0);
  assert.deepEqual(service.calls, [{ op: "get", key: bytesOf("k"), stale: true }]);
  assert.equal(response.headers.get("x-koi-leader"), "n2");
});

Deno.test("GET key: consistency=linearizable is the default", async () => {
  const { app, service } = harness();
  service.seed("k", "v");
  assert.equal((await app.request("/v1/kv/k?consistency=linearizable")).status, 200);
  assert.deepEqual(service.calls, [{ op: "get", key: bytesOf("k"), stale: false }]);
});

Deno.test("GET key: any other consistency is 400 bad_request", async () => {
  const { app, service } = harness();
  const response = await app.request("/v1/kv/k?consistency=eventual");
  assert.equal(response.status, 400);
  const error = await errorOf(response);
  assert.equal(error.code, "bad_request");
  assert.match(error.message, /consistency/);
  assert.equal(service.calls.length, 0);
});

// ---- keys

Deno.test("keys are percent-decoded UTF-8, '/' and '%' included", async () => {
  const { app, service } = harness();
  const key = "dir/naïve %2F 😀?#";
  service.seed(key, "v");
  const response = await app.request(`/v1/kv/${encodeURIComponent(key)}`);
  assert.equal(response.status, 200);
  assert.deepEqual(service.calls[0], { op: "get", key: bytesOf(key), stale: false });
});

Deno.test("keys: a malformed percent escape is 400 bad_request", async () => {
  const { app, service } = harness();
  for (const path of ["/v1/kv/%zz", "/v1/kv/a%", "/v1/kv/%ED%A0%80", "/v1/kv/%FF"]) {
    const response = await app.request(path);
    assert.equal(response.status, 400, path);
    assert.equal((await errorOf(response)).code, "bad_request");
  }
  assert.equal(service.calls.length, 0);
});

Deno.test("keys: an empty key is 400 bad_request", async () => {
  const { app } = harness();
  for (const method of ["GET", "PUT", "DELETE"]) {
    const response = await app.request("/v1/kv/", { method });
    assert.equal(response.status, 400, method);
    assert.match((await errorOf(response)).message, /1 to 1024 bytes/);
  }
});

Deno.test("keys: 1024 UTF-8 bytes pass, 1025 are 400 naming the limit", async () => {
  const { app } = harness();
  const ok = await app.request(`/v1/kv/${"é".repeat(512)}`, { method: "PUT", body: "v" });
  assert.equal(ok.status, 200);
  const response = await app.request(`/v1/kv/${"é".repeat(512)}x`, { method: "PUT", body: "v" });
  assert.equal(response.status, 400);
  const error = await errorOf(response);
  assert.equal(error.code, "bad_request");
  assert.match(error.message, /1024/);
  assert.match(error.message, /1025/);
});

Deno.test("keys: keyBytesMax is configurable", async () => {
  const { app } = harness({}, { keyBytesMax: 3 });
  assert.equal((await app.request("/v1/kv/abc", { method: "PUT" })).status, 200);
  assert.equal((await app.request("/v1/kv/abcd", { method: "PUT" })).status, 400);
});

Deno.test("keys: a key of another cluster is 421 wrong_shard with x-koi-epoch", async () => {
  const { app, service } = harness({ owns: (key) => key[0] !== 0x7a, epoch: 12 });
  for (const method of ["GET", "PUT", "DELETE"]) {
    const response = await app.request("/v1/kv/zebra", {
      method,
      body: method === "PUT" ? "v" : null,
    });
    assert.equal(response.status, 421, method);
    assert.equal(response.headers.get("x-koi-epoch"), "12");
    assert.equal(response.headers.get("x-koi-leader"), "n1");
    assert.equal(response.headers.get("x-koi-owner"), "elsewhere", "names the owning cluster");
    const error = await errorOf(response);
    assert.equal(error.code, "wrong_shard");
    assert.match(error.message, /belongs to cluster elsewhere/);
  }
  assert.equal(service.calls.length, 0);
});

// ---- PUT /v1/kv/{key}

Deno.test("PUT: 200 {rev} and one set command", async () => {
  const { app, service } = harness();
  const response = await app.request("/v1/kv/k", { method: "PUT", body: new Uint8Array([1, 2]) });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.deepEqual(await response.json(), { rev: 1 });
  assert.deepEqual(service.calls, [{
    op: "write",
    command: {
      checks: [],
      mutations: [{ type: "set", key: bytesOf("k"), value: new Uint8Array([1, 2]) }],
    },
  }]);
  const read = await app.request("/v1/kv/k");
  assert.deepEqual(new Uint8Array(await read.arrayBuffer()), new Uint8Array([1, 2]));
});

Deno.test("PUT: a missing body is the empty value", async () => {
  const { app, service } = harness();
  assert.equal((await app.request("/v1/kv/k", { method: "PUT" })).status, 200);
  const call = service.calls[0];
  assert(call.op === "write" && call.command.mutations[0].type === "set");
  assert.deepEqual(call.command.mutations[0].value, new Uint8Array(0));
});

Deno.test("PUT: if-match with the current rev applies as a check", async () => {
  const { app, service } = harness();
  const rev = service.seed("k", "old");
  const response = await app.request("/v1/kv/k", {
    method: "PUT",
    body: "new",
    headers: { "if-match": `"${rev}"` },
  });
  assert.equal(response.status, 200);
  const call = service.calls[0];
  assert(call.op === "write");
  assert.deepEqual(call.command.checks, [{ key: bytesOf("k"), rev }]);
});

Deno.test("PUT: if-match with another rev is 412 with the current rev as etag", async () => {
  const { app, service } = harness();
  service.seed("other", "x");
  const rev = service.seed("k", "old");
  const response = await app.request("/v1/kv/k", {
    method: "PUT",
    body: "new",
    headers: { "if-match": `"${rev + 5}"` },
  });
  assert.equal(response.status, 412);
  assert.equal(response.headers.get("etag"), `"${rev}"`);
  const error = await errorOf(response);
  assert.equal(error.code, "precondition_failed");
  assert.match(error.message, new RegExp(`has rev ${rev}`));
});

Deno.test("PUT: if-match on an absent key is 412 without etag", async () => {
  const { app } = harness();
  const response = await app.request("/v1/kv/k", {
    method: "PUT",
    headers: { "if-match": '"3"' },
  });
  assert.equal(response.status, 412);
  assert.equal(response.headers.get("etag"), null);
  assert.match((await errorOf(response)).message, /does not exist/);
});

Deno.test("PUT: if-none-match * creates an absent key", async () => {
  const { app, service } = harness();
  const response = await app.request("/v1/kv/k", {
    method: "PUT",
    body: "v",
    headers: { "if-none-match": "*" },
  });
  assert.equal(response.status, 200);
  const call = service.calls[0];
  assert(call.op === "write");
  assert.deepEqual(call.command.checks, [{ key: bytesOf("k"), rev: 0 }]);
});

Deno.test("PUT: if-none-match * on an existing key is 412 with its etag", async () => {
  const { app, service } = harness();
  const rev = service.seed("k", "v");
  const response = await app.request("/v1/kv/k", {
    method: "PUT",
    body: "v2",
    headers: { "if-none-match": "*" },
  });
  assert.equal(response.status, 412);
  assert.equal(response.headers.get("etag"), `"${rev}"`);
  assert.equal((await errorOf(response)).code, "precondition_failed");
});

Deno.test("PUT: if-match and if-none-match together are 400", async () => {
  const { app, service } = harness();
  const response = await app.request("/v1/kv/k", {
    method: "PUT",
    headers: { "if-match": '"1"', "if-none-match": "*" },
  });
  assert.equal(response.status, 400);
  assert.equal((await errorOf(response)).code, "bad_request");
  assert.equal(service.calls.length, 0);
});

Deno.test("PUT: malformed conditional headers are 400", async () => {
  const { app, service } = harness();
  const cases: Record<string, string>[] = [
    { "if-match": "1" },
    { "if-match": '"0"' },
    { "if-match": 'W/"1"' },
    { "if-match": '"abc"' },
    { "if-match": '"1", "2"' },
    { "if-match": "*" },
    { "if-match": '"1234567890123456"' },
    { "if-none-match": '"1"' },
    { "if-none-match": "" },
  ];
  for (const headers of cases) {
    const response = await app.request("/v1/kv/k", { method: "PUT", headers });
    assert.equal(response.status, 400, JSON.stringify(headers));
    assert.equal((await errorOf(response)).code, "bad_request");
  }
  assert.equal(service.calls.length, 0);
});

Deno.test("PUT: x-request-id becomes the command's request id", async () => {
  const { app, service } = harness();
  const headers = { "x-request-id": "client-7:42" };
  const first = await app.request("/v1/kv/k", { method: "PUT", body: "v", headers });
  const retry = await app.request("/v1/kv/k", { method: "PUT", body: "v", headers });
  assert.deepEqual(await first.json(), { rev: 1 });
  assert.deepEqual(await retry.json(), { rev: 1 }); // the fake answers a retry like the first
  const call = service.calls[0];
  assert(call.op === "write");
  assert.equal(call.command.requestId, "client-7:42");
});

Deno.test("PUT: a malformed x-request-id is 400", async () => {
  const { app, service } = harness();
  for (
    const id of ["", "abc", ":1", "c:", "c:x", "c:-1", `${"c".repeat(129)}:1`, "c:1234567890123456"]
  ) {
    const response = await app.request("/v1/kv/k", {
      method: "PUT",
      headers: { "x-request-id": id },
    });
    assert.equal(response.status, 400, id);
    assert.match((await errorOf(response)).message, /x-request-id/);
  }
  const ok = await app.request("/v1/kv/k", {
    method: "PUT",
    headers: { "x-request-id": `${"c".repeat(128)}:1` },
  });
  assert.equal(ok.status, 200);
  assert.equal(service.calls.length, 1);
});

Deno.test("PUT: stale_request is 409 stale_request", async () => {
  const { app } = harness();
  await app.request("/v1/kv/k", { method: "PUT", headers: { "x-request-id": "c:5" } });
  const response = await app.request("/v1/kv/k", {
    method: "PUT",
    headers: { "x-request-id": "c:4" },
  });
  assert.equal(response.status, 409);
  const error = await errorOf(response);
  assert.equal(error.code, "stale_request");
  assert.match(error.message, /seq is 5/);
});

Deno.test("PUT: storage_full is 507 insufficient_storage", async () => {
  const { app } = harness({ bytesMax: 10 });
  const response = await app.request("/v1/kv/k", { method: "PUT", body: "0123456789" });
  assert.equal(response.status, 507);
  const error = await errorOf(response);
  assert.equal(error.code, "insufficient_storage");
  assert.match(error.message, /10 bytes/);
});

Deno.test("PUT: a value of exactly valueBytesMax passes", async () => {
  const { app } = harness({}, { valueBytesMax: 16 });
  const response = await app.request("/v1/kv/k", { method: "PUT", body: new Uint8Array(16) });
  assert.equal(response.status, 200);
});

Deno.test("PUT: a content-length above valueBytesMax is 413 before the body is read", async () => {
  const { app, service } = harness({}, { valueBytesMax: 16 });
  let pulled = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled = true;
      controller.enqueue(new Uint8Array(17));
      controller.close();
    },
  }, { highWaterMark: 0 }); // pulled only when read
  const response = await app.request("/v1/kv/k", {
    method: "PUT",
    body,
    headers: { "content-length": "17" },
  });
  assert.equal(response.status, 413);
  const error = await errorOf(response);
  assert.equal(error.code, "too_large");
  assert.match(error.message, /16/);
  assert.equal(pulled, false);
  assert.equal(service.calls.length, 0);
});

Deno.test("DELETE: a declared body over the limit is 413 and deletes nothing", async () => {
  const { app, service } = harness({}, { valueBytesMax: 16 });
  service.seed("k", "v");
  const response = await app.request("/v1/kv/k", {
    method: "DELETE",
    body: new Uint8Array(3),
    headers: { "content-length": "2000000" },
  });
  assert.equal(response.status, 413);
  assert.equal((await errorOf(response)).code, "too_large");
  assert.equal(service.calls.filter((c) => c.op === "write").length, 0);
});

Deno.test("PUT: an endless streamed body is cut at valueBytesMax with 413", async () => {
  const { app, service } = harness({}, { valueBytesMax: 1000 });
  let sent = 0;
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      sent += 100;
      controller.enqueue(new Uint8Array(100)); // never closes
    },
    cancel() {
      cancelled = true;
    },
  });
  const response = await app.request("/v1/kv/k", { method: "PUT", body });
  assert.equal(response.status, 413);
  assert.equal((await errorOf(response)).code, "too_large");
  assert(sent <= 1100 + 100, `read ${sent} bytes`);
  assert(cancelled);
  assert.equal(service.calls.length, 0);
});

Deno.test("PUT: a content-length that understates the body is no way around", async () => {
  const { app } = harness({}, { valueBytesMax: 8 });
  const response = await app.request("/v1/kv/k", {
    method: "PUT",
    body: new Uint8Array(100),
    headers: { "content-length": "4" },
  });
  assert.equal(response.status, 413);
});

Deno.test("PUT: a malformed content-length is 400", async () => {
  const { app } = harness();
  const response = await app.request("/v1/kv/k", {
    method: "PUT",
    body: "v",
    headers: { "content-length": "lots" },
  });
  assert.equal(response.status, 400);
});

Deno.test("PUT: a body that breaks off is 400, not 500", async () => {
  const { app, logged } = harness();
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.error(new Error("connection reset"));
    },
  });
  const response = await app.request("/v1/kv/k", { method: "PUT", body });
  assert.equal(response.status, 400);
  assert.match((await errorOf(response)).message, /connection reset/);
  assert.equal(logged.length, 0);
});

// ---- DELETE /v1/kv/{key}

Deno.test("DELETE: 200 {rev, deleted: true} for an existing key", async () => {
  const { app, service } = harness();
  service.seed("k", "v");
  const response = await app.request("/v1/kv/k", { method: "DELETE" });
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { rev: 2, deleted: true });
  assert.deepEqual(service.calls, [{
    op: "write",
    command: { checks: [], mutations: [{ type: "delete", key: bytesOf("k") }] },
  }]);
  assert.equal((await app.request("/v1/kv/k")).status, 404);
});

Deno.test("DELETE: 200 {rev, deleted: false} for an absent key", async () => {
  const { app } = harness();
  const response = await app.request("/v1/kv/k", { method: "DELETE" });
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { rev: 1, deleted: false });
});

Deno.test("DELETE: conditional headers and request id as for PUT", async () => {
  const { app, service } = harness();
  const rev = service.seed("k", "v");
  const stale = await app.request("/v1/kv/k", {
    method: "DELETE",
    headers: { "if-match": `"${rev + 1}"` },
  });
  assert.equal(stale.status, 412);
  assert.equal(stale.headers.get("etag"), `"${rev}"`);
  const exists = await app.request("/v1/kv/k", {
    method: "DELETE",
    headers: { "if-none-match": "*" },
  });
  assert.equal(exists.status, 412);
  const bad = await app.request("/v1/kv/k", { method: "DELETE", headers: { "if-match": "x" } });
  assert.equal(bad.status, 400);
  const ok = await app.request("/v1/kv/k", {
    method: "DELETE",
    headers: { "if-match": `"${rev}"`, "x-request-id": "c:1" },
  });
  assert.equal(ok.status, 200);
  const call = service.calls.at(-1)!;
  assert(call.op === "write");
  assert.equal(call.command.requestId, "c:1");
  assert.deepEqual(call.command.checks, [{ key: bytesOf("k"), rev }]);
});

// ---- GET /v1/kv (list)

Deno.test("list: prefix, after and limit select a sorted page with more", async () => {
  const { app, service } = harness();
  for (const key of ["b/3", "a", "b/1", "b/2", "c"]) service.seed(key, "v");
  const response = await app.request("/v1/kv?prefix=b%2F&after=b%2F1&limit=1");
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { items: [{ key: "b/2", rev: 4 }], more: true });
  assert.deepEqual(service.calls, [{
    op: "list",
    options: { prefix: bytesOf("b/"), after: bytesOf("b/1"), limit: 1, stale: false },
  }]);
});

Deno.test("list: defaults are prefix '', no after, limit 100", async () => {
  const { app, service } = harness();
  service.seed("é", "v");
  const response = await app.request("/v1/kv");
  assert.deepEqual(await response.json(), { items: [{ key: "é", rev: 1 }], more: false });
  assert.deepEqual(service.calls, [{
    op: "list",
    options: { prefix: new Uint8Array(0), limit: 100, stale: false },
  }]);
});

Deno.test("list: the default limit is capped by listLimitMax", async () => {
  const { app, service } = harness({}, { listLimitMax: 10 });
  await app.request("/v1/kv");
  const call = service.calls[0];
  assert(call.op === "list");
  assert.equal(call.options.limit, 10);
  assert.equal((await app.request("/v1/kv?limit=10")).status, 200);
  assert.equal((await app.request("/v1/kv?limit=11")).status, 400);
});

Deno.test("list: a bad limit is 400", async () => {
  const { app, service } = harness();
  for (const limit of ["0", "1001", "abc", "-1", "1.5", "", "1e3", "99999999999999999999"]) {
    const response = await app.request(`/v1/kv?limit=${limit}`);
    assert.equal(response.status, 400, limit);
    assert.match((await errorOf(response)).message, /1 to 1000/);
  }
  assert.equal((await app.request("/v1/kv?limit=1000")).status, 200);
  assert.equal(service.calls.length, 1);
});

Deno.test("list: bad query strings are 400", async () => {
  const { app, service } = harness();
  const queries = [
    "prefix=%zz",
    "prefix=a&prefix=b",
    "after=%E0%A4%A",
    `prefix=${"x".repeat(1025)}`,
    "consistency=strong",
  ];
  for (const query of queries) {
    const response = await app.request(`/v1/kv?${query}`);
    assert.equal(response.status, 400, query);
    assert.equal((await errorOf(response)).code, "bad_request");
  }
  assert.equal(service.calls.length, 0);
});

Deno.test("list: keys that are not UTF-8 decode lossily", async () => {
  const { app, service } = harness();
  service.seed(new Uint8Array([0x61, 0xff]), "v");
  const response = await app.request("/v1/kv");
  assert.deepEqual(await response.json(), {
    items: [{ key: "a\ufffd", rev: 1, key_b64: "Yf8" }], // the exact bytes too
    more: false,
  });
});

Deno.test("list: consistency=stale is served locally by a follower", async () => {
  const { app, service, forwarded } = harness({ leader: "n2" });
  service.seed("a", "v");
  const response = await app.request("/v1/kv?consistency=stale");
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { items: [{ key: "a", rev: 1 }], more: false });
  assert.equal(forwarded.length, 0);
});

import assert from "node:assert/strict";
import { NotLeaderError, ProposalDroppedError } from "../raft/mod.ts";
import { errorOf, harness } from "./_fake_service_test_util.ts";
import {
  BadRequestError,
  NoLeaderError,
  OverloadedError,
  RequestTimeoutError,
  TooLargeError,
  UnauthorizedError,
  WrongShardError,
} from "./errors.ts";

/** Makes the next write throw `error`; answers the PUT's response. */
async function putFailingWith(error: Error) {
  const h = harness();
  h.service.failures.set("write", error);
  const response = await h.app.request("/v1/kv/k", { method: "PUT", body: "v" });
  return { ...h, response, error: await errorOf(response) };
}

Deno.test("errors: NoLeaderError is 503 no_leader with its retry-after", async () => {
  const { response, error } = await putFailingWith(new NoLeaderError("No leader", 3));
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "3");
  assert.equal(error.code, "no_leader");
  assert.equal(error.message, "No leader");
});

Deno.test("errors: RequestTimeoutError is 503 no_leader with retry-after 1", async () => {
  const { response, error } = await putFailingWith(new RequestTimeoutError("Timed out"));
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "1");
  assert.equal(error.code, "no_leader");
});

Deno.test("errors: OverloadedError is 503 overloaded with its retry-after", async () => {
  const { response, error } = await putFailingWith(new OverloadedError("Queue full", 2));
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "2");
  assert.equal(error.code, "overloaded");
});

Deno.test("errors: ProposalDroppedError is 503 overloaded with retry-after", async () => {
  const { response, error } = await putFailingWith(new ProposalDroppedError("Transferring"));
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "1");
  assert.equal(error.code, "overloaded");
});

Deno.test("errors: a NotLeaderError from a stale read is 503 no_leader", async () => {
  const { app, service } = harness({ leader: "n2" });
  service.failures.set("get", new NotLeaderError("n1", "n2"));
  const response = await app.request("/v1/kv/k?consistency=stale");
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "1");
  assert.equal((await errorOf(response)).code, "no_leader");
});

Deno.test("errors: typed errors thrown by the service map to their statuses", async () => {
  const cases: [Error, number, string, Record<string, string>][] = [
    [new BadRequestError("bad"), 400, "bad_request", {}],
    [new TooLargeError("big"), 413, "too_large", {}],
    [new WrongShardError("elsewhere", 9), 421, "wrong_shard", { "x-koi-epoch": "9" }],
    [new UnauthorizedError("who"), 401, "unauthorized", {}],
  ];
  for (const [thrown, status, code, headers] of cases) {
    const { response, error } = await putFailingWith(thrown);
    assert.equal(response.status, status, thrown.name);
    assert.equal(error.code, code);
    assert.equal(error.message, thrown.message);
    for (const [name, value] of Object.entries(headers)) {
      assert.equal(response.headers.get(name), value);
    }
  }
});

Deno.test("errors: an unexpected error is 500 internal and logged", async () => {
  const boom = new Error("disk on fire");
  const { response, error, logged } = await putFailingWith(boom);
  assert.equal(response.status, 500);
  assert.equal(error.code, "internal");
  assert.doesNotMatch(error.message, /disk on fire/); // internals stay in the log
  assert.deepEqual(logged, [boom]);
  assert.equal(response.headers.get("x-koi-leader"), "n1");
});

Deno.test("errors: an unknown route is 404 not_found JSON", async () => {
  const { app } = harness();
  for (const path of ["/", "/v1", "/v1/kvx", "/v2/kv/k", "/v1/status/", "/v1/members/a/b"]) {
    const response = await app.request(path);
    assert.equal(response.status, 404, path);
    assert.equal(response.headers.get("content-type"), "application/json");
    assert.equal((await errorOf(response)).code, "not_found");
    assert.equal(response.headers.get("x-koi-leader"), "n1");
  }
});

Deno.test("errors: a wrong method is 405 with allow", async () => {
  const { app, service } = harness();
  const cases: [string, string, string][] = [
    ["POST", "/v1/kv/k", "GET, PUT, DELETE, HEAD, OPTIONS"],
    ["PATCH", "/v1/kv/k", "GET, PUT, DELETE, HEAD, OPTIONS"],
    ["POST", "/v1/kv", "GET, PUT, DELETE, HEAD, OPTIONS"],
    ["POST", "/v1/status", "GET, HEAD, OPTIONS"],
    ["GET", "/v1/members", "POST, OPTIONS"],
    ["GET", "/v1/members/n2", "DELETE, OPTIONS"],
    ["GET", "/v1/leader", "POST, OPTIONS"],
    ["GET", "/v1/snapshot", "POST, OPTIONS"],
    ["POST", "/metrics", "GET, HEAD, OPTIONS"],
    ["DELETE", "/healthz", "GET, HEAD, OPTIONS"],
  ];
  for (const [method, path, allow] of cases) {
    const response = await app.request(path, { method });
    assert.equal(response.status, 405, `${method} ${path}`);
    assert.equal(response.headers.get("allow"), allow, `${method} ${path}`);
    assert.equal((await errorOf(response)).code, "method_not_allowed");
  }
  assert.equal(service.calls.length, 0);
});

Deno.test("errors: OPTIONS answers 204 with allow", async () => {
  const { app } = harness();
  const response = await app.request("/v1/kv/k", { method: "OPTIONS" });
  assert.equal(response.status, 204);
  assert.equal(response.headers.get("allow"), "GET, PUT, DELETE, HEAD, OPTIONS");
});

Deno.test("x-koi-leader is on every answer when known, absent when not", async () => {
  const known = harness({ leader: "n2" });
  for (const path of ["/healthz", "/v1/kv/k?consistency=stale", "/nowhere", "/v1/status"]) {
    const response = await known.app.request(path);
    assert.equal(response.headers.get("x-koi-leader"), "n2", path);
  }
  const unknown = harness({ leader: "" });
  for (const path of ["/healthz", "/v1/kv/k", "/nowhere"]) {
    const response = await unknown.app.request(path);
    assert.equal(response.headers.get("x-koi-leader"), null, path);
  }
});

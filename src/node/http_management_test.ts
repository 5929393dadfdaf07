import assert from "node:assert/strict";
import { errorOf, harness } from "./_fake_service_test_util.ts";
import type { NodeStatus } from "./service.ts";

const MEMBER = { id: "n4", raft: "10.0.0.4:7104", http: "node-4.local:7204", voter: true };

function post(body: unknown, headers: Record<string, string> = {}): RequestInit {
  return {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers,
  };
}

// ---- auth

const MANAGEMENT_CALLS: [string, RequestInit][] = [
  ["/v1/status", {}],
  ["/v1/members", post(MEMBER)],
  ["/v1/members/n2", { method: "DELETE" }],
  ["/v1/leader", post({ to: "n2" })],
  ["/v1/snapshot", { method: "POST" }],
  ["/metrics", {}],
];

Deno.test("auth: every management call without the token is 401 unauthorized", async () => {
  const { app, service } = harness({}, { secret: "s3cret" });
  for (const [path, init] of MANAGEMENT_CALLS) {
    const response = await app.request(path, init);
    assert.equal(response.status, 401, path);
    assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="koi"');
    assert.equal(response.headers.get("x-koi-leader"), "n1");
    assert.equal((await errorOf(response)).code, "unauthorized");
  }
  assert.equal(service.calls.length, 0);
});

Deno.test("auth: a wrong or malformed token is 401 unauthorized", async () => {
  const { app, service } = harness({}, { secret: "s3cret" });
  const tokens = ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret", "Bearer", "Bearer  "];
  for (const authorization of tokens) {
    const response = await app.request("/v1/snapshot", {
      method: "POST",
      headers: { authorization },
    });
    assert.equal(response.status, 401, authorization);
    assert.match((await errorOf(response)).message, /authorization/);
  }
  assert.equal(service.calls.length, 0);
});

Deno.test("auth: the right token opens every management call", async () => {
  const { app } = harness({}, { secret: "s3cret" });
  for (const [path, init] of MANAGEMENT_CALLS) {
    const headers = { authorization: "bearer s3cret" }; // the scheme is case-insensitive
    const response = await app.request(path, { ...init, headers });
    assert.equal(response.status, 200, path);
  }
});

Deno.test("auth: /healthz and the data plane need no token", async () => {
  const { app } = harness({}, { secret: "s3cret" });
  assert.equal((await app.request("/healthz")).status, 200);
  assert.equal((await app.request("/v1/kv/k", { method: "PUT", body: "v" })).status, 200);
  assert.equal((await app.request("/v1/kv/k")).status, 200);
  assert.equal((await app.request("/v1/kv")).status, 200);
  assert.equal((await app.request("/v1/kv/k", { method: "DELETE" })).status, 200);
});

Deno.test("auth: without a configured secret management is open", async () => {
  const { app } = harness();
  for (const [path, init] of MANAGEMENT_CALLS) {
    assert.equal((await app.request(path, init)).status, 200, path);
  }
});

// ---- GET /v1/status

Deno.test("status: exactly the fields of docs/api.md", async () => {
  const { app, service } = harness();
  const base = service.status();
  const member = { id: "n1", voter: true, match: 4, next: 5 }; // `next` is not in docs/api.md
  const status = { ...base, internal: "hidden", members: [member] };
  service.status = (): NodeStatus => status;
  const response = await app.request("/v1/status");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/json");
  const body = await response.json();
  assert.deepEqual(Object.keys(body), [
    "node",
    "cluster",
    "role",
    "term",
    "leader",
    "commit",
    "applied",
    "snapshot",
    "epoch",
    "keys",
    "bytes",
    "members",
  ]);
  assert.deepEqual(body.members, [{ id: "n1", voter: true, match: 4 }]);
  assert.equal(body.node, "n1");
  assert.equal(body.epoch, 7);
});

// ---- POST /v1/members

Deno.test("members: POST adds the member and answers {ok: true}", async () => {
  const { app, service } = harness();
  const response = await app.request("/v1/members", post(MEMBER));
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { ok: true });
  assert.deepEqual(service.calls, [{ op: "addMember", member: MEMBER }]);
});

Deno.test("members: POST accepts bracketed IPv6 addresses", async () => {
  const { app } = harness();
  const member = { ...MEMBER, raft: "[::1]:7104", voter: false };
  assert.equal((await app.request("/v1/members", post(member))).status, 200);
});

Deno.test("members: a malformed POST body is 400 bad_request", async () => {
  const { app, service } = harness();
  const bodies: unknown[] = [
    "",
    "{",
    "[]",
    "null",
    '"n4"',
    { ...MEMBER, id: undefined },
    { ...MEMBER, id: "-n4" },
    { ...MEMBER, id: "n".repeat(65) },
    { ...MEMBER, id: 4 },
    { ...MEMBER, raft: "10.0.0.4" },
    { ...MEMBER, raft: "10.0.0.4:0" },
    { ...MEMBER, raft: "10.0.0.4:65536" },
    { ...MEMBER, http: "::1:7204" },
    { ...MEMBER, http: 7204 },
    { ...MEMBER, voter: "yes" },
    { ...MEMBER, extra: 1 },
    JSON.stringify(MEMBER).replace("{", '{"__proto__": {"voter": true}, '),
  ];
  for (const body of bodies) {
    const response = await app.request("/v1/members", post(body));
    assert.equal(response.status, 400, JSON.stringify(body));
    assert.equal((await errorOf(response)).code, "bad_request");
  }
  const invalidUtf8 = await app.request("/v1/members", {
    method: "POST",
    body: new Uint8Array([0x7b, 0xff, 0x7d]),
  });
  assert.equal(invalidUtf8.status, 400);
  assert.equal(service.calls.length, 0);
});

Deno.test("members: a POST body above 64 KiB is 413 too_large", async () => {
  const { app, service } = harness();
  const response = await app.request("/v1/members", post(" ".repeat(65 * 1024)));
  assert.equal(response.status, 413);
  assert.equal((await errorOf(response)).code, "too_large");
  assert.equal(service.calls.length, 0);
});

Deno.test("members: MembershipChangeError is 409 conflict", async () => {
  const { MembershipChangeError } = await import("../raft/mod.ts");
  const { app, service } = harness();
  service.failures.set(
    "addMember",
    new MembershipChangeError("Cannot add n4: a change is pending"),
  );
  const response = await app.request("/v1/members", post(MEMBER));
  assert.equal(response.status, 409);
  const error = await errorOf(response);
  assert.equal(error.code, "conflict");
  assert.match(error.message, /pending/);
});

// ---- DELETE /v1/members/{id}

Deno.test("members: DELETE removes the member and answers {ok: true}", async () => {
  const { app, service } = harness();
  const response = await app.request("/v1/members/n.2_x-y", { method: "DELETE" });
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { ok: true });
  assert.deepEqual(service.calls, [{ op: "removeMember", id: "n.2_x-y" }]);
});

Deno.test("members: DELETE with a malformed id is 400", async () => {
  const { app, service } = harness();
  for (const id of ["-x", "%zz", "a%20b", "n".repeat(65)]) {
    const response = await app.request(`/v1/members/${id}`, { method: "DELETE" });
    assert.equal(response.status, 400, id);
    assert.equal((await errorOf(response)).code, "bad_request");
  }
  assert.equal(service.calls.length, 0);
});

// ---- POST /v1/leader

Deno.test("leader: POST transfers leadership and answers {leader: to}", async () => {
  const { app, service } = harness();
  const response = await app.request("/v1/leader", post({ to: "n2" }));
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { leader: "n2" });
  assert.deepEqual(service.calls, [{ op: "transferLeader", to: "n2" }]);
  assert.equal(response.headers.get("x-koi-leader"), "n2");
});

Deno.test("leader: a malformed POST body is 400", async () => {
  const { app, service } = harness();
  for (const body of ["", "{}", '{"to": 1}', '{"to": "-"}', '{"to": "n2", "from": "n1"}']) {
    const response = await app.request("/v1/leader", post(body));
    assert.equal(response.status, 400, body);
  }
  assert.equal(service.calls.length, 0);
});

Deno.test("leader: TransferLeaderError is 409 conflict", async () => {
  const { TransferLeaderError } = await import("../raft/mod.ts");
  const { app, service } = harness();
  service.failures.set("transferLeader", new TransferLeaderError("Cannot transfer: n9 unknown"));
  const response = await app.request("/v1/leader", post({ to: "n9" }));
  assert.equal(response.status, 409);
  assert.equal((await errorOf(response)).code, "conflict");
});

// ---- POST /v1/snapshot, GET /metrics, GET /healthz

Deno.test("snapshot: POST answers {index}", async () => {
  const { app, service } = harness();
  service.seed("a", "1");
  service.seed("b", "2");
  const response = await app.request("/v1/snapshot", { method: "POST" });
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { index: 2 });
});

Deno.test("metrics: the Prometheus text format", async () => {
  const { app, service } = harness();
  const response = await app.request("/metrics");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assert.equal(await response.text(), service.metricsText);
});

Deno.test("healthz: 200 {ok: true} once loaded", async () => {
  const { app } = harness();
  const response = await app.request("/healthz");
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { ok: true, leader: "n1" });
});

Deno.test("healthz: 503 with retry-after until loaded", async () => {
  const { app, service } = harness();
  service.isLoaded = false;
  const response = await app.request("/healthz");
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "1");
  assert.equal((await errorOf(response)).code, "loading");
});

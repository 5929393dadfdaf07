/** What a failed call of the routing client answers Deno's client: 5xx only while a retry helps. */
import assert from "node:assert/strict";
import { KoiError, KoiHttpError, TimeoutError, UnavailableError } from "../client/mod.ts";
import { KvConnectError } from "./_errors.ts";
import { kvConnectFailure } from "./_failure.ts";

const status = (error: unknown, repeatable?: boolean) => {
  const out = kvConnectFailure(error, { repeatable });
  assert.ok(out instanceof KvConnectError, String(out));
  return out.status;
};
const http = (s: number, code = "x", options = {}) =>
  new KoiHttpError(code, `node said ${s}`, { status: s, ...options });
const retry = { attempts: 3, timeoutMs: 10 };

Deno.test("failure: waiting helps → 503; a refusal → its own 4xx with the message", () => {
  assert.equal(status(http(503, "no_leader")), 503);
  assert.equal(status(http(421, "wrong_shard")), 503);
  assert.equal(status(new TimeoutError("slow", retry)), 503);
  assert.equal(status(new UnavailableError("down", retry)), 503);
  assert.equal(status(new KoiError("closed", "closed")), 503);
  assert.equal(status(http(400, "bad_request")), 400);
  assert.equal(status(http(413, "too_large")), 413);
  assert.equal(status(http(500, "internal")), 500);
  assert.equal(status(http(507, "insufficient_storage")), 400, "a full cluster: no retry helps");
  const notServed = kvConnectFailure(http(404, "not_found")) as KvConnectError;
  assert.equal(notServed.status, 404);
  assert.match(notServed.message, /serves KV Connect/);
  const refused = kvConnectFailure(http(400, "bad_request")) as KvConnectError;
  assert.equal(refused.message, "node said 400");
});

Deno.test("failure: an answer over the limit is a 400 (it would be again), garbage a 500", () => {
  const big = new KoiError(
    "bad_response",
    "read: node a1 answered 200 with a body over 10 bytes, the most",
  );
  assert.equal(status(big), 400);
  assert.equal(status(new KoiError("bad_response", "not a table")), 500);
});

Deno.test("failure: an unknown outcome is 503 only for a write that may be applied twice", () => {
  const lost = new TimeoutError("no answer", { ...retry, outcomeUnknown: true });
  assert.equal(status(lost, true), 503);
  assert.equal(status(lost, false), 409);
  assert.match((kvConnectFailure(lost) as Error).message, /may or may not have been applied/);
  assert.equal(status(http(503, "no_leader", { outcomeUnknown: true }), false), 409);
});

Deno.test("failure: not the client's error stays what it is (a bug: the endpoint's 500)", () => {
  const bug = new TypeError("oops");
  assert.equal(kvConnectFailure(bug), bug);
  const already = new KvConnectError(400, "no");
  assert.equal(kvConnectFailure(already), already);
});

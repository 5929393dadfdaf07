/**
 * The HTTP server's direct path for key requests answers exactly as the hono app does: the
 * same request sequences against two identical fake nodes, one through the app alone, one
 * as the server runs it (the direct handler, else the app), give the same answers and leave
 * the same state.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { DirectAnswer } from "../http/server.ts";
import { FakeNodeService } from "./_fake_service_test_util.ts";
import { OverloadedError } from "./errors.ts";
import { createNodeApp, createNodeDirect, type HttpOptions } from "./http.ts";

// deno-fmt-ignore
const KEY_PIECES = [
  "a", "b", "Z", "aa", "%2F", "%zz", "%C3%A9", "%ED%A0%80", "%FF", "%2e%2e", "..", "é", "?",
  "#", "&", " ", "x".repeat(40), "/", "",
];
// deno-fmt-ignore
const B64 = ["YQ", "Yg", "WmE", "_w", "_-8", "", "!!", "YQ==", "eHh4eHh4eHh4eHh4eHh4eHh4eA"];
// deno-fmt-ignore
const QUERY_TAILS = [
  "", "&consistency=stale", "&consistency=linearizable", "&consistency=bogus", "&key_b64=YQ",
  "&x=1", "&prefix=a",
];
// deno-fmt-ignore
const HEADER_NAMES = [
  "if-match", "if-none-match", "x-request-id", "content-type", "x-other", "x-koi-forwarded",
  "accept", "If-Match",
];
// deno-fmt-ignore
const HEADER_VALUES = [
  "*", '"1"', '"2"', '"0"', 'W/"1"', "c:1", "c:2", "c:x", ":1", "", " c:3 ", "text/plain",
  '"99999999999999999999"',
];

const targetArb = fc.oneof(
  fc.array(fc.constantFrom(...KEY_PIECES), { maxLength: 3 }).chain((pieces) =>
    fc.constantFrom(...QUERY_TAILS).map((tail) =>
      `/v1/kv/${pieces.join("")}${tail === "" ? "" : "?" + tail.slice(1)}`
    )
  ),
  fc.tuple(fc.constantFrom(...B64), fc.constantFrom(...QUERY_TAILS)).map(([b64, tail]) =>
    `/v1/kv?key_b64=${b64}${tail}`
  ),
  fc.constantFrom("/v1/kv", "/v1/kv?", "/v1/kv?prefix=a", "/v1/kvx/a", "/v1/status"),
);

const requestArb = fc.record({
  /** A failure the service throws at this request's operation (both nodes alike). */
  failure: fc.constantFrom(undefined, undefined, undefined, "overloaded", "bug"),
  method: fc.constantFrom("GET", "GET", "PUT", "PUT", "DELETE", "HEAD"),
  target: targetArb,
  headers: fc.array(
    fc.tuple(fc.constantFrom(...HEADER_NAMES), fc.constantFrom(...HEADER_VALUES)),
    { maxLength: 3 },
  ),
  body: fc.oneof(fc.uint8Array({ maxLength: 80 }), fc.constant(new Uint8Array(0))),
});

interface Seen {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
}

async function seenOf(response: Response, head: boolean): Promise<Seen> {
  const body = head ? new Uint8Array(0) : new Uint8Array(await response.arrayBuffer());
  const headers = Object.fromEntries(response.headers);
  if (!head) headers["content-length"] = String(body.length); // as koi's server writes it
  return { status: response.status, headers, body };
}

function seenOfDirect(answer: DirectAnswer): Seen {
  const body = typeof answer.body === "string"
    ? new TextEncoder().encode(answer.body)
    : answer.body ?? new Uint8Array(0);
  return {
    status: answer.status,
    headers: { ...answer.headers, "content-length": String(body.length) },
    body,
  };
}

function node(leader: string, options: Partial<HttpOptions>) {
  const service = new FakeNodeService({
    leader,
    owns: (key) => key[0] !== 0x62, // keys starting with "b" belong elsewhere: 421
    bytesMax: 400,
  });
  for (const key of ["a", "Z", "aa"]) service.seed(key, "v");
  const logged: string[] = [];
  const all: HttpOptions = {
    ...options,
    service,
    forwardTimeoutMs: 50,
    forward: () => Promise.resolve(Response.json({ forwarded: true })),
    log: (message) => logged.push(message),
  };
  return { service, logged, app: createNodeApp(all), direct: createNodeDirect(all) };
}

Deno.test("property: the direct path answers every key request as the app does", async () => {
  let direct = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom("n1", "n2", ""),
      fc.record({ keyBytesMax: fc.constantFrom(8, 1024), valueBytesMax: fc.constantFrom(16, 64) }),
      fc.array(requestArb, { minLength: 1, maxLength: 8 }),
      async (leader, options, requests) => {
        const viaApp = node(leader, options);
        const viaServer = node(leader, options);
        for (const r of requests) {
          for (const n of [viaApp, viaServer]) {
            n.service.failures.clear();
            const error = r.failure === "overloaded"
              ? new OverloadedError("busy", 2)
              : r.failure === "bug"
              ? new Error("boom")
              : undefined;
            if (error !== undefined) {
              n.service.failures.set(r.method === "GET" ? "get" : "write", error);
            }
          }
          const hasBody = r.method === "PUT" || r.method === "DELETE";
          const headers: [string, string][] = [...r.headers];
          if (hasBody) headers.push(["content-length", String(r.body.length)]);
          // As koi's server builds it: each line appended, the Headers copied into the Request.
          const build = () => {
            const h = new Headers();
            for (const [name, value] of headers) h.append(name, value);
            return new Request(`http://node${r.target}`, {
              method: r.method,
              headers: h,
              ...(hasBody ? { body: r.body } : {}),
            });
          };
          const head = r.method === "HEAD";
          const expected = await seenOf(await viaApp.app.fetch(build()), head);
          const answer = await viaServer.direct({
            method: r.method,
            target: r.target,
            rawHeaders: headers.flat(),
            body: hasBody ? r.body : null,
          });
          if (answer !== undefined) direct++;
          const got = answer === undefined
            ? await seenOf(await viaServer.app.fetch(build()), head)
            : seenOfDirect(answer);
          const label = `${r.method} ${r.target} ${JSON.stringify(headers)} (leader ${leader})`;
          assert.deepEqual(got, expected, label);
        }
        // Reads may be asked twice (a follower's NotLeaderError sends one to the app, which
        // forwards it); writes exactly as often, with the same commands.
        const writes = (s: FakeNodeService) => s.calls.filter((c) => c.op === "write");
        assert.deepEqual(writes(viaServer.service), writes(viaApp.service));
        assert.deepEqual(viaServer.logged, viaApp.logged, "the same internal errors logged");
      },
    ),
    { numRuns: 300 },
  );
  assert.ok(direct > 100, `the direct path answered ${direct} requests`);
});

Deno.test("direct path: what it leaves to the app", () => {
  const { direct } = node("n2", {});
  const ask = (method: string, target: string, rawHeaders: string[] = []) =>
    direct({ method, target, rawHeaders, body: null });
  assert.equal(ask("PUT", "/v1/kv/a"), undefined, "a write on a follower: the app forwards it");
  const leading = node("n1", {}).direct;
  const askLeader = (method: string, target: string, rawHeaders: string[] = []) =>
    leading({ method, target, rawHeaders, body: null });
  assert.equal(askLeader("HEAD", "/v1/kv/a"), undefined);
  assert.equal(askLeader("GET", "/v1/kv?prefix=a"), undefined, "a listing");
  assert.equal(askLeader("GET", "/v1/kv/%2e%2e/status"), undefined, "normalized to another route");
  assert.equal(askLeader("GET", "/v1/status"), undefined);
  assert.equal(askLeader("GET", "/v1/kv/a", ["x-other", "1"]), undefined, "an unusual header");
  assert.equal(askLeader("PUT", "/v1/kv/a", ["x-koi-forwarded", "n2"]), undefined);
  assert.equal(askLeader("GET", "/v1/kv/a", ["If-Match", "bad\rvalue"]), undefined);
  assert.notEqual(askLeader("GET", "/v1/kv/a", ["Host", "x", "If-Match", '"1"']), undefined);
  // Repeated or empty values: the app's copy of them is its own; the direct path stays out.
  assert.equal(askLeader("PUT", "/v1/kv/a", ["if-match", "", "if-match", '"1"']), undefined);
  assert.equal(
    askLeader("PUT", "/v1/kv/a", ["x-request-id", "c:1", "X-Request-Id", "c:2"]),
    undefined,
  );
  assert.equal(askLeader("PUT", "/v1/kv/a", ["x-request-id", "  "]), undefined);
});

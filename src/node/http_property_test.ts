import assert from "node:assert/strict";
import fc from "fast-check";
import { type FakeOptions, harness } from "./_fake_service_test_util.ts";
import type { HttpOptions } from "./http.ts";

// Pieces that hit the parsers' edges: escapes (good, malformed, non-UTF-8), separators,
// dot segments, non-ASCII, and route names.
// deno-fmt-ignore
const PATH_PIECES = [
  "a", "Z", "0", "/", ".", "..", "%", "%2", "%2F", "%2e", "%zz", "%ff", "%C3%A9", "%ED%A0%80",
  "%00", "?", "#", "&", "=", "+", " ", "é", "😀", "\u0000", "\ud800", "~", "v1", "kv", "status",
  "members", "leader", "snapshot", "metrics", "healthz", "x".repeat(600),
];
// deno-fmt-ignore
const ROUTE_PREFIXES = [
  "/v1/kv/", "/v1/kv", "/v1/kv?", "/v1/members/", "/v1/members", "/v1/leader", "/v1/status",
  "/v1/snapshot", "/metrics", "/healthz", "/", "",
];
const QUERY_NAMES = ["consistency", "prefix", "after", "limit", "x", ""];
// deno-fmt-ignore
const QUERY_VALUES = [
  "stale", "linearizable", "", "1", "0", "1000", "1001", "-1", "abc", "%zz", "%FF", "a%2Fb",
  "x".repeat(2000), "1e3", "NaN",
];
// deno-fmt-ignore
const HEADER_NAMES = [
  "if-match", "if-none-match", "x-request-id", "content-length", "authorization",
  "x-koi-forwarded", "content-type", "transfer-encoding", "x-other",
];
// deno-fmt-ignore
const HEADER_VALUES = [
  "*", '"1"', '"0"', '"99999999999999999999"', 'W/"1"', "1", "c:1", ":1", "c:", "c:x",
  `${"c".repeat(200)}:1`, "Bearer s3cret", "Bearer wrong", "Bearer", "0", "-1",
  "18446744073709551616", "application/json", "chunked", "",
];
const METHODS = ["GET", "HEAD", "PUT", "DELETE", "POST", "PATCH", "OPTIONS", "PROPFIND", "get"];
// deno-fmt-ignore
const JSON_BODIES = [
  '{"id":"n4","raft":"127.0.0.1:7104","http":"127.0.0.1:7204","voter":true}',
  '{"id":"n4","raft":"127.0.0.1:0","http":"h:1","voter":1}', '{"to":"n2"}', '{"to":5}',
  "[]", "null", "{", '{"__proto__":{}}', '"x"',
];

const piecesArb = fc.array(
  fc.oneof(fc.constantFrom(...PATH_PIECES), fc.string({ maxLength: 8 })),
  { maxLength: 6 },
).map((pieces) => pieces.join(""));
// Mostly keys and exact routes, so that most requests get past the router.
const pathArb = fc.oneof(
  { arbitrary: piecesArb.map((key) => `/v1/kv/${key}`), weight: 6 },
  { arbitrary: fc.constantFrom(...ROUTE_PREFIXES), weight: 3 },
  { arbitrary: piecesArb.map((id) => `/v1/members/${id}`), weight: 1 },
  {
    arbitrary: fc.tuple(fc.constantFrom(...ROUTE_PREFIXES), piecesArb).map(([p, s]) => p + s),
    weight: 2,
  },
);

const queryArb = fc.array(
  fc.tuple(
    fc.constantFrom(...QUERY_NAMES),
    fc.oneof(fc.constantFrom(...QUERY_VALUES), fc.string({ maxLength: 6 })),
  ),
  { maxLength: 4 },
).map((pairs) => pairs.length === 0 ? "" : "?" + pairs.map(([n, v]) => `${n}=${v}`).join("&"));

const headerValueArb = fc.oneof(
  fc.constantFrom(...HEADER_VALUES),
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) }),
);
const headersArb = fc.array(fc.tuple(fc.constantFrom(...HEADER_NAMES), headerValueArb), {
  maxLength: 3,
});

const bodyArb = fc.oneof(
  fc.constant(null),
  fc.uint8Array({ maxLength: 200 }),
  fc.constantFrom(...JSON_BODIES),
  fc.constant(new Uint8Array(300)), // above the small value limit below
);

const fakeArb: fc.Arbitrary<FakeOptions & { loaded: boolean }> = fc.record({
  leader: fc.constantFrom("n1", "n2", ""),
  owns: fc.constantFrom(() => true, () => false, (key: Uint8Array) => key.length % 2 === 0),
  bytesMax: fc.constantFrom(Infinity, 50),
  loaded: fc.boolean(),
});

type Answer = NonNullable<Parameters<typeof harness>[1]>["answer"];
const answerArb: fc.Arbitrary<Answer> = fc.constantFrom<Answer>(
  () => Promise.resolve(Response.json({ rev: 1 })),
  () => Promise.resolve(new Response(new Uint8Array(10), { status: 404 })),
  () => Promise.resolve(new Response(null, { status: 204 })),
  () => Promise.reject(new TypeError("connection refused")),
  () => new Promise<Response>(() => {}), // never answers: the 5 ms timeout fires
);

const optionsArb: fc.Arbitrary<Partial<HttpOptions>> = fc.record({
  secret: fc.constantFrom(undefined, "s3cret"),
  keyBytesMax: fc.constantFrom(16, 1024),
  valueBytesMax: fc.constantFrom(64, 1 << 20),
  listLimitMax: fc.constantFrom(5, 1000),
}, { requiredKeys: [] });

Deno.test("property: no request, however malformed, is answered 500", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        method: fc.oneof(
          { arbitrary: fc.constantFrom("GET", "PUT", "DELETE"), weight: 4 },
          { arbitrary: fc.constantFrom(...METHODS), weight: 1 },
        ),
        path: pathArb,
        query: queryArb,
        headers: headersArb,
        body: bodyArb,
        fake: fakeArb,
        options: optionsArb,
        answer: answerArb,
      }),
      async ({ method, path, query, headers, body, fake, options, answer }) => {
        let request: Request;
        try {
          const url = `http://localhost${path.startsWith("/") ? "" : "/"}${path}${query}`;
          const hasBody = body !== null && method !== "GET" && method !== "HEAD";
          request = new Request(url, {
            method,
            headers: new Headers(headers),
            ...(hasBody ? { body } : {}),
          });
        } catch {
          return; // not a request an HTTP server can receive (bad URL, header or method)
        }
        const h = harness(fake, { ...options, forwardTimeoutMs: 5, answer });
        h.service.isLoaded = fake.loaded;
        for (const key of ["a", "Z", "aa"]) h.service.seed(key, "v"); // revs 1, 2, 3
        const response = await h.app.request(request);
        const label = `${method} ${request.url} -> ${response.status}`;
        assert.notEqual(response.status, 500, label);
        assert(response.status >= 200 && response.status <= 599, label);
        assert.deepEqual(h.logged, [], label);
        if (response.status >= 400 && method !== "HEAD" && h.forwarded.length === 0) {
          const error = (await response.json()).error;
          assert.equal(typeof error.code, "string", label);
          assert.equal(typeof error.message, "string", label);
        } else {
          await response.body?.cancel();
        }
      },
    ),
    { numRuns: 600 },
  );
});

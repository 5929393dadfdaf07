/**
 * Hostile requests at the admin's HTTP API: random methods, paths (percent-encodings,
 * traversals, control bytes), query strings, headers and bodies. Every answer is one of the
 * contract's (200, 404, 405, 503 …), never a 500, and never a throw.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseConfig } from "../config/mod.ts";
import { adminApp } from "./_http.ts";
import { StatusPoller } from "./_poller.ts";

const CONFIG = parseConfig(
  `[admin]\nhttp = "127.0.0.1:7000"\n[[clusters]]\nid = "a"\n` +
    `[[clusters.nodes]]\nid = "a1"\nraft = "127.0.0.1:7101"\nhttp = "127.0.0.1:7151"\ndata = "d1"\n`,
  { baseDir: "/tmp" },
);

const SEGMENTS = ["", "v1", "carp", "clusters", "healthz", "..", "%2e%2e", "%00", "%ff", "é", "x"];
const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"];

const path = fc.array(
  fc.oneof(
    fc.constantFrom(...SEGMENTS),
    fc.string({ maxLength: 12 }).map((s) => encodeURIComponent(s)),
  ),
  { maxLength: 5 },
).map((parts) => `/${parts.join("/")}`);

const request = fc.record({
  method: fc.constantFrom(...METHODS),
  path,
  query: fc.option(fc.string({ maxLength: 30 }).map((s) => `?${encodeURIComponent(s)}=1`), {
    nil: "",
  }),
  headers: fc.dictionary(
    fc.constantFrom("accept", "content-type", "authorization", "x-koi-epoch", "range", "cookie"),
    fc.string({ maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, "")),
    { maxKeys: 3 },
  ),
  body: fc.option(fc.uint8Array({ maxLength: 2048 }), { nil: undefined }),
});

for (const ready of [false, true]) {
  Deno.test(`admin http property: hostile requests get a contract answer, never a 500 (ready: ${ready})`, async () => {
    const poller = new StatusPoller(CONFIG, {
      fetch: (() =>
        Promise.reject(new TypeError("Connection refused (os error 111)"))) as typeof fetch,
    });
    const app = adminApp({ config: CONFIG, poller, processes: new Map() }, () => ready);
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const bodyAllowed = r.method !== "GET" && r.method !== "HEAD";
        const response = await app.fetch(
          new Request(`http://127.0.0.1:7000${r.path}${r.query}`, {
            method: r.method,
            headers: r.headers,
            ...(bodyAllowed && r.body !== undefined ? { body: r.body } : {}),
          }),
        );
        await response.body?.cancel();
        assert.ok(
          [200, 204, 400, 404, 405, 503].includes(response.status),
          `${r.method} ${r.path}${r.query}: ${response.status}`,
        );
      }),
      { numRuns: 400 },
    );
  });
}

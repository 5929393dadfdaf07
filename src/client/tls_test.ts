/** TLS in the client: the table's node URLs, and clear messages for certificate and scheme errors. */
import assert from "node:assert/strict";
import { attempt, makeFetcher } from "./_http.ts";
import { parseRoutingTable } from "./_table.ts";
import { KoiError } from "./errors.ts";

const table = (node: Record<string, unknown>) => ({
  epoch: 1,
  scheme: "carp64",
  clusters: [{ id: "a", loadFactor: 1, leader: "", nodes: [node] }],
});

Deno.test("tls client: a node's url is the table's (https), or http:// without one", () => {
  const https = parseRoutingTable(
    table({ id: "a1", http: "127.0.0.1:7151", url: "https://127.0.0.1:7151" }),
    "x",
  );
  assert.equal(https.clusters[0].nodes[0].url, "https://127.0.0.1:7151");
  const plain = parseRoutingTable(table({ id: "a1", http: "127.0.0.1:7151" }), "x");
  assert.equal(plain.clusters[0].nodes[0].url, "http://127.0.0.1:7151");
});

Deno.test("tls client: a url for another address, scheme or with a path is bad_response", () => {
  for (
    const url of ["https://127.0.0.1:7152", "ftp://127.0.0.1:7151", "https://127.0.0.1:7151/x", 5]
  ) {
    assert.throws(
      () => parseRoutingTable(table({ id: "a1", http: "127.0.0.1:7151", url }), "x"),
      (e: unknown) => e instanceof KoiError && e.code === "bad_response" && /\.url/.test(e.message),
      String(url),
    );
  }
});

/** A fetch failing as Deno's does: "fetch failed" with the reason in `cause`. */
function failing(reason: string) {
  return () => Promise.reject(new TypeError("fetch failed", { cause: new Error(reason) }));
}

Deno.test("tls client: an untrusted certificate and a scheme mismatch say what to do", async () => {
  const signal = new AbortController().signal;
  const untrusted = await attempt(
    failing(
      "error sending request for url (https://127.0.0.1:1/): client error (Connect): " +
        "invalid peer certificate: UnknownIssuer",
    ),
    new URL("https://127.0.0.1:1/"),
    {},
    1_000,
    signal,
    100,
  );
  assert.ok("kind" in untrusted && untrusted.kind === "network" && untrusted.tls === true);
  assert.match(untrusted.message, /does not trust \(invalid peer certificate: UnknownIssuer\)/);
  assert.match(untrusted.message, /caCerts option, or --ca FILE/);
  const plainToTls = await attempt(
    failing("client error (SendRequest): invalid HTTP version parsed"),
    new URL("http://127.0.0.1:1/"),
    {},
    1_000,
    signal,
    100,
  );
  assert.ok("kind" in plainToTls && plainToTls.kind === "network" && plainToTls.tls === true);
  assert.match(plainToTls.message, /use an https:\/\/ URL/);
  const refused = await attempt(
    failing("Connection refused (os error 111)"),
    new URL("https://127.0.0.1:1/"),
    {},
    1_000,
    signal,
    100,
  );
  assert.ok("kind" in refused && refused.kind === "network" && refused.tls === undefined);
});

Deno.test("tls client: caCerts must be PEM certificates", () => {
  assert.throws(
    () => makeFetcher(undefined, { caCerts: ["not a certificate"] }),
    (e: unknown) => e instanceof KoiError && e.code === "bad_request",
  );
});

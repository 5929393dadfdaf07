/**
 * Why a status poll failed, as `/v1/clusters` says it, from real `fetch` failures: Deno 2.9.6's
 * `fetch` says only "fetch failed" and puts the reason in the error's `cause`.
 */
import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createServer as createNetServer, type Server } from "node:net";
import { parseConfig } from "../config/mod.ts";
import { makeTestPki, tlsTest } from "../config/_tls_test_util.ts";
import { describeFetchError, StatusPoller } from "./_poller.ts";

/** A port nothing listens on (bound, then closed again). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function listening<S extends Server>(server: S): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return (server.address() as { port: number }).port;
}

function closed(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** What describeFetchError makes of fetching `url` (which must fail). */
async function reasonOf(url: string, client?: Deno.HttpClient): Promise<string> {
  try {
    const signal = AbortSignal.timeout(5_000);
    const response =
      await (client === undefined ? fetch(url, { signal }) : fetch(url, { signal, client }));
    await response.body?.cancel();
  } catch (error) {
    return describeFetchError(error);
  }
  throw new Error(`fetching ${url} succeeded`);
}

Deno.test("describeFetchError: a closed port is `connection refused`, also through the poller", async () => {
  const port = closedPort();
  assert.equal(await reasonOf(`http://127.0.0.1:${port}/v1/status`), "connection refused");
  const config = parseConfig(
    `[admin]\nhttp = "127.0.0.1:7000"\n[[clusters]]\nid = "a"\n[[clusters.nodes]]\nid = "a1"\n` +
      `raft = "127.0.0.1:7101"\nhttp = "127.0.0.1:${port}"\ndata = "d1"\n`,
    { baseDir: "/tmp" },
  );
  const poller = new StatusPoller(config);
  await poller.pollOnce();
  assert.equal(poller.view("a1").error, "connection refused");
});

Deno.test("describeFetchError: a reset is `connection reset`, a close before the answer says so", async () => {
  const resetting = createNetServer((socket) => {
    socket.on("error", () => {});
    socket.once("data", () => socket.resetAndDestroy());
  });
  const closing = createNetServer((socket) => {
    socket.on("error", () => {});
    socket.once("data", () => socket.destroy());
  });
  try {
    const reset = await listening(resetting);
    assert.equal(await reasonOf(`http://127.0.0.1:${reset}/`), "connection reset");
    const close = await listening(closing);
    assert.equal(
      await reasonOf(`http://127.0.0.1:${close}/`),
      "connection closed before an answer",
    );
  } finally {
    await Promise.all([closed(resetting), closed(closing)]);
  }
});

await tlsTest("describeFetchError: TLS failures say what is wrong with the node", async () => {
  const pki = await makeTestPki(["node"]);
  const leaf = pki.leaves.get("node")!;
  const rogue = createHttpsServer({ cert: pki.rogue.cert, key: pki.rogue.key }, (_q, r) => r.end());
  const good = createHttpsServer({ cert: leaf.cert, key: leaf.key }, (_q, r) => r.end());
  const plain = createHttpServer((_q, r) => r.end());
  const client = Deno.createHttpClient({ caCerts: [pki.ca] });
  try {
    const [rogueAt, goodAt, plainAt] = await Promise.all(
      [rogue, good, plain].map((s) => listening(s)),
    );
    assert.match(
      await reasonOf(`https://127.0.0.1:${rogueAt}/`, client),
      /^TLS: the node's certificate is refused \(UnknownIssuer\); is it signed by the CA of \[tls\] ca\?$/,
    );
    // The certificate names IP:127.0.0.1, not "localhost".
    assert.match(
      await reasonOf(`https://localhost:${goodAt}/`, client),
      /^TLS: the node's certificate is refused \(certificate not valid for name "localhost".*\); does its subjectAltName name the node's http host\?$/,
    );
    assert.match(
      await reasonOf(`https://127.0.0.1:${plainAt}/`, client),
      /^TLS handshake failed: the node does not answer TLS/,
    );
  } finally {
    client.close();
    await Promise.all([closed(rogue), closed(good), closed(plain)]);
    await Deno.remove(pki.dir, { recursive: true });
  }
});

Deno.test("describeFetchError: timeouts and aborts; otherwise the innermost reason", () => {
  assert.equal(describeFetchError(new DOMException("t", "TimeoutError")), "timed out");
  assert.equal(describeFetchError(new DOMException("a", "AbortError")), "stopped");
  const dns = new TypeError("fetch failed", {
    cause: new Error("dns error: failed to lookup address information"),
  });
  assert.equal(describeFetchError(dns), "dns error: failed to lookup address information");
  // The URL in a message does not decide: a host named "reset" is not a reset.
  const named = new TypeError("fetch failed", {
    cause: new Error("error sending request for url (http://reset.example/): no route to host"),
  });
  assert.match(describeFetchError(named), /no route to host/);
});

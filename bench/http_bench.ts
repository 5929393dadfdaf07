/**
 * One HTTP round trip through koi's HTTP stack, without Raft: `fetch` with keep-alive to the
 * node's hono app on koi's node:http server (src/http/server.ts), and to the same server with
 * the node's direct path for key requests (as a node runs it), backed by an in-memory fake
 * service; a PUT of 100 bytes and a GET. Next to it the same round trip to a bare
 * `Deno.serve` and to a bare `node:http` server: what the HTTP stack itself costs here.
 *
 *   deno bench -A bench/http_bench.ts
 *
 * @module
 */
import { createServer } from "node:http";
import { HttpServer } from "../src/http/server.ts";
import { createNodeApp, createNodeDirect } from "../src/node/http.ts";
import { FakeNodeService } from "../src/node/_fake_service_test_util.ts";

const appOptions = { service: new FakeNodeService() };
const app = createNodeApp(appOptions);
const server = await HttpServer.listen({ hostname: "127.0.0.1", port: 0, fetch: app.fetch });
const koi = `http://127.0.0.1:${server.port}`;
// As a node runs it: key requests take the server's direct path.
const directServer = await HttpServer.listen({
  hostname: "127.0.0.1",
  port: 0,
  fetch: app.fetch,
  direct: createNodeDirect(appOptions),
});
const direct = `http://127.0.0.1:${directServer.port}`;
const bare = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen() {} },
  async (r) => new Response(r.body === null ? "v" : await r.arrayBuffer()),
);
const base = `http://127.0.0.1:${bare.addr.port}`;
// Bare node:http, which koi's server is built on (for its request deadlines and limits).
const nodeHttp = createServer((req, res) => {
  req.resume();
  req.on("end", () => res.end("v"));
});
await new Promise<void>((resolve) => nodeHttp.listen(0, "127.0.0.1", resolve));
const nodeBase = `http://127.0.0.1:${(nodeHttp.address() as { port: number }).port}`;
const value = new Uint8Array(100).fill(118);
await (await fetch(`${koi}/v1/kv/bench`, { method: "PUT", body: value })).arrayBuffer();

Deno.bench({ name: "koi node app: PUT 100 B", group: "put", baseline: true }, async () => {
  await (await fetch(`${koi}/v1/kv/bench`, { method: "PUT", body: value })).arrayBuffer();
});
Deno.bench({ name: "koi node, direct path: PUT 100 B", group: "put" }, async () => {
  await (await fetch(`${direct}/v1/kv/bench`, { method: "PUT", body: value })).arrayBuffer();
});
Deno.bench({ name: "bare Deno.serve: PUT 100 B", group: "put" }, async () => {
  await (await fetch(`${base}/`, { method: "PUT", body: value })).arrayBuffer();
});
Deno.bench({ name: "bare node:http: PUT 100 B", group: "put" }, async () => {
  await (await fetch(`${nodeBase}/`, { method: "PUT", body: value })).arrayBuffer();
});
Deno.bench({ name: "koi node app: GET (stale)", group: "get", baseline: true }, async () => {
  await (await fetch(`${koi}/v1/kv/bench?consistency=stale`)).arrayBuffer();
});
Deno.bench({ name: "koi node, direct path: GET (stale)", group: "get" }, async () => {
  await (await fetch(`${direct}/v1/kv/bench?consistency=stale`)).arrayBuffer();
});
Deno.bench({ name: "bare Deno.serve: GET", group: "get" }, async () => {
  await (await fetch(`${base}/`)).arrayBuffer();
});

Deno.bench({ name: "bare node:http: GET", group: "get" }, async () => {
  await (await fetch(`${nodeBase}/`)).arrayBuffer();
});

globalThis.addEventListener("unload", () => {
  nodeHttp.close();
  void server.close(0);
  void directServer.close(0);
  void bare.shutdown();
});

/**
 * The etcd drivers without a server: `--etcd` parsing, gRPC codes as kinds, the JSON
 * gateway driver over an injected fetch (answers, error answers, caps, failover), and the
 * gRPC driver's kinds of etcd3's errors. tests/e2e/bench_etcd_test.ts runs both against etcd.
 */
import assert from "node:assert/strict";
import {
  ClientClosedError,
  EtcdError,
  GRPCDeadlineExceededError,
  GRPCGenericError,
  GRPCUnavailableError,
} from "etcd3";
import { ETCD_CLUSTER, grpcKind, parseEtcdEndpoints } from "./_etcd.ts";
import { etcd3ErrorKind as kind } from "./_etcd_grpc.ts";
import { EtcdHttpError, EtcdHttpTarget } from "./_etcd_http.ts";

Deno.test("parseEtcdEndpoints: host:port or http:// URLs, comma-separated; nothing else", () => {
  assert.deepEqual(parseEtcdEndpoints("127.0.0.1:2379"), ["127.0.0.1:2379"]);
  assert.deepEqual(
    parseEtcdEndpoints(" 127.0.0.1:2379, http://localhost:22379/ ,[::1]:2379,"),
    ["127.0.0.1:2379", "localhost:22379", "[::1]:2379"],
  );
  for (
    const [text, message] of [
      ["", /expected host:port/],
      [" , ", /expected host:port/],
      ["127.0.0.1", /"127\.0\.0\.1" is not host:port/],
      ["https://127.0.0.1:2379", /only http:\/\//],
      ["127.0.0.1:2379/v3", /is not host:port/],
      ["u:p@127.0.0.1:2379", /is not host:port/],
      ["127.0.0.1:99999", /is not host:port/],
    ] as const
  ) {
    assert.throws(() => parseEtcdEndpoints(text), message, text);
  }
});

Deno.test("grpcKind: status codes by name, unknown ones other", () => {
  assert.equal(grpcKind(4), "timeout");
  assert.equal(grpcKind(14), "unavailable");
  assert.equal(grpcKind(8), "resource_exhausted");
  assert.equal(grpcKind(2), "other");
  assert.equal(grpcKind(99), "other");
  assert.equal(grpcKind("14"), "other");
});

/** A fetch that answers each request with `answer(url, body)` and records the requests. */
function fakeFetch(answer: (url: URL, body: unknown) => Response | Promise<Response>) {
  const seen: { url: string; body: unknown }[] = [];
  const fetch = async (url: URL, init: RequestInit) => {
    const body = JSON.parse(String(init.body));
    seen.push({ url: url.href, body });
    return await answer(url, body);
  };
  return { fetch, seen };
}

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status });
const STATUS = { header: {}, version: "3.4.23" };

Deno.test("EtcdHttpTarget: put and range through the gateway, base64, serializable for stale", async () => {
  const stored = new Map<string, string>();
  const { fetch, seen } = fakeFetch((url, body) => {
    const b = body as { key: string; value?: string };
    if (url.pathname === "/v3/maintenance/status") return json(200, STATUS);
    if (url.pathname === "/v3/kv/put") {
      stored.set(b.key, b.value!);
      return json(200, { header: {} });
    }
    const value = stored.get(b.key);
    return json(200, value === undefined ? { header: {} } : { header: {}, kvs: [{ value }] });
  });
  const target = await EtcdHttpTarget.connect(["127.0.0.1:1", "127.0.0.1:2"], { fetch });
  try {
    assert.equal(target.name, "etcd-http");
    assert.deepEqual(target.details, { endpoints: "127.0.0.1:1,127.0.0.1:2", version: "3.4.23" });
    assert.deepEqual(target.clusters, [ETCD_CLUSTER]);
    assert.equal(target.clusterOf("user1"), ETCD_CLUSTER);
    assert.equal(await target.get("user1", { stale: false }), false);
    await target.put("user1", new Uint8Array([0, 1, 255]));
    assert.equal(await target.get("user1", { stale: true }), true);
    assert.deepEqual(seen.slice(1).map((r) => r.body), [
      { key: btoa("user1"), serializable: false },
      { key: btoa("user1"), value: "AAH/" },
      { key: btoa("user1"), serializable: true },
    ]);
    // round-robin over the endpoints
    assert.deepEqual(seen.map((r) => new URL(r.url).port), ["1", "2", "1", "2"]);
  } finally {
    await target.close();
  }
});

Deno.test("EtcdHttpTarget: error answers, caps, failover and close as kinds", async () => {
  let mode = "ok";
  const { fetch, seen } = fakeFetch((url) => {
    if (url.pathname === "/v3/maintenance/status") return json(200, STATUS);
    switch (mode) {
      case "unavailable":
        return json(503, { error: "etcdserver: request timed out", code: 14, message: "x" });
      case "teapot":
        return new Response("no", { status: 418 });
      case "garbage":
        return new Response("<html>", { status: 200 });
      case "huge":
        return new Response("x".repeat(70 * 1024), { status: 200 });
      case "refused-on-1":
        if (url.port === "1") throw new TypeError("error sending request: Connection refused");
        return json(200, { header: {} });
      case "refused":
        throw new TypeError("error sending request: Connection refused");
      default:
        return json(200, { header: {} });
    }
  });
  const target = await EtcdHttpTarget.connect(["127.0.0.1:1", "127.0.0.1:2"], { fetch });
  const kindOf = async (op: () => Promise<unknown>) => {
    try {
      await op();
    } catch (error) {
      assert.ok(error instanceof EtcdHttpError, String(error));
      return target.errorKind(error);
    }
    return "ok";
  };
  const put = () => target.put("k", new Uint8Array(1));
  try {
    for (
      const [m, kind] of [
        ["unavailable", "unavailable"],
        ["teapot", "http_418"],
        ["garbage", "bad_response"],
        ["huge", "bad_response"], // a put's answer is read up to 64 KiB
        ["refused", "unavailable"],
        ["refused-on-1", "ok"], // the other endpoint answered
        ["refused-on-1", "ok"],
      ] as const
    ) {
      mode = m;
      assert.equal(await kindOf(put), kind, m);
    }
    assert.ok(seen.filter((r) => r.url.includes(":2/")).length >= 2);
    assert.equal(target.errorKind(new Error("x")), "other");
  } finally {
    await target.close();
  }
  mode = "ok";
  assert.equal(await kindOf(put), "closed");
});

Deno.test("EtcdHttpTarget.connect: fails when no endpoint answers, in its budget", async () => {
  // a server that never answers: the request ends when its signal aborts
  const fetch = (_: URL, init: RequestInit) =>
    new Promise<Response>((_, reject) => {
      init.signal!.addEventListener("abort", () => reject(init.signal!.reason), { once: true });
    });
  const t0 = performance.now();
  await assert.rejects(
    () => EtcdHttpTarget.connect(["127.0.0.1:1"], { fetch, timeoutMs: 200 }),
    (e: unknown) => e instanceof EtcdHttpError && e.kind === "timeout",
  );
  assert.ok(performance.now() - t0 < 2_000);
});

Deno.test("etcd3ErrorKind (EtcdGrpcTarget.errorKind): etcd3's error classes and gRPC codes", () => {
  assert.equal(kind(new GRPCDeadlineExceededError("4 DEADLINE_EXCEEDED: x")), "timeout");
  assert.equal(kind(new GRPCUnavailableError("14 UNAVAILABLE: No connection")), "unavailable");
  assert.equal(kind(new ClientClosedError("KV")), "closed");
  assert.equal(kind(new GRPCGenericError("8 RESOURCE_EXHAUSTED: too big")), "resource_exhausted");
  assert.equal(kind(new EtcdError("etcdserver: something")), "etcd");
  assert.equal(kind(new Error("boom")), "other");
  assert.equal(kind("not an error"), "other");
});

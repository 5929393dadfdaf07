/**
 * The client against servers that break the contract: answers without end, routing tables
 * whose addresses cannot form a URL, malformed `/v1/clusters`, and node messages that name
 * keys by their base64url.
 */
import assert from "node:assert/strict";
import { error, FakeDeployment, json, keyOwnedBy } from "./_fake_test_util.ts";
import { nodeUrl } from "./_failures.ts";
import {
  ADMIN_ANSWER_BYTES_MAX,
  LIST_ANSWER_BYTES_MAX,
  VALUE_ANSWER_BYTES_MAX,
  WRITE_ANSWER_BYTES_MAX,
} from "./_limits.ts";
import { connect, deploymentStatus, KoiError, PreconditionFailedError } from "./mod.ts";

const ONE = { clusters: [{ id: "a", nodes: ["a1", "a2"] }] };
const CHUNK = 64 * 1024;

/** A body of `total` bytes, made as it is read; says whether it was cancelled and how much was read. */
function streamed(total: number) {
  const state = { pulled: 0, cancelled: false };
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (state.pulled >= total) return controller.close();
      const n = Math.min(CHUNK, total - state.pulled);
      state.pulled += n;
      controller.enqueue(new Uint8Array(n).fill(0x61));
    },
    cancel() {
      state.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { state, body };
}

/** A fetch that answers `answer(url, init)` when it returns a Response, else the real fetch. */
function intercepting(
  answer: (url: URL, init: RequestInit) => Response | undefined,
): (input: URL, init: RequestInit) => Promise<Response> {
  return (input, init) => Promise.resolve(answer(input, init) ?? fetch(input, init));
}

async function rejection(promise: Promise<unknown>): Promise<KoiError> {
  const error = await promise.then(() => undefined, (e) => e);
  assert.ok(error instanceof KoiError, `expected a KoiError, got ${error}`);
  return error;
}

Deno.test("answers: a node's value answer over the limit is cancelled, bad_response", async () => {
  const d = FakeDeployment.start(ONE);
  const { state, body } = streamed(4 * VALUE_ANSWER_BYTES_MAX);
  let asked = 0;
  try {
    using koi = await connect(d.adminUrl, {
      fetch: intercepting((url) => {
        if (url.pathname !== "/v1/kv") return undefined;
        asked += 1;
        return new Response(body, { headers: { etag: '"1"' } });
      }),
    });
    const e = await rejection(koi.get("k"));
    assert.equal(e.code, "bad_response");
    assert.match(e.message, /^get "k": node a1 \(127\.0\.0\.1:\d+\) answered 200 with a body over/);
    assert.match(e.message, new RegExp(`over ${VALUE_ANSWER_BYTES_MAX} bytes`));
    assert.equal(e.node, "a1");
    assert.equal(e.outcomeUnknown, false);
    assert.ok(state.cancelled, "the body was cancelled");
    assert.ok(state.pulled <= VALUE_ANSWER_BYTES_MAX + CHUNK, `read ${state.pulled} bytes`);
    assert.equal(asked, 1, "no other node is asked");
  } finally {
    await d.close();
  }
});

Deno.test("answers: caps on write answers, listings and a declared content-length", async () => {
  const d = FakeDeployment.start(ONE);
  try {
    using koi = await connect(d.adminUrl, {
      fetch: intercepting((url, init) => {
        if (url.pathname !== "/v1/kv") return undefined;
        if (init.method === "PUT") return new Response(streamed(WRITE_ANSWER_BYTES_MAX + 1).body);
        if (init.method === "DELETE") {
          // Says how long it is before any byte: refused without reading.
          return new Response(streamed(1).body, {
            headers: { "content-length": String(WRITE_ANSWER_BYTES_MAX + 1) },
          });
        }
        return url.searchParams.has("key_b64")
          ? undefined
          : new Response(streamed(LIST_ANSWER_BYTES_MAX + 1).body);
      }),
    });
    const put = await rejection(koi.put("k", "v"));
    assert.equal(put.code, "bad_response");
    assert.match(put.message, new RegExp(`^put "k": .* over ${WRITE_ANSWER_BYTES_MAX} bytes`));
    assert.equal(put.outcomeUnknown, true, "the write may have been applied");
    const del = await rejection(koi.delete("k"));
    assert.equal(del.code, "bad_response");
    assert.match(del.message, /^delete "k": node a1 .* over 65536 bytes/);
    const list = await rejection(koi.list());
    assert.equal(list.code, "bad_response");
    assert.match(list.message, new RegExp(`^list of cluster a: .* over ${LIST_ANSWER_BYTES_MAX}`));
  } finally {
    await d.close();
  }
});

Deno.test("answers: the admin's table and status over the limit are bad_response", async () => {
  const d = FakeDeployment.start(ONE);
  const bodies: ReturnType<typeof streamed>[] = [];
  const hostile = intercepting(() => {
    const body = streamed(ADMIN_ANSWER_BYTES_MAX + CHUNK + 1);
    bodies.push(body);
    return new Response(body.body);
  });
  try {
    const e = await rejection(connect(d.adminUrl, { fetch: hostile }));
    assert.equal(e.code, "bad_response");
    assert.match(
      e.message,
      new RegExp(`^Cannot fetch the routing table: the admin .* over ${ADMIN_ANSWER_BYTES_MAX}`),
    );
    const s = await rejection(deploymentStatus(d.adminUrl, { fetch: hostile }));
    assert.equal(s.code, "bad_response");
    assert.match(s.message, /^Cannot fetch the status: the admin .* answered 200 with a body over/);
    assert.equal(bodies.length, 2, "no retry");
    assert.ok(bodies.every((b) => b.state.cancelled));
  } finally {
    await d.close();
  }
});

Deno.test("table: node addresses that cannot form a URL are refused at connect", async () => {
  const d = FakeDeployment.start(ONE);
  try {
    const table = (http: unknown) => {
      const carp = d.carpJson() as { clusters: { nodes: { http: unknown }[] }[] };
      carp.clusters[0].nodes[1].http = http;
      return carp;
    };
    const bad: [unknown, RegExp][] = [
      ["127.0.0.1:99999", /nodes\[1\]\.http: the port must be an integer between 1 and 65535/],
      ["127.0.0.1:0", /the port must be/],
      ["[:::]:80", /":::" is not an IPv6 address/],
      ["::1:80", /an IPv6 host must be in brackets/],
      ["300.1.1.1:80", /"300\.1\.1\.1" is not an IPv4 address/],
      ["a..b:80", /is not a valid hostname/],
      ["a b:80", /is not a valid hostname/],
      ["127.0.0.1", /must be "host:port"/],
      [":80", /the host is missing/],
      [7151, /clusters\[0\]\.nodes\[1\]\.http 7151$/],
    ];
    for (const [http, message] of bad) {
      d.adminHook = (_, path) => (path === "/v1/carp" ? json(200, table(http)) : undefined);
      const e = await rejection(connect(d.adminUrl));
      assert.equal(e.code, "bad_response", String(http));
      assert.match(e.message, /^The admin .* answered an invalid routing table: /, String(http));
      assert.match(e.message, message, String(http));
    }
    for (const http of ["[::1]:7151", "localhost:7151", "node_1.koi.internal:65535"]) {
      d.adminHook = (_, path) => (path === "/v1/carp" ? json(200, table(http)) : undefined);
      using koi = await connect(d.adminUrl);
      assert.equal(koi.table.clusters[0].nodes[1].http, http);
    }
  } finally {
    await d.close();
  }
});

Deno.test("table: a node address that is not a URL host is a KoiError, not a TypeError", () => {
  const node = { id: "a1", http: "127.0.0.1:99999", url: "http://127.0.0.1:99999" };
  let e: unknown;
  try {
    nodeUrl(node, "/v1/kv", "a");
  } catch (error) {
    e = error;
  }
  assert.ok(e instanceof KoiError, String(e));
  assert.equal(e.code, "bad_response");
  assert.equal(e.node, "a1");
  assert.equal(
    nodeUrl({ id: "a1", http: "[::1]:80", url: "http://[::1]:80" }, "/v1/kv?x=1", "a").href,
    "http://[::1]/v1/kv?x=1",
  );
});

Deno.test("status: a malformed /v1/clusters is bad_response naming the field", async () => {
  const d = FakeDeployment.start(ONE);
  try {
    type Mutable = Record<string, unknown> & {
      clusters: (Record<string, unknown> & {
        nodes: (Record<string, unknown> & { status: Record<string, unknown> | null })[];
      })[];
    };
    const cases: [(s: Mutable) => void, RegExp][] = [
      [
        (s) => (s.clusters[0].nodes[0].status = {}),
        /clusters\[0\]\.nodes\[0\]\.status\.node undefined/,
      ],
      [(s) => (s.clusters[0].nodes[0].status!.role = 5), /status\.role 5, expected a string/],
      [(s) => delete s.clusters[0].nodes[0].status!.term, /status\.term undefined/],
      [
        (s) => (s.clusters[0].nodes[0].status!.members = {}),
        /status\.members \{\}, expected an array/,
      ],
      [(s) => delete s.clusters[0].nodes[1].reachable, /nodes\[1\]\.reachable undefined/],
      [(s) => (s.clusters[0].nodes[0].pid = "1"), /nodes\[0\]\.pid "1", expected an integer >= 0/],
      [(s) => (s.clusters[0].nodes[0].error = null), /nodes\[0\]\.error null/],
      [(s) => (s.clusters[0].nodes[0].process = 1), /nodes\[0\]\.process 1/],
      [
        (s) => (s.clusters[0].nodes = [7] as never),
        /clusters\[0\]\.nodes\[0\] 7, expected an object/,
      ],
      [(s) => delete s.clusters[0].leader, /clusters\[0\]\.leader undefined/],
      [(s) => (s.clusters = {} as never), /clusters \{\}, expected an array/],
      [(s) => (s.healthy = "yes"), /healthy "yes", expected true or false/],
      [(s) => delete s.epoch, /epoch undefined/],
    ];
    for (const [mutate, message] of cases) {
      const answer = structuredClone(d.clustersJson()) as Mutable;
      mutate(answer);
      d.adminHook = (_, path) => (path === "/v1/clusters" ? json(200, answer) : undefined);
      const e = await rejection(deploymentStatus(d.adminUrl));
      assert.equal(e.code, "bad_response", message.source);
      assert.match(e.message, /^the admin .* answered an invalid \/v1\/clusters: /);
      assert.match(e.message, message);
    }
    // A node that is unreachable has a null status; an unknown field is kept.
    await d.node("a2").stop();
    const answer = { ...d.clustersJson(), extra: 1 };
    d.adminHook = (_, path) => (path === "/v1/clusters" ? json(200, answer) : undefined);
    assert.deepEqual(await deploymentStatus(d.adminUrl), answer);
  } finally {
    await d.close();
  }
});

Deno.test("messages: a node's message names the key as the caller gave it", async () => {
  const d = FakeDeployment.start(ONE);
  try {
    // As the real node does (src/node/http.ts): a key sent as key_b64 shows as
    // "base64url:<b64>", quoted, cut after 64 characters.
    d.nodeHook = (request, _node, seen) => {
      if (request.method !== "PUT") return undefined;
      const text = `base64url:${seen.query.get("key_b64")}`;
      const shown = text.length <= 64
        ? JSON.stringify(text)
        : `${JSON.stringify(text.slice(0, 64))}... (${text.length} chars)`;
      return error(412, "precondition_failed", `Precondition failed: key ${shown} does not exist`);
    };
    using koi = await connect(d.adminUrl);
    const long = "user:" + "x".repeat(95);
    const cases: [string | Uint8Array, string][] = [
      ["a", 'key "a" does not exist'],
      [long, `key ${JSON.stringify(long)} does not exist`],
      ["$&$'", `key "$&$'" does not exist`],
      [new Uint8Array([0x80, 1]), "key base64url:gAE does not exist"],
    ];
    for (const [key, said] of cases) {
      const e = await rejection(koi.put(key, "v", { ifRev: 1 }));
      assert.ok(e instanceof PreconditionFailedError);
      assert.ok(e.message.endsWith(`: Precondition failed: ${said}`), e.message);
    }
    // The key of another request is left as the node said it.
    const other = keyOwnedBy(koi.table.carp, "a", "zz");
    d.nodeHook = () => error(412, "precondition_failed", 'key "base64url:YQ" and base64url:YQx');
    const e = await rejection(koi.put(other, "v", { ifRev: 1 }));
    assert.match(e.message, /key "base64url:YQ" and base64url:YQx$/);
  } finally {
    await d.close();
  }
});

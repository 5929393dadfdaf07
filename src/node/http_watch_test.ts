/** `GET /v1/watch` through the node's app: parameters, errors and their shapes, the stream. */
import assert from "node:assert/strict";
import { errorOf, harness } from "./_fake_service_test_util.ts";
import { WatchHub, type WatchLimits } from "./_watch_hub.ts";
import { applied, SseReader } from "./_watch_test_util.ts";

function withHub(limits: Partial<WatchLimits> = {}) {
  const watch = new WatchHub({ node: "n1", cluster: "a", limits });
  watch.reset(0);
  return { watch, ...harness({}, { watch }) };
}

Deno.test("GET /v1/watch: an event stream of the changes under the prefix, x-koi-leader", async () => {
  const { app, watch } = withHub();
  const response = await app.request("/v1/watch?prefix=user%2F");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/event-stream");
  assert.equal(response.headers.get("cache-control"), "no-cache");
  assert.equal(response.headers.get("x-koi-leader"), "n1");
  const reader = new SseReader(response.body!);
  watch.applied(applied(1, ["set", "other", "x"]));
  watch.applied(applied(2, ["set", "user/1", "Ada"]));
  await reader.until(() => reader.data("change").length === 1);
  assert.deepEqual(reader.data("start"), [{ rev: 0, cluster: "a", node: "n1" }]);
  assert.deepEqual(reader.data("change"), [{
    rev: 2,
    changes: [{ type: "put", key: "user/1", value_b64: "QWRh", size: 3 }],
  }]);
  await reader.cancel();
});

Deno.test("GET /v1/watch: from_rev, prefix_b64, and Last-Event-ID winning over from_rev", async () => {
  const { app, watch } = withHub();
  for (let rev = 1; rev <= 5; rev++) watch.applied(applied(rev, ["set", `k${rev}`, "v"]));
  const read = async (path: string, headers: Record<string, string> = {}) => {
    const response = await app.request(path, { headers });
    assert.equal(response.status, 200, path);
    const reader = new SseReader(response.body!);
    await reader.until((m) => m.some((x) => x.id === "5"));
    await reader.cancel();
    return reader.data("change").map((d) => d.rev);
  };
  assert.deepEqual(await read("/v1/watch?from_rev=2"), [3, 4, 5]);
  assert.deepEqual(await read("/v1/watch?prefix_b64=aw&from_rev=0"), [1, 2, 3, 4, 5]);
  assert.deepEqual(await read("/v1/watch?from_rev=1", { "last-event-id": "3" }), [4, 5]);
  assert.deepEqual(await read("/v1/watch?from_rev=4", { "last-event-id": "" }), [5]);
});

Deno.test("GET /v1/watch: garbage parameters are 400 bad_request with the API's error shape", async () => {
  const { app, watch } = withHub();
  const cases: [string, Record<string, string>, RegExp][] = [
    ["/v1/watch?from_rev=-1", {}, /Invalid from_rev: must be a revision/],
    ["/v1/watch?from_rev=abc", {}, /Invalid from_rev/],
    ["/v1/watch?from_rev=1.5", {}, /Invalid from_rev/],
    ["/v1/watch?from_rev=1234567890123456", {}, /Invalid from_rev/],
    ["/v1/watch?from_rev=", {}, /Invalid from_rev/],
    ["/v1/watch?from_rev=1&from_rev=2", {}, /appears more than once/],
    ["/v1/watch", { "last-event-id": "x1" }, /Invalid Last-Event-ID header/],
    ["/v1/watch?prefix_b64=a+b", {}, /Invalid prefix_b64/],
    ["/v1/watch?prefix_b64=_w", {}, /reserved for koi's system records/],
    ["/v1/watch?prefix=a&prefix_b64=YQ", {}, /give prefix or prefix_b64, not both/],
    [`/v1/watch?prefix=${"k".repeat(1025)}`, {}, /Invalid prefix: must be 0 to 1024 bytes/],
    ["/v1/watch?prefix=%FF", {}, /malformed percent-encoding/],
  ];
  for (const [path, headers, message] of cases) {
    const response = await app.request(path, { headers });
    assert.equal(response.status, 400, path);
    assert.equal(response.headers.get("content-type"), "application/json");
    const error = await errorOf(response);
    assert.equal(error.code, "bad_request", path);
    assert.match(error.message, message, path);
  }
  assert.equal(watch.watchers, 0, "no refused request holds a watcher");
});

Deno.test("GET /v1/watch: 410 compacted below the floor, with rev and oldest", async () => {
  const { app, watch } = withHub({ historyChangesMax: 2 });
  for (let rev = 1; rev <= 6; rev++) watch.applied(applied(rev, ["set", `k${rev}`, "v"]));
  const response = await app.request("/v1/watch?from_rev=3");
  assert.equal(response.status, 410);
  const body = await response.json();
  assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "oldest", "rev"]);
  assert.equal(body.error.code, "compacted");
  assert.equal(body.error.rev, 6);
  assert.equal(body.error.oldest, 4);
  assert.match(body.error.message, /read the keys again \(list them\) and watch from rev 6/);
  const ok = await app.request("/v1/watch?from_rev=4");
  assert.equal(ok.status, 200);
  await ok.body!.cancel();
});

Deno.test("GET /v1/watch: beyond the watcher limit 503 too_many_watchers with retry-after", async () => {
  const { app, watch } = withHub({ watchersMax: 2 });
  const open = [await app.request("/v1/watch"), await app.request("/v1/watch")];
  const refused = await app.request("/v1/watch");
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("retry-after"), "1");
  assert.equal((await errorOf(refused)).code, "too_many_watchers");
  await open[0].body!.cancel();
  const again = await app.request("/v1/watch");
  assert.equal(again.status, 200, "a closed stream frees its place");
  watch.close();
  for (const r of [open[1], again]) await new SseReader(r.body!).end();
});

Deno.test("GET /v1/watch: other methods 405; OPTIONS; a node without a hub has no route", async () => {
  const { app } = withHub();
  const put = await app.request("/v1/watch", { method: "PUT" });
  assert.equal(put.status, 405);
  assert.equal(put.headers.get("allow"), "GET, HEAD, OPTIONS");
  const options = await app.request("/v1/watch", { method: "OPTIONS" });
  assert.equal(options.status, 204);
  const { app: plain } = harness();
  assert.equal((await plain.request("/v1/watch")).status, 404);
});

Deno.test("GET /v1/watch: shutting down answers 503; /metrics shows the hub", async () => {
  const { app, watch } = withHub();
  watch.applied(applied(1, ["set", "a", "1"]));
  const metrics = await (await app.request("/metrics")).text();
  assert.match(metrics, /^koi_watch_watchers\{node="n1",cluster="a"\} 0$/m);
  assert.match(metrics, /^koi_watch_history_changes\{node="n1",cluster="a"\} 1$/m);
  assert.match(metrics, /^# TYPE koi_watch_cut_slow_total counter$/m);
  watch.close();
  const refused = await app.request("/v1/watch");
  assert.equal(refused.status, 503);
  assert.equal((await errorOf(refused)).code, "no_leader");
});

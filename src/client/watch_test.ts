/**
 * `KoiClient.watch` against fake nodes: merging clusters, resuming on another node without
 * missing or repeating a change, `fromRevs`, `410` from one node and from all, nodes that
 * cut the stream, closing by `break`, `return()` and the signal, and streams that break
 * the contract.
 */
import assert from "node:assert/strict";
import { connect, KoiError, KoiHttpError, WatchCompactedError } from "./mod.ts";
import type { WatchEvent } from "./_types.ts";
import { error, FakeDeployment, keyOwnedBy, waitFor } from "./_fake_test_util.ts";

const TWO = {
  clusters: [
    { id: "a", nodes: ["a1", "a2"] },
    { id: "b", nodes: ["b1", "b2"] },
  ],
};

/** Takes `n` events from `it`, failing after `ms`. */
async function take(it: AsyncIterator<WatchEvent>, n: number, ms = 5_000): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  const deadline = Date.now() + ms;
  while (out.length < n) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`timed out after ${JSON.stringify(out.map(show))}`)),
        Math.max(0, deadline - Date.now()),
      );
    });
    try {
      const next = await Promise.race([it.next(), timeout]);
      if (next.done) throw new Error(`the watch ended after ${out.length} events`);
      out.push(next.value);
    } finally {
      clearTimeout(timer);
    }
  }
  return out;
}

function show(e: WatchEvent): string {
  return `${e.cluster} ${e.rev} ${e.type} ${e.keyText}`;
}

const openWatches = (d: FakeDeployment) =>
  [...d.nodes.values()].reduce((n, node) => n + node.watches, 0);

Deno.test("watch: merges the changes of every cluster, each cluster in rev order", async () => {
  const d = FakeDeployment.start(TWO);
  try {
    using koi = await connect(d.adminUrl);
    const watch = koi.watch("user:");
    await waitFor(() => openWatches(d) === 2, "a stream per cluster");
    const a = keyOwnedBy(d.nodeTable, "a", "user:");
    const b = keyOwnedBy(d.nodeTable, "b", "user:");
    for (let i = 0; i < 5; i++) {
      await koi.put(a, `a${i}`);
      await koi.put(b, `b${i}`);
    }
    await koi.put(keyOwnedBy(d.nodeTable, "a", "other:"), "not watched");
    await koi.delete(a);
    await koi.delete(a); // absent: no change
    await koi.put(b, new Uint8Array([0xff, 0]));
    const events = await take(watch, 12);
    const of = (c: string) => events.filter((e) => e.cluster === c);
    assert.deepEqual(of("a").map((e) => [e.type, new TextDecoder().decode(e.value)]), [
      ["put", "a0"],
      ["put", "a1"],
      ["put", "a2"],
      ["put", "a3"],
      ["put", "a4"],
      ["delete", ""],
    ]);
    assert.equal(of("b").length, 6);
    for (const c of ["a", "b"]) {
      const revs = of(c).map((e) => e.rev);
      assert.deepEqual(revs, [...revs].sort((x, y) => x - y), `cluster ${c} in rev order`);
    }
    const last = of("b").at(-1)!;
    assert.deepEqual(last.value, new Uint8Array([0xff, 0]));
    assert.equal(last.size, 2);
    assert.equal(last.keyText, b);
    assert.equal(of("a").at(-1)!.size, 0, "a delete has size 0");
    // The leader is asked first (x-koi-leader hints are in the table).
    assert.ok(d.node("a1").requests.some((r) => r.query.has("prefix_b64")));
    assert.equal(d.node("a2").requests.length, 0);
    await watch.return!();
    await waitFor(() => openWatches(d) === 0, "break closes every stream");
  } finally {
    await d.close();
  }
});

Deno.test("watch: a killed node's stream resumes on another node, nothing missed or repeated", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1", "a2"] }] });
  try {
    using koi = await connect(d.adminUrl, { attemptTimeoutMs: 500 });
    const watch = koi.watch();
    await waitFor(() => d.node("a1").watches === 1, "the stream to the leader");
    const cluster = d.cluster("a");
    for (let i = 1; i <= 3; i++) cluster.set(`k${i}`, `v${i}`);
    const first = await take(watch, 3);
    await d.node("a1").stop();
    cluster.leader = "a2";
    for (let i = 4; i <= 6; i++) cluster.set(`k${i}`, `v${i}`);
    const rest = await take(watch, 3);
    assert.deepEqual([...first, ...rest].map((e) => e.rev), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(
      [...first, ...rest].map((e) => e.keyText),
      [1, 2, 3, 4, 5, 6].map((i) => `k${i}`),
    );
    const resumed = d.node("a2").requests.find((r) => r.query.has("prefix_b64"))!;
    assert.equal(resumed.query.get("from_rev"), "3", "resumed from the last rev delivered");
    // The first stream started from the node's rev: its start event fixed the resume point.
    assert.equal(d.node("a1").requests[0].query.get("from_rev"), null);
    await watch.return!();
  } finally {
    await d.close();
  }
});

Deno.test("watch: fromRevs starts after those revs; bad options are refused at once", async () => {
  const d = FakeDeployment.start(TWO);
  try {
    using koi = await connect(d.adminUrl);
    const a = d.cluster("a");
    for (let i = 1; i <= 4; i++) a.set(`k${i}`, "v");
    const watch = koi.watch("", { fromRevs: { a: 2 } });
    const events = await take(watch, 2);
    assert.deepEqual(events.map((e) => `${e.cluster}${e.rev}`), ["a3", "a4"]);
    await watch.return!();
    const refused = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e;
      }
      return undefined;
    };
    const unknown = refused(() => koi.watch("", { fromRevs: { z: 1 } }));
    assert.ok(unknown instanceof KoiError && unknown.code === "bad_request", String(unknown));
    assert.match(String(unknown), /no cluster "z" in the routing table \(a, b\)/);
    const negative = refused(() => koi.watch("", { fromRevs: { a: -1 } }));
    assert.match(String(negative), /Invalid fromRevs.a: expected an integer of 0 or more/);
    const system = refused(() => koi.watch(new Uint8Array([0xff])));
    assert.match(String(system), /reserved for koi's system records/);
  } finally {
    await d.close();
  }
});

Deno.test("watch: 410 from one node goes on with another; from every node throws WatchCompactedError", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1", "a2"] }] });
  try {
    using koi = await connect(d.adminUrl);
    const cluster = d.cluster("a");
    for (let i = 1; i <= 5; i++) cluster.set(`k${i}`, "v");
    d.node("a1").hook = (_request, _node, seen) =>
      seen.query.has("prefix_b64")
        ? new Response(
          JSON.stringify({ error: { code: "compacted", message: "gone", rev: 5, oldest: 4 } }),
          { status: 410, headers: { "content-type": "application/json" } },
        )
        : undefined;
    const watch = koi.watch("", { fromRevs: { a: 2 } });
    assert.deepEqual((await take(watch, 3)).map((e) => e.rev), [3, 4, 5], "a2 still had them");
    await watch.return!();
    cluster.floor = 4;
    const gone = koi.watch("", { fromRevs: { a: 2 } });
    const failure = await gone.next().catch((e) => e);
    assert.ok(failure instanceof WatchCompactedError, String(failure));
    assert.equal(failure.code, "compacted");
    assert.equal(failure.cluster, "a");
    assert.equal(failure.rev, 5);
    assert.equal(failure.oldest, 4);
    assert.match(failure.message, /read the keys again \(list them\) and watch from rev 5/);
    assert.deepEqual(await gone.next(), { done: true, value: undefined });
    await waitFor(() => openWatches(d) === 0, "no stream left open");
  } finally {
    await d.close();
  }
});

Deno.test("watch: a node that cuts the stream (slow_watcher) or answers 503 is resumed", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  try {
    using koi = await connect(d.adminUrl, { attemptTimeoutMs: 500 });
    const cluster = d.cluster("a");
    for (let i = 1; i <= 2; i++) cluster.set(`k${i}`, "v");
    let calls = 0;
    d.node("a1").hook = (_request, _node, seen) => {
      if (!seen.query.has("prefix_b64")) return undefined;
      calls++;
      if (calls === 1) {
        return new Response(
          'id: 0\nevent: start\ndata: {"rev":0}\n\n' +
            'id: 1\nevent: change\ndata: {"rev":1,"changes":[{"type":"put","key":"k1","size":1}]}\n\n' +
            'event: error\ndata: {"code":"slow_watcher","message":"behind"}\n\n',
          { status: 200, headers: { "content-type": "text/event-stream" } },
        );
      }
      if (calls === 2) return error(503, "too_many_watchers", "busy", { "retry-after": "1" });
      return undefined;
    };
    const watch = koi.watch("", { fromRevs: { a: 0 } });
    const events = await take(watch, 2);
    assert.deepEqual(events.map((e) => e.rev), [1, 2]);
    assert.equal(events[0].value, undefined, "no value_b64: the value was too large to inline");
    const froms = d.node("a1").requests.filter((r) => r.query.has("prefix_b64"))
      .map((r) => r.query.get("from_rev"));
    assert.deepEqual(froms, ["0", "1", "1"]);
    await watch.return!();
  } finally {
    await d.close();
  }
});

Deno.test("watch: an abort signal or close() ends the iteration and closes the streams", async () => {
  const d = FakeDeployment.start(TWO);
  try {
    const koi = await connect(d.adminUrl);
    const controller = new AbortController();
    const watch = koi.watch("", { signal: controller.signal });
    await waitFor(() => openWatches(d) === 2, "the streams");
    const pending = watch.next();
    controller.abort();
    const aborted = await pending.catch((e) => e);
    assert.ok(aborted instanceof KoiError && aborted.code === "aborted", String(aborted));
    await waitFor(() => openWatches(d) === 0, "the streams closed");
    const other = koi.watch();
    await waitFor(() => openWatches(d) === 2, "the streams");
    koi.close();
    const closed = await other.next().catch((e) => e);
    assert.ok(closed instanceof KoiError && closed.code === "closed", String(closed));
    await waitFor(() => openWatches(d) === 0, "the streams closed");
  } finally {
    await d.close();
  }
});

Deno.test("watch: a 400 or a stream that breaks the contract ends the watch with an error", async () => {
  const d = FakeDeployment.start({ clusters: [{ id: "a", nodes: ["a1"] }] });
  try {
    using koi = await connect(d.adminUrl);
    d.node("a1").hook = () => error(400, "bad_request", "Invalid from_rev");
    const refused = await koi.watch().next().catch((e) => e);
    assert.ok(refused instanceof KoiHttpError && refused.status === 400, String(refused));
    assert.match(refused.message, /watch: node a1 answered 400 bad_request: Invalid from_rev/);
    d.node("a1").hook = () =>
      new Response('event: change\ndata: {"rev":1,"changes":[{"type":"frob","key":"k"}]}\n\n', {
        status: 200,
        headers: { "content-type": "text/event-stream" },
      });
    const broken = await koi.watch().next().catch((e) => e);
    assert.ok(broken instanceof KoiError && broken.code === "bad_response", String(broken));
    assert.match(broken.message, /node a1 of cluster a sent a change with type "frob"/);
  } finally {
    await d.close();
  }
});

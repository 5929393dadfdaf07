/**
 * The gateway's reads, called directly over fake clusters: point reads of one cluster to their
 * owner (split at the per-request bound, one by one after a `421`), reads of several clusters
 * as one snapshot read, and failures.
 */
import assert from "node:assert/strict";
import { error as koiError } from "../client/_fake_test_util.ts";
import { tupleKey } from "./_fake_kvc_test_util.ts";
import { withGateway } from "./_gateway_test_util.ts";
import type { ReadRange } from "./_datapath.ts";
import { KvConnectError } from "./_errors.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const point = (key: Uint8Array, limit = 1): ReadRange => ({
  start: key,
  end: Uint8Array.of(...key, 0),
  limit,
  reverse: false,
});
const prefixRange = (prefix: Uint8Array, limit: number, reverse = false): ReadRange => ({
  start: Uint8Array.of(...prefix, 0x00),
  end: Uint8Array.of(...prefix, 0xff),
  limit,
  reverse,
});
const text = (key: Uint8Array) => new TextDecoder().decode(key.subarray(1, -1));
const signal = () => AbortSignal.timeout(5_000);

Deno.test({
  name: "gateway read: points and scans in one read, each range's answer in its place",
  ...opts,
  async fn() {
    await withGateway(async ({ gateway, fake }) => {
      const keys = Array.from({ length: 12 }, (_, i) => tupleKey(`k${String(i).padStart(2, "0")}`));
      for (const k of keys) fake.put(k, new TextEncoder().encode(text(k)));
      fake.requests.length = 0;
      const all = prefixRange(new Uint8Array(), 100);
      const out = await gateway.read([
        point(keys[3]),
        { ...all, limit: 5, reverse: true },
        point(tupleKey("absent")),
        point(keys[10]),
        { start: keys[2], end: keys[6], limit: 10, reverse: false },
      ], signal());
      assert.deepEqual(out.map((r) => r.map((e) => text(e.key))), [
        ["k03"],
        ["k11", "k10", "k09", "k08", "k07"],
        [],
        ["k10"],
        ["k02", "k03", "k04", "k05"],
      ]);
      // Several clusters: one snapshot read (docs/transactions.md): each cluster is read once,
      // with every range it may hold, then checked once.
      const paths = fake.requests.map((r) => `${r.path}@${r.cluster}`).sort();
      assert.deepEqual(paths, [
        "/v1/txn/check@a",
        "/v1/txn/check@b",
        "/v1/txn/check@c",
        "/v1/txn/read@a",
        "/v1/txn/read@b",
        "/v1/txn/read@c",
      ]);
    });
  },
});

Deno.test({
  name: "gateway read: a cluster's point reads are split at the per-request bound",
  ...opts,
  async fn() {
    await withGateway(async ({ gateway, fake }) => {
      const mine = Array.from({ length: 200 }, (_, i) => tupleKey(`p${i}`))
        .filter((k) => fake.owner(k) === "a").slice(0, 5);
      fake.requests.length = 0;
      const out = await gateway.read(mine.map((k) => point(k)), signal());
      assert.equal(out.length, 5);
      assert.equal(fake.requests.length, 3, "5 points in requests of at most 2");
    }, { gateway: { rangesPerReadMax: 2 } });
  },
});

Deno.test({
  name: "gateway read: batched points that a node says moved are read one by one from owners",
  ...opts,
  async fn() {
    await withGateway(async ({ gateway, fake }) => {
      const d = fake.deployment;
      // The nodes route by another table than the admin serves (keys moving): the gateway's
      // batch to one cluster meets a 421 for some key, and each key then finds its owner.
      d.setTable({
        ...d.adminTable,
        clusters: d.adminTable.clusters.map((c, i) => ({ ...c, loadFactor: i + 1 })),
      }, "nodes");
      const keys = Array.from({ length: 40 }, (_, i) => tupleKey(`m${i}`));
      for (const k of keys) fake.put(k, new TextEncoder().encode(text(k)));
      const out = await gateway.read(keys.map((k) => point(k)), signal());
      assert.deepEqual(out.map((r) => r.map((e) => text(e.key))), keys.map((k) => [text(k)]));
      assert.ok(fake.requests.length > 3, "re-routed");
    });
  },
});

Deno.test({
  name: "gateway read: a cluster drained and stopped is dropped by the admin's newer table",
  ...opts,
  async fn() {
    await withGateway(async ({ gateway, fake }) => {
      const d = fake.deployment;
      await gateway.read([point(tupleKey("warm"))], signal()); // the gateway has its table
      // c is drained and stopped: it refuses connections, and the admin's table lost it.
      await d.node("c1").stop();
      d.setTable({ ...d.adminTable, epoch: 2, clusters: d.adminTable.clusters.slice(0, 2) });
      const keys = Array.from({ length: 12 }, (_, i) => tupleKey(`d${i}`));
      for (const k of keys) fake.put(k, new TextEncoder().encode(text(k)));
      const all = prefixRange(new Uint8Array(), 100);
      const started = performance.now();
      const [listed] = await gateway.read([all], signal());
      assert.deepEqual(listed.map((e) => text(e.key)).sort(), keys.map(text).sort());
      // Planned again at once, not after the snapshot read's budget (2.4 s) ran out.
      const ms = performance.now() - started;
      assert.ok(ms < 1_500, `the read took ${Math.round(ms)} ms`);
      const points = await gateway.read(keys.map((k) => point(k)), signal());
      assert.deepEqual(points.map((r) => r.map((e) => text(e.key))), keys.map((k) => [text(k)]));
    }, { timeoutMs: 3_000 });
  },
});

Deno.test({
  name: "gateway read: one cluster failing fails the read with a 503 (retry helps); a 400 is a 400",
  ...opts,
  async fn() {
    await withGateway(async ({ gateway, fake }) => {
      fake.hook = (req) =>
        req.cluster === "b" ? koiError(503, "no_leader", "No leader") : undefined;
      const started = performance.now();
      await assert.rejects(gateway.read([prefixRange(new Uint8Array(), 10)], signal()), (e) => {
        assert.ok(e instanceof KvConnectError);
        assert.equal(e.status, 503);
        assert.match(e.message, /cluster b/);
        return true;
      });
      assert.ok(performance.now() - started < 2_000, "within the client's budget");
      fake.hook = (req) =>
        req.cluster === "c" ? koiError(400, "bad_request", "Invalid limit 0") : undefined;
      await assert.rejects(gateway.read([prefixRange(new Uint8Array(), 10)], signal()), (e) => {
        assert.ok(e instanceof KvConnectError);
        assert.equal(e.status, 400);
        assert.match(e.message, /Invalid limit 0/);
        return true;
      });
    }, { timeoutMs: 300 });
  },
});

Deno.test({
  name: "gateway read: a node's answer over the limit is a 400 that says to read less",
  ...opts,
  async fn() {
    await withGateway(async ({ gateway, fake }) => {
      for (let i = 0; i < 20; i++) fake.put(tupleKey(`big${i}`), new Uint8Array(400));
      await assert.rejects(gateway.read([prefixRange(new Uint8Array(), 20)], signal()), (e) => {
        assert.ok(e instanceof KvConnectError);
        assert.equal(e.status, 400);
        assert.match(e.message, /over 1000 bytes.*read fewer entries/);
        return true;
      });
    }, { gateway: { readAnswerBytesMax: 1000 } });
  },
});

Deno.test({
  name: "gateway: the largest versionstamp read is sent with the next write",
  ...opts,
  async fn() {
    await withGateway(async ({ gateway, fake, kv }) => {
      fake.cluster("a").vs = 1_000_000n;
      const k = Array.from({ length: 50 }, (_, i) => tupleKey(`h${i}`)).find((x) =>
        fake.owner(x) === "a"
      )!;
      fake.put(k, new Uint8Array([1]));
      await gateway.read([point(k)], signal());
      assert.equal(gateway.highest.value, 1_000_001n);
      const key = Array.from({ length: 50 }, (_, i) => ["w", `${i}`]).find((x) =>
        fake.owner(tupleKey(...x)) === "b"
      )!;
      const r = await kv.set(key, 1);
      assert.ok(BigInt(`0x${r.versionstamp.slice(0, 16)}`) > 1_000_001n, "after what was read");
    });
  },
});

Deno.test({
  name:
    "gateway read: the nodes' answers take their bytes from the read's room; none left fails the read 503 at once",
  ...opts,
  async fn() {
    await withGateway(async ({ gateway, fake }) => {
      const value = new Uint8Array(200 * 1024);
      const keys = Array.from({ length: 6 }, (_, i) => tupleKey(`big${i}`));
      for (const k of keys) fake.put(k, value);
      let taken = 0;
      const room = {
        take(bytes: number) {
          taken += bytes;
          return undefined;
        },
      };
      // One cluster's point read, then a scan of every cluster (one snapshot).
      const one = keys.find((k) => fake.owner(k) === "a")!;
      await gateway.read([point(one)], signal(), room);
      assert.ok(taken >= value.length, `a point read took ${taken} bytes`);
      taken = 0;
      const all = await gateway.read([prefixRange(new Uint8Array(), 100)], signal(), room);
      assert.equal(all[0].length, 6);
      assert.ok(taken >= 6 * value.length, `a snapshot read took ${taken} bytes`);
      // A room that is full: the read fails as busy, without retrying until its deadline.
      const full = { take: () => "Busy: no room" };
      for (const ranges of [[point(one)], [prefixRange(new Uint8Array(), 100)]]) {
        const started = Date.now();
        await assert.rejects(
          gateway.read(ranges, signal(), full),
          (e) => e instanceof KvConnectError && e.status === 503 && /no room/.test(e.message),
        );
        assert.ok(Date.now() - started < 1_000, `failed after ${Date.now() - started} ms`);
      }
    });
  },
});

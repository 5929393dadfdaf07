/**
 * The gateway end to end with Deno's own client: `Deno.openKv(url)` against the handler and
 * gateway on a `Deno.serve` listener, over fake nodes of three clusters that serve the node
 * endpoints' contract in memory.
 */
import assert from "node:assert/strict";
import { error as koiError } from "../client/_fake_test_util.ts";
import { tupleKey, tupleKeyOwnedBy } from "./_fake_kvc_test_util.ts";
import { withGateway } from "./_gateway_test_util.ts";
import { encodeAtomicWrite } from "./_datapath.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "gateway: set, get, getMany and list over three clusters, merged in key order",
  ...opts,
  async fn() {
    await withGateway(async ({ kv, fake }) => {
      for (let i = 0; i < 30; i++) await kv.set(["user", i], { n: i });
      const held = ["a", "b", "c"].map((c) => fake.cluster(c).entries.size);
      assert.ok(held.every((n) => n > 0), `every cluster holds keys: ${held}`);
      assert.deepEqual((await kv.get(["user", 7])).value, { n: 7 });
      assert.equal((await kv.get(["user", 99])).value, null);
      const many = await kv.getMany([["user", 1], ["user", 2], ["nope"], ["user", 29]]);
      assert.deepEqual(many.map((e) => e.value), [{ n: 1 }, { n: 2 }, null, { n: 29 }]);
      const all: number[] = [];
      for await (const e of kv.list<{ n: number }>({ prefix: ["user"] }, { batchSize: 7 })) {
        all.push(e.value.n);
      }
      assert.deepEqual(all, Array.from({ length: 30 }, (_, i) => i));
      const last: number[] = [];
      for await (
        const e of kv.list<{ n: number }>({ prefix: ["user"] }, { reverse: true, limit: 4 })
      ) last.push(e.value.n);
      assert.deepEqual(last, [29, 28, 27, 26]);
      const some: number[] = [];
      for await (
        const e of kv.list<{ n: number }>({ start: ["user", 10], end: ["user", 15] })
      ) some.push(e.value.n);
      assert.deepEqual(some, [10, 11, 12, 13, 14]);
      await kv.delete(["user", 7]);
      assert.equal((await kv.get(["user", 7])).value, null);
    });
  },
});

Deno.test({
  name: "gateway: a point read asks the owner only; a list asks every cluster",
  ...opts,
  async fn() {
    await withGateway(async ({ kv, fake }) => {
      const key = tupleKeyOwnedBy((k) => fake.owner(k), "b");
      await kv.set(key, "x");
      fake.requests.length = 0;
      await kv.get(key);
      assert.deepEqual(fake.requests.map((r) => [r.cluster, r.path]), [
        ["b", "/v1/kvc/snapshot_read"],
      ]);
      assert.equal(fake.requests[0].headers.get("x-koi-request-id"), null, "reads carry none");
      fake.requests.length = 0;
      for await (const _ of kv.list({ prefix: ["k"] })) { /* drain */ }
      // Every cluster, as one snapshot read: a first round and a check of each.
      assert.deepEqual(fake.requests.map((r) => `${r.path}@${r.cluster}`).sort(), [
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
  name: "gateway: checks, sum, min and max; a check failure is ok: false, nothing written",
  ...opts,
  async fn() {
    await withGateway(async ({ kv }) => {
      const first = await kv.atomic().check({ key: ["n"], versionstamp: null })
        .set(["n"], new Deno.KvU64(5n)).commit();
      assert.ok(first.ok);
      const again = await kv.atomic().check({ key: ["n"], versionstamp: null })
        .set(["n"], new Deno.KvU64(9n)).commit();
      assert.equal(again.ok, false);
      assert.equal((await kv.get<Deno.KvU64>(["n"])).value?.value, 5n);
      await kv.atomic().sum(["n"], 10n).commit();
      assert.equal((await kv.get<Deno.KvU64>(["n"])).value?.value, 15n);
      await kv.atomic().min(["n"], 3n).commit();
      assert.equal((await kv.get<Deno.KvU64>(["n"])).value?.value, 3n);
      await kv.atomic().max(["n"], 8n).commit();
      const entry = await kv.get<Deno.KvU64>(["n"]);
      assert.equal(entry.value?.value, 8n);
      const ok = await kv.atomic().check(entry).sum(["n"], 1n).commit();
      assert.ok(ok.ok);
      assert.equal((await kv.get<Deno.KvU64>(["n"])).value?.value, 9n);
    });
  },
});

Deno.test({
  name: "gateway: versionstamps only grow, and every write carries a request id and after-vs",
  ...opts,
  async fn() {
    await withGateway(async ({ kv, fake }) => {
      const stamps: bigint[] = [];
      for (let i = 0; i < 12; i++) {
        const r = await kv.set(["v", i], i);
        assert.ok(r.ok);
        stamps.push(BigInt(`0x${r.versionstamp.slice(0, 16)}`));
      }
      for (let i = 1; i < stamps.length; i++) {
        assert.ok(stamps[i] > stamps[i - 1], `versionstamps grow across clusters: ${stamps}`);
      }
      const writes = fake.requests.filter((r) => r.path === "/v1/kvc/atomic_write");
      const ids = writes.map((w) => w.headers.get("x-koi-request-id"));
      assert.ok(ids.every((id) => id !== null && /^koi-[0-9a-f]{16}-\d+:\d+$/.test(id)), `${ids}`);
      assert.equal(new Set(ids).size, ids.length, "one request id per write");
      const after = writes.map((w) => BigInt(w.headers.get("x-koi-after-vs")!));
      assert.equal(after[0], 0n);
      for (let i = 1; i < after.length; i++) assert.equal(after[i], stamps[i - 1]);
    });
  },
});

Deno.test({
  name: "gateway: an attempt retried by the client repeats its request id (at most once)",
  ...opts,
  async fn() {
    await withGateway(async ({ kv, fake }) => {
      let refused = 0;
      fake.hook = (req) => {
        if (req.path === "/v1/kvc/atomic_write" && refused++ === 0) {
          return koiError(503, "no_leader", "No leader yet", { "retry-after": "0" });
        }
        return undefined;
      };
      assert.ok((await kv.set(["once"], 1)).ok);
      const writes = fake.requests.filter((r) => r.path === "/v1/kvc/atomic_write");
      assert.equal(writes.length, 2);
      assert.equal(
        writes[0].headers.get("x-koi-request-id"),
        writes[1].headers.get("x-koi-request-id"),
      );
    });
  },
});

Deno.test({
  name: "gateway: an atomic operation over two clusters commits in both at one versionstamp",
  ...opts,
  async fn() {
    await withGateway(async ({ kv, fake, gateway }) => {
      const owner = (k: Uint8Array) => fake.owner(k);
      const inA = tupleKeyOwnedBy(owner, "a");
      const inC = tupleKeyOwnedBy(owner, "c");
      const done = await kv.atomic().check({ key: inA, versionstamp: null }).set(inA, 1).set(
        inC,
        2,
      ).commit();
      assert.ok(done.ok);
      const [a, c] = await kv.getMany([inA, inC]);
      assert.equal(a.value, 1);
      assert.equal(c.value, 2);
      assert.equal(a.versionstamp, done.versionstamp);
      assert.equal(c.versionstamp, done.versionstamp, "one versionstamp for the whole commit");
      const paths = fake.requests.map((r) => r.path);
      assert.ok(paths.includes("/v1/kvc/prepare"));
      assert.ok(paths.includes("/v1/txn/command"));
      // A failed check in either cluster: nothing applied anywhere, and no lock left.
      const failed = await kv.atomic().check({ key: inC, versionstamp: null }).set(inA, 3).set(
        inC,
        4,
      ).commit();
      assert.equal(failed.ok, false);
      assert.deepEqual((await kv.getMany([inA, inC])).map((e) => e.value), [1, 2]);
      assert.equal(fake.cluster("a").txn.lockedKeys + fake.cluster("c").txn.lockedKeys, 0);
      // A versionstamped key joins the primary's share; its suffix is the commit's versionstamp.
      const vsKey = {
        key: tupleKey("log"),
        value: { data: new Uint8Array([1]), encoding: 3 },
        mutationType: 9,
        expireAtMs: 0n,
        sumMin: new Uint8Array(),
        sumMax: new Uint8Array(),
        sumClamp: false,
      };
      const plain = { ...vsKey, key: tupleKey(...inC), mutationType: 1 };
      const write = {
        checks: [],
        mutations: [{ ...plain, key: tupleKey(...inA) }, vsKey, plain],
        enqueues: 0,
      };
      const out = await gateway.write(write, encodeAtomicWrite(write), AbortSignal.timeout(2_000));
      assert.equal(out.status, 1);
      const logged = [];
      for await (const e of kv.list({ prefix: ["log"] })) logged.push(e);
      assert.equal(logged.length, 1);
      const stamp = [...out.versionstamp].map((b) => b.toString(16).padStart(2, "0")).join("");
      assert.equal(logged[0].key[1], stamp, "the key's suffix is the commit's versionstamp");
      assert.equal(logged[0].versionstamp, stamp);
    });
  },
});

Deno.test({
  name: "gateway: a node's 400 reaches the caller with its message; no retry",
  ...opts,
  async fn() {
    await withGateway(async ({ kv, fake }) => {
      await kv.set(["text"], "not a number");
      const before = fake.requests.length;
      await assert.rejects(
        kv.atomic().sum(["text"], 1n).commit(),
        /status=400 Bad Request\): atomic_write of cluster \w+: node \w+ \(127\.0\.0\.1:\d+\) answered 400 bad_request: Cannot sum: the value at key #0 is not a u64 \(Deno\.KvU64\)/,
      );
      assert.equal(fake.requests.length - before, 1, "sent once");
    });
  },
});

Deno.test({
  name: "gateway: a write whose outcome is unknown and that is not repeatable answers 409",
  ...opts,
  async fn() {
    await withGateway(async ({ kv, fake }) => {
      // Every attempt hangs past the client's budget: the write may have been applied.
      fake.hook = (req) =>
        req.path === "/v1/kvc/atomic_write" ? fake.deployment.node(req.node).hang() : undefined;
      await assert.rejects(
        kv.atomic().sum(["c"], 1n).commit(),
        /status=409 Conflict\).*may or may not have been applied/,
      );
    }, { timeoutMs: 300 });
  },
});

Deno.test({
  name: "gateway: a key of koi's own API (bytes) reads back as a Uint8Array",
  ...opts,
  async fn() {
    await withGateway(async ({ kv, fake }) => {
      fake.put(tupleKey("raw"), new TextEncoder().encode("bytes!"));
      const hit = await kv.get<Uint8Array>(["raw"]);
      assert.deepEqual(hit.value, new TextEncoder().encode("bytes!"));
    });
  },
});

Deno.test({
  name: "gateway: an empty atomic operation commits on one cluster and gets a versionstamp",
  ...opts,
  async fn() {
    await withGateway(async ({ kv, fake }) => {
      const r = await kv.atomic().commit();
      assert.ok(r.ok);
      assert.match(r.versionstamp, /^[0-9a-f]{20}$/);
      assert.equal(fake.requests.filter((q) => q.path === "/v1/kvc/atomic_write").length, 1);
    });
  },
});

Deno.test({
  name: "gateway: a write that meets a lock past its deadline resolves it, then goes through",
  ...opts,
  async fn() {
    await withGateway(async ({ kv, fake, gateway }) => {
      const parts = tupleKeyOwnedBy((k) => fake.owner(k), "a");
      const key = tupleKey(...parts);
      const a = fake.cluster("a");
      // An attempt whose coordinator died after preparing at a; its deadline then passes.
      const deadline = Date.now() + 30;
      a.txn.apply(
        {
          type: "prepare",
          txn: "dead.1",
          primary: "a",
          participants: ["a", "b"],
          checks: [],
          mutations: [{
            key,
            value: { data: new Uint8Array([9]), encoding: 3 },
            mutationType: 1,
            expireAtMs: 0n,
            sumMin: new Uint8Array(),
            sumMax: new Uint8Array(),
            sumClamp: false,
          }],
          deadline,
        },
        Number(++a.vs),
        { evaluate: () => undefined, apply: () => {} },
      );
      assert.equal(a.txn.lockedKeys, 1);
      while (Date.now() <= deadline) {
        await new Promise((r) => setTimeout(r, deadline + 1 - Date.now()));
      }
      assert.ok((await kv.set(parts, "after")).ok);
      assert.equal((await kv.get(parts)).value, "after");
      assert.equal(a.txn.lockedKeys, 0);
      assert.equal(a.txn.outcome("dead.1")?.outcome.state, "aborted");
      assert.equal(gateway.transactions.resolved, 1);
    });
  },
});

Deno.test({
  name:
    "gateway: the janitor applies a decision whose coordinator died where it is still held, then forgets it",
  ...opts,
  async fn() {
    await withGateway(async ({ fake, gateway, kv }) => {
      const inA = tupleKey(...tupleKeyOwnedBy((k) => fake.owner(k), "a"));
      const inB = tupleKey(...tupleKeyOwnedBy((k) => fake.owner(k), "b"));
      const a = fake.cluster("a");
      const b = fake.cluster("b");
      const deadline = Date.now() + 30;
      const set = (key: Uint8Array) => ({
        key,
        value: { data: new Uint8Array([7]), encoding: 3 },
        mutationType: 1,
        expireAtMs: 0n,
        sumMin: new Uint8Array(),
        sumMax: new Uint8Array(),
        sumClamp: false,
      });
      const store = (c: typeof a) => ({
        evaluate: () => undefined,
        apply: (ms: readonly ReturnType<typeof set>[], vs: number) => {
          for (const m of ms) {
            const versionstamp = new Uint8Array(10);
            new DataView(versionstamp.buffer).setBigUint64(0, BigInt(vs));
            c.entries.set([...m.key].map((x) => x.toString(16).padStart(2, "0")).join(""), {
              key: m.key,
              value: m.value.data,
              encoding: 3,
              versionstamp,
            });
          }
        },
      });
      const prepare = (key: Uint8Array) => ({
        type: "prepare" as const,
        txn: "gone.1",
        primary: "a",
        participants: ["a", "b"],
        checks: [],
        mutations: [set(key)],
        deadline,
      });
      // A coordinator prepared both, decided at a, and died before b heard.
      a.txn.apply(prepare(inA), Number(++a.vs), store(a));
      b.txn.apply(prepare(inB), Number(++b.vs), store(b));
      const decided = a.txn.apply(
        { type: "commit", txn: "gone.1", after: Number(b.vs) },
        Number(a.vs += 5n),
        store(a),
      );
      assert.equal(decided.state, "committed");
      assert.equal(b.txn.lockedKeys, 1);
      while (Date.now() <= deadline) {
        await new Promise((r) => setTimeout(r, deadline + 1 - Date.now()));
      }
      const report = await gateway.sweep();
      assert.deepEqual(report, { rolledForward: 1, forgotten: 1, resolved: 0 });
      assert.equal(b.txn.lockedKeys, 0);
      assert.equal(a.txn.outcome("gone.1")?.droppable, true);
      assert.deepEqual(
        await gateway.sweep(),
        { rolledForward: 0, forgotten: 0, resolved: 0 },
        "once",
      );
      void kv;
    });
  },
});

Deno.test({
  name: "gateway: the janitor resolves attempts prepared and never decided, past their deadline",
  ...opts,
  async fn() {
    await withGateway(async ({ fake, gateway }) => {
      const inA = tupleKey(...tupleKeyOwnedBy((k) => fake.owner(k), "a"));
      const inB = tupleKey(...tupleKeyOwnedBy((k) => fake.owner(k), "b"));
      const deadline = Date.now() + 30;
      const noop = { evaluate: () => undefined, apply: () => {} };
      const prepare = (key: Uint8Array) => ({
        type: "prepare" as const,
        txn: "undecided.1",
        primary: "a",
        participants: ["a", "b"],
        checks: [],
        mutations: [{
          key,
          value: { data: new Uint8Array([1]), encoding: 3 },
          mutationType: 1,
          expireAtMs: 0n,
          sumMin: new Uint8Array(),
          sumMax: new Uint8Array(),
          sumClamp: false,
        }],
        deadline,
      });
      const [a, b] = [fake.cluster("a"), fake.cluster("b")];
      a.txn.apply(prepare(inA), Number(++a.vs), noop);
      b.txn.apply(prepare(inB), Number(++b.vs), noop);
      while (Date.now() <= deadline) {
        await new Promise((r) => setTimeout(r, deadline + 1 - Date.now()));
      }
      const report = await gateway.sweep();
      assert.equal(report.resolved, 2, "at a (its primary) and at b");
      assert.equal(a.txn.lockedKeys + b.txn.lockedKeys, 0);
      assert.equal(a.txn.outcome("undecided.1")?.outcome.state, "aborted");
    });
  },
});

Deno.test({
  name: "gateway: every transaction command carries the cluster's secret; reads do not need it",
  ...opts,
  async fn() {
    // Found by running the conformance suite: commits went without it and were refused (401).
    await withGateway(async ({ kv, fake, gateway }) => {
      const inA = tupleKeyOwnedBy((k) => fake.owner(k), "a");
      const inC = tupleKeyOwnedBy((k) => fake.owner(k), "c");
      fake.requests.length = 0;
      assert.ok((await kv.atomic().set(inA, 1).set(inC, 2).commit()).ok);
      await gateway.sweep();
      const commands = fake.requests.filter((r) =>
        ["/v1/txn/command", "/v1/kvc/prepare", "/v1/txn/records", "/v1/txn/held"].includes(r.path)
      );
      assert.ok(commands.length >= 4);
      for (const r of commands) {
        assert.equal(r.headers.get("authorization"), `Bearer secret-of-${r.cluster}`, r.path);
      }
    }, { gateway: { secretOf: (cluster) => `secret-of-${cluster}` } });
  },
});

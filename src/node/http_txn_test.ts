/**
 * The node's transaction endpoints on a real one-node cluster (driver, Raft, Deno.Kv log):
 * prepare and decide over HTTP, plain writes and reads that wait for a lock, the two rounds of
 * a snapshot read, and the checks of every body.
 */
import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { encodeTxnEntry, type KvMutation } from "../storage/mod.ts";
import type { TxnCommand } from "../txn/mod.ts";
import { DriverCluster } from "./_driver_test_util.ts";
import { createNodeApp } from "./http.ts";
import { LOCK_HEADERS } from "./_http_errors.ts";
import { TXN_CHECK_PATH, TXN_COMMAND_PATH, TXN_READ_PATH } from "./_http_txn.ts";
import { LOCK_WAIT_MS } from "./_txn_service.ts";
import { KVC_READ_ANSWER_BYTES_MAX, KVC_READ_PATH, KVC_VALUE_BYTES_MAX } from "./_http_kvc.ts";
import { AnswerBytes } from "../http/server.ts";
import { encodeSnapshotRead } from "../kv_connect/_datapath.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

type App = ReturnType<typeof createNodeApp>;

async function withNode(
  fn: (app: App, c: DriverCluster) => Promise<void>,
  answers?: AnswerBytes,
): Promise<void> {
  const c = await DriverCluster.create(["n1"]);
  const stop = c.autoTick();
  try {
    const node = await c.leader();
    await fn(createNodeApp({ service: node, ...(answers === undefined ? {} : { answers }) }), c);
  } finally {
    stop();
    await c.close();
  }
}

async function command(app: App, cmd: TxnCommand<KvMutation>): Promise<unknown> {
  const r = await app.request(TXN_COMMAND_PATH, {
    method: "POST",
    body: encodeTxnEntry({ at: 0, cmd }) as BodyInit,
  });
  assert.equal(r.status, 200, await r.clone().text());
  return decode(new Uint8Array(await r.arrayBuffer()));
}

async function post(app: App, path: string, body: unknown): Promise<Response> {
  return await app.request(path, { method: "POST", body: encode(body) as BodyInit });
}

const prepare = (txn: string, key: string, value: string): TxnCommand<KvMutation> => ({
  type: "prepare",
  txn,
  primary: "a",
  participants: ["a", "b"],
  checks: [],
  mutations: [{ type: "set", key: enc(key), value: enc(value) }],
  deadline: Date.now() + 60_000,
});

Deno.test("txn endpoints: a prepared key holds readers until the decision, which they then see", async () => {
  await withNode(async (app) => {
    const vote = await command(app, prepare("t1", "k", "v1")) as { vote: string; vs: number };
    assert.equal(vote.vote, "yes");
    // A linearizable read of the key waits for the lock...
    const read = Promise.resolve(app.request("/v1/kv/k"));
    let done = false;
    read.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(done, false, "the read waits while the key is locked");
    const decided = await command(app, { type: "commit", txn: "t1", after: vote.vs }) as {
      state: string;
      vs: number;
    };
    assert.equal(decided.state, "committed");
    assert.ok(decided.vs > vote.vs);
    // ...and then answers the committed value.
    const r = await read;
    assert.equal(r.status, 200);
    assert.equal(await r.text(), "v1");
  });
});

Deno.test("txn endpoints: a plain write on a locked key goes through once the lock goes", async () => {
  await withNode(async (app) => {
    await command(app, prepare("t1", "k", "v1"));
    const write = Promise.resolve(app.request("/v1/kv/k", { method: "PUT", body: "plain" }));
    await new Promise((r) => setTimeout(r, 50));
    await command(app, { type: "abort", txn: "t1", deadline: Date.now() + 60_000 });
    const r = await write;
    assert.equal(r.status, 200, await r.clone().text());
    assert.equal(await (await app.request("/v1/kv/k")).text(), "plain");
  });
});

Deno.test("txn endpoints: a lock that stays answers 409 locked with the lock in headers", async () => {
  await withNode(async (app) => {
    await command(app, prepare("t-stuck", "k", "v1"));
    const started = performance.now();
    const r = await app.request("/v1/kv/k", { method: "PUT", body: "plain" });
    assert.equal(r.status, 409);
    assert.equal((await r.json()).error.code, "locked");
    assert.ok(performance.now() - started >= LOCK_WAIT_MS - 50, "it waited first");
    assert.equal(r.headers.get(LOCK_HEADERS.txn), "t-stuck");
    assert.equal(r.headers.get(LOCK_HEADERS.primary), "a");
    assert.equal(atob(r.headers.get(LOCK_HEADERS.key)!), "k");
    assert.equal(r.headers.get(LOCK_HEADERS.write), "true");
  });
});

Deno.test("txn endpoints: a snapshot read's rounds: entries at an index, then changed or not since", async () => {
  await withNode(async (app) => {
    await app.request("/v1/kv/a", { method: "PUT", body: "1" });
    const range = [enc("a"), enc("z"), 10, false];
    const part = decode(
      new Uint8Array(await (await post(app, TXN_READ_PATH, [range])).arrayBuffer()),
    ) as {
      index: number;
      entries: [Uint8Array, Uint8Array, number, number][][];
    };
    assert.equal(part.entries[0].length, 1);
    assert.equal(dec(part.entries[0][0][0]), "a");
    assert.equal(dec(part.entries[0][0][1]), "1");
    const check = async () =>
      decode(
        new Uint8Array(
          await (await post(app, TXN_CHECK_PATH, [[[enc("a"), enc("z")]], part.index]))
            .arrayBuffer(),
        ),
      );
    assert.deepEqual(await check(), { valid: true });
    await app.request("/v1/kv/b", { method: "PUT", body: "2" });
    assert.deepEqual(await check(), { valid: false });
    // A write lock in the range: the first round names it.
    await command(app, prepare("t1", "c", "3"));
    const locked = decode(
      new Uint8Array(await (await post(app, TXN_READ_PATH, [range])).arrayBuffer()),
    ) as {
      lock: [Uint8Array, string, string, number, boolean];
    };
    assert.equal(dec(locked.lock[0]), "c");
    assert.equal(locked.lock[1], "t1");
  });
});

Deno.test("txn endpoints: malformed bodies are 400s and change nothing", async () => {
  await withNode(async (app) => {
    const bad = async (path: string, body: Uint8Array) => {
      const r = await app.request(path, { method: "POST", body: body as BodyInit });
      assert.equal(r.status, 400, `${path}: ${await r.clone().text()}`);
      return (await r.json()).error.message as string;
    };
    assert.match(await bad(TXN_COMMAND_PATH, new Uint8Array([1, 2, 3])), /not one/);
    assert.match(await bad(TXN_COMMAND_PATH, encode([4, 0, "t", 0])), /Invalid transaction/);
    assert.match(await bad(TXN_COMMAND_PATH, encode([4, 3, "bad id\n", 0])), /Invalid/);
    const sys = {
      ...prepare("t", "k", "v"),
      mutations: [{ type: "set", key: new Uint8Array([0xff]), value: enc("x") }],
    } as TxnCommand<KvMutation>;
    assert.match(await bad(TXN_COMMAND_PATH, encodeTxnEntry({ at: 0, cmd: sys })), /0xFF/);
    const big = {
      ...prepare("t", "k", "v"),
      mutations: [{ type: "set", key: enc("k"), value: new Uint8Array(70_000) }],
    } as TxnCommand<KvMutation>;
    assert.match(await bad(TXN_COMMAND_PATH, encodeTxnEntry({ at: 0, cmd: big })), /bytes/);
    assert.match(await bad(TXN_READ_PATH, encode([])), /1 to/);
    assert.match(await bad(TXN_READ_PATH, encode([[enc("a"), enc("b"), 0, false]])), /Range 0/);
    assert.match(await bad(TXN_READ_PATH, new Uint8Array([0xc1])), /not msgpack/);
    assert.match(await bad(TXN_CHECK_PATH, encode([[], 0])), /check is/);
    assert.match(await bad(TXN_CHECK_PATH, encode([[[enc("a")]], 0])), /Span 0/);
    const r = await app.request("/v1/kv/k");
    assert.equal(r.status, 404, "nothing was prepared");
  });
});

Deno.test("txn endpoints: /v1/kvc/prepare takes a share as an AtomicWrite; a versionstamped key only at the primary", async () => {
  const { encodeAtomicWrite } = await import("../kv_connect/_datapath.ts");
  await withNode(async (app) => {
    const m = (key: Uint8Array, type: number) => ({
      key,
      value: { data: enc("v"), encoding: 3 },
      mutationType: type,
      expireAtMs: 0n,
      sumMin: new Uint8Array(),
      sumMax: new Uint8Array(),
      sumClamp: false,
    });
    const body = encodeAtomicWrite({
      checks: [],
      mutations: [m(enc("plain"), 1), m(enc("log"), 9)],
      enqueues: 0,
    });
    const headers = (primary: string, txn: string) => ({
      "x-koi-txn": txn,
      "x-koi-txn-primary": primary,
      "x-koi-txn-participants": `${primary},zz`,
      "x-koi-txn-deadline": String(Date.now() + 60_000),
    });
    const elsewhere = await app.request("/v1/kvc/prepare", {
      method: "POST",
      headers: headers("zz", "t0"),
      body: body as BodyInit,
    });
    assert.equal(elsewhere.status, 400, "a secondary takes no versionstamped key");
    await elsewhere.body?.cancel();
    const r = await app.request("/v1/kvc/prepare", {
      method: "POST",
      headers: headers("a", "t1"),
      body: body as BodyInit,
    });
    assert.equal(r.status, 200, await r.clone().text());
    const vote = decode(new Uint8Array(await r.arrayBuffer())) as { vote: string; vs: number };
    assert.equal(vote.vote, "yes");
    const decided = await command(app, { type: "commit", txn: "t1", after: vote.vs }) as {
      vs: number;
    };
    const list = await (await app.request("/v1/kv?prefix=log")).json();
    assert.equal(list.items.length, 1);
    const { suffixedKey } = await import("../storage/mod.ts");
    assert.equal(list.items[0].key, new TextDecoder().decode(suffixedKey(enc("log"), decided.vs)));
  });
});

Deno.test("txn endpoints: the janitor's records and held questions", async () => {
  await withNode(async (app) => {
    await command(app, prepare("t1", "k", "v"));
    const held = await post(app, "/v1/txn/held", ["t1", "t2"]);
    assert.deepEqual(decode(new Uint8Array(await held.arrayBuffer())), [true, false]);
    const records = await post(app, "/v1/txn/records", [10]);
    assert.deepEqual(
      decode(new Uint8Array(await records.arrayBuffer())),
      // None past the grace; pending: no decision here, one intent whose primary is a, no
      // secondary named by a decision.
      { decisions: [], stale: [], pending: [0, ["a"], []] },
      "none past the grace",
    );
    for (const [path, body] of [["/v1/txn/held", []], ["/v1/txn/records", [0]]] as const) {
      const r = await post(app, path, body);
      assert.equal(r.status, 400);
      await r.body?.cancel();
    }
  });
});

Deno.test("txn endpoints: a deadline or a versionstamp far ahead is a 400, nothing proposed", async () => {
  // A forged prepare with a deadline days away would hold its locks until then (no one may
  // resolve it before), and a forged commit far ahead would push the cluster's versionstamps
  // to their end.
  await withNode(async (app) => {
    const send = async (cmd: TxnCommand<KvMutation>) => {
      const r = await app.request(TXN_COMMAND_PATH, {
        method: "POST",
        body: encodeTxnEntry({ at: 0, cmd }) as BodyInit,
      });
      const text = await r.text();
      return { status: r.status, text };
    };
    const far = { ...prepare("t1", "k", "v"), deadline: Date.now() + 3_600_000 };
    const p = await send(far as TxnCommand<KvMutation>);
    assert.equal(p.status, 400, p.text);
    assert.match(p.text, /deadline/);
    const c = await send({ type: "commit", txn: "t1", vs: Number.MAX_SAFE_INTEGER });
    assert.equal(c.status, 400, c.text);
    const a = await send({ type: "commit", txn: "t1", after: Number.MAX_SAFE_INTEGER });
    assert.equal(a.status, 400, a.text);
    const w = await app.request("/v1/kv/k", { method: "PUT", body: "plain" });
    assert.equal(w.status, 200, "no lock was taken");
    await w.body?.cancel();
  });
});

Deno.test("txn endpoints: with a secret, transaction commands need it (a forged abort breaks atomicity)", async () => {
  // Found by the attack: anyone could abort a secondary's intent after its primary committed.
  const c = await DriverCluster.create(["n1"]);
  const stop = c.autoTick();
  try {
    const app = createNodeApp({ service: await c.leader(), secret: "the-secret-0123456789" });
    const body = encodeTxnEntry({ at: 0, cmd: { type: "abort", txn: "t1", deadline: Date.now() } });
    const denied = await app.request(TXN_COMMAND_PATH, { method: "POST", body: body as BodyInit });
    assert.equal(denied.status, 401);
    await denied.body?.cancel();
    for (const path of ["/v1/kvc/prepare", "/v1/txn/records", "/v1/txn/held"]) {
      const r = await app.request(path, { method: "POST", body: encode([1]) as BodyInit });
      assert.equal(r.status, 401, path);
      await r.body?.cancel();
    }
    const allowed = await app.request(TXN_COMMAND_PATH, {
      method: "POST",
      headers: { authorization: "Bearer the-secret-0123456789" },
      body: body as BodyInit,
    });
    assert.equal(allowed.status, 200);
    await allowed.body?.cancel();
  } finally {
    stop();
    await c.close();
  }
});

Deno.test("txn endpoints: a prepare of a key this cluster does not own is refused (wrong_shard), nothing proposed", async () => {
  // Found by the attack: before any move, a prepare stored keys of other clusters here.
  const c = await DriverCluster.create(["n1"]);
  const stop = c.autoTick();
  try {
    const node = await c.leader();
    const service = new Proxy(node, {
      get(target, prop) {
        if (prop === "owns") return (key: Uint8Array) => dec(key) !== "foreign";
        if (prop === "owner") return () => "c";
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const app = createNodeApp({ service });
    const vote = await command(app, prepare("t1", "foreign", "v")) as {
      vote: string;
      refusal: { code: string; owner: string };
    };
    assert.equal(vote.vote, "no");
    assert.equal(vote.refusal.code, "wrong_shard");
    assert.equal(vote.refusal.owner, "c");
    assert.equal(
      await command(app, { type: "commit", txn: "t1", after: 0 }).then((a) =>
        (a as { state: string }).state
      ),
      "unknown",
      "never prepared",
    );
  } finally {
    stop();
    await c.close();
  }
});

/** Writes 24 values of the largest size under `big<i>`; the range that reads them all. */
async function putBigValues(app: App): Promise<unknown[]> {
  const value = new Uint8Array(KVC_VALUE_BYTES_MAX);
  for (let i = 0; i < 24; i++) {
    const r = await app.request(`/v1/kv/big${i}`, { method: "PUT", body: value });
    assert.equal(r.status, 200, await r.text());
  }
  return [enc("big"), enc("bih"), 1000, false];
}

Deno.test("txn endpoints: a snapshot read whose answer would exceed its byte limit is 413, nothing encoded", async () => {
  await withNode(async (app) => {
    // Found by the attack: one 1.3 KB request of 64 ranges over big values drove a leader to
    // gigabytes of memory.
    const range = await putBigValues(app);
    const ok = await post(app, TXN_READ_PATH, Array.from({ length: 8 }, () => range));
    assert.equal(ok.status, 200);
    const part = decode(new Uint8Array(await ok.arrayBuffer())) as { entries: unknown[][] };
    assert.deepEqual(part.entries.map((e) => e.length), Array(8).fill(24));
    const refused = await post(app, TXN_READ_PATH, Array.from({ length: 64 }, () => range));
    assert.equal(refused.status, 413);
    assert.match((await refused.json()).error.message, new RegExp(`${KVC_READ_ANSWER_BYTES_MAX}`));
  });
});

Deno.test("txn endpoints: a read answer that would pass the bound of answers not taken is 503 overloaded, before it is built", async () => {
  // Found by the attack: 32 such reads whose answers nobody read took a leader to 3.8 GB.
  const answers = new AnswerBytes(1 << 20);
  await withNode(async (app) => {
    const range = await putBigValues(app);
    // Nothing is held: one answer larger than the whole bound still goes.
    const first = await post(app, TXN_READ_PATH, [range]);
    assert.equal(first.status, 200);
    const held = answers.held;
    assert.ok(held > 24 * KVC_VALUE_BYTES_MAX && held < 2 * 24 * KVC_VALUE_BYTES_MAX, `${held}`);
    // Its client has not taken it (no server claimed it): the next large ones are refused.
    const again = await post(app, TXN_READ_PATH, [range]);
    assert.equal(again.status, 503);
    assert.equal(again.headers.get("retry-after"), "1");
    assert.equal((await again.json()).error.code, "overloaded");
    const kvc = await app.request(KVC_READ_PATH, {
      method: "POST",
      body: encodeSnapshotRead({
        ranges: [{ start: enc("big"), end: enc("bih"), limit: 1000, reverse: false }],
      }) as BodyInit,
    });
    assert.equal(kvc.status, 503);
    assert.equal(answers.held, held);
    assert.equal(answers.refused, 2);
    // A small answer still fits beside it.
    assert.equal((await app.request("/v1/kv/small", { method: "PUT", body: "s" })).status, 200);
    const small = await post(app, TXN_READ_PATH, [[enc("small"), enc("smallz"), 1, false]]);
    assert.equal(small.status, 200);
    // Once taken (the server claims the answer it sends), large reads go again.
    answers.claim(first);
    answers.claim(small);
    assert.equal(answers.held, 0);
    assert.equal((await post(app, TXN_READ_PATH, [range])).status, 200);
  }, answers);
});

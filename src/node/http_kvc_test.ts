/**
 * The node's KV Connect endpoints on a real one-node cluster (driver, Raft, Deno.Kv log):
 * atomic writes with versionstamps, checks, sum/min/max, suffixed keys, expiry through the log,
 * range reads, request ids and the limits.
 */
import assert from "node:assert/strict";
import {
  type AtomicWrite,
  AtomicWriteStatus,
  decodeAtomicWriteOutput,
  decodeSnapshotReadOutput,
  encodeAtomicWrite,
  encodeSnapshotRead,
  type Mutation,
  MutationType,
  type ReadRange,
  ValueEncoding,
} from "../kv_connect/_datapath.ts";
import { versionstampFromBytes, versionstampHex } from "../storage/mod.ts";
import { DriverCluster } from "./_driver_test_util.ts";
import { piecesOf } from "../http/_pieced.ts";
import { createNodeApp } from "./http.ts";
import {
  AFTER_VS_HEADER,
  KVC_CHECKS_MAX,
  KVC_KEY_BYTES_MAX,
  KVC_READ_ANSWER_BYTES_MAX,
  KVC_READ_PATH,
  KVC_VALUE_BYTES_MAX,
  KVC_WRITE_PATH,
  REQUEST_ID_HEADER,
} from "./_http_kvc.ts";
import { VERSIONSTAMP_AFTER_AHEAD_MS_MAX } from "./_versionstamp_clock.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function u64(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n, true);
  return b;
}

function mutation(type: number, key: string | Uint8Array, value?: Uint8Array, encoding = 1) {
  return {
    key: typeof key === "string" ? enc(key) : key,
    value: value === undefined ? undefined : { data: value, encoding },
    mutationType: type,
    expireAtMs: 0n,
    sumMin: new Uint8Array(0),
    sumMax: new Uint8Array(0),
    sumClamp: false,
  } satisfies Mutation;
}

async function withNode(
  fn: (ctx: {
    c: DriverCluster;
    write: (w: Partial<AtomicWrite>, headers?: Record<string, string>) => Promise<Response>;
    read: (ranges: ReadRange[]) => Promise<Response>;
  }) => Promise<void>,
): Promise<void> {
  const c = await DriverCluster.create(["n1"]);
  const stop = c.autoTick();
  try {
    const node = await c.leader();
    const app = createNodeApp({ service: node });
    const write = async (w: Partial<AtomicWrite>, headers: Record<string, string> = {}) =>
      await app.request(KVC_WRITE_PATH, {
        method: "POST",
        headers,
        body: withEnqueues(
          encodeAtomicWrite({ checks: [], mutations: [], enqueues: 0, ...w }),
          w.enqueues ?? 0,
        ) as BodyInit,
      });
    const read = async (ranges: ReadRange[]) =>
      await app.request(KVC_READ_PATH, {
        method: "POST",
        body: encodeSnapshotRead({ ranges }) as BodyInit,
      });
    await fn({ c, write, read });
  } finally {
    stop();
    await c.close();
  }
}

/** Appends `n` empty `enqueues` fields (field 3, length-delimited): the codec writes none. */
function withEnqueues(body: Uint8Array, n: number): Uint8Array {
  return new Uint8Array([...body, ...Array.from({ length: n }, () => [0x1a, 0x00]).flat()]);
}

const point = (key: string): ReadRange => ({
  start: enc(key),
  end: new Uint8Array([...enc(key), 0]),
  limit: 1,
  reverse: false,
});

async function ok(r: Response) {
  assert.equal(r.status, 200, await r.clone().text());
  return decodeAtomicWriteOutput(new Uint8Array(await r.arrayBuffer()));
}

async function entries(r: Response) {
  assert.equal(r.status, 200, await r.clone().text());
  return decodeSnapshotReadOutput(new Uint8Array(await r.arrayBuffer())).ranges.map((x) =>
    x.values
  );
}

Deno.test("kvc: an atomic write gets one versionstamp, read back with each key's encoding", async () => {
  await withNode(async ({ write, read }) => {
    const first = await ok(
      await write({
        mutations: [
          mutation(MutationType.SET, "a", enc("v8-bytes")),
          mutation(MutationType.SET, "n", u64(41n), ValueEncoding.LE64),
        ],
      }),
    );
    assert.equal(first.status, AtomicWriteStatus.SUCCESS);
    const second = await ok(
      await write({ mutations: [mutation(MutationType.SUM, "n", u64(1n), ValueEncoding.LE64)] }),
    );
    assert.ok(
      versionstampFromBytes(second.versionstamp)! > versionstampFromBytes(first.versionstamp)!,
    );
    const [[a], [n]] = await entries(await read([point("a"), point("n")]));
    assert.deepEqual(a.value, enc("v8-bytes"));
    assert.equal(a.encoding, ValueEncoding.V8);
    assert.deepEqual(a.versionstamp, first.versionstamp);
    assert.deepEqual(n.value, u64(42n));
    assert.equal(n.encoding, ValueEncoding.LE64);
    assert.deepEqual(n.versionstamp, second.versionstamp);
  });
});

Deno.test("kvc: checks by versionstamp gate the whole write", async () => {
  await withNode(async ({ write, read }) => {
    const w = await ok(await write({ mutations: [mutation(MutationType.SET, "k", enc("1"))] }));
    const stale = await ok(
      await write({
        checks: [{ key: enc("k"), versionstamp: new Uint8Array(10) }],
        mutations: [mutation(MutationType.SET, "other", enc("x"))],
      }),
    );
    assert.equal(stale.status, AtomicWriteStatus.CHECK_FAILURE);
    assert.deepEqual(stale.failedChecks, [0]);
    const absent = await ok(
      await write({
        checks: [{ key: enc("k"), versionstamp: new Uint8Array(0) }],
        mutations: [mutation(MutationType.SET, "other", enc("x"))],
      }),
    );
    assert.equal(absent.status, AtomicWriteStatus.CHECK_FAILURE, "k exists");
    assert.deepEqual(await entries(await read([point("other")])), [[]], "nothing applied");
    const fresh = await ok(
      await write({
        checks: [{ key: enc("k"), versionstamp: w.versionstamp }, {
          key: enc("other"),
          versionstamp: new Uint8Array(0),
        }],
        mutations: [mutation(MutationType.SET, "other", enc("x"))],
      }),
    );
    assert.equal(fresh.status, AtomicWriteStatus.SUCCESS);
  });
});

Deno.test("kvc: a sum on a value that is not a u64 is a 400 and applies nothing", async () => {
  await withNode(async ({ write, read }) => {
    await ok(await write({ mutations: [mutation(MutationType.SET, "s", enc("text"))] }));
    const r = await write({
      mutations: [
        mutation(MutationType.SET, "side", enc("x")),
        mutation(MutationType.SUM, "s", u64(1n), ValueEncoding.LE64),
      ],
    });
    assert.equal(r.status, 400);
    assert.match((await r.json()).error.message, /Mutation 1: .*non-U64/);
    assert.deepEqual(await entries(await read([point("side")])), [[]]);
    const badOperand = await write({ mutations: [mutation(MutationType.MAX, "n", enc("x"))] });
    assert.equal(badOperand.status, 400);
    await badOperand.body?.cancel();
  });
});

Deno.test("kvc: a suffixed key ends with the commit's versionstamp as a tuple string part", async () => {
  await withNode(async ({ write, read }) => {
    const prefix = new Uint8Array([0x02, ...enc("log"), 0x00]);
    const out = await ok(
      await write({
        mutations: [mutation(MutationType.SET_SUFFIX_VERSIONSTAMPED_KEY, prefix, enc("e"))],
      }),
    );
    const vs = versionstampFromBytes(out.versionstamp)!;
    const key = new Uint8Array([...prefix, 0x02, ...enc(versionstampHex(vs)), 0x00]);
    const [[e]] = await entries(
      await read([{
        start: prefix,
        end: new Uint8Array([...prefix, 0xff]),
        limit: 10,
        reverse: false,
      }]),
    );
    assert.deepEqual(e.key, key);
    assert.deepEqual(e.versionstamp, out.versionstamp);
  });
});

Deno.test("kvc: ranges honour reverse and limit, and never reach koi's own records", async () => {
  await withNode(async ({ write, read }) => {
    await ok(
      await write({
        mutations: ["a", "b", "c", "d"].map((k) => mutation(MutationType.SET, k, enc(k))),
      }),
    );
    const all = {
      start: new Uint8Array([0]),
      end: new Uint8Array([0xff, 0xff]),
      limit: 100,
      reverse: false,
    };
    const [forward, back] = await entries(
      await read([all, { start: enc("a"), end: enc("d"), limit: 2, reverse: true }]),
    );
    const names = (xs: { key: Uint8Array }[]) => xs.map((x) => new TextDecoder().decode(x.key));
    // The node holds an incarnation record under 0xFF: the whole-keyspace range leaves it out.
    assert.deepEqual(names(forward), ["a", "b", "c", "d"]);
    assert.deepEqual(names(back), ["c", "b"]);
    const bad = await read([{ ...all, limit: 0 }]);
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  });
});

Deno.test("kvc: a request id makes a retried sum apply once; x-koi-after-vs raises the versionstamp", async () => {
  await withNode(async ({ c, write, read }) => {
    const sum = { mutations: [mutation(MutationType.SUM, "n", u64(5n), ValueEncoding.LE64)] };
    const first = await ok(await write(sum, { [REQUEST_ID_HEADER]: "gw:1" }));
    const again = await ok(await write(sum, { [REQUEST_ID_HEADER]: "gw:1" }));
    assert.deepEqual(again.versionstamp, first.versionstamp);
    const [[n]] = await entries(await read([point("n")]));
    assert.deepEqual(n.value, u64(5n), "applied once");
    const after = versionstampFromBytes(first.versionstamp)! + 1_000_000;
    const raised = await ok(await write(sum, { [AFTER_VS_HEADER]: String(after) }));
    assert.ok(versionstampFromBytes(raised.versionstamp)! > after);
    const farAhead = (c.wall.ms + VERSIONSTAMP_AFTER_AHEAD_MS_MAX + 1000) * 1024;
    const refused = await write(sum, { [AFTER_VS_HEADER]: String(farAhead) });
    assert.equal(refused.status, 400, "a forged floor cannot use up the versionstamps");
    await refused.body?.cancel();
  });
});

Deno.test("kvc: limits and queues are refused with 400", async () => {
  await withNode(async ({ write }) => {
    const cases: Partial<AtomicWrite>[] = [
      { enqueues: 1 },
      {
        checks: Array.from({ length: KVC_CHECKS_MAX + 1 }, (_, i) => ({
          key: enc(`k${i}`),
          versionstamp: new Uint8Array(0),
        })),
      },
      { mutations: [mutation(MutationType.SET, "big", new Uint8Array(KVC_VALUE_BYTES_MAX + 1))] },
      { mutations: [mutation(MutationType.SET, new Uint8Array([0xff, 1]), enc("x"))] },
      { mutations: [mutation(42, "k", enc("x"))] },
      // Found by the attack: an empty key broke every Deno client's list over the keyspace.
      { mutations: [mutation(MutationType.SET, new Uint8Array(0), enc("x"))] },
      // Keys are Deno's 2048 bytes at most, a versionstamped key's prefix too.
      {
        mutations: [
          mutation(MutationType.SET, new Uint8Array(KVC_KEY_BYTES_MAX + 1).fill(0x61), enc("x")),
        ],
      },
      {
        mutations: [
          mutation(
            MutationType.SET_SUFFIX_VERSIONSTAMPED_KEY,
            new Uint8Array(KVC_KEY_BYTES_MAX + 1).fill(0x61),
            enc("x"),
          ),
        ],
      },
      { checks: [{ key: enc("k"), versionstamp: new Uint8Array(3) }] },
    ];
    for (const w of cases) {
      const r = await write(w);
      assert.equal(r.status, 400, JSON.stringify(Object.keys(w)));
      await r.body?.cancel();
    }
    const max = await write({
      mutations: [
        mutation(MutationType.SET, "max", new Uint8Array(KVC_VALUE_BYTES_MAX)),
        mutation(MutationType.SET, new Uint8Array(KVC_KEY_BYTES_MAX).fill(0x61), enc("x")),
      ],
    });
    assert.equal(max.status, 200, "Deno's own limit fits");
    await max.body?.cancel();
  });
});

Deno.test("kvc: a list by the longest key and a read of a versionstamped key of the longest prefix are served", async () => {
  // Found by the attack: a list by a 2048-byte key (it starts at key + 0x00, 2049 bytes)
  // was refused, and so was a read of a versionstamped key of a 2048-byte prefix.
  await withNode(async ({ write, read }) => {
    const longest = new Uint8Array(KVC_KEY_BYTES_MAX).fill(0x61);
    const w = await write({
      mutations: [mutation(MutationType.SET_SUFFIX_VERSIONSTAMPED_KEY, longest, enc("x"))],
    });
    assert.equal(w.status, 200);
    await w.body?.cancel();
    const list = await read([{
      start: Uint8Array.of(...longest, 0),
      end: Uint8Array.of(...longest, 0xff),
      limit: 10,
      reverse: false,
    }]);
    assert.equal(list.status, 200, await list.clone().text());
    const out = decodeSnapshotReadOutput(new Uint8Array(await list.arrayBuffer()));
    assert.equal(out.ranges[0].values.length, 1);
    const key = out.ranges[0].values[0].key;
    assert.equal(key.length, KVC_KEY_BYTES_MAX + 22);
    const point = await read([{
      start: key,
      end: Uint8Array.of(...key, 0),
      limit: 1,
      reverse: false,
    }]);
    assert.equal(point.status, 200, await point.clone().text());
    await point.body?.cancel();
    const tooLong = await read([{
      start: new Uint8Array(KVC_KEY_BYTES_MAX + 24),
      end: new Uint8Array(KVC_KEY_BYTES_MAX + 25),
      limit: 1,
      reverse: false,
    }]);
    assert.equal(tooLong.status, 400);
    await tooLong.body?.cancel();
  });
});

Deno.test("kvc: an expired key is deleted through the log once its time has passed", async () => {
  await withNode(async ({ c, write, read }) => {
    const m = {
      ...mutation(MutationType.SET, "ttl", enc("x")),
      expireAtMs: BigInt(c.wall.ms + 1000),
    };
    const keep = {
      ...mutation(MutationType.SET, "later", enc("y")),
      expireAtMs: BigInt(c.wall.ms + 60_000),
    };
    await ok(await write({ mutations: [m, keep] }));
    assert.equal((await entries(await read([point("ttl")])))[0].length, 1, "not yet expired");
    c.wall.ms += 1500;
    let gone = false;
    const deadline = Date.now() + 5_000;
    while (!gone && Date.now() < deadline) {
      gone = (await entries(await read([point("ttl")])))[0].length === 0;
      if (!gone) await c.tick();
    }
    assert.ok(gone, "the leader proposed the deletion");
    assert.equal((await entries(await read([point("later")])))[0].length, 1, "not the other one");
  });
});

Deno.test("kvc: a read whose answer would exceed its byte limit is 413 before anything is encoded", async () => {
  await withNode(async ({ write, read }) => {
    // 24 keys of 64 KiB values. Found by the attack: 64 ranges over such keys, each up to
    // 1,000 entries, made a leader encode gigabytes and lose its leadership.
    for (let i = 0; i < 24; i++) {
      const r = await write({
        mutations: [mutation(MutationType.SET, `big${i}`, new Uint8Array(KVC_VALUE_BYTES_MAX))],
      });
      assert.equal(r.status, 200);
      await r.body?.cancel();
    }
    const range: ReadRange = { start: enc("big"), end: enc("bih"), limit: 1000, reverse: false };
    const ok = await read(Array.from({ length: 8 }, () => range)); // 12 MiB
    assert.equal(ok.status, 200);
    // Large: in pieces, its values never copied into one buffer on the event loop.
    assert.notEqual(piecesOf(ok), undefined);
    const out = decodeSnapshotReadOutput(new Uint8Array(await ok.arrayBuffer()));
    assert.deepEqual(out.ranges.map((r) => r.values.length), Array(8).fill(24));
    const refused = await read(Array.from({ length: 64 }, () => range)); // 96 MiB
    assert.equal(refused.status, 413);
    const body = await refused.json();
    assert.equal(body.error.code, "too_large");
    assert.match(body.error.message, new RegExp(`more than ${KVC_READ_ANSWER_BYTES_MAX}`));
  });
});

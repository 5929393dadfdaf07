/**
 * The KV Connect endpoint driven by Deno's own client: `Deno.openKv(url)` against a
 * `Deno.serve` listener on 127.0.0.1 running the handler over an in-memory backend.
 */
import assert from "node:assert/strict";
import {
  encodeAtomicWrite,
  encodeSnapshotRead,
  type KvEntry,
  type ReadRange,
  ValueEncoding,
} from "./_datapath.ts";
import { KvConnectError } from "./_errors.ts";
import { type KvConnectBackend, kvConnectHandler, type KvConnectOptions } from "./_handler.ts";

/** The tuple encoding of a key of strings (type byte 0x02, UTF-8, 0x00; no 0x00 inside). */
function tupleKey(...parts: string[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) out.push(0x02, ...new TextEncoder().encode(p), 0x00);
  return new Uint8Array(out);
}

function compare(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** A read-only backend over `entries` (writes and watches: the gateway's tests). */
function memoryBackend(entries: KvEntry[]): KvConnectBackend {
  const sorted = [...entries].sort((x, y) => compare(x.key, y.key));
  return {
    read: (ranges: readonly ReadRange[]) =>
      Promise.resolve(ranges.map((r) => {
        const hit = sorted.filter((e) => compare(e.key, r.start) >= 0 && compare(e.key, r.end) < 0);
        if (r.reverse) hit.reverse();
        return hit.slice(0, r.limit);
      })),
    write: () => Promise.reject(new KvConnectError(400, "This test backend is read-only")),
    watch: () => {
      throw new KvConnectError(400, "This test backend does not watch");
    },
  };
}

const stamp = (n: number) => Uint8Array.from({ length: 10 }, (_, i) => (i === 9 ? n : 0));
const bytes = (s: string) => new TextEncoder().encode(s);

async function withEndpoint(
  entries: KvEntry[],
  fn: (url: string) => Promise<void>,
  options: Partial<KvConnectOptions> & { backend?: KvConnectBackend } = {},
): Promise<void> {
  const handler = kvConnectHandler(options.backend ?? memoryBackend(entries), {
    accessTokens: ["the-access-token-0123456789"],
    databaseId: "6f1c2f6e-4c1b-4a51-9d8e-3f1a2b3c4d5e",
    basePath: "/kv",
    ...options,
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => (await handler(req)) ?? new Response("not found", { status: 404 }),
  );
  try {
    await fn(`http://127.0.0.1:${server.addr.port}/kv`);
  } finally {
    await server.shutdown();
  }
}

Deno.test({
  name:
    "kv connect: Deno.openKv(url) reads through the endpoint (get, getMany, list, reverse, limit)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const entries: KvEntry[] = ["ada", "bob", "cy"].map((name, i) => ({
      key: tupleKey("users", name),
      value: bytes(`${name}!`),
      encoding: ValueEncoding.BYTES,
      versionstamp: stamp(i + 1),
    }));
    entries.push({
      key: tupleKey("count"),
      value: new Uint8Array([42, 0, 0, 0, 0, 0, 0, 0]),
      encoding: ValueEncoding.LE64,
      versionstamp: stamp(9),
    });
    Deno.env.set("DENO_KV_ACCESS_TOKEN", "the-access-token-0123456789");
    await withEndpoint(entries, async (url) => {
      const kv = await Deno.openKv(url);
      try {
        const ada = await kv.get<Uint8Array>(["users", "ada"]);
        assert.deepEqual(ada.value, bytes("ada!"));
        assert.equal(ada.versionstamp, "00000000000000000001");
        assert.equal((await kv.get(["users", "zed"])).value, null);
        const count = await kv.get<Deno.KvU64>(["count"]);
        assert.equal(count.value?.value, 42n);
        const many = await kv.getMany<Uint8Array[]>([["users", "cy"], ["nope"]]);
        assert.deepEqual(many.map((e) => e.value), [bytes("cy!"), null]);
        const names = [];
        for await (const e of kv.list({ prefix: ["users"] })) names.push(e.key[1]);
        assert.deepEqual(names, ["ada", "bob", "cy"]);
        const last = [];
        for await (const e of kv.list({ prefix: ["users"] }, { reverse: true, limit: 2 })) {
          last.push(e.key[1]);
        }
        assert.deepEqual(last, ["cy", "bob"]);
        // The backend's refusal reaches the caller with its message.
        await assert.rejects(kv.set(["users", "dee"], bytes("x")), /status=400.*read-only/);
      } finally {
        kv.close();
      }
    });
  },
});

Deno.test({
  name: "kv connect: a wrong access token is refused (401), and so is a forged data token",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withEndpoint([], async (url) => {
      const meta = await fetch(url, {
        method: "POST",
        headers: { authorization: "Bearer wrong", "content-type": "application/json" },
        body: JSON.stringify({ supportedVersions: [1, 2, 3] }),
      });
      assert.equal(meta.status, 401);
      await meta.body?.cancel();
      const ok = await fetch(url, {
        method: "POST",
        headers: { authorization: "Bearer the-access-token-0123456789" },
        body: JSON.stringify({ supportedVersions: [1, 2, 3] }),
      });
      const m = await ok.json();
      assert.equal(m.version, 3);
      assert.equal(m.endpoints[0].url, "/kv/v3");
      assert.ok(!m.endpoints[0].url.endsWith("/"));
      const forged = await fetch(`${url}/v3/snapshot_read`, {
        method: "POST",
        headers: { authorization: "Bearer forged", "x-denokv-database-id": m.databaseId },
        body: new Uint8Array(),
      });
      assert.equal(forged.status, 401);
      await forged.body?.cancel();
      const garbage = await fetch(`${url}/v3/snapshot_read`, {
        method: "POST",
        headers: { authorization: `Bearer ${m.token}`, "x-denokv-database-id": m.databaseId },
        body: new Uint8Array([0x0a, 0x09, 0x01]),
      });
      assert.equal(garbage.status, 400);
      await garbage.body?.cancel();
      const old = await fetch(url, {
        method: "POST",
        headers: { authorization: "Bearer the-access-token-0123456789" },
        body: JSON.stringify({ supportedVersions: [1] }),
      });
      assert.equal(old.status, 400);
      await old.body?.cancel();
      // A body over the limit, streamed without a declared length: refused, not buffered.
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent++ === 32) c.close(); // 2 MiB in all
          else c.enqueue(new Uint8Array(64 * 1024));
        },
      });
      const big = await fetch(`${url}/v3/snapshot_read`, {
        method: "POST",
        headers: { authorization: `Bearer ${m.token}`, "x-denokv-database-id": m.databaseId },
        body: stream,
      });
      assert.equal(big.status, 413);
      await big.body?.cancel();
    });
  },
});

/** The data-path headers after a metadata exchange with `url`. */
async function dataHeaders(url: string, token = "the-access-token-0123456789") {
  const m = await (await fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body: JSON.stringify({ supportedVersions: [3] }),
  })).json();
  return { authorization: `Bearer ${m.token}`, "x-denokv-database-id": m.databaseId };
}

/** A `snapshot_read` body of one range of `limit` entries. */
function read(limit: number): Uint8Array<ArrayBuffer> {
  return encodeSnapshotRead({
    ranges: [{ start: new Uint8Array([1]), end: new Uint8Array([2]), limit, reverse: false }],
  }) as Uint8Array<ArrayBuffer>;
}

async function post(url: string, headers: Record<string, string>, body: BodyInit) {
  const res = await fetch(url, { method: "POST", headers, body });
  return { status: res.status, text: await res.text() };
}

Deno.test({
  name: "kv connect: data tokens outlive a restart, die with their access token and expiry",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    let headers: Record<string, string> = {};
    await withEndpoint([], async (url) => {
      headers = await dataHeaders(url);
    });
    const read = encodeSnapshotRead({
      ranges: [{ start: new Uint8Array([1]), end: new Uint8Array([2]), limit: 1, reverse: false }],
    }) as Uint8Array<ArrayBuffer>;
    // Another endpoint (the admin restarted) with the same access token: still valid.
    await withEndpoint([], async (url) => {
      assert.equal((await post(`${url}/v3/snapshot_read`, headers, read)).status, 200);
    });
    // The access token is no longer configured: its data tokens stop at once.
    await withEndpoint([], async (url) => {
      const old = await post(`${url}/v3/snapshot_read`, headers, read);
      assert.equal(old.status, 401);
    }, { accessTokens: ["another-access-token-0123456789"] });
    // An hour later (the token's lifetime): expired.
    await withEndpoint([], async (url) => {
      assert.equal((await post(`${url}/v3/snapshot_read`, headers, read)).status, 401);
    }, { now: () => Date.now() + 3_600_001 });
  },
});

Deno.test({
  name: "kv connect: a read's limits (ranges, entries), unknown operations, enqueues",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withEndpoint([], async (url) => {
      const headers = await dataHeaders(url);
      const range = {
        start: new Uint8Array([1]),
        end: new Uint8Array([2]),
        limit: 1,
        reverse: false,
      };
      const read = (ranges: ReadRange[]) =>
        post(`${url}/v3/snapshot_read`, headers, encodeSnapshotRead({ ranges }) as BodyInit);
      assert.equal((await read(Array(64).fill(range))).status, 200);
      const many = await read(Array(65).fill(range));
      assert.deepEqual(many, { status: 400, text: "At most 64 ranges per read" });
      assert.equal((await read([{ ...range, limit: 1000 }])).status, 200);
      const over = await read([{ ...range, limit: 600 }, { ...range, limit: 401 }]);
      assert.equal(over.status, 400);
      assert.match(over.text, /at most 1000 in all, got 600 \+ 401/);
      assert.equal((await read([{ ...range, limit: 0 }])).status, 400);
      const unknown = await post(`${url}/v3/dequeue`, headers, new Uint8Array());
      assert.deepEqual(unknown, { status: 404, text: "No KV Connect operation dequeue" });
      // An AtomicWrite with one (empty) Enqueue, field 3: refused before the backend.
      const write = Uint8Array.of(
        ...encodeAtomicWrite({ checks: [], mutations: [], enqueues: 0 }),
        0x1a,
        0x00,
      );
      const queued = await post(`${url}/v3/atomic_write`, headers, write);
      assert.equal(queued.status, 400);
      assert.match(
        queued.text,
        /Queues are not supported: enqueue and listenQueue are not part of KV Connect/,
      );
    });
  },
});

Deno.test({
  name: "kv connect: a backend's refusal keeps its status; a bug is a 500, reported",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const reported: string[] = [];
    let fail: Error = new KvConnectError(503, "No leader in cluster b");
    const backend = {
      ...memoryBackend([]),
      read: () => Promise.reject(fail),
    };
    await withEndpoint([], async (url) => {
      const headers = await dataHeaders(url);
      const body = encodeSnapshotRead({
        ranges: [{
          start: new Uint8Array([1]),
          end: new Uint8Array([2]),
          limit: 1,
          reverse: false,
        }],
      }) as BodyInit;
      assert.deepEqual(await post(`${url}/v3/snapshot_read`, headers, body), {
        status: 503,
        text: "No leader in cluster b",
      });
      fail = new TypeError("undefined is not a function");
      const bug = await post(`${url}/v3/snapshot_read`, headers, body);
      assert.equal(bug.status, 500);
      assert.deepEqual(reported, ["KV Connect snapshot_read failed"]);
    }, { backend, onError: (message) => reported.push(message) });
  },
});

Deno.test({
  name:
    "kv connect: a read of many entries reserves at most 16 MiB up front: two such reads are built at once",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Found by the attack: a list with batchSize 1000 reserved 135 MB, so a second one got 503
    // anywhere in the gateway, whatever the size of the values.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered = 0;
    const slow: KvConnectBackend = {
      ...memoryBackend([]),
      read: async (ranges) => {
        entered++;
        await gate;
        return ranges.map(() => []);
      },
    };
    await withEndpoint([], async (url) => {
      const headers = await dataHeaders(url);
      const first = post(`${url}/v3/snapshot_read`, headers, read(1000));
      const second = post(`${url}/v3/snapshot_read`, headers, read(1000));
      const both = Promise.all([first, second]);
      const end = Date.now() + 5_000;
      try {
        while (entered < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
        assert.equal(entered, 2, "both reads are being built");
      } finally {
        release();
      }
      assert.deepEqual((await both).map((r) => r.status), [200, 200]);
    }, { backend: slow, readBuildBytesMax: 40 * 1024 * 1024 });
  },
});

Deno.test({
  name: "kv connect: reads being built are bounded in bytes; one more is a 503 at once",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Found by the attack: clients that never read their answers had the admin build answers
    // without bound (5.3 GB).
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const reading = new Promise<void>((r) => (entered = r));
    const slow: KvConnectBackend = {
      ...memoryBackend([]),
      read: async (ranges) => {
        entered();
        await gate;
        return ranges.map(() => []);
      },
    };
    const entry = 2070 + 65_536 + 64;
    await withEndpoint([], async (url) => {
      const headers = await dataHeaders(url);
      const first = post(`${url}/v3/snapshot_read`, headers, read(2)); // reserves 4 entries
      await reading;
      const second = await post(`${url}/v3/snapshot_read`, headers, read(1)); // 2 more: over
      assert.equal(second.status, 503);
      assert.match(second.text, /Busy: the reads being built/);
      release();
      assert.equal((await first).status, 200);
      assert.equal((await post(`${url}/v3/snapshot_read`, headers, read(1))).status, 200);
    }, { backend: slow, readBuildBytesMax: 5 * entry });
  },
});

Deno.test({
  name:
    "kv connect: answers larger than Deno's values take room as they come; none left is a 503, more than the bound is a 400",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Found by the attack: values written through koi's own API reach 1 MiB, 16 times what a
    // read reserved per entry, and the gateway held 996 MB of answers for a 256 MiB bound.
    const entry = 2070 + 65_536 + 64;
    const max = 100 * entry;
    let release!: () => void;
    let gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    let reading = new Promise<void>((r) => (entered = r));
    /** Each read's nodes answer `answer` bytes: the room takes them before the read waits. */
    let answer = 30 * entry;
    const refusals: string[] = [];
    const big: KvConnectBackend = {
      ...memoryBackend([]),
      read: async (ranges, _signal, room) => {
        const refusal = room?.take(answer);
        if (refusal !== undefined) {
          refusals.push(refusal);
          throw new KvConnectError(503, refusal);
        }
        entered();
        await gate;
        return ranges.map(() => []);
      },
    };
    await withEndpoint([], async (url) => {
      const headers = await dataHeaders(url);
      // One entry reserves 2 up front; its answer takes 60 (twice 30: the merged answer too).
      const first = post(`${url}/v3/snapshot_read`, headers, read(1));
      await reading;
      const second = await post(`${url}/v3/snapshot_read`, headers, read(1)); // 60 more: over
      assert.equal(second.status, 503);
      assert.match(second.text, /Busy: the reads being built take/);
      release();
      assert.equal((await first).status, 200);
      // All given back: the same read fits again.
      gate = new Promise<void>((r) => (release = r));
      reading = new Promise<void>((r) => (entered = r));
      const again = post(`${url}/v3/snapshot_read`, headers, read(1));
      await reading;
      release();
      assert.equal((await again).status, 200);
      // An answer that could not fit even alone: a 400 (Deno's client would retry a 503).
      answer = 51 * entry;
      const alone = await post(`${url}/v3/snapshot_read`, headers, read(1));
      assert.equal(alone.status, 400);
      assert.match(alone.text, /read fewer entries at once/);
      assert.equal(refusals.length, 2);
    }, { backend: big, readBuildBytesMax: max });
  },
});

Deno.test({
  name:
    "kv connect: a read that failed gives back its bytes once; what its requests bring later does not count",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Found by the attack: a read failed by one cluster (or its client gone) released its
    // reservation while its other clusters' answers still came and took room, never given
    // back; after one flood the gateway refused every large read until restarted.
    const entry = 2070 + 65_536 + 64;
    const late: Promise<void>[] = [];
    let failing = true;
    const backend: KvConnectBackend = {
      ...memoryBackend([]),
      read: (ranges, _signal, room) => {
        if (!failing) {
          const refusal = room?.take(40 * entry);
          if (refusal !== undefined) return Promise.reject(new KvConnectError(503, refusal));
          return Promise.resolve(ranges.map(() => []));
        }
        // One cluster fails at once; another's answer arrives after the read has failed.
        late.push(new Promise((r) => setTimeout(r, 20)).then(() => void room?.take(40 * entry)));
        return Promise.reject(new KvConnectError(503, "cluster b unavailable"));
      },
    };
    await withEndpoint([], async (url) => {
      const headers = await dataHeaders(url);
      for (let i = 0; i < 3; i++) {
        assert.equal((await post(`${url}/v3/snapshot_read`, headers, read(1))).status, 503);
      }
      await Promise.all(late);
      // Nothing is being built: a read that needs 80 of the 100 entries' room fits.
      failing = false;
      const ok = await post(`${url}/v3/snapshot_read`, headers, read(1));
      assert.equal(ok.status, 200, ok.text);
    }, { backend, readBuildBytesMax: 100 * entry });
  },
});

/**
 * Watches: Deno's own `kv.watch()` through the gateway (first frame, changes, deletes,
 * cancellation), the stream's framing and keep-alives as bytes, and the polling hub's bounds
 * and rounds with a scripted reader.
 */
import assert from "node:assert/strict";
import { waitFor } from "../client/_fake_test_util.ts";
import { tupleKey, tupleKeyOwnedBy } from "./_fake_kvc_test_util.ts";
import { TEST_DATABASE_ID, TEST_TOKEN, withGateway } from "./_gateway_test_util.ts";
import type { KvEntry, ReadRange } from "./_datapath.ts";
import { KvConnectError } from "./_errors.ts";
import { WatchHub } from "./_watch_hub.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** The next value of `reader`, or a failure after `ms`. */
async function next<T>(reader: ReadableStreamDefaultReader<T>, ms = 3_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no watch event within ${ms} ms`)), ms);
  });
  try {
    const { value, done } = await Promise.race([reader.read(), late]);
    assert.ok(!done, "the watch ended");
    return value;
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name: "watch: Deno's kv.watch() sees the current entries, then each change, across clusters",
  ...opts,
  async fn() {
    await withGateway(async ({ kv, fake, gateway }) => {
      const owner = (k: Uint8Array) => fake.owner(k);
      const inA = tupleKeyOwnedBy(owner, "a");
      const inB = tupleKeyOwnedBy(owner, "b");
      await kv.set(inA, "first");
      const reader = kv.watch([inA, inB]).getReader();
      const values = (entries: Deno.KvEntryMaybe<unknown>[]) => entries.map((e) => e.value);
      assert.deepEqual(values(await next(reader)), ["first", null]);
      await kv.set(["unrelated"], 1); // no event of its own
      await kv.set(inB, "b!");
      assert.deepEqual(values(await next(reader)), ["first", "b!"]);
      await kv.delete(inA);
      const gone = await next(reader);
      assert.deepEqual(values(gone), [null, "b!"]);
      assert.equal(gone[0].versionstamp, null);
      await kv.set(inA, "again");
      assert.deepEqual(values(await next(reader)), ["again", "b!"]);
      assert.equal(gateway.watches, 1);
      await reader.cancel();
      // The client went away: the stream is cancelled and the watch closed.
      await waitFor(() => gateway.watches === 0, "the watch to close");
    });
  },
});

/** The encoding of a `Watch` of `keys` (field 1: WatchKey { field 1: key }). */
function watchBody(keys: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out: number[] = [];
  for (const key of keys) out.push(0x0a, key.length + 2, 0x0a, key.length, ...key);
  return new Uint8Array(out);
}

Deno.test({
  name: "watch: frames are u32-LE length + WatchOutput; an empty frame is a keep-alive",
  ...opts,
  async fn() {
    await withGateway(async ({ url, gateway }) => {
      const meta = await (await fetch(url, {
        method: "POST",
        headers: { authorization: `Bearer ${TEST_TOKEN}` },
        body: JSON.stringify({ supportedVersions: [3] }),
      })).json();
      const controller = new AbortController();
      const res = await fetch(`${url}/v3/watch`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${meta.token}`,
          "x-denokv-database-id": TEST_DATABASE_ID,
        },
        body: watchBody([tupleKey("w1"), tupleKey("w2")]),
        signal: controller.signal,
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      let buffered = new Uint8Array();
      const frames: Uint8Array[] = [];
      // The first frame, then (nothing changes) keep-alives every 200 ms (this test's setting).
      while (frames.length < 3) {
        const chunk = await next(reader);
        buffered = Uint8Array.of(...buffered, ...chunk);
        while (buffered.length >= 4) {
          const length = new DataView(buffered.buffer).getUint32(0, true);
          if (buffered.length < 4 + length) break;
          frames.push(buffered.slice(4, 4 + length));
          buffered = buffered.slice(4 + length);
        }
      }
      assert.ok(frames[0].length > 0, "the first frame holds the keys");
      // status SR_SUCCESS (field 1 = 1), then one WatchKeyOutput per key, changed = true.
      assert.deepEqual([...frames[0]], [
        0x08,
        0x01,
        0x12,
        0x02,
        0x08,
        0x01,
        0x12,
        0x02,
        0x08,
        0x01,
      ]);
      assert.deepEqual(frames.slice(1).map((f) => f.length), [0, 0]);
      controller.abort();
      await reader.cancel().catch(() => {});
      await waitFor(() => gateway.watches === 0, "the watch to close");
    });
  },
});

/** A reader over a map of keys (by text) to entries, counting rounds, that can be paused. */
function scripted() {
  const data = new Map<string, KvEntry>();
  let vs = 0;
  let gate: Promise<void> | undefined;
  const calls: number[] = [];
  return {
    data,
    calls,
    set(key: string) {
      const k = new TextEncoder().encode(key);
      data.set(key, {
        key: k,
        value: k,
        encoding: 3,
        versionstamp: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, ++vs, 0, 0),
      });
    },
    pause(): () => void {
      let open!: () => void;
      gate = new Promise((r) => (open = r));
      return () => {
        gate = undefined;
        open();
      };
    },
    fail: false,
    async read(ranges: readonly ReadRange[]): Promise<KvEntry[][]> {
      calls.push(ranges.length);
      if (gate !== undefined) await gate;
      if (this.fail) throw new KvConnectError(503, "cluster down");
      return ranges.map((r) => {
        const e = data.get(new TextDecoder().decode(r.start));
        return e === undefined ? [] : [e];
      });
    },
  };
}

const key = (s: string) => new TextEncoder().encode(s);
const never = () => new AbortController().signal;

Deno.test("watch hub: bounds on keys per watch and on watches, each a clear refusal", () => {
  const s = scripted();
  const hub = new WatchHub((r) => s.read(r), { keysMax: 3, watchesMax: 2, pollMs: 5 });
  try {
    assert.throws(() => hub.open([]), (e) => e instanceof KvConnectError && e.status === 400);
    assert.throws(
      () => hub.open([key("a"), key("b"), key("c"), key("d")]),
      (e) =>
        e instanceof KvConnectError && e.status === 400 && /1 to 3 keys, got 4/.test(e.message),
    );
    const w1 = hub.open([key("a"), key("b"), key("c")]);
    const w2 = hub.open([key("a")]);
    assert.throws(
      () => hub.open([key("x")]),
      (e) =>
        e instanceof KvConnectError && e.status === 503 && /Too many watches: 2/.test(e.message),
    );
    w1.close();
    const w3 = hub.open([key("x")]); // a slot came free
    w2.close();
    w3.close();
    assert.equal(hub.watches, 0);
  } finally {
    hub.close();
  }
});

Deno.test("watch hub: the first answer comes from a round that began after open", async () => {
  const s = scripted();
  const hub = new WatchHub((r) => s.read(r), { pollMs: 5 });
  try {
    const early = hub.open([key("k")]);
    assert.deepEqual((await early.next(never())).kind, "entries"); // round 1
    const resume = s.pause(); // round 2 reads "k" as absent, and is held
    await waitFor(() => s.calls.length === 2, "round 2 to start");
    s.set("k");
    const late = hub.open([key("k")]);
    const got = late.next(never());
    resume();
    const first = await got;
    assert.equal(first.kind, "entries");
    assert.ok(
      first.kind === "entries" && first.entries[0] !== undefined,
      "not round 2's stale read",
    );
    early.close();
    late.close();
  } finally {
    hub.close();
  }
});

Deno.test("watch hub: one read per round for all watches; a slow watch gets the latest only", async () => {
  const s = scripted();
  const hub = new WatchHub((r) => s.read(r), { pollMs: 5 });
  try {
    const a = hub.open([key("x"), key("y")]);
    const b = hub.open([key("y"), key("z")]);
    await a.next(never());
    await b.next(never());
    assert.ok(s.calls.every((n) => n <= 3), `the union of keys per round: ${s.calls}`);
    for (let i = 0; i < 5; i++) s.set("y");
    const rounds = s.calls.length;
    await waitFor(() => s.calls.length > rounds + 1, "a round after the changes");
    const latest = await a.next(never());
    assert.ok(latest.kind === "entries");
    assert.equal(latest.entries[1]?.versionstamp[7], 5, "the newest entry, once");
    // Nothing changed since: the next call waits, and a keep-alive deadline ends it idle.
    const idle = await a.next(AbortSignal.timeout(50));
    assert.equal(idle.kind, "idle");
    a.close();
    b.close();
    await waitFor(() => !hub.polling, "polling to stop without watches");
    // Every read belongs to a round (a round may skip a group still being read).
    assert.ok(hub.rounds >= s.calls.length, `${hub.rounds} rounds, ${s.calls.length} reads`);
  } finally {
    hub.close();
  }
});

Deno.test("watch hub: a failing round is reported and retried; close ends every watch", async () => {
  const s = scripted();
  const errors: string[] = [];
  const hub = new WatchHub((r) => s.read(r), { pollMs: 5, onError: (m) => errors.push(m) });
  const w = hub.open([key("q")]);
  await w.next(never());
  s.fail = true;
  await waitFor(() => errors.length === 1, "the failure to be reported");
  s.set("q");
  s.fail = false;
  const after = await w.next(never());
  assert.equal(after.kind, "entries");
  assert.equal(errors.length, 1, "reported at most every 10 s");
  const pending = w.next(never());
  hub.close();
  assert.equal((await pending).kind, "end");
  assert.throws(() => hub.open([key("q")]), (e) => e instanceof KvConnectError && e.status === 503);
});

Deno.test("watch hub: a key no node would read is refused; distinct watched keys are bounded", () => {
  // Found by the attack: one watch of a key starting with 0xFF (or of 3000 bytes) failed every
  // round, and so froze every other watch of the gateway.
  const s = scripted();
  const hub = new WatchHub((r) => s.read(r), { pollMs: 5, watchedKeysMax: 3 });
  try {
    assert.throws(
      () => hub.open([key("a"), Uint8Array.of(0xff, 1)]),
      (e) => e instanceof KvConnectError && e.status === 400 && /0xFF/.test(e.message),
    );
    assert.throws(
      () => hub.open([new Uint8Array(3000)]),
      (e) => e instanceof KvConnectError && e.status === 400 && /3000 bytes/.test(e.message),
    );
    const w1 = hub.open([key("a"), key("b")]);
    const w2 = hub.open([key("a"), key("c")]); // "a" counts once
    assert.throws(
      () => hub.open([key("d")]),
      (e) => e instanceof KvConnectError && e.status === 503 && /watched keys/.test(e.message),
    );
    w1.close();
    const w3 = hub.open([key("d")]); // "b" went with w1
    w2.close();
    w3.close();
  } finally {
    hub.close();
  }
});

Deno.test("watch hub: a failing group holds up only the watches of its keys", async () => {
  // Found by the attack: with one cluster's nodes stopped, a watch of a healthy cluster's key
  // saw 1 of 20 changes, since each round read every cluster at once.
  const s = scripted();
  const down = new Set<string>();
  const hub = new WatchHub(async (ranges) => {
    for (const r of ranges) {
      const k = new TextDecoder().decode(r.start);
      if (down.has(k[0])) throw new KvConnectError(503, `cluster ${k[0]} down`);
    }
    return await s.read(ranges);
  }, { pollMs: 5, groupOf: (k) => new TextDecoder().decode(k)[0] });
  try {
    down.add("y");
    const healthy = hub.open([key("x1")]);
    const stuck = hub.open([key("y1")]);
    // Bounded waits: without the fix these would never answer.
    assert.equal((await healthy.next(AbortSignal.timeout(2_000))).kind, "entries");
    s.set("x1");
    const changed = await healthy.next(AbortSignal.timeout(2_000));
    assert.equal(changed.kind, "entries");
    assert.ok(changed.kind === "entries" && changed.entries[0] !== undefined);
    const idle = new AbortController();
    const pending = stuck.next(idle.signal);
    await waitFor(() => hub.rounds >= 5, "more rounds");
    idle.abort();
    assert.equal((await pending).kind, "idle", "the stuck group's watch never got entries");
    healthy.close();
    stuck.close();
  } finally {
    hub.close();
  }
});

Deno.test("watch hub: a slow group sets no one else's pace", async () => {
  // Found by the attack: with one cluster stopped, each round waited for its read (up to 5 s)
  // before any other watch heard of a change.
  const s = scripted();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const hub = new WatchHub(async (ranges) => {
    if (new TextDecoder().decode(ranges[0].start).startsWith("y")) await gate;
    return await s.read(ranges);
  }, { pollMs: 5, groupOf: (k) => new TextDecoder().decode(k)[0] });
  try {
    hub.open([key("y1")]); // its cluster hangs
    const fast = hub.open([key("x1")]);
    assert.equal((await fast.next(AbortSignal.timeout(2_000))).kind, "entries");
    for (let i = 0; i < 3; i++) {
      s.set("x1");
      const changed = await fast.next(AbortSignal.timeout(2_000));
      assert.equal(changed.kind, "entries", `change ${i} while the other group hangs`);
    }
  } finally {
    release();
    hub.close();
  }
});

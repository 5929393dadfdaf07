/**
 * The watch hub without HTTP: the history's bounds and floor, resuming, what counts as a
 * change, slow watchers, the watcher limit, snapshots, shutdown and keep-alives.
 */
import assert from "node:assert/strict";
import { NoLeaderError, TooManyWatchersError, WatchCompactedError } from "./errors.ts";
import {
  WATCH_FAREWELL_MS,
  WATCH_HISTORY_BYTES_MAX,
  WATCH_HISTORY_CHANGES_MAX,
  WATCH_KEEPALIVE_MS,
  WATCH_PENDING_BYTES_MAX,
  WATCH_VALUE_INLINE_MAX,
  WATCHERS_MAX,
  WatchHub,
  type WatchLimits,
} from "./_watch_hub.ts";
import { applied, SseReader } from "./_watch_test_util.ts";

const utf8 = new TextEncoder();

function hub(limits: Partial<WatchLimits> = {}, floor = 0): WatchHub {
  const h = new WatchHub({ node: "a1", cluster: "a", limits });
  h.reset(floor);
  return h;
}

/** The revs of the change messages read, and their changes' keys. */
function changes(reader: SseReader): { rev: number; keys: string[] }[] {
  return reader.data("change").map((d) => ({
    rev: d.rev as number,
    keys: (d.changes as { key: string }[]).map((c) => c.key),
  }));
}

Deno.test("watch: the limits are the documented constants", () => {
  assert.equal(WATCHERS_MAX, 64);
  assert.equal(WATCH_HISTORY_CHANGES_MAX, 50_000);
  assert.equal(WATCH_HISTORY_BYTES_MAX, 8 * 1024 * 1024);
  assert.equal(WATCH_PENDING_BYTES_MAX, 1024 * 1024);
  assert.equal(WATCH_VALUE_INLINE_MAX, 64 * 1024);
  assert.equal(WATCH_KEEPALIVE_MS, 15_000);
  assert.equal(WATCH_FAREWELL_MS, 5_000);
  assert.throws(() => new WatchHub({ node: "a1", cluster: "a", limits: { watchersMax: 0 } }));
});

Deno.test("watch: the history is bounded by changes; older revs answer compacted", async () => {
  const h = hub({ historyChangesMax: 3 });
  for (let rev = 1; rev <= 5; rev++) h.applied(applied(rev, ["set", `k${rev}`, "v"]));
  assert.equal(h.floor, 2, "two events were evicted: every change after rev 2 is held");
  assert.equal(h.rev, 5);
  assert.equal(h.stats().historyChanges, 3);
  const error = (() => {
    try {
      h.open(new Uint8Array(0), 1);
      return undefined;
    } catch (e) {
      return e;
    }
  })();
  assert.ok(error instanceof WatchCompactedError, String(error));
  assert.equal(error.rev, 5);
  assert.equal(error.oldest, 2);
  assert.match(error.message, /read the keys again \(list them\) and watch from rev 5/);
  const reader = new SseReader(h.open(new Uint8Array(0), 2).body);
  await reader.until(() => changes(reader).length === 3);
  assert.deepEqual(changes(reader).map((c) => c.rev), [3, 4, 5]);
  await reader.cancel();
});

Deno.test("watch: the history is bounded by bytes", () => {
  const h = hub({ historyBytesMax: 3 * 1024 });
  for (let rev = 1; rev <= 10; rev++) h.applied(applied(rev, ["set", `k${rev}`, "x".repeat(600)]));
  const held = h.stats();
  assert.ok(held.historyBytes <= 3 * 1024, `${held.historyBytes} bytes held`);
  assert.ok(held.historyChanges >= 2 && held.historyChanges < 10, `${held.historyChanges}`);
  assert.equal(h.floor, 10 - held.historyChanges);
  // One event over the bound on its own is not held at all: the floor passes it.
  h.applied(applied(11, ["set", "huge", "y".repeat(8 * 1024)]));
  assert.equal(h.floor, 11);
  assert.equal(h.stats().historyChanges, 0);
});

Deno.test("watch: resuming from a rev gives exactly the changes after it, then live ones, none twice", async () => {
  const h = hub();
  for (let rev = 1; rev <= 6; rev++) h.applied(applied(rev, ["set", `k${rev}`, `v${rev}`]));
  const reader = new SseReader(h.open(new Uint8Array(0), 3).body);
  const [start] = await reader.until((m) => m.length >= 1);
  assert.equal(start.event, "start");
  assert.equal(start.id, "3", "the start event's id is the resume point itself");
  assert.deepEqual(JSON.parse(start.data!), { rev: 3, cluster: "a", node: "a1" });
  await reader.until(() => changes(reader).length === 3);
  for (let rev = 7; rev <= 9; rev++) h.applied(applied(rev, ["set", `k${rev}`, `v${rev}`]));
  await reader.until(() => changes(reader).length === 6);
  assert.deepEqual(changes(reader).map((c) => c.rev), [4, 5, 6, 7, 8, 9]);
  const ids = reader.messages.filter((m) => m.event === "change").map((m) => Number(m.id));
  assert.deepEqual(ids, [4, 5, 6, 7, 8, 9], "each message's id is its rev");
  assert.deepEqual(reader.data("change")[0], {
    rev: 4,
    changes: [{ type: "put", key: "k4", value_b64: "djQ", size: 2 }],
  });
  await reader.cancel();
  assert.equal(h.watchers, 0, "a cancelled stream leaves the hub");
});

Deno.test("watch: without from_rev only new changes come; a future rev waits for its changes", async () => {
  const h = hub();
  h.applied(applied(1, ["set", "old", "v"]));
  const now = new SseReader(h.open(new Uint8Array(0)).body);
  const future = new SseReader(h.open(new Uint8Array(0), 3).body);
  for (let rev = 2; rev <= 4; rev++) h.applied(applied(rev, ["set", `k${rev}`, "v"]));
  await now.until(() => changes(now).length === 3);
  await future.until(() => changes(future).length === 1);
  assert.equal(now.data("start")[0].rev, 1);
  assert.deepEqual(changes(now).map((c) => c.rev), [2, 3, 4]);
  assert.deepEqual(changes(future).map((c) => c.rev), [4]);
  await now.cancel();
  await future.cancel();
});

Deno.test("watch: one command is one message; absent deletes and system keys are no changes", async () => {
  const h = hub();
  const reader = new SseReader(h.open(new Uint8Array(0)).body);
  const system = new Uint8Array([0xff, 0, 1]);
  const absent = applied(2, ["delete", "gone"]);
  h.applied(applied(1, ["set", "a", "1"], ["set", system, "x"], ["delete", "b"]));
  h.applied({ ...absent, existed: [false] }); // nothing changed: no event at all
  h.applied(applied(3, ["set", system, "y"])); // only koi's own record: no event
  h.applied(applied(4, ["set", new Uint8Array([0x80, 0x61]), "bin"]));
  await reader.until(() => changes(reader).length === 2);
  const [first, second] = reader.data("change");
  assert.deepEqual(first, {
    rev: 1,
    changes: [
      { type: "put", key: "a", value_b64: "MQ", size: 1 },
      { type: "delete", key: "b" },
    ],
  });
  assert.deepEqual(second, {
    rev: 4,
    changes: [{ type: "put", key: "\ufffda", key_b64: "gGE", value_b64: "Ymlu", size: 3 }],
  });
  assert.equal(h.stats().historyChanges, 3, "system keys and absent deletes are not held");
  await reader.cancel();
});

Deno.test("watch: a prefix filters the changes of a command; large values come as sizes", async () => {
  const h = hub();
  const reader = new SseReader(h.open(utf8.encode("user/")).body);
  const big = new Uint8Array(WATCH_VALUE_INLINE_MAX + 1);
  h.applied(applied(1, ["set", "other", "x"]));
  h.applied(applied(2, ["set", "user/1", "a"], ["set", "other", "y"], ["set", "user/2", big]));
  await reader.until(() => changes(reader).length === 1);
  assert.deepEqual(reader.data("change")[0], {
    rev: 2,
    changes: [
      { type: "put", key: "user/1", value_b64: "YQ", size: 1 },
      { type: "put", key: "user/2", size: WATCH_VALUE_INLINE_MAX + 1 },
    ],
  });
  await reader.cancel();
});

Deno.test("watch: a reader that never reads is cut off with slow_watcher; its queue stays bounded", async () => {
  const pendingBytesMax = 64 * 1024;
  const h = hub({ pendingBytesMax, historyBytesMax: 64 << 20 });
  const watcher = h.open(new Uint8Array(0));
  const value = "v".repeat(1000);
  let most = 0;
  let rev = 0;
  while (h.watchers > 0 && rev < 10_000) {
    h.applied(applied(++rev, ["set", `k${rev}`, value]));
    most = Math.max(most, watcher.queuedBytes);
  }
  assert.equal(h.watchers, 0, "the slow watcher left the hub");
  assert.ok(rev < 100, `cut off after ${rev} changes`);
  assert.ok(most <= pendingBytesMax, `${most} bytes queued at most`);
  assert.equal(h.stats().cutSlowTotal, 1);
  // What was queued is dropped: the reader gets the final error, then the end.
  const reader = new SseReader(watcher.body);
  const messages = await reader.end();
  assert.deepEqual(messages.map((m) => m.event), ["error"]);
  assert.equal(reader.data("error")[0].code, "slow_watcher");
  assert.match(String(reader.data("error")[0].message), /id of the last message received/);
});

Deno.test("watch: a cut-off watcher that does not take its end is aborted after farewellMs", async () => {
  const h = hub({ pendingBytesMax: 1024, farewellMs: 30 });
  const watcher = h.open(new Uint8Array(0));
  for (let rev = 1; h.watchers > 0; rev++) h.applied(applied(rev, ["set", "k", "x".repeat(600)]));
  await new Promise((r) => setTimeout(r, 80));
  const reader = watcher.body.getReader();
  await assert.rejects(reader.read(), /cut off/);
});

Deno.test("watch: a watcher catching up slower than the history moves is cut off as compacted", async () => {
  const h = hub({ historyChangesMax: 4 });
  for (let rev = 1; rev <= 4; rev++) h.applied(applied(rev, ["set", `k${rev}`, "v"]));
  const reader = new SseReader(h.open(new Uint8Array(0), 0).body);
  await reader.until((m) => m.length >= 1); // the start event only: no catch-up read yet
  for (let rev = 5; rev <= 12; rev++) h.applied(applied(rev, ["set", `k${rev}`, "v"]));
  await reader.end();
  assert.deepEqual(reader.messages.map((m) => m.event), ["start", "error"]);
  assert.equal(reader.data("error")[0].code, "compacted");
  assert.equal(reader.data("error")[0].oldest, 8);
  assert.equal(h.stats().cutCompactedTotal, 1);
});

Deno.test("watch: beyond watchersMax, opening throws TooManyWatchersError", async () => {
  const h = hub({ watchersMax: 2 });
  const a = h.open(new Uint8Array(0));
  h.open(new Uint8Array(0));
  assert.throws(() => h.open(new Uint8Array(0)), TooManyWatchersError);
  assert.equal(h.stats().refusedTotal, 1);
  await a.body.cancel();
  const c = new SseReader(h.open(new Uint8Array(0)).body);
  h.close();
  await c.end();
});

Deno.test("watch: a snapshot cuts off the watchers that had not seen its changes", async () => {
  const h = hub();
  h.applied(applied(1, ["set", "a", "1"]));
  const behind = new SseReader(h.open(new Uint8Array(0)).body);
  const ahead = new SseReader(h.open(new Uint8Array(0), 50).body);
  await behind.until((m) => m.length >= 1);
  h.reset(40); // a follower installed the leader's snapshot at rev 40
  await behind.end();
  assert.deepEqual(behind.messages.map((m) => m.event), ["start", "error"]);
  assert.deepEqual(behind.data("error")[0], {
    code: "compacted",
    message: "Node a1 no longer holds the changes up to rev 40: read the keys again (list " +
      "them) and watch from rev 40",
    rev: 40,
    oldest: 40,
  });
  assert.equal(h.floor, 40);
  assert.throws(() => h.open(new Uint8Array(0), 39), WatchCompactedError);
  // A watcher from rev 50 misses nothing: it stays and gets the changes after 50.
  for (let rev = 41; rev <= 51; rev++) h.applied(applied(rev, ["set", `k${rev}`, "v"]));
  await ahead.until(() => changes(ahead).length === 1);
  assert.deepEqual(changes(ahead).map((c) => c.rev), [51]);
  await ahead.cancel();
});

Deno.test("watch: close ends every stream and refuses new ones", async () => {
  const h = hub();
  const readers = [0, 1, 2].map(() => new SseReader(h.open(new Uint8Array(0)).body));
  h.applied(applied(1, ["set", "a", "1"]));
  h.close();
  for (const r of readers) {
    await r.end();
    assert.deepEqual(r.messages.map((m) => m.event), ["start", "change"], "queued ones first");
  }
  assert.equal(h.watchers, 0);
  assert.throws(() => h.open(new Uint8Array(0)), NoLeaderError);
});

Deno.test("watch: an idle watcher gets keep-alive comments", async () => {
  const h = hub({ keepaliveMs: 20 });
  const reader = new SseReader(h.open(new Uint8Array(0)).body);
  await reader.until((m) => m.filter((x) => x.comment === "keepalive").length >= 2);
  await reader.cancel();
});

Deno.test("watch: a change that cannot be recorded cuts the watchers off instead of failing the apply", async () => {
  const logged: string[] = [];
  const h = new WatchHub({ node: "a1", cluster: "a", log: (message) => logged.push(message) });
  h.reset(0);
  h.applied(applied(5, ["set", "a", "1"]));
  const reader = new SseReader(h.open(new Uint8Array(0)).body);
  await reader.until((m) => m.length >= 1);
  h.applied(applied(5, ["set", "b", "2"])); // a rev not after the last: the history refuses it
  await reader.end();
  assert.deepEqual(reader.messages.map((m) => m.event), ["start", "error"]);
  assert.equal(reader.data("error")[0].code, "compacted");
  assert.deepEqual(logged, ["Recording a change for the watchers failed"]);
  assert.equal(h.floor, 5);
});

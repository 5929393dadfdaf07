/**
 * The resharding endpoints on a real node (docs/resharding.md): routing commands through
 * `POST /v1/route`, the moving keys and the request-id records for the admin, and what
 * clients see once keys are fenced.
 */
import assert from "node:assert/strict";
import { decode } from "@msgpack/msgpack";
import { CarpTable } from "../carp/mod.ts";
import { encodeRouteCommand, type RouteCommand, type TableSpec } from "../storage/mod.ts";
import { DriverCluster } from "./_driver_test_util.ts";
import { createNodeApp } from "./http.ts";

const SECRET = "test-secret-0123456789";
const AUTH = { authorization: `Bearer ${SECRET}` };
const OLD: TableSpec = {
  scheme: "carp64",
  epoch: 1,
  members: [{ id: "a", loadFactor: 1 }, { id: "b", loadFactor: 1 }],
};
const NEW: TableSpec = { ...OLD, epoch: 2, members: [...OLD.members, { id: "c", loadFactor: 1 }] };
const oldT = new CarpTable(OLD);
const newT = new CarpTable(NEW);
const keys = Array.from({ length: 200 }, (_, i) => `key-${i}`).sort();
const moving = keys.filter((k) => oldT.owner(k) === "a" && newT.owner(k) === "c");
const staying = keys.filter((k) => oldT.owner(k) === "a" && newT.owner(k) === "a");
const foreign = keys.filter((k) => oldT.owner(k) === "b");

Deno.test("route endpoints: commands, moving keys, sessions; fenced keys answer 421", async () => {
  const c = await DriverCluster.create(["a1"]);
  const stop = c.autoTick();
  try {
    const node = await c.leader();
    const app = createNodeApp({ service: node, secret: SECRET });
    const route = (cmd: RouteCommand | Uint8Array, headers: Record<string, string> = AUTH) =>
      app.request("/v1/route", {
        method: "POST",
        headers,
        body: (cmd instanceof Uint8Array ? cmd : encodeRouteCommand(cmd)) as BodyInit,
      });
    const put = (k: string, v: string, extra: Record<string, string> = {}) =>
      app.request(`/v1/kv/${k}`, { method: "PUT", body: v, headers: extra });
    for (const k of [...moving, ...staying]) assert.equal((await put(k, `v-${k}`)).status, 200);
    assert.equal((await put(moving[0], "with id", { "x-request-id": "cl-1:3" })).status, 200);

    assert.equal((await route({ type: "begin", from: OLD, to: NEW }, {})).status, 401);
    const garbage = await route(new Uint8Array([0x92, 0x02, 0x63]));
    assert.equal(garbage.status, 400);
    assert.equal((await garbage.json()).error.code, "bad_request");
    const begun = await route({ type: "begin", from: OLD, to: NEW });
    assert.equal(begun.status, 200, await begun.clone().text());
    assert.equal((await begun.json()).ok, true);

    // The replicated table rules now: b's keys are refused, though config.toml said "a".
    const other = await put(foreign[0], "x");
    assert.equal(other.status, 421);
    assert.equal(other.headers.get("x-koi-owner"), "b");
    assert.equal(other.headers.get("x-koi-epoch"), "2");

    const status = await (await app.request("/v1/status", { headers: AUTH })).json();
    assert.equal(status.epoch, 2);
    assert.deepEqual(status.routing, {
      epoch: 1,
      revBase: 0,
      move: { epoch: 2, fenced: "", received: {} },
    });

    // The admin's view of what moves: every key that leaves a, with its value and rev.
    const page = decode(
      new Uint8Array(
        await (await app.request("/v1/route/keys?count=1000", { headers: AUTH })).arrayBuffer(),
      ),
    ) as { items: [Uint8Array, Uint8Array, number][]; next: Uint8Array | null; rev: number };
    const listed = page.items.map(([k]) => new TextDecoder().decode(k));
    const leaving = keys.filter((k) => oldT.owner(k) === "a" && newT.owner(k) !== "a");
    assert.deepEqual(listed, leaving);
    assert.equal(page.next, null);
    assert.equal(
      new TextDecoder().decode(page.items[0][1]),
      moving[0] === listed[0] ? "with id" : `v-${listed[0]}`,
    );
    const small = decode(
      new Uint8Array(
        await (await app.request("/v1/route/keys?count=2", { headers: AUTH })).arrayBuffer(),
      ),
    ) as { items: unknown[]; next: Uint8Array | null };
    assert.equal(small.items.length, 2);
    assert.ok(small.next instanceof Uint8Array, "a cursor to go on from");

    const sessions = decode(
      new Uint8Array(
        await (await app.request("/v1/route/sessions", { headers: AUTH })).arrayBuffer(),
      ),
    ) as { records: [string, number, unknown, number][]; more: boolean };
    assert.deepEqual(sessions.records.map(([client, seq]) => [client, seq]), [["cl-1", 3]]);
    const stamp = sessions.records[0][3];
    const after = decode(
      new Uint8Array(
        await (await app.request(`/v1/route/sessions?after=${stamp}`, { headers: AUTH }))
          .arrayBuffer(),
      ),
    ) as { records: unknown[] };
    assert.deepEqual(after.records, []);
    assert.equal((await app.request("/v1/route/sessions?after=x", { headers: AUTH })).status, 400);

    // Fence everything: moving keys are refused for reads and writes; staying keys are served.
    assert.equal((await route({ type: "fence", epoch: 2, upTo: null })).status, 200);
    const refused = await put(moving[1], "late");
    assert.equal(refused.status, 421);
    assert.equal(refused.headers.get("x-koi-owner"), "c");
    const read = await app.request(`/v1/kv/${moving[1]}`);
    assert.equal(read.status, 421);
    assert.equal((await app.request(`/v1/kv/${staying[0]}`)).status, 200);
    assert.equal((await put(staying[0], "still mine")).status, 200);
    const list = await (await app.request("/v1/kv?prefix=key-&limit=1000")).json();
    assert.deepEqual(list.items.map((i: { key: string }) => i.key), staying);
    // A fence that goes back is refused with the reason.
    const back = await route({ type: "fence", epoch: 2, upTo: new TextEncoder().encode("a") });
    assert.equal(back.status, 409);
    assert.equal((await back.json()).error.code, "route_refused");
    // A retry of an applied write goes to the new owner too, which gets the record (copied
    // before its switch): the source refuses it like any request for a fenced key.
    const retry = await put(moving[0], "with id", { "x-request-id": "cl-1:3" });
    assert.equal(retry.status, 421);
  } finally {
    stop();
    await c.close();
  }
});

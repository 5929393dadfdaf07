/**
 * The admin's move against in-process clusters (one real KvStateMachine each, the same
 * routing code the nodes run), with writes from a client between every step of the move, and
 * with the admin crashing at every step and resuming.
 */
import assert from "node:assert/strict";
import { CarpTable } from "../carp/mod.ts";
import { parseConfig } from "../config/mod.ts";
import { encodeCommand } from "../storage/mod.ts";
import { apply, config, MemoryClusters } from "./_reshard_test_util.ts";
import { planReshard } from "./_reshard_plan.ts";
import { Resharder } from "./_reshard.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/**
 * A client that writes through the clusters as a koi client does: to the owner by its table,
 * following `wrong_shard` to the owner the cluster names; a key between a fence and a switch
 * is refused by both, and the write is given up (not acknowledged) for this round.
 */
class Writer {
  readonly acked = new Map<string, { value: string; rev: number }>();
  readonly revs = new Map<string, number>();
  #n = 0;

  constructor(
    readonly clusters: MemoryClusters,
    readonly table: CarpTable,
    readonly keys: string[],
  ) {}

  write(seq: number): void {
    const key = this.keys[(seq * 7919) % this.keys.length];
    const value = `w${this.#n++}`;
    let cluster = this.table.owner(key);
    for (let hop = 0; hop < 3; hop++) {
      const sm = this.clusters.sms.get(cluster);
      if (sm === undefined) return;
      const r = apply(
        sm,
        encodeCommand({
          requestId: `writer:${this.#n}`,
          checks: [],
          mutations: [{ type: "set", key: enc(key), value: enc(value) }],
        }),
      );
      if (r.ok) {
        const last = this.revs.get(key) ?? 0;
        assert.ok(r.rev > last, `rev of ${key} went from ${last} to ${r.rev}`);
        this.revs.set(key, r.rev);
        this.acked.set(key, { value, rev: r.rev });
        return;
      }
      assert.equal(r.code, "wrong_shard", JSON.stringify(r));
      cluster = r.owner;
    }
  }
}

async function moveUnderWrites(
  fromIds: string[],
  toIds: string[],
  options: { crashEvery?: number; after?: ReturnType<typeof config> } = {},
): Promise<{ clusters: MemoryClusters; writer: Writer; moved: number; keys: string[] }> {
  const before = config(fromIds, 1);
  const after = options.after ?? config(toIds, 2);
  const plan = planReshard(before, after);
  const clusters = new MemoryClusters(fromIds);
  for (const id of plan.added) clusters.add(id);
  const oldTable = new CarpTable(plan.from);
  const keys = Array.from({ length: 1500 }, (_, i) => `user:${i}`);
  const writer = new Writer(clusters, oldTable, keys);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const r = apply(
      clusters.sms.get(oldTable.owner(key))!,
      encodeCommand({
        checks: [],
        mutations: [{ type: "set", key: enc(key), value: enc(`first ${i}`) }],
      }),
    );
    assert.ok(r.ok);
    writer.acked.set(key, { value: `first ${i}`, rev: r.rev });
    writer.revs.set(key, r.rev);
  }
  let seq = 0;
  let crashAt = Infinity;
  clusters.beforeCall = () => {
    writer.write(seq++);
    if (clusters.calls >= crashAt) {
      crashAt = Infinity;
      throw new Error("the admin crashed");
    }
  };
  let moved = 0;
  for (let attempt = 0;; attempt++) {
    assert.ok(attempt < 10_000, "the move makes progress across crashes");
    // Run r crashes at its (every + r)-th call: early crashes hit every step of a resume,
    // later runs get far enough to finish batches.
    if (options.crashEvery !== undefined) crashAt = clusters.calls + options.crashEvery + attempt;
    const resharder = new Resharder(plan, clusters); // a fresh admin: nothing in memory
    try {
      await resharder.run();
      moved += resharder.progress().keysMoved;
      break;
    } catch (error) {
      assert.match(String(error), /the admin crashed/);
      moved += resharder.progress().keysMoved;
    }
  }
  clusters.beforeCall = () => {};
  return { clusters, writer, moved, keys };
}

function checkEnd(
  r: { clusters: MemoryClusters; writer: Writer; keys: string[] },
  toIds: string[],
  after = config(toIds, 2),
): void {
  const table = new CarpTable(planReshard(config(["a"], 1), after).to);
  for (const key of r.keys) {
    const owner = table.owner(key);
    for (const [id, sm] of r.clusters.sms) {
      const o = sm.ownership(enc(key))!;
      assert.equal(o.owned, id === owner, `${key}: owned by ${id}? (owner ${owner})`);
      if (id !== owner && toIds.includes(id)) {
        assert.equal(sm.get(enc(key)), undefined, `${key} dropped at ${id}`);
      }
    }
    const held = r.clusters.sms.get(owner)!.get(enc(key));
    const acked = r.writer.acked.get(key)!;
    assert.ok(held !== undefined, `${key} is at its owner ${owner}`);
    assert.equal(dec(held.value), acked.value, `${key}: the last acknowledged value`);
    assert.equal(held.rev, acked.rev, `${key}: its rev`);
  }
  for (const id of toIds) {
    const sm = r.clusters.sms.get(id)!;
    assert.equal(sm.routing?.move, undefined, `${id} finished`);
    assert.equal(sm.routing?.epoch, 2);
  }
}

Deno.test("reshard: 3 -> 4 clusters under writes moves about a quarter of the keys, loses none", async () => {
  const r = await moveUnderWrites(["a", "b", "c"], ["a", "b", "c", "d"]);
  checkEnd(r, ["a", "b", "c", "d"]);
  const ideal = 1 / 4;
  const fraction = r.moved / r.keys.length;
  assert.ok(Math.abs(fraction - ideal) < 0.06, `moved ${fraction} of the keys, ideal ${ideal}`);
  // Exactly the keys whose owner changed are at a new cluster.
  const before = new CarpTable({
    scheme: "carp64",
    epoch: 1,
    members: ["a", "b", "c"].map((id) => ({ id, loadFactor: 1 })),
  });
  const after = new CarpTable({
    scheme: "carp64",
    epoch: 2,
    members: ["a", "b", "c", "d"].map((id) => ({ id, loadFactor: 1 })),
  });
  assert.equal(r.moved, r.keys.filter((k) => before.owner(k) !== after.owner(k)).length);
});

Deno.test("reshard: draining a cluster (4 -> 3) under writes moves only its keys", async () => {
  const r = await moveUnderWrites(["a", "b", "c", "d"], ["a", "b", "c"]);
  checkEnd(r, ["a", "b", "c"]);
  const d = r.clusters.sms.get("d")!;
  assert.equal(d.size, 0, "the drained cluster ends empty");
});

Deno.test("reshard: an admin that crashes at every few steps resumes and loses nothing", async () => {
  for (const every of [3, 7, 13]) {
    const r = await moveUnderWrites(["a", "b", "c"], ["a", "b", "c", "d"], { crashEvery: every });
    checkEnd(r, ["a", "b", "c", "d"]);
  }
});

Deno.test("reshard: a load factor change moves keys between running clusters, under writes", async () => {
  const text = `[admin]\nhttp = "127.0.0.1:7000"\n[routing]\nepoch = 2\n` +
    `[[clusters]]\nid = "a"\nload_factor = 3\n[[clusters.nodes]]\nid = "a1"\nraft = "127.0.0.1:7100"\nhttp = "127.0.0.1:7101"\ndata = "d-a"\n` +
    `[[clusters]]\nid = "b"\n[[clusters.nodes]]\nid = "b1"\nraft = "127.0.0.1:7102"\nhttp = "127.0.0.1:7103"\ndata = "d-b"\n`;
  const after = parseConfig(text, { baseDir: "/tmp" });
  const plan = planReshard(config(["a", "b"], 1), after);
  assert.deepEqual([plan.added, plan.drained], [[], []]);
  assert.ok(Math.abs(plan.idealFraction - 0.25) < 1e-9);
  const r = await moveUnderWrites(["a", "b"], ["a", "b"], { after });
  checkEnd(r, ["a", "b"], after);
  assert.ok(Math.abs(r.moved / r.keys.length - 0.25) < 0.06, `moved ${r.moved}`);
});

Deno.test("reshard plan: what a new config may not change, with the reason", () => {
  const base = config(["a", "b"], 1);
  assert.throws(() => planReshard(base, config(["a", "b", "c"], 3)), /epoch = 2/);
  assert.throws(() => planReshard(base, config(["a", "b"], 2)), /nothing to move/);
  const moved = parseConfig(
    `[admin]\nhttp = "127.0.0.1:7000"\n[routing]\nepoch = 2\n[[clusters]]\nid = "a"\n[[clusters.nodes]]\nid = "a1"\nraft = "127.0.0.1:7999"\nhttp = "127.0.0.1:7101"\ndata = "d-a"\n`,
    { baseDir: "/tmp" },
  );
  assert.throws(() => planReshard(base, moved), /other nodes/);
});

Deno.test("reshard: a write applied before its key moved, retried after, is not applied twice", async () => {
  const before = config(["a", "b", "c"], 1);
  const plan = planReshard(before, config(["a", "b", "c", "d"], 2));
  const clusters = new MemoryClusters(["a", "b", "c"]);
  clusters.add("d");
  const oldT = new CarpTable(plan.from);
  const newT = new CarpTable(plan.to);
  const key = Array.from({ length: 100 }, (_, i) => `k${i}`).find((k) =>
    oldT.owner(k) === "a" && newT.owner(k) === "d"
  )!;
  const command = (value: string) =>
    encodeCommand({
      requestId: "lost-answer:1",
      checks: [],
      mutations: [{ type: "set", key: enc(key), value: enc(value) }],
    });
  const first = apply(clusters.sms.get("a")!, command("once"));
  assert.ok(first.ok);
  // Another client writes the key after the move; then the lost answer's retry arrives at d.
  await new Resharder(plan, clusters).run();
  const retry = apply(clusters.sms.get("d")!, command("once"));
  assert.deepEqual(retry, first, "answered from the record copied from a");
  assert.equal(clusters.sms.get("d")!.get(enc(key))!.rev, first.rev, "not applied again");
});

Deno.test("reshard: an admin that crashes after finishing some clusters finishes the rest", async () => {
  const plan = planReshard(config(["a", "b"], 1), config(["a", "b", "c"], 2));
  const clusters = new MemoryClusters(["a", "b"]);
  clusters.add("c");
  const table = new CarpTable(plan.from);
  for (let i = 0; i < 200; i++) {
    const key = `k${i}`;
    apply(
      clusters.sms.get(table.owner(key))!,
      encodeCommand({
        checks: [],
        mutations: [{ type: "set", key: enc(key), value: enc(`v${i}`) }],
      }),
    );
  }
  // The first finish applies, then the admin dies before the next call.
  const route = clusters.route.bind(clusters);
  let finishes = 0;
  clusters.route = (cluster, command) => {
    if (command.type === "finish" && ++finishes === 2) throw new Error("the admin crashed");
    return route(cluster, command);
  };
  await assert.rejects(new Resharder(plan, clusters).run(), /the admin crashed/);
  assert.equal(clusters.sms.get("a")!.routing?.move, undefined, "a finished");
  assert.ok(clusters.sms.get("b")!.routing?.move !== undefined, "b did not");
  clusters.route = route;
  await new Resharder(plan, clusters).run();
  const after = new CarpTable(plan.to);
  for (const [id, sm] of clusters.sms) {
    assert.equal(sm.routing?.move, undefined, `${id} finished`);
    assert.equal(sm.routing?.epoch, 2);
  }
  for (let i = 0; i < 200; i++) {
    const key = `k${i}`;
    assert.equal(dec(clusters.sms.get(after.owner(key))!.get(enc(key))!.value), `v${i}`);
  }
});

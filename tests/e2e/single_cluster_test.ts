/**
 * One Raft cluster of real `koi node` processes on 127.0.0.1: the integration tests of the
 * node issue. Every process is stopped by PID in a `finally`.
 */
import assert from "node:assert/strict";
import { ProcessCluster, waitFor } from "./_cluster.ts";

const FOUNDERS = ["a1", "a2", "a3"];

/** Writes unique keys through random running nodes until stopped; records what was acknowledged. */
class Writer {
  readonly acked = new Map<string, string>();
  attempts = 0;
  #on = true;
  #done: Promise<void>[] = [];

  constructor(c: ProcessCluster, options: { workers: number; prefix: string }) {
    let n = 0;
    for (let w = 0; w < options.workers; w++) {
      this.#done.push((async () => {
        while (this.#on) {
          const running = [...c.nodes.values()].filter((x) => x.child !== undefined);
          if (running.length === 0) break;
          const node = running[Math.floor(Math.random() * running.length)];
          const key = `${options.prefix}${n++}`;
          const value = `value-of-${key}`;
          this.attempts++;
          try {
            const r = await c.fetch(node.id, `/v1/kv/${key}`, { method: "PUT", body: value });
            await r.body?.cancel();
            if (r.status === 200) this.acked.set(key, value);
          } catch {
            // a killed node: the outcome of this write is unknown
          }
        }
      })());
    }
  }

  async stop(): Promise<void> {
    this.#on = false;
    await Promise.all(this.#done);
  }
}

/** Every key and value a node holds, read locally (stale), paginated. */
async function dump(c: ProcessCluster, id: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let after = "";
  for (;;) {
    const q = `/v1/kv?prefix=&limit=1000&consistency=stale${
      after ? `&after=${encodeURIComponent(after)}` : ""
    }`;
    const r = await c.fetch(id, q);
    assert.equal(r.status, 200, `list on ${id}`);
    const page: { items: { key: string; rev: number }[]; more: boolean } = await r.json();
    for (const { key } of page.items) {
      const v = await c.fetch(id, `/v1/kv/${encodeURIComponent(key)}?consistency=stale`);
      out.set(key, await v.text());
    }
    if (!page.more) return out;
    after = page.items.at(-1)!.key;
  }
}

async function healthy(c: ProcessCluster, ids: string[]): Promise<void> {
  for (const id of ids) {
    await waitFor(async () => (await c.fetch(id, "/healthz")).status === 200, `${id} healthy`);
  }
}

/** Waits until the running nodes report the same applied index as the leader's commit. */
async function converged(c: ProcessCluster, ids: string[]): Promise<void> {
  await waitFor(async () => {
    const st = await Promise.all(ids.map((id) => c.status(id)));
    const commit = Math.max(...st.map((s) => s.commit));
    return st.every((s) => s.applied === commit);
  }, `${ids} converge`);
}

function withCluster(
  name: string,
  options: { joiners?: string[] },
  fn: (c: ProcessCluster) => Promise<void>,
): void {
  Deno.test({
    name,
    sanitizeResources: false, // child process pipes are read until the processes die
    sanitizeOps: false,
    fn: async () => {
      const c = await ProcessCluster.create(FOUNDERS, options);
      try {
        await fn(c);
      } catch (e) {
        throw new Error(`${e instanceof Error ? e.stack : e}\n--- node logs ---\n${c.logs()}`);
      } finally {
        await c.close();
      }
    },
  });
}

withCluster(
  "e2e: kill -9 the leader during acknowledged writes; nothing acknowledged is lost and all nodes converge",
  {},
  async (c) => {
    c.startAll();
    await healthy(c, FOUNDERS);
    const leader = await c.leader();
    const writer = new Writer(c, { workers: 8, prefix: "k" });
    await waitFor(() => writer.acked.size >= 100, "100 acknowledged writes");
    await c.stop(leader, true); // kill -9
    const before = writer.acked.size;
    await waitFor(() => writer.acked.size >= before + 100, "writes continue after the kill");
    c.start(leader);
    await healthy(c, [leader]);
    await waitFor(() => writer.acked.size >= before + 200, "more writes with the old leader back");
    await writer.stop();
    await converged(c, FOUNDERS);
    const states = await Promise.all(FOUNDERS.map((id) => dump(c, id)));
    for (const [key, value] of writer.acked) {
      for (let i = 0; i < FOUNDERS.length; i++) {
        assert.equal(states[i].get(key), value, `acknowledged ${key} on ${FOUNDERS[i]}`);
      }
    }
    assert.deepEqual(states[1], states[0], "a1 and a2 hold identical state");
    assert.deepEqual(states[2], states[0], "a1 and a3 hold identical state");
  },
);

withCluster(
  "e2e: a follower down while the leader compacts its log catches up through a snapshot",
  {},
  async (c) => {
    c.startAll();
    await healthy(c, FOUNDERS);
    const leader = await c.leader();
    const follower = FOUNDERS.find((id) => id !== leader)!;
    await c.stop(follower);
    for (let i = 0; i < 200; i++) {
      const r = await c.fetch(leader, `/v1/kv/s${i}`, { method: "PUT", body: `v${i}` });
      assert.equal(r.status, 200, await r.text());
    }
    const snap = await (await c.fetch(leader, "/v1/snapshot", { method: "POST" })).json();
    assert.ok(snap.index >= 200, `snapshot at ${snap.index}`);
    assert.ok((await c.status(leader)).snapshot >= 200);
    c.start(follower);
    await healthy(c, [follower]);
    await converged(c, FOUNDERS);
    const st = await c.status(follower);
    assert.ok(
      st.snapshot >= snap.index,
      `follower installed snapshot ${st.snapshot} >= ${snap.index}`,
    );
    const v = await c.fetch(follower, "/v1/kv/s123?consistency=stale");
    assert.equal(await v.text(), "v123");
  },
);

withCluster(
  "e2e: add a learner, promote it, remove the old leader, all under load",
  { joiners: ["a4"] },
  async (c) => {
    c.startAll();
    await healthy(c, FOUNDERS);
    // A joining node knows no leader until it is added, so /healthz says 503 until then.
    await waitFor(async () => (await c.status("a4")).node === "a4", "a4 up");
    const leader = await c.leader();
    const writer = new Writer(c, { workers: 4, prefix: "m" });
    await waitFor(() => writer.acked.size >= 50, "writes under load");
    const a4 = c.node("a4");
    const add = (voter: boolean) =>
      c.fetch(leader, "/v1/members", {
        method: "POST",
        body: JSON.stringify({ id: "a4", raft: a4.raft, http: a4.http, voter }),
        headers: { "content-type": "application/json" },
      });
    let r = await add(false);
    assert.equal(r.status, 200, await r.text());
    r = await add(true);
    assert.equal(r.status, 200, await r.text());
    const members = (await c.status(leader)).members;
    assert.ok(members.some((m) => m.id === "a4" && m.voter), JSON.stringify(members));
    r = await c.fetch(leader, `/v1/members/${leader}`, { method: "DELETE" });
    assert.equal(r.status, 200, await r.text());
    const rest = [...FOUNDERS.filter((id) => id !== leader), "a4"];
    await waitFor(async () => {
      const s = await c.status(rest[0]);
      return s.leader !== "" && s.leader !== leader && !s.members.some((m) => m.id === leader);
    }, "a new leader without the removed one");
    const before = writer.acked.size;
    await waitFor(() => writer.acked.size >= before + 50, "writes continue after the removal");
    await writer.stop();
    await c.stop(leader);
    await converged(c, rest);
    const state = await dump(c, "a4");
    for (const [key, value] of writer.acked) assert.equal(state.get(key), value, `${key} on a4`);
  },
);

withCluster(
  "e2e: a retried write with the same request id applies once and answers the same",
  {},
  async (c) => {
    c.startAll();
    await healthy(c, FOUNDERS);
    const leader = await c.leader();
    const follower = FOUNDERS.find((id) => id !== leader)!;
    const put = (id: string, body: string) =>
      c.fetch(id, "/v1/kv/once", {
        method: "PUT",
        body,
        headers: { "x-request-id": "client-7:1" },
      });
    const first = await put(leader, "first");
    assert.equal(first.status, 200);
    const firstBody = await first.json();
    const again = await put(follower, "second"); // forwarded to the leader
    assert.equal(again.status, 200);
    assert.deepEqual(await again.json(), firstBody);
    const v = await c.fetch(leader, "/v1/kv/once");
    assert.equal(await v.text(), "first");
    assert.equal(v.headers.get("etag"), `"${firstBody.rev}"`);
  },
);

/**
 * Issue 10, item 3: a follower restarted with an empty data directory (a lost disk) is
 * refused by the others by its new incarnation: it never forms a second cluster and never
 * disrupts the leader. Then the recovery of docs/operations.md: remove it, restart it empty
 * with `--join`, add it back with `POST /v1/members {"id"}`, and it catches up.
 */
import assert from "node:assert/strict";
import { ProcessCluster, waitFor } from "./_cluster.ts";

const FOUNDERS = ["a1", "a2", "a3"];

async function put(c: ProcessCluster, id: string, key: string, value: string): Promise<number> {
  const r = await c.fetch(id, `/v1/kv/${key}`, { method: "PUT", body: value });
  await r.body?.cancel();
  return r.status;
}

function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

Deno.test({
  name: "e2e: a follower with a wiped data dir is refused, then rejoins by the documented recovery",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const c = await ProcessCluster.create(FOUNDERS);
    try {
      c.startAll();
      for (const id of FOUNDERS) {
        await waitFor(async () => (await c.fetch(id, "/healthz")).status === 200, `${id} healthy`);
      }
      const leader = await c.leader();
      const [wiped, other] = FOUNDERS.filter((id) => id !== leader);
      for (let i = 0; i < 20; i++) assert.equal(await put(c, leader, `w${i}`, `v${i}`), 200);
      const { term } = await c.status(leader);
      await c.stop(wiped, true); // kill -9
      await Deno.remove(c.node(wiped).data, { recursive: true });
      c.start(wiped); // same config, no --join: it bootstraps itself again as a founder
      // For a few election timeouts: writes succeed, the leader keeps its term, the wiped
      // node never leads and never commits anything of a second cluster.
      const until = performance.now() + 3_000;
      let i = 20;
      while (performance.now() < until) {
        const via = i % 2 === 0 ? leader : other;
        assert.equal(await put(c, via, `w${i}`, `v${i}`), 200, `write w${i} through ${via}`);
        i++;
        const s = await c.status(leader);
        assert.equal(s.role, "leader");
        assert.equal(s.term, term, "the leader was not disrupted");
        const w = await c.status(wiped).catch(() => undefined);
        if (w !== undefined) {
          assert.notEqual(w.role, "leader", "the wiped node never leads");
          assert.ok(w.commit <= 1, `the wiped node committed ${w.commit}`);
        }
      }
      await waitFor(() => c.node(leader).output.includes(`Refusing peer ${wiped}`), "refusal");
      for (const id of [leader, other]) {
        const lines = count(c.node(id).output, `Refusing peer ${wiped}`);
        assert.ok(lines <= 1, `${id} warned ${lines} times: one per episode`);
      }
      // The recovery (docs/operations.md).
      let r = await c.fetch(leader, `/v1/members/${wiped}`, { method: "DELETE" });
      assert.equal(r.status, 200, await r.text());
      await c.stop(wiped);
      await Deno.remove(c.node(wiped).data, { recursive: true });
      c.start(wiped, ["--join"]);
      await waitFor(async () => (await c.status(wiped)).node === wiped, `${wiped} up`);
      r = await c.fetch(leader, "/v1/members", { method: "POST", body: `{"id":"${wiped}"}` });
      assert.equal(r.status, 200, await r.text());
      await waitFor(async () => {
        const v = await c.fetch(wiped, `/v1/kv/w${i - 1}?consistency=stale`);
        return v.status === 200 && await v.text() === `v${i - 1}`;
      }, `${wiped} catches up`);
      const v = await c.fetch(wiped, "/v1/kv/w7?consistency=stale");
      assert.equal(await v.text(), "v7");
      r = await c.fetch(leader, "/v1/members", {
        method: "POST",
        body: `{"id":"${wiped}","voter":true}`,
      });
      assert.equal(r.status, 200, await r.text());
      const members = (await c.status(leader)).members;
      assert.ok(members.some((m) => m.id === wiped && m.voter), JSON.stringify(members));
      assert.equal(await put(c, other, "after-recovery", "ok"), 200);
    } catch (e) {
      throw new Error(`${e instanceof Error ? e.stack : e}\n--- node logs ---\n${c.logs()}`);
    } finally {
      await c.close();
    }
  },
});

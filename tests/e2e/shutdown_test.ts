/**
 * Issue 10, item 8: SIGTERM on a leader with a client sending its body at 1 byte/s. The
 * leader hands leadership off first, so writes through the other nodes keep succeeding; the
 * process exits within 10 s. Real processes on 127.0.0.1, stopped by PID in a `finally`.
 */
import assert from "node:assert/strict";
import { ProcessCluster, waitFor } from "./_cluster.ts";

const FOUNDERS = ["a1", "a2", "a3"];

Deno.test({
  name: "e2e: SIGTERM on a leader with a slow-body client: another node takes writes within ~2 s",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const c = await ProcessCluster.create(FOUNDERS);
    let slow: Deno.TcpConn | undefined;
    let dripping = true;
    try {
      c.startAll();
      for (const id of FOUNDERS) {
        await waitFor(async () => (await c.fetch(id, "/healthz")).status === 200, `${id} healthy`);
      }
      const leader = await c.leader();
      const other = FOUNDERS.find((id) => id !== leader)!;
      const [host, port] = c.node(leader).http.split(":");
      slow = await Deno.connect({ hostname: host, port: Number(port) });
      const conn = slow;
      await conn.write(
        new TextEncoder().encode(
          "PUT /v1/kv/slow HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n",
        ),
      );
      // One byte per second until the server cuts the connection off.
      const drip = (async () => {
        while (dripping) {
          if (await conn.write(new Uint8Array([0x61])).then(() => false, () => true)) return;
          await new Promise((r) => setTimeout(r, 1000));
        }
      })();
      const child = c.signal(leader, "SIGTERM");
      const signalled = performance.now();
      // A write through another node succeeds soon: the new leader came by transfer.
      let wroteMs = -1;
      await waitFor(
        async () => {
          const r = await c.fetch(other, "/v1/kv/after-sigterm", { method: "PUT", body: "v" });
          await r.body?.cancel();
          if (r.status !== 200) return false;
          wroteMs = performance.now() - signalled;
          return true;
        },
        "a write through another node",
        5_000,
      );
      assert.ok(wroteMs < 2_500, `the write succeeded ${Math.round(wroteMs)} ms after SIGTERM`);
      const status = await Promise.race([
        child.status,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 10_000)),
      ]);
      const exitMs = performance.now() - signalled;
      assert.ok(status !== undefined, "the leader exited within 10 s");
      assert.equal(status.code, 0, c.node(leader).output);
      assert.ok(exitMs < 10_000, `exited after ${Math.round(exitMs)} ms`);
      const stopped = c.node(leader).output.split("\n").find((l) => l.includes('"node stopped"'));
      assert.ok(stopped !== undefined, c.node(leader).output);
      assert.equal(JSON.parse(stopped).properties.handedOff, true, stopped);
      dripping = false;
      await drip;
    } catch (e) {
      throw new Error(`${e instanceof Error ? e.stack : e}\n--- node logs ---\n${c.logs()}`);
    } finally {
      dripping = false;
      try {
        slow?.close();
      } catch {
        // closed by the server
      }
      await c.close();
    }
  },
});

/**
 * A request whose client went (its connection closed: the server aborts the request's
 * signal) gets no work done for it. Found by the attack: short floods of 20 MiB KV Connect
 * reads, cut off by their client after a second, kept the leaders reading and building
 * answers for the gone clients for seconds after, and their followers elected others.
 */
import assert from "node:assert/strict";
import { waitFor } from "./_driver_test_util.ts";
import { encodeSnapshotRead, type ReadRange } from "../kv_connect/_datapath.ts";
import { KVC_READ_PATH } from "./_http_kvc.ts";
import { harness } from "./_fake_service_test_util.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const point: ReadRange = {
  start: enc("k"),
  end: new Uint8Array([...enc("k"), 0]),
  limit: 1,
  reverse: false,
};
const readBody = () => encodeSnapshotRead({ ranges: [point] }) as BodyInit;

Deno.test("node: a KV Connect read whose client went is not read", async () => {
  const { app, service } = harness();
  const gone = new AbortController();
  gone.abort(new Error("closed"));
  const r = await app.request(KVC_READ_PATH, {
    method: "POST",
    body: readBody(),
    signal: gone.signal,
  });
  assert.equal(r.status, 499);
  await r.body?.cancel();
  assert.equal(service.calls.filter((c) => c.op === "readRanges").length, 0);
  // The same read from a client that stays is read.
  const kept = await app.request(KVC_READ_PATH, { method: "POST", body: readBody() });
  assert.equal(kept.status, 200, await kept.clone().text());
  assert.equal(service.calls.filter((c) => c.op === "readRanges").length, 1);
});

Deno.test("node: a read forwarded to the leader is aborted when its client goes", async () => {
  let forwardSignal: AbortSignal | undefined;
  const { app, forwarded } = harness(
    { nodeId: "n1", leader: "n3", leaderHttp: "10.0.0.3:7203" },
    {
      answer: (_request, signal) => {
        forwardSignal = signal;
        return new Promise<Response>((_, reject) => {
          signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
        });
      },
    },
  );
  const client = new AbortController();
  const answer = app.request(KVC_READ_PATH, {
    method: "POST",
    body: readBody(),
    signal: client.signal,
  });
  await waitFor(() => forwarded.length === 1, "the read forwarded");
  assert.equal(forwardSignal?.aborted, false);
  client.abort(new Error("closed"));
  // At once, not at the forward's own deadline (seconds).
  await waitFor(() => forwardSignal?.aborted === true, "the forward aborted", 1_000);
  const r = await answer;
  await r.body?.cancel();
});

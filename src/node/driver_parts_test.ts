/** The pieces the driver is made of: drop logging, apply/durable waiters, proposal limits. */
import assert from "node:assert/strict";
import { DropLog } from "./_drop_log.ts";
import { DROP_LOG_INTERVAL_MS } from "./_driver_options.ts";
import { AppliedWaiters, DurableWaiters } from "./_apply_waiters.ts";
import { ProposalWaiters } from "./_proposal_waiters.ts";
import { NoLeaderError, OverloadedError, RequestTimeoutError } from "./errors.ts";

Deno.test("drop log: each reason is logged at most once per interval, every reason apart", () => {
  const lines: { level: string; fields: Record<string, unknown> | undefined }[] = [];
  let now = 1_000_000;
  const drops = new DropLog((level, _message, fields) => lines.push({ level, fields }), () => now);
  for (let i = 0; i < 50; i++) drops.note("staleTerm", { type: "app", from: "n2", term: 3 });
  drops.note("divergedCommit", { from: "n3" });
  assert.equal(lines.length, 2);
  assert.deepEqual(lines[0], {
    level: "info",
    fields: { reason: "staleTerm", type: "app", from: "n2", term: 3 },
  });
  assert.equal(lines[1].level, "error");
  now += DROP_LOG_INTERVAL_MS + 1;
  drops.note("staleTerm", undefined); // garbage: no fields to read, still logged
  assert.equal(lines.length, 3);
  assert.equal(lines[2].fields?.type, undefined);
});

Deno.test("applied waiters: settle when the condition holds, time out naming what, fail all", async () => {
  const waiters = new AppliedWaiters(10_000);
  let done = false;
  const p = waiters.until(() => done, "The thing");
  assert.equal(waiters.size, 1);
  waiters.check();
  assert.equal(waiters.size, 1);
  done = true;
  waiters.check();
  await p;
  assert.equal(waiters.size, 0);
  await assert.rejects(waiters.until(() => false, "Never", 1), (e) => {
    assert.ok(e instanceof RequestTimeoutError);
    assert.match(e.message, /Never did not complete in 1 ms/);
    return true;
  });
  assert.equal(waiters.size, 0, "a timed-out waiter is forgotten");
  const failed = waiters.until(() => false, "Closing");
  waiters.failAll(new NoLeaderError("shutting down"));
  await assert.rejects(failed, NoLeaderError);
});

Deno.test("durable waiters: resolve once the disk covers their index, fail on close", async () => {
  let last = 3;
  const waiters = new DurableWaiters(() => last);
  await waiters.when(3);
  let five = false;
  const p = waiters.when(5).then(() => five = true);
  last = 4;
  waiters.release();
  await Promise.resolve();
  assert.equal(five, false);
  last = 5;
  waiters.release();
  await p;
  const never = waiters.when(9);
  waiters.failAll(new NoLeaderError("closing"));
  await assert.rejects(never, NoLeaderError);
});

Deno.test("proposal waiters: count and age limits refuse at once; another term's entry fails it", async () => {
  let now = 0;
  const limits = { proposalsPendingMax: 2, queueWaitMaxMs: 100, requestTimeoutMs: 10_000 };
  const w = new ProposalWaiters(limits, "n1", () => now);
  w.admit();
  const a = w.wait({ index: 1, term: 1 }, "The write");
  now = 101;
  assert.throws(() => w.admit(), OverloadedError, "the oldest waited past queueWaitMaxMs");
  assert.equal(w.refusedQueued, 1);
  const b = w.wait({ index: 2, term: 1 }, "The write");
  assert.throws(() => w.admit(), /2 writes wait on node n1/);
  w.applied(1, 1, { ok: true, versionstamp: 7 } as never);
  assert.deepEqual(await a, { ok: true, versionstamp: 7 });
  w.applied(2, 2, undefined); // the index went to another leader's entry
  await assert.rejects(b, /Leadership changed before the write committed/);
  assert.equal(w.lost, 1);
  assert.equal(w.size, 0);
  w.admit();
});

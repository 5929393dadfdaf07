import assert from "node:assert/strict";
import { RaftInvariantError } from "./_errors.ts";
import { Progress } from "./_progress.ts";
import { EMPTY_MEMBERSHIP, type Snapshot } from "./_types.ts";

const WINDOW = { countMax: 2, bytesMax: 1_000 };

function snapshotAt(index: number): Snapshot {
  return { meta: { index, term: 1, membership: EMPTY_MEMBERSHIP }, data: new Uint8Array(0) };
}

/** A progress that matched up to `match` and is in `replicate`. */
function replicating(match: number): Progress {
  const pr = new Progress(match + 1, WINDOW);
  pr.maybeUpdate(match);
  pr.becomeReplicate();
  return pr;
}

Deno.test("Progress starts probing at the given next index", () => {
  const pr = new Progress(7, WINDOW);
  assert.equal(pr.state, "probe");
  assert.equal(pr.match, 0);
  assert.equal(pr.next, 7);
  assert.equal(pr.isPaused(), false);
});

Deno.test("Progress in probe pauses after one message until an answer", () => {
  const pr = new Progress(5, WINDOW);
  pr.sentEntries(7, 100);
  assert.equal(pr.probeSent, true);
  assert.equal(pr.isPaused(), true);
  assert.equal(pr.next, 5, "probe does not advance next optimistically");
  assert.equal(pr.inflights.count, 0);
  assert.equal(pr.maybeUpdate(7), true);
  assert.equal(pr.isPaused(), false);
  assert.equal(pr.next, 8);
});

Deno.test("Progress.becomeReplicate pipelines from after the match point", () => {
  const pr = new Progress(10, WINDOW);
  pr.maybeUpdate(4);
  pr.sentEntries(9, 1); // probeSent
  pr.becomeReplicate();
  assert.equal(pr.state, "replicate");
  assert.equal(pr.next, 5);
  assert.equal(pr.probeSent, false);
  pr.sentEntries(6, 10);
  assert.equal(pr.next, 7);
  assert.equal(pr.isPaused(), false);
  pr.sentEntries(8, 10);
  assert.equal(pr.next, 9);
  assert.equal(pr.isPaused(), true, "window of two is full");
  pr.inflights.freeLE(6);
  assert.equal(pr.isPaused(), false);
});

Deno.test("Progress in replicate ignores a send that carries nothing new", () => {
  const pr = replicating(4);
  pr.sentEntries(4, 0); // a heartbeat-like empty append
  assert.equal(pr.inflights.count, 0);
  assert.equal(pr.next, 5);
});

Deno.test("Progress.becomeProbe from replicate restarts after the match point", () => {
  const pr = replicating(4);
  pr.sentEntries(6, 10);
  pr.becomeProbe();
  assert.equal(pr.state, "probe");
  assert.equal(pr.next, 5);
  assert.equal(pr.inflights.count, 0, "the window is reset");
});

Deno.test("Progress in snapshot is paused and refuses entries", () => {
  const pr = new Progress(3, WINDOW);
  const snap = snapshotAt(10);
  pr.becomeSnapshot(snap);
  assert.equal(pr.state, "snapshot");
  assert.equal(pr.snapshot, snap);
  assert.equal(pr.isPaused(), true);
  assert.throws(() => pr.sentEntries(11, 1), RaftInvariantError);
});

Deno.test("Progress.becomeProbe after a snapshot resumes after the snapshot", () => {
  const pr = new Progress(3, WINDOW);
  pr.maybeUpdate(2);
  pr.becomeSnapshot(snapshotAt(10));
  pr.snapshotAcked = 64;
  pr.snapshotChunkSent = true;
  pr.becomeProbe();
  assert.equal(pr.state, "probe");
  assert.equal(pr.next, 11);
  assert.equal(pr.snapshot, undefined);
  assert.equal(pr.snapshotAcked, 0);
  assert.equal(pr.snapshotChunkSent, false);
});

Deno.test("Progress.becomeProbe after a snapshot keeps a match beyond it", () => {
  const pr = new Progress(3, WINDOW);
  pr.becomeSnapshot(snapshotAt(10));
  pr.maybeUpdate(15);
  pr.becomeProbe();
  assert.equal(pr.next, 16);
});

Deno.test("Progress.maybeUpdate moves match forward only", () => {
  const pr = new Progress(5, WINDOW);
  assert.equal(pr.maybeUpdate(3), true);
  assert.equal(pr.match, 3);
  assert.equal(pr.next, 5, "next never goes back");
  assert.equal(pr.maybeUpdate(3), false);
  assert.equal(pr.maybeUpdate(2), false);
  assert.equal(pr.match, 3);
  assert.equal(pr.maybeUpdate(9), true);
  assert.equal(pr.next, 10);
});

Deno.test("Progress.maybeDecrease in replicate falls back to after the match point", () => {
  const pr = replicating(4);
  pr.sentEntries(6, 1);
  pr.sentEntries(8, 1);
  assert.equal(pr.maybeDecrease(7, 5), true);
  assert.equal(pr.next, 5);
});

Deno.test("Progress.maybeDecrease in replicate ignores a stale rejection", () => {
  const pr = replicating(4);
  pr.sentEntries(8, 1);
  assert.equal(pr.maybeDecrease(4, 0), false);
  assert.equal(pr.maybeDecrease(2, 0), false);
  assert.equal(pr.next, 9);
});

Deno.test("Progress.maybeDecrease in probe follows the hint", () => {
  const pr = new Progress(10, WINDOW);
  pr.sentEntries(12, 1);
  assert.equal(pr.maybeDecrease(9, 5), true);
  assert.equal(pr.next, 6, "hint + 1");
  assert.equal(pr.probeSent, false);
  assert.equal(pr.isPaused(), false);
});

Deno.test("Progress.maybeDecrease in probe never goes below match + 1 nor above the rejection", () => {
  const pr = new Progress(10, WINDOW);
  pr.maybeUpdate(3);
  assert.equal(pr.maybeDecrease(9, 0), true);
  assert.equal(pr.next, 4, "not below match + 1");
  const high = new Progress(10, WINDOW);
  assert.equal(high.maybeDecrease(9, 50), true);
  assert.equal(high.next, 9, "not above the rejected index");
});

Deno.test("Progress.maybeDecrease in probe ignores a rejection of another message", () => {
  const pr = new Progress(10, WINDOW);
  pr.sentEntries(12, 1);
  assert.equal(pr.maybeDecrease(7, 2), false);
  assert.equal(pr.maybeDecrease(10, 2), false);
  assert.equal(pr.next, 10);
  assert.equal(pr.probeSent, true);
});

Deno.test("Progress.isPaused depends on the state", () => {
  const pr = new Progress(1, { countMax: 1, bytesMax: 1_000 });
  assert.equal(pr.isPaused(), false);
  pr.sentEntries(1, 1);
  assert.equal(pr.isPaused(), true);
  pr.becomeReplicate();
  assert.equal(pr.isPaused(), false);
  pr.sentEntries(3, 1);
  assert.equal(pr.isPaused(), true);
  pr.becomeSnapshot(snapshotAt(5));
  assert.equal(pr.isPaused(), true);
  pr.becomeProbe();
  assert.equal(pr.isPaused(), false);
});

import assert from "node:assert/strict";
import fc from "fast-check";
import { RaftInvariantError } from "./_errors.ts";
import { Inflights } from "./_inflights.ts";

Deno.test("Inflights refuses a window that allows no message", () => {
  assert.throws(() => new Inflights(0, 100), RaftInvariantError);
  assert.throws(() => new Inflights(4, 0), RaftInvariantError);
});

Deno.test("Inflights fills up by count", () => {
  const w = new Inflights(3, 1_000);
  assert.equal(w.count, 0);
  assert.equal(w.full(), false);
  w.add(1, 10);
  w.add(2, 10);
  assert.equal(w.full(), false);
  w.add(5, 10);
  assert.equal(w.count, 3);
  assert.equal(w.full(), true);
});

Deno.test("Inflights fills up by bytes, letting one message overshoot", () => {
  const w = new Inflights(100, 100);
  w.add(1, 60);
  assert.equal(w.full(), false);
  w.add(2, 50); // 110 bytes: allowed because the window was not full before it
  assert.equal(w.full(), true);
  assert.equal(w.count, 2);
  const big = new Inflights(100, 100);
  big.add(1, 500); // a single message larger than the window is still sent
  assert.equal(big.full(), true);
});

Deno.test("Inflights asserts on overflow", () => {
  const byCount = new Inflights(1, 1_000);
  byCount.add(1, 1);
  assert.throws(() => byCount.add(2, 1), RaftInvariantError);
  const byBytes = new Inflights(10, 10);
  byBytes.add(1, 10);
  assert.throws(() => byBytes.add(2, 1), RaftInvariantError);
});

Deno.test("Inflights asserts that indexes increase", () => {
  const w = new Inflights(10, 1_000);
  w.add(5, 1);
  assert.throws(() => w.add(5, 1), RaftInvariantError);
  assert.throws(() => w.add(4, 1), RaftInvariantError);
  assert.equal(w.count, 1);
});

Deno.test("Inflights.freeLE frees every message up to the index", () => {
  const w = new Inflights(3, 100);
  w.add(2, 30);
  w.add(4, 30);
  w.add(6, 30);
  assert.equal(w.full(), true);
  w.freeLE(1); // before the first: nothing
  assert.equal(w.count, 3);
  w.freeLE(3); // frees the message ending at 2
  assert.equal(w.count, 2);
  assert.equal(w.full(), false);
  w.freeLE(6);
  assert.equal(w.count, 0);
  w.freeLE(100); // nothing left: a no-op
  assert.equal(w.count, 0);
});

Deno.test("Inflights.freeLE gives bytes back", () => {
  const w = new Inflights(100, 100);
  w.add(1, 60);
  w.add(2, 60);
  assert.equal(w.full(), true);
  w.freeLE(1);
  assert.equal(w.full(), false); // 60 bytes left
  w.add(3, 39);
  assert.equal(w.full(), false); // 99 bytes
  w.add(4, 1);
  assert.equal(w.full(), true); // 100 bytes
});

Deno.test("Inflights accepts any index once everything was freed", () => {
  const w = new Inflights(4, 100);
  w.add(10, 1);
  w.freeLE(10);
  w.add(3, 1); // after a probe the leader may resend from a lower index
  assert.equal(w.count, 1);
});

Deno.test("Inflights.reset forgets every message and byte", () => {
  const w = new Inflights(2, 100);
  w.add(1, 60);
  w.add(2, 50);
  assert.equal(w.full(), true);
  w.reset();
  assert.equal(w.count, 0);
  assert.equal(w.full(), false);
  w.add(1, 99);
  assert.equal(w.full(), false);
});

Deno.test("Inflights keeps its count across the internal compaction", () => {
  const w = new Inflights(1_000, 1_000_000);
  for (let i = 1; i <= 300; i++) w.add(i, 10);
  for (let i = 1; i <= 300; i += 7) {
    w.freeLE(i);
    assert.equal(w.count, 300 - i);
  }
  for (let i = 301; i <= 400; i++) w.add(i, 10);
  w.freeLE(350);
  assert.equal(w.count, 50);
});

Deno.test("Inflights keeps the bytes of each message across the internal compaction", () => {
  const w = new Inflights(1_000, 1_000);
  for (let i = 1; i <= 100; i++) w.add(i, i === 71 ? 900 : 1);
  w.freeLE(70); // compacts: 70 freed of 100, 929 bytes left
  w.freeLE(71); // frees the 900 bytes of 71: 29 left
  w.add(101, 970);
  assert.equal(w.full(), false, "999 bytes");
  w.add(102, 1);
  assert.equal(w.full(), true, "1000 bytes");
  w.freeLE(102);
  assert.equal(w.count, 0);
});

Deno.test("Inflights matches a model of the window (property)", () => {
  const add = fc.record({
    kind: fc.constant("add" as const),
    step: fc.integer({ min: 1, max: 5 }),
    bytes: fc.nat(40),
  });
  const free = fc.record({ kind: fc.constant("free" as const), back: fc.nat(10) });
  const reset = fc.record({ kind: fc.constant("reset" as const) });
  // Long runs with rare resets, so that more than 64 messages are freed and the window
  // compacts its arrays.
  const op = fc.oneof(
    { weight: 10, arbitrary: add },
    { weight: 6, arbitrary: free },
    { weight: 1, arbitrary: reset },
  );
  fc.assert(fc.property(fc.array(op, { minLength: 100, maxLength: 400, size: "max" }), (ops) => {
    const countMax = 8;
    const bytesMax = 100;
    const w = new Inflights(countMax, bytesMax);
    let model: { index: number; bytes: number }[] = [];
    let last = 0;
    const full = () =>
      model.length >= countMax || model.reduce((s, m) => s + m.bytes, 0) >= bytesMax;
    for (const o of ops) {
      if (o.kind === "add") {
        if (full()) {
          assert.throws(() => w.add(last + o.step, o.bytes), RaftInvariantError);
          continue;
        }
        last += o.step;
        w.add(last, o.bytes);
        model.push({ index: last, bytes: o.bytes });
      } else if (o.kind === "free") {
        const index = last - o.back;
        w.freeLE(index);
        model = model.filter((m) => m.index > index);
      } else {
        w.reset();
        model = [];
      }
      assert.equal(w.count, model.length);
      assert.equal(w.full(), full());
    }
  }));
});

/** The event loop's lag: stalls counted and logged at most every ten seconds, and the gauges. */
import assert from "node:assert/strict";
import { LOOP_STALL_LOG_EVERY_MS, LOOP_STALL_MS, LoopLag } from "./_loop_lag.ts";

Deno.test("loop lag: stalls are counted, the longest kept, the log rate-limited", () => {
  const logged: [number, number][] = [];
  const lag = new LoopLag((ms, stalls) => logged.push([ms, stalls]));
  lag.record(3, 0);
  lag.record(LOOP_STALL_MS - 1, 10);
  assert.deepEqual(lag.stats(), {
    eventLoopLagMaxMs: LOOP_STALL_MS - 1,
    eventLoopLagMs: LOOP_STALL_MS - 1,
    eventLoopStalls: 0,
  });
  lag.record(450, 20);
  lag.record(700, 30); // within the log interval: counted, not logged
  lag.record(-5, 40); // a timer early (clock granularity) is no lag
  assert.deepEqual(logged, [[450, 1]]);
  assert.deepEqual(lag.stats(), { eventLoopLagMaxMs: 700, eventLoopLagMs: 0, eventLoopStalls: 2 });
  lag.record(300, 20 + LOOP_STALL_LOG_EVERY_MS);
  assert.deepEqual(logged, [[450, 1], [300, 3]]);
});

Deno.test("loop lag: sampling runs on its own timer and stops; a stall right after the start is counted, not logged", async () => {
  const logged: number[] = [];
  const lag = new LoopLag((ms) => logged.push(ms));
  lag.start();
  try {
    const until = performance.now() + 300;
    while (performance.now() < until) await new Promise((r) => setTimeout(r, 20));
    // A busy wait longer than a stall: the next sample sees it.
    const busy = performance.now() + LOOP_STALL_MS + 50;
    while (performance.now() < busy) { /* block the loop */ }
    const end = performance.now() + 5_000;
    while (lag.stats().eventLoopStalls === 0 && performance.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(lag.stats().eventLoopStalls >= 1);
    assert.ok(lag.stats().eventLoopLagMaxMs >= LOOP_STALL_MS);
    assert.deepEqual(logged, [], "not within the first ten seconds");
  } finally {
    lag.stop();
  }
});

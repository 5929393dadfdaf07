import assert from "node:assert/strict";
import { versionstampAt } from "../storage/mod.ts";
import { VERSIONSTAMP_AFTER_AHEAD_MS_MAX, VersionstampClock } from "./_versionstamp_clock.ts";

Deno.test("VersionstampClock: follows the wall clock, never goes back, exceeds what it is told", () => {
  const wall = { ms: 1_000_000 };
  let applied = 0;
  const clock = new VersionstampClock(() => wall.ms, () => applied);
  const a = clock.next();
  assert.equal(a, versionstampAt(1_000_000));
  assert.equal(clock.next(), a + 1, "within one millisecond: the next one");
  wall.ms -= 500; // a clock stepped back
  assert.equal(clock.next(), a + 2);
  applied = a + 100; // the state machine applied a newer leader's stamps
  assert.equal(clock.next(), a + 101);
  assert.equal(clock.next(a + 5000), a + 5001);
  wall.ms += 10_000;
  assert.equal(clock.next(), versionstampAt(wall.ms));
});

Deno.test("VersionstampClock: a floor far ahead of the clock is refused", () => {
  const clock = new VersionstampClock(() => 1_000_000, () => 0);
  assert.ok(clock.acceptsAfter(versionstampAt(1_000_000 + VERSIONSTAMP_AFTER_AHEAD_MS_MAX)));
  assert.ok(!clock.acceptsAfter(versionstampAt(1_000_001 + VERSIONSTAMP_AFTER_AHEAD_MS_MAX)));
  assert.ok(!clock.acceptsAfter(-1));
  assert.ok(!clock.acceptsAfter(0.5));
});

import assert from "node:assert/strict";
import { versionstampAt } from "../storage/mod.ts";
import {
  VERSIONSTAMP_AFTER_AHEAD_MS_MAX,
  VERSIONSTAMP_SLOTS,
  VersionstampClock,
} from "./_versionstamp_clock.ts";

Deno.test("VersionstampClock: follows the wall clock, never goes back, exceeds what it is told", () => {
  const wall = { ms: 1_000_000 };
  let applied = 0;
  const S = VERSIONSTAMP_SLOTS; // slot 0: the multiples of S
  const clock = new VersionstampClock(() => wall.ms, () => applied);
  const a = clock.next();
  assert.equal(a, versionstampAt(1_000_000));
  assert.equal(clock.next(), a + S, "within one millisecond: the next one");
  wall.ms -= 500; // a clock stepped back
  assert.equal(clock.next(), a + 2 * S);
  applied = a + 100; // the state machine applied a newer leader's stamps
  assert.equal(clock.next(), a + 128);
  assert.equal(clock.next(a + 5000), a + 5024);
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

Deno.test("VersionstampClock: clusters of different slots never hand out the same versionstamp", () => {
  // Found by the attack: concurrent transactions of two clusters got equal versionstamps.
  const wall = { ms: 1_000_000 };
  const clocks = [0, 1, 2, VERSIONSTAMP_SLOTS - 1].map((slot) =>
    new VersionstampClock(() => wall.ms, () => 0, slot)
  );
  const seen = new Map<number, number>();
  for (let round = 0; round < 200; round++) {
    if (round % 7 === 0) wall.ms++;
    clocks.forEach((clock, i) => {
      const vs = clock.next(round * 3);
      assert.equal(seen.get(vs), undefined, `versionstamp ${vs} twice`);
      seen.set(vs, i);
      assert.equal(vs % VERSIONSTAMP_SLOTS, [0, 1, 2, VERSIONSTAMP_SLOTS - 1][i]);
    });
  }
  // Still increasing, still above what it is told, still on the wall clock.
  const clock = new VersionstampClock(() => 2_000_000, () => 0, 5);
  const a = clock.next();
  assert.ok(a >= versionstampAt(2_000_000) && a < versionstampAt(2_000_000) + VERSIONSTAMP_SLOTS);
  assert.equal(clock.next(), a + VERSIONSTAMP_SLOTS);
  assert.ok(clock.next(a + 1000) > a + 1000);
});

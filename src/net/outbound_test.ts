import assert from "node:assert/strict";
import fc from "fast-check";
import { backoffDelayMs } from "./_outbound.ts";

Deno.test("backoffDelayMs doubles from min up to max, jittered within the upper half", () => {
  const at = (attempt: number, random: number) =>
    backoffDelayMs(attempt, { min: 50, max: 2_000, random: () => random });
  assert.equal(at(0, 0), 50);
  assert.equal(at(0, 0.5), 75);
  assert.equal(at(3, 0), 400);
  assert.equal(at(3, 0.5), 600);
  assert.equal(at(10, 0), 1_000);
  assert.equal(at(1_000, 0), 1_000); // capped: no overflow for long outages
  assert.ok(at(1_000, 0.999_999) < 2_000);
  // A range narrower than one doubling still stays within it.
  assert.equal(backoffDelayMs(0, { min: 50, max: 60, random: () => 0 }), 50);
});

Deno.test("backoffDelayMs stays within [min, max] and grows with the attempt", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1_000 }),
      fc.integer({ min: 0, max: 100_000 }),
      fc.nat({ max: 100 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (min, extra, attempt, random) => {
        const options = { min, max: min + extra, random: () => random };
        const delay = backoffDelayMs(attempt, options);
        assert.ok(delay >= min && delay <= min + extra, `${delay}`);
        assert.ok(backoffDelayMs(attempt + 1, options) >= delay);
      },
    ),
  );
});

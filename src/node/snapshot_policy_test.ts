import assert from "node:assert/strict";
import { shouldSnapshot } from "./_snapshot_policy.ts";

const limits = { snapshotEntries: 1000, snapshotLogBytes: 1 << 20 };

Deno.test("snapshot policy: nothing new, no snapshot", () => {
  assert.equal(
    shouldSnapshot({ entriesSince: 0, logBytes: 1 << 30, keys: 0, stateBytes: 0 }, limits),
    false,
  );
});

Deno.test("snapshot policy: the entry trigger grows with the number of keys", () => {
  const small = { entriesSince: 1000, logBytes: 0, keys: 10, stateBytes: 100 };
  assert.equal(shouldSnapshot(small, limits), true);
  assert.equal(shouldSnapshot({ ...small, keys: 50_000 }, limits), false);
  // A quarter of the keys: the log stays well below the state it would rebuild.
  assert.equal(shouldSnapshot({ ...small, entriesSince: 12_499, keys: 50_000 }, limits), false);
  assert.equal(shouldSnapshot({ ...small, entriesSince: 12_500, keys: 50_000 }, limits), true);
});

Deno.test("snapshot policy: the byte trigger bounds the log by max(minimum, state bytes / 4)", () => {
  const few = { entriesSince: 60, logBytes: 60 << 20, keys: 1, stateBytes: 1 << 20 };
  assert.equal(shouldSnapshot(few, limits), true, "60 overwrites of a 1 MiB key");
  assert.equal(shouldSnapshot({ ...few, logBytes: (1 << 20) - 1 }, limits), false);
  // A 100 MiB state waits for 25 MiB of log: snapshot cost per written byte stays flat.
  const big = { entriesSince: 60, logBytes: 20 << 20, keys: 1, stateBytes: 100 << 20 };
  assert.equal(shouldSnapshot(big, limits), false);
  assert.equal(shouldSnapshot({ ...big, logBytes: 25 << 20 }, limits), true);
});

import assert from "node:assert/strict";
import { keyName, OpStream, valueOf, WORKLOAD_NAMES, WORKLOADS } from "./_workload.ts";

Deno.test("workload: the mix of reads and updates matches the workload within 1 %", () => {
  const expected = { A: 0.5, B: 0.95, C: 1, W: 0, T: 0 };
  for (const name of WORKLOAD_NAMES) {
    const stream = new OpStream(WORKLOADS[name], "uniform", 1000, 11);
    let reads = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) if (stream.next().type === "read") reads++;
    assert.equal(WORKLOADS[name].readFraction, expected[name]);
    assert.ok(Math.abs(reads / n - expected[name]) < 0.01, `${name}: ${reads / n}`);
    if (name === "C") assert.equal(reads, n);
    if (name === "W") assert.equal(reads, 0);
  }
});

Deno.test("workload: key names are user and the zero-padded index", () => {
  assert.equal(keyName(42, 100_000), "user00042");
  assert.equal(keyName(99_999, 100_000), "user99999");
  assert.equal(keyName(0, 1), "user0");
  assert.equal(keyName(9, 10), "user9");
  assert.equal(keyName(10, 11), "user10");
  assert.equal(keyName(3, 1001), "user0003");
});

Deno.test("workload: one seed, the same operations; the same keys under every workload", () => {
  const take = (name: "A" | "B", seed: number) => {
    const s = new OpStream(WORKLOADS[name], "zipfian", 5000, seed);
    return Array.from({ length: 500 }, () => s.next());
  };
  assert.deepEqual(take("A", 5), take("A", 5));
  assert.notDeepEqual(take("A", 5), take("A", 6));
  assert.deepEqual(take("A", 5).map((op) => op.key), take("B", 5).map((op) => op.key));
  assert.ok(take("A", 5).every((op) => /^user\d{4}$/.test(op.key)));
});

Deno.test("workload: the value has the asked size, printable, the same for a seed", () => {
  for (const bytes of [0, 1, 100, 4096]) {
    const value = valueOf(bytes, 3);
    assert.equal(value.length, bytes);
    assert.ok(value.every((b) => (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7a)));
    assert.deepEqual(valueOf(bytes, 3), value);
  }
  assert.notDeepEqual(valueOf(100, 3), valueOf(100, 4));
});

import { runSimulation } from "./simulation.ts";

/** The fixed seeds `deno task test` runs (the long sweep is `deno task sim --seeds 5000`). */
const SEEDS_PER_TEST = 100;
const TESTS = 5;

for (let t = 0; t < TESTS; t++) {
  const from = 1 + t * SEEDS_PER_TEST;
  const to = from + SEEDS_PER_TEST - 1;
  Deno.test(`simulation: seeds ${from}..${to} keep every safety property and make progress`, async () => {
    const failures: string[] = [];
    for (let seed = from; seed <= to; seed++) {
      const r = await runSimulation(seed);
      if (r.violation !== undefined) {
        failures.push(`seed ${seed}: ${r.violation}\n  replay: deno task sim --seed ${seed}`);
      }
    }
    if (failures.length > 0) throw new Error(failures.join("\n"));
  });
}

Deno.test("simulation: seeds replay identically (every bias)", async () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8, 42]) {
    const a = await runSimulation(seed);
    const b = await runSimulation(seed);
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      throw new Error(
        `seed ${seed} ran differently twice:\n${JSON.stringify(a)}\n${JSON.stringify(b)}`,
      );
    }
  }
});

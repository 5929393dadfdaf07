import { applyMutant, MUTANTS, occurrences } from "./_mutants_list.ts";

Deno.test("mutants: every mutant's text occurs exactly once in the current core", async () => {
  const problems: string[] = [];
  for (const m of MUTANTS) {
    const text = await Deno.readTextFile(new URL(`../${m.file}`, import.meta.url));
    const n = occurrences(text, m.find);
    if (n !== 1) problems.push(`${m.name}: text found ${n} times in ${m.file}`);
    else if (applyMutant(m, text) === text) problems.push(`${m.name}: the mutant changes nothing`);
  }
  if (problems.length > 0) {
    throw new Error(
      `The core drifted from the mutants in scripts/_mutants_list.ts; re-anchor them:\n` +
        problems.join("\n"),
    );
  }
});

Deno.test("mutants: names are unique and every mutant names its bug", () => {
  const names = new Set(MUTANTS.map((m) => m.name));
  if (names.size !== MUTANTS.length) throw new Error("two mutants share a name");
  for (const m of MUTANTS) {
    if (m.bug.length === 0 || !m.file.startsWith("src/raft/")) {
      throw new Error(`mutant ${m.name} must name its bug and change a file of src/raft/`);
    }
  }
});

Deno.test("mutants: a mutant whose text is missing is refused loudly", () => {
  const m = MUTANTS[0];
  let message = "";
  try {
    applyMutant(m, "nothing to see here");
  } catch (e) {
    message = (e as Error).message;
  }
  const expected = `mutant ${m.name} does not apply: text not found in ${m.file}`;
  if (message !== expected) throw new Error(`expected "${expected}", got "${message}"`);
});

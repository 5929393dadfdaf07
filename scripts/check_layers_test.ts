import assert from "node:assert/strict";
import { checkFile, srcFile } from "./check_layers.ts";

Deno.test("layering check accepts a pure raft file importing its own folder", () => {
  const src =
    `import { Log } from "./_log.ts";\nexport const x = 1; // Deno.now in a comment is fine`;
  assert.deepEqual(checkFile(srcFile("raft/core.ts"), src), []);
});

Deno.test('layering check does not read a string literal "from" in a type as an import', () => {
  const src = `export type Outgoing = Omit<Message, "from" | "term">;\n` +
    `import type { Message } from "./_message.ts";`;
  assert.deepEqual(checkFile(srcFile("raft/core.ts"), src), []);
});

Deno.test("layering check rejects I/O, clocks and randomness in src/raft", () => {
  for (
    const body of [
      "Deno.readFile('x')",
      "setTimeout(() => {}, 1)",
      "Date.now()",
      "new Date()",
      "Math.random()",
      "crypto.getRandomValues(b)",
      "performance.now()",
    ]
  ) {
    const problems = checkFile(srcFile("raft/core.ts"), `export const f = () => ${body};`);
    assert.equal(problems.length, 1, body);
  }
});

Deno.test("layering check rejects outward and package imports from src/raft", () => {
  assert.equal(checkFile(srcFile("raft/a.ts"), `import { x } from "../storage/mod.ts";`).length, 1);
  assert.equal(
    checkFile(srcFile("raft/a.ts"), `import { encode } from "@msgpack/msgpack";`).length,
    1,
  );
});

Deno.test("layering check enforces the direction between layers", () => {
  assert.deepEqual(
    checkFile(srcFile("storage/a.ts"), `import { Raft } from "../raft/mod.ts";`),
    [],
  );
  assert.equal(checkFile(srcFile("raft/a.ts"), `export { x } from "../node/mod.ts";`).length, 1);
  assert.equal(checkFile(srcFile("config/a.ts"), `import { y } from "../node/mod.ts";`).length, 1);
});

import assert from "node:assert/strict";
import { MemoryStorage } from "./memory_storage.ts";
import { STORAGE_CASES, type StorageUnderTest } from "./storage_conformance.ts";

/**
 * MemoryStorage has no durable state: "reopening" returns the same object, so the restart
 * cases only check that the in-memory contract holds across the same calls, not durability.
 */
function openMemory(): Promise<StorageUnderTest> {
  const storage = new MemoryStorage();
  return Promise.resolve({ storage, reopen: () => Promise.resolve(storage) });
}

for (const c of STORAGE_CASES) {
  Deno.test(`MemoryStorage conformance: ${c.name}`, () => c.run(openMemory));
}

Deno.test("MemoryStorage: the conformance suite has distinct case names", () => {
  const names = STORAGE_CASES.map((c) => c.name);
  assert.equal(new Set(names).size, names.length);
});

Deno.test("MemoryStorage: hardState() is the hard state of initialState()", () => {
  const storage = new MemoryStorage();
  storage.setHardState({ term: 3, vote: "a", commit: 0 });
  assert.deepEqual(storage.hardState(), storage.initialState().hardState);
});

Deno.test("MemoryStorage: a restart case fails loudly without reopen", async () => {
  const restart = STORAGE_CASES.find((c) => c.reopens === true)!;
  await assert.rejects(
    () => restart.run(() => Promise.resolve({ storage: new MemoryStorage() })),
    /reopen\(\) is missing/,
  );
});

import assert from "node:assert/strict";
import type { Entry } from "../../src/raft/mod.ts";
import { SimDisk } from "./disk.ts";

function entry(index: number, term: number): Entry {
  return { index, term, type: "normal", data: new Uint8Array(0) };
}

Deno.test("sim disk: a crash inside a persist keeps a log prefix, the new term and vote, and a commit within it", async () => {
  const disk = new SimDisk();
  await disk.bootstrap(["a", "b", "c"]);
  const batch = {
    entries: [entry(2, 2), entry(3, 2), entry(4, 2)],
    hardState: { term: 2, vote: "b", commit: 4 },
  };
  disk.writePrefix(batch, 2);
  disk.crash();
  const s = disk.storage;
  assert.equal(s.lastIndex(), 3);
  assert.deepEqual(s.hardState(), { term: 2, vote: "b", commit: 3 });
});

Deno.test("sim disk: a crash before the first commit of a persist keeps nothing of it", async () => {
  const disk = new SimDisk();
  await disk.bootstrap(["a", "b", "c"]);
  disk.writePrefix({ entries: [entry(2, 2)], hardState: { term: 2, vote: "b", commit: 1 } }, 0);
  disk.crash();
  assert.equal(disk.storage.lastIndex(), 1);
  assert.deepEqual(disk.storage.hardState(), { term: 1, vote: "", commit: 1 });
});

Deno.test("sim disk: a persist of only a new commit index is lost in a crash (written lazily)", async () => {
  const disk = new SimDisk();
  await disk.bootstrap(["a", "b", "c"]);
  disk.write({ entries: [entry(2, 1), entry(3, 1)], hardState: { term: 1, vote: "", commit: 2 } });
  disk.write({ entries: [], hardState: { term: 1, vote: "", commit: 3 } });
  assert.equal(disk.storage.hardState().commit, 3, "the core reads the new commit index");
  assert.equal(disk.crash(), true);
  assert.equal(disk.storage.hardState().commit, 2);
});

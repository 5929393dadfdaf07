/**
 * One durable Raft persist through Deno.Kv (what every Ready costs a node): a batch of 1, 10,
 * 50 or 200 entries of 100-byte commands plus the hard state, in one KvLogStorage.persist on a
 * file in a temporary directory. Per-entry cost falls with the batch: the fsync is shared.
 *
 *   deno bench -A bench/kv_append_bench.ts
 *
 * @module
 */
import type { Entry } from "../src/raft/mod.ts";
import { KvLogStorage } from "../src/storage/mod.ts";

const dir = await Deno.makeTempDir({ prefix: "koi-kv-bench-" });
const kv = await Deno.openKv(`${dir}/raft.kv`);
const storage = await KvLogStorage.open(kv);
const data = new Uint8Array(100).fill(7);
let next = storage.lastIndex() + 1;

function batch(n: number): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < n; i++) out.push({ index: next++, term: 1, type: "normal", data });
  return out;
}

for (const n of [1, 10, 50, 200]) {
  Deno.bench(
    { name: `Deno.Kv persist of ${n} entries`, group: "persist", baseline: n === 1 },
    async () => {
      const entries = batch(n);
      await storage.persist({ entries, hardState: { term: 1, vote: "", commit: next - 1 } });
    },
  );
}

globalThis.addEventListener("unload", () => {
  kv.close();
  Deno.removeSync(dir, { recursive: true });
});

import { assert } from "./_errors.ts";
import type { LogStorage } from "./_storage.ts";
import type { NodeId } from "./_types.ts";

/**
 * Writes the first state of a founding member of a new cluster, in one durable step: one
 * committed config entry (index 1, term 1) naming the voters. Every founding member writes the
 * same entry, so their logs agree; members added later start empty and receive it (or a
 * snapshot) from the leader. `context` travels in the entry for the application (e.g. the
 * founders' addresses) and must be the same on every founder.
 */
export async function bootstrapStorage(
  storage: LogStorage,
  voters: readonly NodeId[],
  context: Uint8Array = new Uint8Array(0),
): Promise<void> {
  assert(storage.lastIndex() === 0, "bootstrapping a storage that already holds a log");
  assert(voters.length > 0, "bootstrapping a cluster without voters");
  const sorted = [...new Set(voters)].sort();
  await storage.persist({
    entries: [{
      term: 1,
      index: 1,
      type: "config",
      data: context,
      membership: { voters: sorted, outgoing: [], learners: [] },
    }],
    hardState: { term: 1, vote: "", commit: 1 },
  });
}

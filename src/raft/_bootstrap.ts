import { assert } from "./_errors.ts";
import type { LogStorage } from "./_storage.ts";
import type { NodeId } from "./_types.ts";

/**
 * Writes the first state of a founding member of a new cluster: one committed config entry
 * (index 1, term 1) naming the voters. Every founding member writes the same entry, so their
 * logs agree; members added later start empty and receive it (or a snapshot) from the leader.
 */
export async function bootstrapStorage(
  storage: LogStorage,
  voters: readonly NodeId[],
): Promise<void> {
  assert(storage.lastIndex() === 0, "bootstrapping a storage that already holds a log");
  assert(voters.length > 0, "bootstrapping a cluster without voters");
  const sorted = [...new Set(voters)].sort();
  await storage.append([{
    term: 1,
    index: 1,
    type: "config",
    data: new Uint8Array(0),
    membership: { voters: sorted, outgoing: [], learners: [] },
  }]);
  await storage.setHardState({ term: 1, vote: "", commit: 1 });
}

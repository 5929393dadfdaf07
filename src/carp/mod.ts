/**
 * CARP routing: which Raft cluster owns a key. A pure module (no I/O, no clock, no
 * randomness). Two schemes: `"carp"` is draft-vinod-carp-v1-03 exactly; `"carp64"` (koi's
 * default) keeps CARP's shape with a 64-bit mix and exact weighted rendezvous scores, so
 * shares equal the load factors and changing one load factor moves only that member's keys.
 * Build a {@linkcode CarpTable} once per epoch and ask it {@linkcode CarpTable.owner}.
 * docs/carp.md specifies both schemes with test vectors.
 *
 * @example
 * ```ts
 * import { CarpTable } from "./mod.ts";
 *
 * const table = new CarpTable({
 *   scheme: "carp64",
 *   epoch: 3,
 *   members: [{ id: "a", loadFactor: 1 }, { id: "b", loadFactor: 1 }, { id: "c", loadFactor: 2 }],
 * });
 * const cluster = table.owner("user:42");
 * ```
 *
 * @module
 */
export { CarpTable, carpTableFromConfig } from "./table.ts";
export type { CarpRoutingConfig, CarpTableOptions } from "./table.ts";
export { CARP_SCHEMES } from "./_types.ts";
export type { CarpMember, CarpScheme } from "./_types.ts";
export { CarpConfigError } from "./_errors.ts";
export {
  CARP_MIX,
  carpCombine,
  carpHashBytes,
  carpHashString,
  carpMemberHash,
  carpMultipliers,
} from "./_draft.ts";
export {
  CARP64_SEED_HI,
  CARP64_SEED_LO,
  carp64Combine,
  carp64KeyHash,
  carp64MemberHash,
  carp64Score,
  hex64,
  murmur3x86_32,
} from "./_carp64.ts";
export type { Hash64 } from "./_carp64.ts";

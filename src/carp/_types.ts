/** The shapes a CARP table is built from. */

/**
 * How keys are spread over members: `"carp"` is exact draft-vinod-carp-v1-03, `"carp64"`
 * koi's variant with a 64-bit mix and exact weighted rendezvous scores (docs/carp.md).
 */
export type CarpScheme = "carp" | "carp64";

/** The schemes {@linkcode CarpScheme} allows, in the order error messages list them. */
export const CARP_SCHEMES: readonly CarpScheme[] = Object.freeze(["carp", "carp64"] as const);

/** One member of a CARP table: in koi a Raft cluster, named by its id. */
export interface CarpMember {
  /** The member's name, hashed as its UTF-8 bytes exactly as written. */
  readonly id: string;
  /** The member's relative share of keys: finite and > 0. */
  readonly loadFactor: number;
}

/** The routing table: which member (Raft cluster) owns a key, under one epoch. */

import { carp64Argmax, carp64MemberHash, checkCarp64Hashes, type Hash64 } from "./_carp64.ts";
import { carpArgmax, carpMemberHash, carpMultipliers, checkCarpHashes } from "./_draft.ts";
import type { CarpMember, CarpScheme } from "./_types.ts";
import { compareUtf8, encodeUtf8, scratchBytes } from "./_utf8.ts";
import { checkEpoch, checkMembers, checkScheme } from "./_validate.ts";

/** What a {@linkcode CarpTable} is built from. */
export interface CarpTableOptions {
  /** The routing scheme. */
  readonly scheme: CarpScheme;
  /** The table's version, an integer >= 1; bumped whenever members or load factors change. */
  readonly epoch: number;
  /** The members; their order does not matter. */
  readonly members: readonly CarpMember[];
}

/** The part of koi's validated config a table is built from (`KoiConfig` fits it). */
export interface CarpRoutingConfig {
  /** `routing.scheme` and `routing.epoch`. */
  readonly routing: { readonly scheme: CarpScheme; readonly epoch: number };
  /** The clusters: each one's `id` and `loadFactor` make a member. */
  readonly clusters: readonly CarpMember[];
}

/** The precomputed per-member data of one scheme, in id order. */
type Members =
  | { scheme: "carp"; hashes: Uint32Array; multipliers: Float64Array }
  | { scheme: "carp64"; hi: Uint32Array; lo: Uint32Array; loadFactors: Float64Array };

/**
 * An immutable routing table: validated members with their hashes and weights computed
 * once. {@linkcode CarpTable.owner} answers which member owns a key.
 *
 * @example
 * ```ts
 * const table = new CarpTable({
 *   scheme: "carp64",
 *   epoch: 1,
 *   members: [{ id: "a", loadFactor: 1 }, { id: "b", loadFactor: 2 }],
 * });
 * table.owner("user:42"); // "a" or "b", the same on every client of this epoch
 * ```
 */
export class CarpTable {
  /** The routing scheme. */
  readonly scheme: CarpScheme;
  /** The table's version. */
  readonly epoch: number;
  /** The members as given (frozen copies, in the given order). */
  readonly members: readonly CarpMember[];
  /** Member ids in UTF-8 byte order: the order scores are compared in, so ties go first. */
  readonly #ids: readonly string[];
  readonly #data: Members;

  /** Builds the table; throws {@linkcode CarpConfigError} for any invalid input. */
  constructor(options: CarpTableOptions) {
    checkScheme(options.scheme);
    checkEpoch(options.epoch);
    checkMembers(options.members);
    this.scheme = options.scheme;
    this.epoch = options.epoch;
    this.members = Object.freeze(
      options.members.map((m) => Object.freeze({ id: m.id, loadFactor: m.loadFactor })),
    );
    const sorted = [...this.members].sort((a, b) => compareUtf8(a.id, b.id));
    this.#ids = Object.freeze(sorted.map((m) => m.id));
    this.#data = this.scheme === "carp" ? carpMembers(sorted) : carp64Members(sorted);
  }

  /** The id of the member that owns `key` (a string is hashed as its UTF-8 bytes). */
  owner(key: Uint8Array | string): string {
    let bytes: Uint8Array;
    let length: number;
    if (typeof key === "string") {
      length = encodeUtf8(key);
      bytes = scratchBytes();
    } else {
      bytes = key;
      length = key.length;
    }
    const data = this.#data;
    const index = data.scheme === "carp"
      ? carpArgmax(bytes, length, data)
      : carp64Argmax(bytes, length, data);
    return this.#ids[index];
  }

  /** The table as plain data (`{ scheme, epoch, members }`), e.g. for `JSON.stringify`. */
  toJSON(): CarpTableOptions {
    return { scheme: this.scheme, epoch: this.epoch, members: this.members };
  }
}

function carpMembers(sorted: readonly CarpMember[]): Members {
  const ids = sorted.map((m) => m.id);
  const hashes = ids.map(carpMemberHash);
  checkCarpHashes(ids, hashes);
  return {
    scheme: "carp",
    hashes: Uint32Array.from(hashes),
    multipliers: Float64Array.from(carpMultipliers(sorted)),
  };
}

function carp64Members(sorted: readonly CarpMember[]): Members {
  const ids = sorted.map((m) => m.id);
  const hashes: Hash64[] = ids.map(carp64MemberHash);
  checkCarp64Hashes(ids, hashes);
  return {
    scheme: "carp64",
    hi: Uint32Array.from(hashes, (h) => h[0]),
    lo: Uint32Array.from(hashes, (h) => h[1]),
    loadFactors: Float64Array.from(sorted, (m) => m.loadFactor),
  };
}

/** Builds the table of a validated config: `routing.scheme`, `routing.epoch`, the clusters. */
export function carpTableFromConfig(config: CarpRoutingConfig): CarpTable {
  return new CarpTable({
    scheme: config.routing.scheme,
    epoch: config.routing.epoch,
    members: config.clusters.map((c) => ({ id: c.id, loadFactor: c.loadFactor })),
  });
}

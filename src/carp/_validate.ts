/** Checks of a CARP table's inputs that do not depend on the scheme's hash. */

import { CarpConfigError } from "./_errors.ts";
import { CARP_SCHEMES, type CarpMember, type CarpScheme } from "./_types.ts";

/** Renders a value for an error message: strings quoted, everything else as JSON or text. */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || value === undefined) return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Throws unless `scheme` is one of {@linkcode CARP_SCHEMES}. */
export function checkScheme(scheme: unknown): asserts scheme is CarpScheme {
  if (!CARP_SCHEMES.includes(scheme as CarpScheme)) {
    const allowed = CARP_SCHEMES.map((s) => `"${s}"`).join(" or ");
    throw new CarpConfigError(`Invalid CARP scheme: expected ${allowed}, got ${show(scheme)}`);
  }
}

/** Throws unless `epoch` is a safe integer >= 1. */
export function checkEpoch(epoch: unknown): asserts epoch is number {
  if (!Number.isSafeInteger(epoch) || (epoch as number) < 1) {
    throw new CarpConfigError(`Invalid CARP epoch: must be an integer >= 1, got ${show(epoch)}`);
  }
}

/**
 * Throws unless there is at least one member, every id is a non-empty string, no id
 * appears twice and every load factor is a finite number > 0.
 */
export function checkMembers(members: readonly CarpMember[]): void {
  if (!Array.isArray(members) || members.length === 0) {
    throw new CarpConfigError(
      `Invalid CARP members: need at least one member, got ${show(members)}`,
    );
  }
  const seen = new Set<string>();
  for (const [index, member] of members.entries()) {
    const id: unknown = member?.id;
    if (typeof id !== "string" || id === "") {
      throw new CarpConfigError(
        `Invalid CARP member id: member ${index} needs a non-empty string id, got ${show(id)}`,
      );
    }
    if (seen.has(id)) {
      throw new CarpConfigError(`Duplicate CARP member id: ${show(id)} appears twice`, [id, id]);
    }
    seen.add(id);
    const loadFactor: unknown = member.loadFactor;
    if (typeof loadFactor !== "number" || !Number.isFinite(loadFactor) || loadFactor <= 0) {
      throw new CarpConfigError(
        `Invalid load factor of CARP member ${show(id)}: must be a finite number > 0, ` +
          `got ${show(loadFactor)}`,
        [id],
      );
    }
  }
}

/** Formats an unsigned 32-bit number as `0x` and 8 hex digits. */
export function hex32(value: number): string {
  return "0x" + (value >>> 0).toString(16).padStart(8, "0");
}

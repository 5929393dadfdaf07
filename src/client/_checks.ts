/**
 * The checks of the client's arguments (a bad one throws `bad_request` before anything is
 * sent), the condition headers of writes, and revisions in answers.
 */

import { toBytes } from "./_bytes.ts";
import { KEY_BYTES_MAX, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, TIMEOUT_MS_MAX } from "./_limits.ts";
import type { Consistency, ReadFrom } from "./_types.ts";
import { KoiError } from "./errors.ts";

/** `key` as bytes: 1 to {@linkcode KEY_BYTES_MAX} bytes, not starting with 0xFF. */
export function checkKey(key: string | Uint8Array, what: string): Uint8Array {
  if (typeof key !== "string" && !(key instanceof Uint8Array)) {
    throw new KoiError("bad_request", `Invalid ${what}: expected a string or a Uint8Array`);
  }
  const bytes = toBytes(key);
  if (bytes.length < 1 || bytes.length > KEY_BYTES_MAX) {
    throw new KoiError(
      "bad_request",
      `Invalid ${what}: must be 1 to ${KEY_BYTES_MAX} bytes, got ${bytes.length}`,
    );
  }
  if (bytes[0] === 0xff) {
    throw new KoiError(
      "bad_request",
      `Invalid ${what}: keys starting with byte 0xFF are reserved for koi's system records`,
    );
  }
  return bytes;
}

/** A listing bound (`prefix` or `after`) as bytes: empty when absent, at most a key long. */
export function checkBound(bound: string | Uint8Array | undefined, what: string): Uint8Array {
  if (bound === undefined) return new Uint8Array(0);
  if (typeof bound !== "string" && !(bound instanceof Uint8Array)) {
    throw new KoiError("bad_request", `Invalid ${what}: expected a string or a Uint8Array`);
  }
  const bytes = toBytes(bound);
  if (bytes.length > KEY_BYTES_MAX) {
    throw new KoiError(
      "bad_request",
      `Invalid ${what}: must be 0 to ${KEY_BYTES_MAX} bytes, got ${bytes.length}`,
    );
  }
  if (what === "prefix" && bytes[0] === 0xff) {
    throw new KoiError(
      "bad_request",
      "Invalid prefix: keys starting with byte 0xFF are reserved for koi's system records",
    );
  }
  return bytes;
}

/** A page size: 1 to {@linkcode LIST_LIMIT_MAX}, {@linkcode LIST_LIMIT_DEFAULT} when absent. */
export function checkLimit(limit: number | undefined, what: string): number {
  if (limit === undefined) return LIST_LIMIT_DEFAULT;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > LIST_LIMIT_MAX) {
    throw new KoiError(
      "bad_request",
      `Invalid ${what}: must be an integer from 1 to ${LIST_LIMIT_MAX}, got ${limit}`,
    );
  }
  return limit;
}

/** Whether a read may be stale: true for `stale`, false for `linearizable` or none. */
export function checkConsistency(consistency: Consistency | undefined): boolean {
  if (consistency === undefined || consistency === "linearizable") return false;
  if (consistency === "stale") return true;
  throw new KoiError(
    "bad_request",
    `Invalid consistency: ${JSON.stringify(consistency)}; expected "linearizable" or "stale"`,
  );
}

/** The `readFrom` option: `any` (the default) or `leader`. */
export function checkReadFrom(readFrom: ReadFrom | undefined): ReadFrom {
  if (readFrom === undefined || readFrom === "any" || readFrom === "leader") {
    return readFrom ?? "any";
  }
  throw new KoiError(
    "bad_request",
    `Invalid readFrom: ${JSON.stringify(readFrom)}; expected "any" or "leader"`,
  );
}

/** A time budget in milliseconds (> 0 and a timer can hold it), or undefined when absent. */
export function checkTimeout(ms: number | undefined, what: string): number | undefined {
  if (ms === undefined) return undefined;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0 || ms > TIMEOUT_MS_MAX) {
    throw new KoiError(
      "bad_request",
      `Invalid ${what}: must be a number of milliseconds > 0 and <= ${TIMEOUT_MS_MAX}, got ${ms}`,
    );
  }
  return ms;
}

/** A retry delay in milliseconds (>= 0), or undefined when absent. */
export function checkDelay(ms: number | undefined, what: string): number | undefined {
  if (ms === undefined) return undefined;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0 || ms > TIMEOUT_MS_MAX) {
    throw new KoiError("bad_request", `Invalid ${what}: must be a number of milliseconds >= 0`);
  }
  return ms;
}

/** The `if-match` / `if-none-match` headers of a write's condition (none without one). */
export function conditionHeaders(
  ifRev: number | undefined,
  ifAbsent: boolean | undefined,
): Record<string, string> {
  if (ifRev !== undefined && ifAbsent) {
    throw new KoiError("bad_request", "Invalid options: give ifRev or ifAbsent, not both");
  }
  if (ifAbsent !== undefined && typeof ifAbsent !== "boolean") {
    throw new KoiError("bad_request", `Invalid ifAbsent: expected a boolean, got ${ifAbsent}`);
  }
  if (ifRev !== undefined) {
    if (!isRev(ifRev)) {
      throw new KoiError(
        "bad_request",
        `Invalid ifRev: must be an integer >= 1 (a revision), got ${ifRev}`,
      );
    }
    return { "if-match": `"${ifRev}"` };
  }
  return ifAbsent ? { "if-none-match": "*" } : {};
}

/** Whether `value` is a revision: a safe integer >= 1. */
export function isRev(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 1;
}

/** The revision an `etag` header names (`"<rev>"`), or undefined when it names none. */
export function parseEtag(etag: string | null): number | undefined {
  const match = etag === null ? null : /^"(\d{1,16})"$/.exec(etag.trim());
  const rev = match === null ? NaN : Number(match[1]);
  return isRev(rev) ? rev : undefined;
}

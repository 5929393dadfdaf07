import { decode, encode } from "./_msgpack.ts";
import type { Entry, HardState, Membership, SnapshotMeta } from "../raft/mod.ts";

/** Stored data that fails validation when read back: the store is corrupt or foreign. */
export class StorageCorruptError extends Error {
  /** Creates the error naming what was being read. */
  constructor(what: string, reason: string, options?: ErrorOptions) {
    super(`Cannot read ${what} from storage: ${reason}`, options);
    this.name = "StorageCorruptError";
  }
}

function isNat(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === "string");
}

/** Checks that `v` has the shape of a {@linkcode Membership}. */
export function isMembership(v: unknown): v is Membership {
  if (typeof v !== "object" || v === null) return false;
  const m = v as Record<string, unknown>;
  return isStringArray(m.voters) && isStringArray(m.outgoing) && isStringArray(m.learners);
}

/** Encodes a log entry (term, type, data, membership; the index is the key). */
export function encodeEntry(e: Entry): Uint8Array {
  return encode(
    e.membership === undefined
      ? [e.term, e.type === "config" ? 1 : 0, e.data]
      : [e.term, 1, e.data, e.membership],
  );
}

/** Decodes and validates a log entry stored at `index`. */
export function decodeEntry(index: number, bytes: Uint8Array): Entry {
  const v = decode(bytes);
  if (!Array.isArray(v) || v.length < 3 || v.length > 4) {
    throw new StorageCorruptError(`log entry ${index}`, "not an entry record");
  }
  const [term, type, data, membership] = v;
  if (!isNat(term) || term === 0 || (type !== 0 && type !== 1) || !(data instanceof Uint8Array)) {
    throw new StorageCorruptError(`log entry ${index}`, "bad term, type or data");
  }
  if (type === 1) {
    if (!isMembership(membership)) {
      throw new StorageCorruptError(`log entry ${index}`, "config entry without membership");
    }
    return { term, index, type: "config", data, membership };
  }
  return { term, index, type: "normal", data };
}

/** Encodes the hard state. */
export function encodeHardState(h: HardState): Uint8Array {
  return encode([h.term, h.vote, h.commit]);
}

/** Decodes and validates the hard state. */
export function decodeHardState(bytes: Uint8Array): HardState {
  const v = decode(bytes);
  if (
    !Array.isArray(v) || v.length !== 3 || !isNat(v[0]) || typeof v[1] !== "string" || !isNat(v[2])
  ) {
    throw new StorageCorruptError("hard state", "not a hard state record");
  }
  return { term: v[0], vote: v[1], commit: v[2] };
}

/** Where a snapshot's data lives and how to check it. */
export interface StoredSnapshot {
  /** The snapshot's metadata. */
  readonly meta: SnapshotMeta;
  /** Id of the chunk set holding the data. */
  readonly id: number;
  /** Number of chunks. */
  readonly parts: number;
  /** Total data length. */
  readonly bytes: number;
  /** FNV-1a checksum of the data. */
  readonly checksum: number;
}

/** Encodes a snapshot descriptor. */
export function encodeStoredSnapshot(s: StoredSnapshot): Uint8Array {
  return encode([s.meta.index, s.meta.term, s.meta.membership, s.id, s.parts, s.bytes, s.checksum]);
}

/** Decodes and validates a snapshot descriptor. */
export function decodeStoredSnapshot(bytes: Uint8Array): StoredSnapshot {
  const v = decode(bytes);
  if (
    !Array.isArray(v) || v.length !== 7 || !isNat(v[0]) || !isNat(v[1]) || !isMembership(v[2]) ||
    !isNat(v[3]) || !isNat(v[4]) || !isNat(v[5]) || !isNat(v[6])
  ) {
    throw new StorageCorruptError("snapshot descriptor", "not a snapshot record");
  }
  return {
    meta: { index: v[0], term: v[1], membership: v[2] },
    id: v[3],
    parts: v[4],
    bytes: v[5],
    checksum: v[6],
  };
}

/** The start value of {@linkcode checksumUpdate}. */
export const CHECKSUM_SEED = 0x811c9dc5;

/** Continues an FNV-1a checksum over `data` (start from {@linkcode CHECKSUM_SEED}). */
export function checksumUpdate(h: number, data: Uint8Array): number {
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i], 0x01000193);
  return h >>> 0;
}

/** FNV-1a over bytes: detects torn or mixed-up snapshot chunks when read back. */
export function checksum(data: Uint8Array): number {
  return checksumUpdate(CHECKSUM_SEED, data);
}

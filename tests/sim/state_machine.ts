import type { Entry, Membership } from "../../src/raft/mod.ts";
import { EMPTY_MEMBERSHIP } from "../../src/raft/mod.ts";

/** A client write as carried in a normal entry. */
export interface WriteCommand {
  /** The client that wrote. */
  readonly client: number;
  /** Its sequence number (unique per client). */
  readonly seq: number;
  /** The key. */
  readonly key: string;
  /** The value. */
  readonly value: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a write for the log. */
export function encodeWrite(w: WriteCommand): Uint8Array {
  return encoder.encode(JSON.stringify(w));
}

/** A 53-bit hash of a string (two FNV-1a lanes), as a number. */
export function hashString(s: string): number {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0;
  }
  return (h1 & 0x1fffff) * 4294967296 + h2;
}

/** Identifies an entry's content: type, data and membership (not its index or term). */
export function entryHash(e: Entry): number {
  const m = e.membership;
  const members = m === undefined ? "" : `${m.voters}|${m.outgoing}|${m.learners}`;
  return hashString(`${e.type}:${decoder.decode(e.data)}:${members}`);
}

/**
 * More of the application, for entries whose data starts with {@linkcode EXTENSION_TAG}: the
 * multi-cluster mode's transactions (tests/sim/txn_bank.ts). Part of every snapshot.
 */
export interface SmExtension {
  /** Applies an entry's data (the tag stripped); returns the answer for the proposer. */
  apply(e: Entry, data: Uint8Array): unknown;
  /** The extension's state, as JSON. */
  encode(): unknown;
}

/** Makes a state machine's extension from a snapshot's state (undefined: a new one) at `applied`. */
export type ExtensionFactory = (state: unknown, applied: number) => SmExtension;

/** The first byte of an entry the extension applies ("X"). */
export const EXTENSION_TAG = 0x58;

/**
 * The simulated application: a key-value map with each key's revision (the index of the
 * write that set it), the membership of the last applied config entry, and a hash chain over
 * every applied entry so two replicas can be compared at any index in O(1).
 */
export class KvStateMachine {
  /** key -> value and revision. */
  kv = new Map<string, { value: string; rev: number }>();
  /** The last applied index. */
  applied = 0;
  /** Hash chain over applied entries. */
  chain = 0;
  /** The membership set by the last applied config entry. */
  membership: Membership = EMPTY_MEMBERSHIP;
  /** The multi-cluster mode's part, if any. */
  ext: SmExtension | undefined;
  /** The answer of the last entry the extension applied. */
  extAnswer: unknown;

  /** Applies the next entry; returns the write it carried, if any. */
  apply(e: Entry): WriteCommand | undefined {
    this.applied = e.index;
    this.extAnswer = undefined;
    this.chain = hashString(`${this.chain}:${e.term}:${entryHash(e)}`);
    if (e.type === "config") {
      this.membership = e.membership!;
      return undefined;
    }
    if (e.data.length === 0) return undefined; // leader no-op
    if (e.data[0] === EXTENSION_TAG && this.ext !== undefined) {
      this.extAnswer = this.ext.apply(e, e.data.subarray(1));
      return undefined;
    }
    const w = JSON.parse(decoder.decode(e.data)) as WriteCommand;
    this.kv.set(w.key, { value: w.value, rev: e.index });
    return w;
  }

  /** Serializes the whole state (the snapshot's data). */
  encode(): Uint8Array {
    return encoder.encode(JSON.stringify({
      kv: [...this.kv],
      applied: this.applied,
      chain: this.chain,
      membership: this.membership,
      ...(this.ext === undefined ? {} : { ext: this.ext.encode() }),
    }));
  }

  /** Rebuilds a state machine from a snapshot's data. */
  static decode(data: Uint8Array, extension?: ExtensionFactory): KvStateMachine {
    const sm = new KvStateMachine();
    if (data.length === 0) {
      sm.ext = extension?.(undefined, 0);
      return sm;
    }
    const o = JSON.parse(decoder.decode(data));
    sm.kv = new Map(o.kv);
    sm.applied = o.applied;
    sm.chain = o.chain;
    sm.membership = o.membership;
    sm.ext = extension?.(o.ext, sm.applied);
    return sm;
  }
}

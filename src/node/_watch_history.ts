/**
 * The recent changes a node keeps for its watchers (`GET /v1/watch`, docs/api.md "Watch"):
 * one event per applied command that changed user keys (encoded as the JSON the watchers are
 * sent when one first asks), in a ring bounded by the number of changes and by bytes. The ring knows
 * its `floor`: it holds every change with a rev above it, so a watcher may resume from any
 * rev at or above the floor and nothing older.
 *
 * @module
 */
import type { KvApplied } from "../storage/mod.ts";
import { encodeBase64Url } from "./_http_keys.ts";
import { isSystemKey } from "./_system_keys.ts";

/** Changes the history holds at most (the oldest events go first). */
export const WATCH_HISTORY_CHANGES_MAX = 50_000;
/** Bytes the history holds at most: keys, values, their JSON once made, their bookkeeping. */
export const WATCH_HISTORY_BYTES_MAX: number = 8 << 20;
/** A put's value is sent (as `value_b64`) when it is at most this many bytes; else only its size. */
export const WATCH_VALUE_INLINE_MAX: number = 64 << 10;

/** What one change costs the history besides its key and JSON text (objects, array slots). */
const CHANGE_OVERHEAD_BYTES = 64;

/**
 * One change of one key, as watchers see it. Its JSON is made when a watcher first needs it,
 * not on the apply path (most changes are never watched), and then kept for the others.
 */
export class WatchChange {
  /** The key's bytes (a copy: the log entry's buffer is not kept). */
  readonly key: Uint8Array;
  readonly #type: "put" | "delete";
  /** A put's value (a copy) when it is sent inline, else undefined. */
  readonly #value: Uint8Array | undefined;
  readonly #size: number;
  #json: string | undefined;

  constructor(key: Uint8Array, type: "put" | "delete", value?: Uint8Array) {
    this.key = key;
    this.#type = type;
    this.#size = value?.length ?? 0;
    this.#value = value !== undefined && value.length <= WATCH_VALUE_INLINE_MAX
      ? value.slice()
      : undefined;
  }

  /** Bytes it keeps: its key and inline value. */
  get bytes(): number {
    return this.key.length + (this.#value?.length ?? 0);
  }

  /** The change as docs/api.md's JSON object `{"type", "key", …}`. */
  get json(): string {
    return this.#json ??= JSON.stringify({
      type: this.#type,
      ...keyFields(this.key),
      ...(this.#type === "put"
        ? {
          ...(this.#value === undefined ? {} : { value_b64: valueBase64Url(this.#value) }),
          size: this.#size,
        }
        : {}),
    });
  }
}

/** The changes of one applied command (one SSE message per matching watcher). */
export interface WatchEvent {
  /** The command's rev. */
  readonly rev: number;
  /** Its changes to user keys, in the command's order. */
  readonly changes: readonly WatchChange[];
  /** What the event costs the history, in bytes. */
  readonly bytes: number;
}

/** Limits of a {@linkcode WatchHistory}. */
export interface WatchHistoryLimits {
  /** See {@linkcode WATCH_HISTORY_CHANGES_MAX}. */
  readonly changesMax: number;
  /** See {@linkcode WATCH_HISTORY_BYTES_MAX}. */
  readonly bytesMax: number;
}

const utf8Strict = new TextDecoder("utf-8", { fatal: true });
const utf8Lossy = new TextDecoder("utf-8", { fatal: false });

/**
 * The event of an applied command: its changes to user keys (koi's system keys left out, and
 * deletes of absent keys, which change nothing), or undefined when none is left.
 */
export function watchEventOf(applied: KvApplied): WatchEvent | undefined {
  const changes: WatchChange[] = [];
  let bytes = 0;
  applied.mutations.forEach((m, i) => {
    if (isSystemKey(m.key)) return;
    if (m.type === "delete" && !applied.existed[i]) return;
    const change = m.type === "set"
      ? new WatchChange(m.key.slice(), "put", m.value)
      : new WatchChange(m.key.slice(), "delete");
    changes.push(change);
    // The JSON text, once made, is about 4/3 of the bytes kept: counted up front.
    bytes += Math.ceil(change.bytes * 7 / 3) + CHANGE_OVERHEAD_BYTES;
  });
  return changes.length === 0 ? undefined : { rev: applied.rev, changes, bytes };
}

type NativeBase64 = { toBase64?: (options: { alphabet: string; omitPadding: boolean }) => string };

/**
 * `value` as unpadded base64url: natively where the runtime has `Uint8Array.toBase64` (30
 * times faster than the JS encoder for 64 KiB, and this runs on every apply).
 */
function valueBase64Url(value: Uint8Array): string {
  const native = (value as NativeBase64).toBase64;
  if (native === undefined) return encodeBase64Url(value);
  return native.call(value, { alphabet: "base64url", omitPadding: true });
}

/** `key` as text, plus `key_b64` when the text cannot carry its exact bytes (as listings do). */
function keyFields(key: Uint8Array): { key: string; key_b64?: string } {
  try {
    return { key: utf8Strict.decode(key) };
  } catch {
    return { key: utf8Lossy.decode(key), key_b64: encodeBase64Url(key) };
  }
}

/** Whether `key` starts with `prefix`. */
export function hasPrefix(key: Uint8Array, prefix: Uint8Array): boolean {
  if (key.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return false;
  return true;
}

/** The ring of recent events, oldest first, bounded by changes and bytes. */
export class WatchHistory {
  readonly #limits: WatchHistoryLimits;
  /** Events in rev order; those before `#start` are evicted (compacted away now and then). */
  #events: WatchEvent[] = [];
  #start = 0;
  #changes = 0;
  #bytes = 0;
  #floor: number;
  #rev: number;

  /** An empty history that holds every change after `floor`. */
  constructor(limits: WatchHistoryLimits, floor = 0) {
    this.#limits = limits;
    this.#floor = floor;
    this.#rev = floor;
  }

  /** Every change with a rev above this is held. */
  get floor(): number {
    return this.#floor;
  }

  /** The rev of the latest event (or the floor when none came since). */
  get rev(): number {
    return this.#rev;
  }

  /** Changes held. */
  get changes(): number {
    return this.#changes;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Events held. */
  get size(): number {
    return this.#events.length - this.#start;
  }

  /**
   * Appends the next event (its rev above every held one) and evicts the oldest while the
   * history is over a limit, raising the floor to each evicted rev. An event over a limit on
   * its own is evicted at once: live watchers still get it, no resume can.
   */
  append(event: WatchEvent): void {
    if (event.rev <= this.#rev) {
      throw new RangeError(`watch event rev ${event.rev} after rev ${this.#rev}`);
    }
    this.#events.push(event);
    this.#rev = event.rev;
    this.#changes += event.changes.length;
    this.#bytes += event.bytes;
    while (
      this.size > 0 &&
      (this.#changes > this.#limits.changesMax || this.#bytes > this.#limits.bytesMax)
    ) {
      const old = this.#events[this.#start++];
      this.#changes -= old.changes.length;
      this.#bytes -= old.bytes;
      this.#floor = old.rev;
    }
    // Evicted slots are dropped in one step once they are half the array: O(1) amortized.
    if (this.#start > 1024 && this.#start * 2 > this.#events.length) {
      this.#events = this.#events.slice(this.#start);
      this.#start = 0;
    }
  }

  /** Forgets every event: the state jumped to `rev` (a snapshot), its changes are unknown. */
  reset(rev: number): void {
    this.#events = [];
    this.#start = 0;
    this.#changes = 0;
    this.#bytes = 0;
    this.#floor = Math.max(rev, this.#floor);
    this.#rev = Math.max(rev, this.#rev);
  }

  /** The position of the first held event with a rev above `rev` (`end` when none). */
  after(rev: number): number {
    let lo = this.#start;
    let hi = this.#events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#events[mid].rev <= rev) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The position after the newest event. */
  get end(): number {
    return this.#events.length;
  }

  /** The event at `position` (from {@linkcode after}, before the next append or reset). */
  at(position: number): WatchEvent {
    return this.#events[position];
  }
}

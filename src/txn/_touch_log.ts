/**
 * Which keys the last entries changed, so that a snapshot read over several clusters can ask
 * each one "did anything in these ranges change since index i?" (docs/transactions.md,
 * "Snapshot reads"). One replica's own memory, bounded: what it no longer holds it reports as
 * unknown, which the reader treats as changed. Not replicated: a replica that restarts or
 * installs a snapshot knows nothing before the index it starts from.
 *
 * @module
 */
import { keyString } from "./_keys.ts";

/** Entries remembered at most. */
export const TOUCH_ENTRIES_MAX = 8192;
/** Keys (in bytes) remembered at most over those entries. */
export const TOUCH_BYTES_MAX = 4 * 1024 * 1024;

/** The changes of the latest entries, oldest first. */
export class TouchLog {
  readonly #entriesMax: number;
  readonly #bytesMax: number;
  #floor: number;
  #entries: { index: number; keys: string[]; bytes: number }[] = [];
  #head = 0;
  #bytes = 0;

  /** Knows nothing at or before `from` (the index the replica starts from). */
  constructor(from = 0, entriesMax = TOUCH_ENTRIES_MAX, bytesMax = TOUCH_BYTES_MAX) {
    this.#floor = from;
    this.#entriesMax = entriesMax;
    this.#bytesMax = bytesMax;
  }

  /** Changes at or before this index are not known. */
  get floor(): number {
    return this.#floor;
  }

  /** Forgets everything up to `index` (a snapshot installed, a move's switch changed the keyspace). */
  reset(index: number): void {
    this.#entries = [];
    this.#head = 0;
    this.#bytes = 0;
    this.#floor = Math.max(this.#floor, index);
  }

  /** Records the keys entry `index` changed (indexes increase). */
  record(index: number, keys: readonly Uint8Array[]): void {
    this.recordStrings(index, keys.map(keyString));
  }

  /**
   * {@linkcode record} for keys already as binary strings (the store's index has them: the
   * write path converts each key once).
   */
  recordStrings(index: number, keys: readonly string[]): void {
    if (keys.length === 0) return;
    let bytes = 0;
    for (const k of keys) bytes += k.length + 16;
    this.#entries.push({ index, keys: [...keys], bytes });
    this.#bytes += bytes;
    while (
      this.#entries.length - this.#head > this.#entriesMax ||
      (this.#bytes > this.#bytesMax && this.#entries.length - this.#head > 1)
    ) {
      const old = this.#entries[this.#head++];
      this.#bytes -= old.bytes;
      this.#floor = Math.max(this.#floor, old.index);
    }
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * Whether an entry after `since` changed a key in `[start, end)`: `true`, `false`, or
   * `"unknown"` when `since` is before what this replica remembers.
   */
  changedSince(since: number, start: Uint8Array, end: Uint8Array): boolean | "unknown" {
    if (since < this.#floor) return "unknown";
    const s = keyString(start);
    const e = keyString(end);
    for (let i = this.#entries.length - 1; i >= this.#head; i--) {
      const entry = this.#entries[i];
      if (entry.index <= since) break;
      for (const k of entry.keys) if (k >= s && k < e) return true;
    }
    return false;
  }
}

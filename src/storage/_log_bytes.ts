/**
 * The encoded size of every entry in the log and their total, kept in step with appends,
 * truncations and compactions: amortized O(1) per entry, O(1) to read the total.
 */
export class LogBytes {
  /** `#sizes[#start + k]` is the size of the entry at index `#first + k`. */
  #sizes: number[] = [];
  #start = 0;
  #first = 1;
  #total = 0;

  /** The sum of the sizes of the entries in the log. */
  get total(): number {
    return this.#total;
  }

  /** Empties the log; the next entry has index `first`. */
  reset(first: number): void {
    this.#sizes = [];
    this.#start = 0;
    this.#first = first;
    this.#total = 0;
  }

  /** Drops the entries at `index` and after (a replaced suffix). */
  truncateFrom(index: number): void {
    const keep = this.#start + Math.max(0, index - this.#first);
    while (this.#sizes.length > keep) this.#total -= this.#sizes.pop()!;
  }

  /** Appends the entry at `index`, replacing any at or after it. */
  append(index: number, size: number): void {
    this.truncateFrom(index);
    if (index !== this.#first + this.#sizes.length - this.#start) {
      throw new RangeError(`Cannot count log entry ${index}: the log ends before it`);
    }
    this.#sizes.push(size);
    this.#total += size;
  }

  /** Drops the entries at `index` and before (compaction). */
  compactTo(index: number): void {
    while (this.#first <= index && this.#start < this.#sizes.length) {
      this.#total -= this.#sizes[this.#start++];
      this.#first++;
    }
    if (this.#first <= index) this.reset(index + 1);
    if (this.#start > 1024 && this.#start * 2 > this.#sizes.length) {
      this.#sizes = this.#sizes.slice(this.#start);
      this.#start = 0;
    }
  }
}

import { assert } from "./_errors.ts";

/**
 * The AppendEntries messages in flight to one follower: a bounded window by count and bytes.
 * Each element is the last index a message carried; an acknowledgement up to `index` frees
 * every message up to it.
 */
export class Inflights {
  readonly #countMax: number;
  readonly #bytesMax: number;
  #lastIndexes: number[] = [];
  #sizes: number[] = [];
  #head = 0;
  #bytes = 0;

  /** Creates a window of at most `countMax` messages and `bytesMax` bytes. */
  constructor(countMax: number, bytesMax: number) {
    assert(countMax >= 1 && bytesMax >= 1, "inflight window must allow one message");
    this.#countMax = countMax;
    this.#bytesMax = bytesMax;
  }

  /** How many messages are in flight. */
  get count(): number {
    return this.#lastIndexes.length - this.#head;
  }

  /** Whether no further message may be sent until an acknowledgement arrives. */
  full(): boolean {
    return this.count >= this.#countMax || this.#bytes >= this.#bytesMax;
  }

  /** Records a message carrying entries up to `lastIndex`, of `bytes` bytes. */
  add(lastIndex: number, bytes: number): void {
    assert(!this.full(), "inflight window overflow");
    const n = this.#lastIndexes.length;
    assert(
      n === this.#head || this.#lastIndexes[n - 1] < lastIndex,
      "inflight messages must carry increasing indexes",
    );
    this.#lastIndexes.push(lastIndex);
    this.#sizes.push(bytes);
    this.#bytes += bytes;
  }

  /** Frees every message whose last index is at most `index`. */
  freeLE(index: number): void {
    while (this.#head < this.#lastIndexes.length && this.#lastIndexes[this.#head] <= index) {
      this.#bytes -= this.#sizes[this.#head];
      this.#head++;
    }
    if (this.#head > 64 && this.#head * 2 > this.#lastIndexes.length) {
      this.#lastIndexes = this.#lastIndexes.slice(this.#head);
      this.#sizes = this.#sizes.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Frees the oldest message: used when a heartbeat shows the follower alive but silent. */
  freeFirstOne(): void {
    if (this.count > 0) this.freeLE(this.#lastIndexes[this.#head]);
  }

  /** Forgets every message (the follower is probed again). */
  reset(): void {
    this.#lastIndexes = [];
    this.#sizes = [];
    this.#head = 0;
    this.#bytes = 0;
  }
}

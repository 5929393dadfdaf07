/** A min-heap of events ordered by time, then by insertion order (so runs are deterministic). */
export class EventQueue<T> {
  #heap: { time: number; seq: number; item: T }[] = [];
  #seq = 0;

  /** How many events are queued. */
  get size(): number {
    return this.#heap.length;
  }

  /** Queues `item` at `time`. */
  push(time: number, item: T): void {
    const h = this.#heap;
    h.push({ time, seq: this.#seq++, item });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  /** The time of the earliest event, or undefined when empty. */
  peekTime(): number | undefined {
    return this.#heap[0]?.time;
  }

  /** Removes and returns the earliest event, or undefined when empty. */
  pop(): { time: number; item: T } | undefined {
    const h = this.#heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l], h[m])) m = l;
        if (r < h.length && less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return { time: top.time, item: top.item };
  }
}

function less(a: { time: number; seq: number }, b: { time: number; seq: number }): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

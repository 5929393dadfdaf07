/**
 * Where the admin relays its nodes' lines: a bounded queue drained by one asynchronous
 * writer. The admin must always read its children's pipes, or a node blocks on its next log
 * line; and it must never block on its own stdout, or a terminal paused with Ctrl-S (or a
 * `| less` nobody scrolls) would stall the admin's HTTP API and, through the full pipes, every
 * node. So when the queue is full, lines are dropped and counted, and the count is printed
 * once the writer catches up.
 *
 * @module
 */

/** Lines held for a slow stdout before new ones are dropped. */
export const OUTPUT_QUEUE_LINES_MAX = 10_000;
/** Bytes held for a slow stdout before new lines are dropped. */
export const OUTPUT_QUEUE_BYTES_MAX = 4 << 20;

/** A sink for lines that never blocks its caller. */
export class LineOutput {
  readonly #write: (bytes: Uint8Array) => Promise<unknown>;
  readonly #linesMax: number;
  readonly #bytesMax: number;
  #queue: Uint8Array[] = [];
  #bytes = 0;
  #dropped = 0;
  #reported = 0;
  #draining: Promise<void> | undefined;
  readonly #encoder = new TextEncoder();

  /**
   * @param write writes bytes (default: to stdout)
   * @param limits the queue's bounds (defaults: {@linkcode OUTPUT_QUEUE_LINES_MAX},
   * {@linkcode OUTPUT_QUEUE_BYTES_MAX})
   */
  constructor(
    write: (bytes: Uint8Array) => Promise<unknown> = (b) => writeAll(Deno.stdout, b),
    limits: { lines?: number; bytes?: number } = {},
  ) {
    this.#write = write;
    this.#linesMax = limits.lines ?? OUTPUT_QUEUE_LINES_MAX;
    this.#bytesMax = limits.bytes ?? OUTPUT_QUEUE_BYTES_MAX;
  }

  /** Lines dropped so far because the output was too slow. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Queues `line` (a newline is added); drops it when the queue is full. */
  line(line: string): void {
    const bytes = this.#encoder.encode(`${line}\n`);
    if (this.#queue.length >= this.#linesMax || this.#bytes + bytes.length > this.#bytesMax) {
      this.#dropped++;
      return;
    }
    this.#queue.push(bytes);
    this.#bytes += bytes.length;
    this.#draining ??= this.#drain();
  }

  /** Resolves once everything queued so far is written. */
  async flush(): Promise<void> {
    while (this.#draining !== undefined) await this.#draining;
  }

  async #drain(): Promise<void> {
    let batches = 0;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        this.#bytes = 0;
        const total = batch.reduce((n, b) => n + b.length, 0);
        const joined = new Uint8Array(total);
        let at = 0;
        for (const b of batch) {
          joined.set(b, at);
          at += b.length;
        }
        await this.#write(joined);
        // Reported after the lines queued before the drop (the queue ran empty), or every
        // 100 batches under a steady flow.
        if (this.#dropped > this.#reported && (this.#queue.length === 0 || ++batches % 100 === 0)) {
          const n = this.#dropped - this.#reported;
          this.#reported = this.#dropped;
          await this.#write(
            this.#encoder.encode(
              `[admin] dropped ${n} line${
                n === 1 ? "" : "s"
              } of node output: stdout was too slow\n`,
            ),
          );
        }
      }
    } catch {
      // stdout is gone (closed pipe): nothing to write to; keep dropping quietly
      this.#queue = [];
      this.#bytes = 0;
    } finally {
      this.#draining = undefined;
    }
  }
}

/** Writes all of `bytes` to `w` (a write may take only part of them). */
export async function writeAll(
  w: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await w.write(bytes.subarray(done));
}

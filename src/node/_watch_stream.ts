/**
 * One watcher of `GET /v1/watch`: the `text/event-stream` body it is sent. A watcher first
 * catches up from the node's {@linkcode WatchHistory} at the pace its reader takes the
 * stream (nothing is copied for it meanwhile), then goes live: each new event is queued for
 * it. The queue is bounded in bytes: a watcher whose reader does not keep up is cut off with
 * a final `slow_watcher` error instead of being buffered without bound.
 *
 * @module
 */
import { hasPrefix, type WatchEvent, type WatchHistory } from "./_watch_history.ts";

/** Bytes of one catch-up chunk (several events of the history joined). */
const CATCH_UP_CHUNK_BYTES = 64 << 10;

const utf8 = new TextEncoder();

/** The SSE comment sent to idle watchers, so that a dead connection is noticed. */
export const KEEPALIVE: Uint8Array = utf8.encode(": keepalive\n\n");

/** Messages of whole events (every change matched), shared by the watchers that send them. */
const wholeMessages = new WeakMap<WatchEvent, Uint8Array>();

/** The SSE message of `event` for a watcher of `prefix`, or undefined when no change matches. */
export function changeMessage(event: WatchEvent, prefix: Uint8Array): Uint8Array | undefined {
  const matching = prefix.length === 0
    ? event.changes
    : event.changes.filter((c) => hasPrefix(c.key, prefix));
  if (matching.length === 0) return undefined;
  const whole = matching.length === event.changes.length;
  const cached = whole ? wholeMessages.get(event) : undefined;
  if (cached !== undefined) return cached;
  const message = utf8.encode(
    `id: ${event.rev}\nevent: change\ndata: {"rev":${event.rev},"changes":[${
      matching.map((c) => c.json).join(",")
    }]}\n\n`,
  );
  if (whole) wholeMessages.set(event, message);
  return message;
}

/** An SSE message of `type` (no id: it does not move the resume point) with JSON `data`. */
export function eventMessage(type: string, data: unknown, id?: number): Uint8Array {
  return utf8.encode(
    `${id === undefined ? "" : `id: ${id}\n`}event: ${type}\ndata: ${JSON.stringify(data)}\n\n`,
  );
}

/** Why a watcher was cut off, for the hub's counters. */
export type CutReason = "slow_watcher" | "compacted";

/** What a {@linkcode Watcher} is made of. */
export interface WatcherOptions {
  /** Only changes of keys starting with these bytes. */
  readonly prefix: Uint8Array;
  /** The rev it starts after. */
  readonly from: number;
  /** The node's history it catches up from. */
  readonly history: WatchHistory;
  /** Bytes queued for it at most (see `WATCH_PENDING_BYTES_MAX`). */
  readonly pendingBytesMax: number;
  /** How long a final message may wait for the reader before the stream is aborted. */
  readonly farewellMs: number;
  /** The first message (the `start` event). */
  readonly first: Uint8Array;
  /** The message a watcher that fell out of the history ends with. */
  readonly compacted: () => Uint8Array;
  /** The message a watcher that does not keep up ends with. */
  readonly slow: () => Uint8Array;
  /** Called once when it stops taking events (ended, cut off, or its reader went away). */
  readonly onDone: (watcher: Watcher, cut: CutReason | undefined) => void;
}

/** One watch stream; see the module documentation. */
export class Watcher {
  /** The stream the HTTP answer sends. */
  readonly body: ReadableStream<Uint8Array>;
  readonly #o: WatcherOptions;
  /** The rev of the last event handed out or queued (or skipped: it did not match). */
  #cursor: number;
  /** Whether it caught up with the history: new events are then queued as they come. */
  #live = false;
  #queue: Uint8Array[] = [];
  #queued = 0;
  /** No more events: what is queued goes, then the stream closes. */
  #ending = false;
  #done = false;
  /** The stream closed, errored or was cancelled by its reader. */
  #closed = false;
  #wake: (() => void) | undefined;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #farewell: ReturnType<typeof setTimeout> | undefined;

  /** Creates the watcher; its first message is queued already. */
  constructor(options: WatcherOptions) {
    this.#o = options;
    this.#cursor = options.from;
    // Nothing to catch up on: new events are queued from the start, read or not.
    this.#live = options.from >= options.history.rev;
    this.#queue.push(options.first);
    this.#queued = options.first.length;
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: (controller) => this.#pull(controller),
      cancel: () => {
        this.#closed = true;
        this.#ending = true;
        clearTimeout(this.#farewell);
        this.#stop(undefined);
      },
    }, { highWaterMark: 0 }); // produce only what the reader asks for: its pace is the limit
  }

  /** The rev up to which this watcher has seen (or skipped) every change. */
  position(historyRev: number): number {
    return this.#live ? Math.max(this.#cursor, historyRev) : this.#cursor;
  }

  /** Bytes queued and not taken by the reader yet. */
  get queuedBytes(): number {
    return this.#queued;
  }

  /** A new event (appended to the history already). */
  offer(event: WatchEvent): void {
    // While catching up, the history is the queue: the reader gets to it in its turn.
    if (!this.#live || this.#ending || event.rev <= this.#cursor) return;
    this.#cursor = event.rev;
    const message = changeMessage(event, this.#o.prefix);
    if (message !== undefined) this.#push(message);
  }

  /** Sends the keep-alive comment when nothing else waits to be sent. */
  keepalive(): void {
    if (this.#live && !this.#ending && this.#queue.length === 0) this.#push(KEEPALIVE);
  }

  /** Ends the stream: what is queued is sent, then `final` (if any), then it closes. */
  end(final?: Uint8Array): void {
    this.#end(final, undefined);
  }

  /** Cuts the watcher off: what is queued is dropped, `final` is sent, the stream closes. */
  cut(reason: CutReason, final: Uint8Array): void {
    if (this.#ending) return;
    this.#queue = [];
    this.#queued = 0;
    this.#end(final, reason);
  }

  #end(final: Uint8Array | undefined, cut: CutReason | undefined): void {
    if (this.#ending) return;
    this.#ending = true;
    if (final !== undefined) {
      this.#queue.push(final);
      this.#queued += final.length;
    }
    this.#stop(cut);
    this.#wakeUp();
    if (this.#closed) return;
    // A reader that takes nothing more must not keep the connection: the stream is aborted
    // after a while (the server then closes the connection).
    this.#farewell = setTimeout(() => {
      this.#farewell = undefined;
      if (this.#closed) return;
      this.#closed = true;
      this.#controller.error(new Error("the watcher was cut off and did not take its end"));
    }, this.#o.farewellMs);
  }

  #push(message: Uint8Array): void {
    // One message beyond the bound is allowed into an empty queue: a reader that keeps up
    // takes any single message.
    if (this.#queued > 0 && this.#queued + message.length > this.#o.pendingBytesMax) {
      this.cut("slow_watcher", this.#o.slow());
      return;
    }
    this.#queue.push(message);
    this.#queued += message.length;
    this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> | void {
    for (;;) {
      const chunk = this.#queue.shift();
      if (chunk !== undefined) {
        this.#queued -= chunk.length;
        controller.enqueue(chunk);
        return;
      }
      if (this.#ending) {
        clearTimeout(this.#farewell);
        this.#closed = true;
        controller.close();
        return;
      }
      if (this.#live) {
        return new Promise<void>((resolve) => this.#wake = resolve).then(() =>
          this.#pull(controller)
        );
      }
      const caughtUp = this.#catchUp();
      if (caughtUp !== undefined) {
        controller.enqueue(caughtUp);
        return;
      }
    }
  }

  /** The next chunk of the history after the cursor; goes live at its end. */
  #catchUp(): Uint8Array | undefined {
    const history = this.#o.history;
    if (this.#cursor < history.floor) {
      // The history moved past what this reader had yet to take.
      this.cut("compacted", this.#o.compacted());
      return undefined;
    }
    const parts: Uint8Array[] = [];
    let bytes = 0;
    let at = history.after(this.#cursor);
    const end = history.end;
    while (at < end && bytes < CATCH_UP_CHUNK_BYTES) {
      const event = history.at(at++);
      this.#cursor = event.rev;
      const message = changeMessage(event, this.#o.prefix);
      if (message === undefined) continue;
      parts.push(message);
      bytes += message.length;
    }
    if (at >= end) this.#live = true;
    if (parts.length <= 1) return parts[0];
    const out = new Uint8Array(bytes);
    let offset = 0;
    for (const part of parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }

  #stop(cut: CutReason | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.#o.onDone(this, cut);
  }
}

/**
 * The bytes of answers a server has made and its clients have not yet taken, in all: what a
 * client that asks for large answers and never reads them pins in memory. Node's `node:http`
 * keeps an answer's bytes until the socket took the last of them, and tells nothing of the
 * progress in between, so the count covers an answer from the moment it is made (a handler
 * that builds a large one marks it) until its connection finished or closed.
 *
 * @module
 */

/**
 * Bytes of answers held at most, by default: a large answer that would not fit is refused
 * (`503 overloaded`) before it is built, and once it is reached, new requests from a remote
 * address that holds answers get `503 overloaded` too (src/http/server.ts).
 */
export const HTTP_ANSWER_BYTES_HELD_MAX = 256 * 1024 * 1024;

/**
 * Answers of fewer bytes are not counted nor refused: each connection holds at most
 * `HTTP_PIPELINE_DEPTH_MAX` (16) of them, so all connections together (`HTTP_CONNECTIONS_MAX`,
 * 1,024) hold at most 16 × 1,024 × 16 KiB = 256 MiB, and the hot path stays free of timers.
 */
export const HTTP_ANSWER_COUNTED_BYTES_MIN = 16 * 1024;

/**
 * A mark a handler put on an answer that the server never claimed (the response was replaced
 * on its way, or served without this server) is dropped after this long, in milliseconds:
 * the server claims a mark microseconds after the handler made it.
 */
const UNCLAIMED_MARK_MS = 5_000;

/**
 * An answer its client has not taken this long after it was written, in milliseconds, counts
 * as stalled: it still holds memory, but no longer the event loop's time (see
 * {@linkcode AnswerBytes.moving}).
 */
export const HTTP_ANSWER_STALLED_MS = 1_000;

interface Mark {
  readonly bytes: number;
  readonly at: number;
  readonly response: WeakRef<Response>;
}

/** The count of answer bytes held, shared by a server and the handlers of its app. */
export class AnswerBytes {
  /** The bound: see {@linkcode HTTP_ANSWER_BYTES_HELD_MAX}. */
  readonly max: number;
  #held = 0;
  #stalled = 0;
  #refused = 0;
  readonly #marks = new WeakMap<Response, Mark>();
  /** The marks not yet claimed, oldest first, for their expiry. */
  readonly #pending = new Set<Mark>();
  readonly #now: () => number;

  /** A count bounded by `max` bytes; `now` is the clock of mark expiry. */
  constructor(
    max: number = HTTP_ANSWER_BYTES_HELD_MAX,
    now: () => number = () => performance.now(),
  ) {
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new RangeError("Invalid answer bytes bound: must be a positive integer");
    }
    this.max = max;
    this.#now = now;
  }

  /** Bytes held now. */
  get held(): number {
    this.#expire();
    return this.#held;
  }

  /** Whether the bound is reached: new requests are refused until answers are taken. */
  get full(): boolean {
    return this.held >= this.max;
  }

  /** Large answers refused because they did not fit. */
  get refused(): number {
    return this.#refused;
  }

  /**
   * Whether an answer of `bytes` may be built now: it is too small to count
   * ({@linkcode HTTP_ANSWER_COUNTED_BYTES_MIN}), it fits under the bound, or nothing is held
   * (so that one answer of any size allowed elsewhere can always be served). Counts a refusal
   * when not.
   */
  fits(bytes: number): boolean {
    if (bytes < HTTP_ANSWER_COUNTED_BYTES_MIN) return true;
    const held = this.held;
    if (held === 0 || held + bytes <= this.max) return true;
    this.#refused++;
    return false;
  }

  /**
   * Counts `bytes` for `response` from now (call it right after {@linkcode fits}, before
   * anything else runs); the server that sends it takes the count over. Returns `response`.
   */
  mark(response: Response, bytes: number): Response {
    if (bytes < HTTP_ANSWER_COUNTED_BYTES_MIN) return response;
    const mark = { bytes, at: this.#now(), response: new WeakRef(response) };
    this.#marks.set(response, mark);
    this.#pending.add(mark);
    this.#held += bytes;
    return response;
  }

  /** For the server: the bytes marked for `response` (0 if none), no longer counted as marked. */
  claim(response: Response): number {
    const mark = this.#marks.get(response);
    if (mark === undefined) return 0; // none, or expired: its bytes were given back then
    this.#marks.delete(response);
    this.#pending.delete(mark);
    this.#held -= mark.bytes;
    return mark.bytes;
  }

  /**
   * {@linkcode fits}, and when it does, counts `bytes` at once until the returned function is
   * called (once): for an answer that arrives over time (a relayed one), so that concurrent
   * ones see each other before their bytes are in. Undefined when it does not fit.
   */
  take(bytes: number): (() => void) | undefined {
    if (!this.fits(bytes)) return undefined;
    if (bytes < HTTP_ANSWER_COUNTED_BYTES_MIN) return () => {};
    this.#held += bytes;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.release(bytes);
    };
  }

  /**
   * Bytes held that are being built or sent, i.e. not stalled at a client that stopped
   * reading: what bounds the work of large answers in progress (src/node/_http_kvc.ts).
   */
  get moving(): number {
    return this.held - this.#stalled;
  }

  /** For the server: `bytes` it counted are of an answer whose client stopped taking it. */
  stall(bytes: number): void {
    this.#stalled += bytes;
  }

  /** For the server: `bytes` of {@linkcode stall} were taken or dropped (before `release`). */
  unstall(bytes: number): void {
    this.#stalled -= bytes;
    if (this.#stalled < 0) throw new Error(`stalled answer bytes went negative (${this.#stalled})`);
  }

  /** Counts `bytes` the server is sending now. */
  add(bytes: number): void {
    this.#held += bytes;
  }

  /** Gives back `bytes` of {@linkcode add} once their answer was taken or dropped. */
  release(bytes: number): void {
    this.#held -= bytes;
    if (this.#held < 0) throw new Error(`answer bytes went negative (${this.#held})`);
  }

  #expire(): void {
    const oldest = this.#now() - UNCLAIMED_MARK_MS;
    for (const mark of this.#pending) {
      if (mark.at > oldest) break;
      this.#pending.delete(mark);
      this.#held -= mark.bytes;
      const response = mark.response.deref();
      if (response !== undefined) this.#marks.delete(response);
    }
  }
}

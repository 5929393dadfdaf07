/**
 * What the HTTP server lets wait: requests pipelined on one connection, requests and request
 * bodies held across all connections, so that a flood queues a bounded number of requests
 * and bytes instead of all it sends. Deno's `node:http` parses every request a connection sends at once and does
 * not stop reading while earlier ones wait for their answers (`socket.pause()` does not hold
 * it); without these bounds 32 connections pipelining writes at 60,000/s grew a node to
 * 1.9 GB in ten seconds. What it sheds it answers `503 overloaded` in order and keeps the
 * connection: the client learns the write was not applied, not that its outcome is unknown.
 *
 * @module
 */

/** Requests one connection may have waiting for their answers; one more closes it. */
export const HTTP_PIPELINE_DEPTH_MAX = 16;

/**
 * Requests the server runs or holds to run at once over all connections (received, not
 * answered yet). Beyond it a request is shed: answered `503 overloaded` with `retry-after`
 * in its turn, its body read and dropped.
 */
export const HTTP_REQUESTS_WAITING_MAX = 4_096;

/**
 * Bytes of request bodies the server holds at once over all connections (declared lengths
 * of requests admitted and not answered yet, and what bodies without a declared length read
 * so far). A request that would pass it is shed like one beyond
 * {@linkcode HTTP_REQUESTS_WAITING_MAX}.
 */
export const HTTP_BODY_BYTES_WAITING_MAX = 64 << 20;

/**
 * What became of an admitted request: still `admit`ted, or `streaming` since its answer
 * became a long-lived stream (see {@linkcode RequestAdmission.streaming}).
 */
export type Admitted = "admit" | "streaming";

/** What to do with an arriving request. */
export type Admission =
  /** Run it (in order on its connection). */
  | "admit"
  /** Answer `503 overloaded` in its turn, reading and dropping its body. */
  | "shed"
  /** Close the connection: it pipelines more than may wait. */
  | "close";

/** Limits of a {@linkcode RequestAdmission}. */
export interface AdmissionLimits {
  /** See {@linkcode HTTP_PIPELINE_DEPTH_MAX}. */
  readonly pipelineDepthMax: number;
  /** See {@linkcode HTTP_BODY_BYTES_WAITING_MAX}. */
  readonly bodyBytesWaitingMax: number;
  /** See {@linkcode HTTP_REQUESTS_WAITING_MAX}. */
  readonly requestsWaitingMax: number;
}

/** Counts what waits, per connection and in total, against {@linkcode AdmissionLimits}. */
export class RequestAdmission<Connection extends object> {
  readonly #limits: AdmissionLimits;
  readonly #depth = new WeakMap<Connection, number>();
  readonly #closedConnections = new WeakSet<Connection>();
  #bodyBytes = 0;
  #waiting = 0;
  #shed = 0;
  #closed = 0;
  #streams = 0;

  /** Creates the accounting with `limits`. */
  constructor(limits: AdmissionLimits) {
    this.#limits = limits;
  }

  /**
   * A request arrived on `connection` declaring `bodyBytes` (its content-length, 0 without
   * one). Unless closed, call {@linkcode leave} with the same arguments once it is answered.
   */
  arrive(connection: Connection, bodyBytes: number): Admission {
    const depth = this.#depth.get(connection) ?? 0;
    if (depth >= this.#limits.pipelineDepthMax) {
      // Requests it had sent already arrive after the close: the connection counts once.
      if (!this.#closedConnections.has(connection)) this.#closed++;
      this.#closedConnections.add(connection);
      return "close";
    }
    this.#depth.set(connection, depth + 1);
    if (
      this.#waiting >= this.#limits.requestsWaitingMax ||
      (bodyBytes > 0 && this.#bodyBytes + bodyBytes > this.#limits.bodyBytesWaitingMax)
    ) {
      this.#shed++;
      return "shed";
    }
    this.#waiting++;
    this.#bodyBytes += bodyBytes;
    return "admit";
  }

  /**
   * A request was answered (or failed): what `arrive` was given and what became of it (its
   * admission, or `streaming` once {@linkcode streaming} was called for it).
   */
  leave(connection: Connection, bodyBytes: number, admission: Admitted | "shed"): void {
    const depth = this.#depth.get(connection) ?? 0;
    if (depth <= 1) this.#depth.delete(connection);
    else this.#depth.set(connection, depth - 1);
    if (admission === "shed") return;
    if (admission === "streaming") {
      this.#streams = Math.max(0, this.#streams - 1);
      return;
    }
    this.#waiting = Math.max(0, this.#waiting - 1);
    this.release(bodyBytes);
  }

  /**
   * An admitted request's answer became a long-lived stream (a watch): it gives back its
   * place among the waiting requests and its body bytes at once, so that streams never use
   * up the shared bounds. It stays on its connection's depth (what is pipelined behind it
   * still waits for it). Call {@linkcode leave} with `streaming` when it ends.
   */
  streaming(bodyBytes: number): void {
    this.#waiting = Math.max(0, this.#waiting - 1);
    this.release(bodyBytes);
    this.#streams++;
  }

  /** Answers being streamed right now. */
  get streams(): number {
    return this.#streams;
  }

  /**
   * Takes `bytes` more of the budget for a body without a declared length, as it is read:
   * false (nothing taken) when they do not fit; then the request is answered `503`.
   */
  reserve(bytes: number): boolean {
    if (this.#bodyBytes + bytes > this.#limits.bodyBytesWaitingMax) {
      this.#shed++;
      return false;
    }
    this.#bodyBytes += bytes;
    return true;
  }

  /** Gives back bytes taken with {@linkcode reserve} (or by `arrive`). */
  release(bytes: number): void {
    this.#bodyBytes = Math.max(0, this.#bodyBytes - bytes);
  }

  /** Requests admitted and not answered yet. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Body bytes held right now. */
  get bodyBytes(): number {
    return this.#bodyBytes;
  }

  /** Requests on `connection` waiting for their answers (admitted or shed). */
  depth(connection: Connection): number {
    return this.#depth.get(connection) ?? 0;
  }

  /** Counters: requests shed (answered 503), connections closed for pipelining too much. */
  stats(): { shed: number; closed: number } {
    return { shed: this.#shed, closed: this.#closed };
  }
}

/**
 * The one error a KV Connect backend throws to choose the answer: its HTTP status and a
 * message for people. Deno's client retries a 5xx for ever (with a short backoff) and gives up
 * on any other status, showing the body: so a 5xx means "a retry can help", a 4xx "it cannot".
 *
 * @module
 */

/** A refusal or failure with the HTTP status the endpoint answers and a readable message. */
export class KvConnectError extends Error {
  /** The status answered (4xx: the client gives up; 5xx: it retries). */
  readonly status: number;

  /** Creates the error; `message` becomes the answer's text body. */
  constructor(status: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KvConnectError";
    this.status = status;
  }
}

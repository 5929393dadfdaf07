/**
 * A parser of server-sent events (the `text/event-stream` of `GET /v1/watch`), as the HTML
 * standard defines them: lines end with LF, CRLF or CR, a blank line ends a message, `:`
 * starts a comment, `data` lines join with LF. Bounded: a message (or a line) longer than
 * the limit throws instead of being buffered.
 *
 * @module
 */

/** One message: its `event` type (`message` when none was named), `data` and `id`. */
export interface SseMessage {
  readonly event: string;
  readonly data: string;
  /** The message's `id` field, when it had one. */
  readonly id: string | undefined;
}

/** A message or a line was longer than the parser's limit. */
export class SseTooLongError extends Error {
  /** Creates the error for a limit of `max` characters. */
  constructor(max: number) {
    super(`a server-sent event is longer than ${max} characters`);
    this.name = "SseTooLongError";
  }
}

/** Parses a stream of text chunks into messages; see the module documentation. */
export class SseParser {
  readonly #max: number;
  #line = "";
  #skipLf = false;
  #event = "";
  #data: string[] = [];
  #dataChars = 0;
  #id: string | undefined;

  /** A parser whose messages (and lines) are at most `maxChars` characters. */
  constructor(maxChars: number) {
    this.#max = maxChars;
  }

  /** Feeds the next chunk of text; returns the messages it completed. */
  push(text: string): SseMessage[] {
    const out: SseMessage[] = [];
    let at = 0;
    while (at < text.length) {
      if (this.#skipLf) {
        this.#skipLf = false;
        if (text[at] === "\n") {
          at++;
          continue;
        }
      }
      const end = nextBreak(text, at);
      if (end < 0) {
        this.#line += text.slice(at);
        if (this.#line.length + this.#dataChars > this.#max) throw new SseTooLongError(this.#max);
        break;
      }
      const line = this.#line + text.slice(at, end);
      this.#line = "";
      if (text[end] === "\r") this.#skipLf = true;
      at = end + 1;
      const message = this.#takeLine(line);
      if (message !== undefined) out.push(message);
    }
    return out;
  }

  #takeLine(line: string): SseMessage | undefined {
    if (line === "") return this.#dispatch();
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.#event = value;
    else if (field === "id" && !value.includes("\0")) this.#id = value;
    else if (field === "data") {
      this.#data.push(value);
      this.#dataChars += value.length + 1;
      if (this.#dataChars > this.#max) throw new SseTooLongError(this.#max);
    }
    return undefined;
  }

  #dispatch(): SseMessage | undefined {
    const hadData = this.#data.length > 0;
    const message = { event: this.#event || "message", data: this.#data.join("\n"), id: this.#id };
    this.#event = "";
    this.#data = [];
    this.#dataChars = 0;
    this.#id = undefined;
    // A message without data is not dispatched (HTML standard); koi always sends data.
    return hadData ? message : undefined;
  }
}

function nextBreak(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13) return i;
  }
  return -1;
}

/** Test support for the watch: applied commands for the hub, and reading its SSE streams. */
import type { KvApplied, KvEffect } from "../storage/mod.ts";

const utf8 = new TextEncoder();

/** One SSE message as a test sees it. */
export interface SseMessage {
  readonly id?: string;
  readonly event?: string;
  readonly data?: string;
  /** A comment line (`: keepalive`), when the message is only that. */
  readonly comment?: string;
}

/** Parses whole SSE messages out of `text`; returns them and the unfinished rest. */
export function parseSse(text: string): { messages: SseMessage[]; rest: string } {
  const messages: SseMessage[] = [];
  let rest = text;
  for (let at = rest.indexOf("\n\n"); at >= 0; at = rest.indexOf("\n\n")) {
    const block = rest.slice(0, at);
    rest = rest.slice(at + 2);
    const m: Record<string, string> = {};
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) m.comment = line.slice(1).trim();
      else {
        const colon = line.indexOf(":");
        m[line.slice(0, colon)] = line.slice(colon + 1).trimStart();
      }
    }
    messages.push(m);
  }
  return { messages, rest };
}

/** Reads SSE messages from a stream until `until` holds or `ms` pass. */
export class SseReader {
  readonly messages: SseMessage[] = [];
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #rest = "";
  /** Whether the stream ended. */
  done = false;
  /** The error the stream failed with, if it did. */
  error: unknown;

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.getReader();
  }

  /** Reads until `until(messages)` holds, the stream ends, or `ms` pass (then throws). */
  async until(until: (messages: SseMessage[]) => boolean, ms = 5_000): Promise<SseMessage[]> {
    const deadline = Date.now() + ms;
    while (!until(this.messages)) {
      if (this.done) throw new Error(`the stream ended after ${JSON.stringify(this.messages)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out with ${JSON.stringify(this.messages)}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), left));
      try {
        const next = await Promise.race([this.#reader.read(), timeout]);
        if (next === "timeout") continue;
        if (next.done) {
          this.done = true;
          continue;
        }
        const parsed = parseSse(this.#rest + this.#decoder.decode(next.value, { stream: true }));
        this.messages.push(...parsed.messages);
        this.#rest = parsed.rest;
      } catch (error) {
        this.done = true;
        this.error = error;
      } finally {
        clearTimeout(timer);
      }
    }
    return this.messages;
  }

  /** Reads to the end of the stream (or throws after `ms`). */
  async end(ms = 5_000): Promise<SseMessage[]> {
    try {
      await this.until(() => this.done, ms);
    } catch (error) {
      if (!this.done) throw error;
    }
    return this.messages;
  }

  /** The messages of event `type`, their data parsed. */
  data(type: string): Record<string, unknown>[] {
    return this.messages.filter((m) => m.event === type).map((m) => JSON.parse(m.data!));
  }

  /** Cancels the stream. */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

/** A command that set `key` to `value` at `rev`. */
export function applied(
  rev: number,
  ...mutations: [type: "set" | "delete", key: string | Uint8Array, value?: string | Uint8Array][]
): KvApplied {
  const bytes = (v: string | Uint8Array) => (typeof v === "string" ? utf8.encode(v) : v);
  const list: KvEffect[] = mutations.map(([type, key, value]) =>
    type === "set"
      ? { type, key: bytes(key), value: bytes(value ?? "") }
      : { type, key: bytes(key) }
  );
  return { rev, mutations: list, existed: list.map(() => true) };
}

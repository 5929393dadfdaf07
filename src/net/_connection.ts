/** A TCP connection that reads and writes whole frames. */

import type { Counters } from "./_context.ts";
import { FrameDecoder, MalformedFrameError } from "./_frame.ts";

/** Size of the buffer each connection reads into. */
export const READ_BUFFER_BYTES = 64 * 1024;

/** A TCP connection carrying frames; counts bytes and frames in `counters`. */
export class FrameConnection {
  /** "host:port" of the other end, for logs. */
  readonly remote: string;
  readonly #conn: Deno.Conn;
  readonly #decoder: FrameDecoder;
  readonly #counters: Counters;
  readonly #readBuffer = new Uint8Array(READ_BUFFER_BYTES);
  #pending: Iterator<Uint8Array, void, undefined> | undefined;
  #closed = false;

  /** Wraps `conn`; bodies above `options.frameBytesMax` are refused. */
  constructor(
    conn: Deno.Conn,
    options: { readonly frameBytesMax: number; readonly counters: Counters },
  ) {
    this.#conn = conn;
    this.#decoder = new FrameDecoder(options.frameBytesMax);
    this.#counters = options.counters;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remote = addr.hostname.includes(":")
      ? `[${addr.hostname}]:${addr.port}`
      : `${addr.hostname}:${addr.port}`;
  }

  /** Whether {@linkcode FrameConnection.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The next frame body, or null when the peer closed the connection between frames.
   * Throws the frame errors of {@linkcode FrameDecoder}, a {@linkcode MalformedFrameError}
   * for a stream that ends inside a frame, and I/O errors (also after `close`).
   */
  async readBody(): Promise<Uint8Array | null> {
    while (true) {
      const next = this.#pending?.next(); // frames of the last chunk first, bad ones throw here
      if (next !== undefined && !next.done) {
        this.#counters.framesReceived++;
        return next.value;
      }
      this.#pending = undefined;
      const n = await this.#conn.read(this.#readBuffer);
      if (n === null) {
        if (this.#decoder.idle) return null;
        throw new MalformedFrameError(
          `the connection ended inside a frame (${this.#decoder.bufferedBytes} bytes of it read)`,
        );
      }
      this.#counters.bytesReceived += n;
      this.#pending = this.#decoder.push(this.#readBuffer.subarray(0, n));
    }
  }

  /** Writes all of `bytes` (`frames` whole frames), looping over partial writes. */
  async writeAll(bytes: Uint8Array, frames: number): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      const n = await this.#conn.write(bytes.subarray(at));
      if (n <= 0) throw new Deno.errors.WriteZero(`Write to ${this.remote} wrote nothing`);
      at += n;
    }
    this.#counters.bytesSent += bytes.length;
    this.#counters.framesSent += frames;
  }

  /** Closes the connection; pending reads and writes reject. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime (e.g. after a reset): nothing left to release.
    }
  }
}

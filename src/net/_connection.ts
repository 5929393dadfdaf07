/** A TCP connection that reads and writes whole frames. */

import type { Counters } from "./_context.ts";
import type { ByteConn } from "./_tls.ts";
import { FrameDecoder, MalformedFrameError } from "./_frame.ts";

/** Size of the buffer an authenticated connection reads into. */
export const READ_BUFFER_BYTES = 64 * 1024;

/**
 * Limit of a frame body before the handshake is through: challenge, hello, welcome and
 * refusal are all far smaller (ids, an incarnation, a nonce and a MAC). A connection that
 * announces a larger frame before it is authenticated is closed without allocating it, so a
 * pending handshake holds a few KiB, never the 16 MiB of FRAME_BYTES_MAX.
 */
export const HELLO_FRAME_BYTES_MAX = 4 * 1024;

/**
 * A TCP connection (a `Deno.Conn`, or a mutual-TLS one) carrying frames; counts bytes and
 * frames in `counters`.
 */
export class FrameConnection {
  /** "host:port" of the other end, for logs. */
  readonly remote: string;
  readonly #conn: ByteConn;
  readonly #decoder: FrameDecoder;
  readonly #counters: Counters;
  readonly #frameBytesMax: number;
  /** Small until {@linkcode FrameConnection.authenticated}: see HELLO_FRAME_BYTES_MAX. */
  #readBuffer: Uint8Array;
  #pending: Iterator<Uint8Array, void, undefined> | undefined;
  #closed = false;

  /**
   * Wraps `conn`. Until {@linkcode FrameConnection.authenticated}, bodies above
   * {@linkcode HELLO_FRAME_BYTES_MAX} are refused; after it, those above `options.frameBytesMax`.
   */
  constructor(
    conn: ByteConn,
    options: { readonly frameBytesMax: number; readonly counters: Counters },
  ) {
    this.#conn = conn;
    this.#frameBytesMax = options.frameBytesMax;
    const helloMax = Math.min(HELLO_FRAME_BYTES_MAX, options.frameBytesMax);
    this.#decoder = new FrameDecoder(helloMax);
    this.#readBuffer = new Uint8Array(helloMax + 4);
    this.#counters = options.counters;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remote = addr.hostname.includes(":")
      ? `[${addr.hostname}]:${addr.port}`
      : `${addr.hostname}:${addr.port}`;
  }

  /**
   * The handshake is through: frames up to the transport's `frameBytesMax` are accepted from
   * now on (also the rest of the chunk already read), read with a larger buffer.
   */
  authenticated(): void {
    this.#decoder.bytesMax = this.#frameBytesMax;
    // The chunk being split still refers to the old buffer; reads use the new one.
    if (this.#readBuffer.length < READ_BUFFER_BYTES) {
      this.#readBuffer = new Uint8Array(READ_BUFFER_BYTES);
    }
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

/** Length-prefixed msgpack frames: a u32 big-endian body length, then the msgpack body. */

import { Decoder, Encoder } from "@msgpack/msgpack";

/** Default limit of a frame's body in bytes (the 4-byte length prefix not included). */
export const FRAME_BYTES_MAX = 16 * 1024 * 1024;

/** Largest body length the u32 length prefix can declare. */
export const FRAME_BYTES_LIMIT = 0xffff_ffff;

/** Size of the length prefix in bytes. */
export const FRAME_HEADER_BYTES = 4;

/** A frame's body is larger than the limit: refused before it is buffered or sent. */
export class FrameTooLargeError extends Error {
  /** The body length that was declared or encoded. */
  readonly bytes: number;
  /** The limit in effect. */
  readonly bytesMax: number;
  /** Creates the error for a body of `bytes` against the limit `bytesMax`. */
  constructor(bytes: number, bytesMax: number, options?: ErrorOptions) {
    super(
      `Frame too large: body of ${bytes} bytes exceeds the limit of ${bytesMax} bytes`,
      options,
    );
    this.name = "FrameTooLargeError";
    this.bytes = bytes;
    this.bytesMax = bytesMax;
  }
}

/** A frame is not well formed: a zero length, a truncated frame or a body that is not msgpack. */
export class MalformedFrameError extends Error {
  /** Creates the error with the reason, e.g. "the body is not valid msgpack: ...". */
  constructor(reason: string, options?: ErrorOptions) {
    super(`Malformed frame: ${reason}`, options);
    this.name = "MalformedFrameError";
  }
}

/** Throws a RangeError unless `bytesMax` is an integer in 1..{@linkcode FRAME_BYTES_LIMIT}. */
export function checkFrameBytesMax(bytesMax: number): void {
  if (!Number.isSafeInteger(bytesMax) || bytesMax < 1 || bytesMax > FRAME_BYTES_LIMIT) {
    throw new RangeError(
      `Invalid frameBytesMax: must be an integer in 1..${FRAME_BYTES_LIMIT}, got ${bytesMax}`,
    );
  }
}

const ENCODER = new Encoder();
const DECODER = new Decoder();

/**
 * Encodes `value` as msgpack and prefixes it with its length. Throws
 * {@linkcode FrameTooLargeError} when the body exceeds `bytesMax`.
 */
export function encodeFrame(value: unknown, bytesMax: number = FRAME_BYTES_MAX): Uint8Array {
  const body = ENCODER.encodeSharedRef(value); // a view of the encoder's buffer: copied below
  if (body.length > bytesMax) throw new FrameTooLargeError(body.length, bytesMax);
  const frame = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  new DataView(frame.buffer).setUint32(0, body.length, false);
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

/** Decodes a frame body; anything but exactly one msgpack value is a {@linkcode MalformedFrameError}. */
export function decodeFrameBody(body: Uint8Array): unknown {
  try {
    return DECODER.decode(body);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new MalformedFrameError(`the body is not valid msgpack: ${reason}`, { cause: error });
  }
}

/**
 * Splits a byte stream into frame bodies. Accepts chunks cut anywhere; holds at most one
 * frame: the length is checked before any of the body is buffered. After it has thrown, the
 * decoder stays failed (the stream has lost its framing).
 */
export class FrameDecoder {
  #bytesMax: number;
  readonly #header = new Uint8Array(FRAME_HEADER_BYTES);
  #headerFill = 0;
  #body: Uint8Array | undefined;
  #bodyFill = 0;
  #failure: Error | undefined;

  /** Creates a decoder that refuses bodies larger than `bytesMax`. */
  constructor(bytesMax: number = FRAME_BYTES_MAX) {
    checkFrameBytesMax(bytesMax);
    this.#bytesMax = bytesMax;
  }

  /** The limit of one body; frames whose length was not read yet are checked against it. */
  get bytesMax(): number {
    return this.#bytesMax;
  }

  /** Changes the limit (e.g. raised once a peer is authenticated); see {@linkcode checkFrameBytesMax}. */
  set bytesMax(bytesMax: number) {
    checkFrameBytesMax(bytesMax);
    this.#bytesMax = bytesMax;
  }

  /** Bytes held of the frame in progress (length prefix included). */
  get bufferedBytes(): number {
    return this.#headerFill + (this.#body === undefined ? 0 : FRAME_HEADER_BYTES + this.#bodyFill);
  }

  /** True between frames: nothing of a next frame has arrived yet. */
  get idle(): boolean {
    return this.#headerFill === 0 && this.#body === undefined;
  }

  /**
   * Consumes `chunk`, yielding the bodies it completes in order; each is a fresh copy (never a
   * view of `chunk`). A bad length throws ({@linkcode FrameTooLargeError},
   * {@linkcode MalformedFrameError}) when iteration reaches it, after the good frames before
   * it were yielded. Iterate to the end before reusing `chunk`.
   */
  *push(chunk: Uint8Array): Generator<Uint8Array, void, undefined> {
    if (this.#failure !== undefined) throw this.#failure;
    let at = 0;
    while (at < chunk.length) {
      if (this.#body === undefined) {
        const n = Math.min(FRAME_HEADER_BYTES - this.#headerFill, chunk.length - at);
        this.#header.set(chunk.subarray(at, at + n), this.#headerFill);
        this.#headerFill += n;
        at += n;
        if (this.#headerFill < FRAME_HEADER_BYTES) return;
        this.#startBody();
      }
      const body = this.#body!;
      const n = Math.min(body.length - this.#bodyFill, chunk.length - at);
      body.set(chunk.subarray(at, at + n), this.#bodyFill);
      this.#bodyFill += n;
      at += n;
      if (this.#bodyFill === body.length) {
        this.#body = undefined;
        yield body;
      }
    }
  }

  /** Reads the complete length prefix and allocates the body once the length is acceptable. */
  #startBody(): void {
    const length = new DataView(this.#header.buffer).getUint32(0, false);
    this.#headerFill = 0;
    if (length === 0) this.#fail(new MalformedFrameError("the body length is 0"));
    if (length > this.#bytesMax) this.#fail(new FrameTooLargeError(length, this.#bytesMax));
    this.#body = new Uint8Array(length);
    this.#bodyFill = 0;
  }

  #fail(error: Error): never {
    this.#failure = error;
    throw error;
  }
}

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeFrameBody,
  encodeFrame,
  FRAME_BYTES_MAX,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameTooLargeError,
  MalformedFrameError,
} from "./_frame.ts";

const VALUES: unknown[] = [
  1,
  "hello",
  [7, "a", "b", 3, new Uint8Array([1, 2, 3])],
  { v: 1, cluster: "c", nonce: new Uint8Array(16) },
  new Uint8Array(70_000).fill(9), // larger than one read buffer
];

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Every body `chunk` completes. */
function pushAll(decoder: FrameDecoder, chunk: Uint8Array): Uint8Array[] {
  return [...decoder.push(chunk)];
}

function header(length: number): Uint8Array {
  const bytes = new Uint8Array(FRAME_HEADER_BYTES);
  new DataView(bytes.buffer).setUint32(0, length, false);
  return bytes;
}

Deno.test("encodeFrame prefixes the msgpack body with its u32 big-endian length", () => {
  const frame = encodeFrame("abc");
  assert.deepEqual([...frame], [0, 0, 0, 4, 0xa3, 0x61, 0x62, 0x63]);
  assert.equal(decodeFrameBody(frame.subarray(FRAME_HEADER_BYTES)), "abc");
});

Deno.test("encodeFrame refuses a body above the limit", () => {
  assert.throws(() => encodeFrame(new Uint8Array(100), 50), FrameTooLargeError);
  assert.throws(() => encodeFrame("x".repeat(64), 10), (e: unknown) => {
    assert.ok(e instanceof FrameTooLargeError);
    assert.equal(e.name, "FrameTooLargeError");
    assert.equal(e.bytes, 66);
    assert.equal(e.bytesMax, 10);
    return true;
  });
  assert.equal(encodeFrame("x".repeat(7), 8).length, FRAME_HEADER_BYTES + 8); // exactly at it
});

Deno.test("FrameDecoder returns every frame of a stream split at any byte boundary", () => {
  const frames = VALUES.slice(0, 4).map((v) => encodeFrame(v));
  const stream = concat(frames);
  const bodies = frames.map((f) => f.subarray(FRAME_HEADER_BYTES));
  for (let cut = 0; cut <= stream.length; cut++) {
    const decoder = new FrameDecoder();
    const got = [
      ...pushAll(decoder, stream.subarray(0, cut)),
      ...pushAll(decoder, stream.subarray(cut)),
    ];
    assert.deepEqual(got, bodies, `cut at ${cut}`);
    assert.equal(decoder.idle, true);
  }
  const decoder = new FrameDecoder(); // and one byte at a time
  const got = [...stream].flatMap((byte) => pushAll(decoder, new Uint8Array([byte])));
  assert.deepEqual(got.map(decodeFrameBody), VALUES.slice(0, 4));
});

Deno.test("FrameDecoder returns many frames of one chunk in order, as copies", () => {
  const values = Array.from({ length: 1_000 }, (_, i) => [i, `m${i}`]);
  const stream = concat([...values.map((v) => encodeFrame(v)), encodeFrame(VALUES[4])]);
  const decoder = new FrameDecoder();
  const bodies = pushAll(decoder, stream);
  assert.deepEqual(bodies.map(decodeFrameBody), [...values, VALUES[4]]);
  stream.fill(0); // the bodies do not alias the chunk
  assert.deepEqual(decodeFrameBody(bodies[0]), [0, "m0"]);
});

Deno.test("FrameDecoder refuses an oversized length before buffering any of the body", () => {
  const decoder = new FrameDecoder(1_024);
  assert.deepEqual(pushAll(decoder, header(1_024).subarray(0, 3)), []);
  assert.equal(decoder.bufferedBytes, 3);
  const oversized = new FrameDecoder(1_024);
  assert.throws(() => pushAll(oversized, header(1_025)), (e: unknown) => {
    assert.ok(e instanceof FrameTooLargeError);
    assert.equal(e.bytes, 1_025);
    return true;
  });
  assert.equal(oversized.bufferedBytes, 0);
  // A default decoder refuses a declared 4 GiB body at once, without allocating it.
  assert.throws(() => pushAll(new FrameDecoder(), header(0xffff_ffff)), FrameTooLargeError);
  assert.throws(() => pushAll(new FrameDecoder(), header(FRAME_BYTES_MAX + 1)), FrameTooLargeError);
  // The stream has lost its framing: the decoder stays failed.
  assert.throws(() => pushAll(oversized, encodeFrame(1)), FrameTooLargeError);
});

Deno.test("FrameDecoder yields the good frames before a bad length, then refuses it", () => {
  const decoder = new FrameDecoder();
  const frames = decoder.push(concat([encodeFrame(1), encodeFrame(2), header(0), encodeFrame(3)]));
  assert.deepEqual(decodeFrameBody(frames.next().value!), 1);
  assert.deepEqual(decodeFrameBody(frames.next().value!), 2);
  assert.throws(() => frames.next(), MalformedFrameError);
  assert.throws(() => pushAll(decoder, encodeFrame(4)), /the body length is 0/);
});

Deno.test("FrameDecoder holds at most the frame in progress", () => {
  const decoder = new FrameDecoder();
  const frame = encodeFrame(new Uint8Array(10_000));
  assert.equal(pushAll(decoder, frame.subarray(0, 5_000)).length, 0);
  assert.equal(decoder.bufferedBytes, 5_000);
  assert.equal(decoder.idle, false);
  assert.equal(pushAll(decoder, frame.subarray(5_000)).length, 1);
  assert.equal(decoder.bufferedBytes, 0);
});

Deno.test("FrameDecoder refuses an invalid limit", () => {
  assert.throws(() => new FrameDecoder(0), RangeError);
  assert.throws(() => new FrameDecoder(2 ** 32), RangeError);
  assert.throws(() => new FrameDecoder(1.5), RangeError);
});

Deno.test("decodeFrameBody turns every msgpack failure into MalformedFrameError", () => {
  const bad = [
    [0xc1], // never-used type byte
    [0x92, 0x01], // array of 2 with 1 element
    [0x01, 0x02], // trailing bytes
    [0xdd, 0xff, 0xff, 0xff, 0xff], // array of 4 G elements, none present
    [0xdb, 0x00, 0x00, 0x10, 0x00, 0x61], // str of 4096 bytes, 1 present
  ];
  for (const bytes of bad) {
    assert.throws(() => decodeFrameBody(new Uint8Array(bytes)), MalformedFrameError, `${bytes}`);
  }
});

Deno.test("FrameDecoder round-trips random frame sequences cut into random chunks", () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 20 }),
      fc.array(fc.nat({ max: 400 }), { maxLength: 30 }),
      (bodies, cuts) => {
        const stream = concat(bodies.map((b) => concat([header(b.length), b])));
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const decoder = new FrameDecoder(300);
        const got: Uint8Array[] = [];
        let from = 0;
        for (const to of [...points, stream.length]) {
          got.push(...pushAll(decoder, stream.subarray(from, to)));
          from = to;
        }
        assert.deepEqual(got, bodies);
      },
    ),
  );
});

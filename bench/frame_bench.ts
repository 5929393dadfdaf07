/**
 * The peer transport's frame codec: a Raft append of 20 entries of 100-byte commands (a
 * typical batch under load) and a heartbeat, encoded to a length-prefixed msgpack frame and
 * decoded back into a validated message.
 *
 *   deno bench bench/frame_bench.ts
 *
 * @module
 */
import { decodeMessage, encodeMessage } from "../src/net/_codec.ts";
import { decodeFrameBody, encodeFrame, FRAME_HEADER_BYTES } from "../src/net/_frame.ts";
import type { Entry, Message } from "../src/raft/mod.ts";

const entries: Entry[] = Array.from({ length: 20 }, (_, i) => ({
  index: 1000 + i,
  term: 3,
  type: "normal",
  data: new Uint8Array(100).fill(i),
}));
const append: Message = {
  type: "app",
  from: "a1",
  to: "a2",
  term: 3,
  index: 999,
  logTerm: 3,
  commit: 990,
  entries,
};
const heartbeat: Message = {
  type: "heartbeat",
  from: "a1",
  to: "a2",
  term: 3,
  commit: 990,
  readSeq: 7,
};

for (const [name, m] of [["append of 20 x 100 B", append], ["heartbeat", heartbeat]] as const) {
  const frame = encodeFrame(encodeMessage(m));
  Deno.bench({ name: `frame encode: ${name}`, group: name, baseline: true }, () => {
    encodeFrame(encodeMessage(m));
  });
  Deno.bench({ name: `frame decode: ${name}`, group: name }, () => {
    decodeMessage(decodeFrameBody(frame.subarray(FRAME_HEADER_BYTES)));
  });
}

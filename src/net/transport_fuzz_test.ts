import assert from "node:assert/strict";
import fc from "fast-check";
import type { Message } from "../raft/mod.ts";
import { encodeMessage } from "./_codec.ts";
import { encodeFrame } from "./_frame.ts";
import {
  closeAll,
  closedByPeer,
  closeQuietly,
  connectAll,
  helloFrame,
  isValidMessage,
  loopback,
  messageArbitrary,
  ping,
  rawConnect,
  startNode,
  type TestNode,
  waitFor,
  writeRaw,
} from "./_test_util.ts";

/** Messages from `from` to the listener, with now and then one misaddressed. */
function messagesFrom(from: string): fc.Arbitrary<Message[]> {
  const proper = messageArbitrary.map((m) => ({ ...m, from, to: "b" }) as Message);
  const stray = fc
    .tuple(messageArbitrary, fc.constantFrom("a", "c", "zz"), fc.constantFrom("b", "x"))
    .map(([m, from, to]) => ({ ...m, from, to }) as Message);
  return fc.array(fc.oneof({ arbitrary: proper, weight: 9 }, { arbitrary: stray, weight: 1 }), {
    maxLength: 5,
  });
}

/** Byte-level damage: flip bits, cut the stream short, insert bytes. */
const edits = fc.array(
  fc.tuple(fc.constantFrom("flip", "cut", "insert"), fc.nat(), fc.uint8Array({ maxLength: 8 })),
  { maxLength: 2 },
);

/** A byte stream a hostile or broken peer might send. */
const hostileStream = fc.oneof(
  { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 300 }), weight: 1 },
  {
    arbitrary: fc.constantFrom("a", "c", "zz")
      .chain((from) => fc.tuple(fc.constant(from), messagesFrom(from), edits))
      .map(([from, messages, edits]) => {
        let bytes = new Uint8Array([
          ...helloFrame({ cluster: "c", from, to: "b" }),
          ...messages.flatMap((m) => [...encodeFrame(encodeMessage(m))]),
        ]);
        for (const [op, at, extra] of edits) {
          const i = at % bytes.length;
          if (op === "flip") bytes[i] ^= extra[0] ?? 0xff;
          else if (op === "cut") bytes = bytes.slice(0, Math.max(1, i));
          else bytes = new Uint8Array([...bytes.subarray(0, i), ...extra, ...bytes.subarray(i)]);
        }
        return bytes;
      }),
    weight: 4,
  },
);

/** Throws hostile streams at `b` over raw sockets, then checks it still serves node `a`. */
async function fuzzListener(a: TestNode, b: TestNode, runs: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(hostileStream, async (bytes) => {
      const raw = await rawConnect(b.port);
      try {
        await writeRaw(raw, bytes);
        try {
          await raw.closeWrite(); // EOF: the listener now reads to the end and closes
        } catch { /* already closed by the listener */ }
        assert.equal(await closedByPeer(raw), true, "the listener closes every fuzz connection");
      } finally {
        closeQuietly(raw);
      }
    }),
    { numRuns: runs },
  );
  for (const m of b.received) {
    assert.ok(isValidMessage(m), JSON.stringify(m));
    assert.ok(m.to === "b" && (m.from === "a" || m.from === "c"), JSON.stringify(m));
  }
  const errors = b.logs.filter((line) => line.level === "error");
  assert.deepEqual(errors, [], "nothing unexpected: every failure is a logged refusal");
  const before = b.received.length;
  let seq = 0;
  await waitFor(
    () => {
      a.transport.send([ping("a", "b", seq++)]); // the fuzz may have replaced a's connection
      return b.received.some((m, i) => i >= before && m.type === "heartbeatResp");
    },
    5_000,
    "a good peer still gets through",
  );
}

Deno.test("a listener survives random and mutated frames and delivers only valid messages", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    a = await startNode("a");
    b = await startNode("b", { handshakeTimeoutMs: 2_000 });
    connectAll([a, b]);
    b.transport.setPeers(new Map([["a", loopback(a.port)], ["c", loopback(1)]]));
    await fuzzListener(a, b, 200);
    const stats = b.transport.stats();
    assert.ok(stats.connectionsRefused + stats.malformedFrames > 0);
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("a listener with a secret survives random and mutated frames", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    const secret = "fuzzing the challenge-response handshake";
    a = await startNode("a", { secret });
    b = await startNode("b", { secret, handshakeTimeoutMs: 2_000 });
    connectAll([a, b]);
    await fuzzListener(a, b, 100);
    assert.ok(b.received.every((m) => m.from === "a")); // no fuzz stream knows the secret
  } finally {
    await closeAll([a, b]);
  }
});

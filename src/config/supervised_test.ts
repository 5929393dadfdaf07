import assert from "node:assert/strict";
import { ConfigError, encodeSupervisedStart, readSupervisedStart } from "./mod.ts";

function streamOf(
  ...chunks: Uint8Array[]
): { stream: ReadableStream<Uint8Array>; end: () => void } {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      for (const chunk of chunks) c.enqueue(chunk);
    },
  });
  return { stream, end: () => controller.close() };
}

Deno.test("supervised start: the admin's line round-trips in any chunking; ended resolves at EOF", async () => {
  const line = encodeSupervisedStart({
    config: '[admin]\nhttp = "127.0.0.1:1"\n',
    secret: "s".repeat(20),
  });
  const { stream, end } = streamOf(line.subarray(0, 5), line.subarray(5, 17), line.subarray(17));
  const { start, ended } = await readSupervisedStart(stream);
  assert.equal(start.config, '[admin]\nhttp = "127.0.0.1:1"\n');
  assert.equal(start.secret, "s".repeat(20));
  let done = false;
  ended.then(() => (done = true));
  await Promise.resolve();
  assert.equal(done, false, "the pipe is still open");
  end();
  await ended;
});

Deno.test("supervised start: a missing, oversized or malformed line is a ConfigError", async () => {
  const enc = new TextEncoder();
  const cases: [Uint8Array[], RegExp][] = [
    [[], /stdin ended before the admin's start line/],
    [[enc.encode("not json\n")], /not JSON/],
    [[enc.encode('{"config": 1}\n')], /must be \{"config": string/],
    [[enc.encode('{"config": "x", "extra": 1}\n')], /must be/],
    [[new Uint8Array(5 << 20).fill(0x61)], /over 4194304 bytes/],
  ];
  for (const [chunks, expected] of cases) {
    const { stream, end } = streamOf(...chunks);
    end();
    await assert.rejects(readSupervisedStart(stream), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, expected);
      return true;
    });
  }
});

Deno.test("supervised start: an open stdin without a line times out with a clear error", async () => {
  const { stream, end } = streamOf(new TextEncoder().encode('{"config": "x"'));
  try {
    await assert.rejects(readSupervisedStart(stream, 50), /no start line on stdin within 50 ms/);
  } finally {
    end();
  }
});

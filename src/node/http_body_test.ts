/** readMessageBody: one step under a declared length, a bounded stream without one. */
import assert from "node:assert/strict";
import { readMessageBody } from "./_http_request.ts";

const tooLarge = (bytes: number) => new RangeError(`too large: ${bytes}`);

function streamOf(chunks: number[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks.map((n) => new Uint8Array(n).fill(1)));
}

Deno.test("readMessageBody: a body under a declared length within the limit is read whole", async () => {
  const body = new Uint8Array(100).fill(7);
  // As koi's HTTP server builds it: the client's headers, content-length included.
  const request = new Request("http://x/", {
    method: "PUT",
    body,
    headers: { "content-length": "100" },
  });
  assert.deepEqual(await readMessageBody(request, 100, tooLarge), body);
  const answer = new Response(body, { headers: { "content-length": "100" } });
  assert.deepEqual(await readMessageBody(answer, 1000, tooLarge), body);
});

Deno.test("readMessageBody: a declared length over the limit is refused before the body is read", async () => {
  let pulled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull() {
      pulled = true;
    },
  });
  const answer = new Response(stream, { headers: { "content-length": "101" } });
  await assert.rejects(readMessageBody(answer, 100, tooLarge), /too large: 101/);
  assert.equal(pulled, false);
});

Deno.test("readMessageBody: without a (valid) declared length the stream stops at the limit", async () => {
  const cases: Record<string, string>[] = [{}, { "content-length": "ten" }];
  for (const headers of cases) {
    const answer = new Response(streamOf([60, 60, 60]), { headers });
    await assert.rejects(readMessageBody(answer, 100, tooLarge), /too large: 120/);
    const fits = new Response(streamOf([60, 40]), { headers });
    assert.equal((await readMessageBody(fits, 100, tooLarge)).length, 100);
  }
  assert.equal((await readMessageBody(new Response(null), 10, tooLarge)).length, 0);
});

/** The client's server-sent events parser: line endings, fields, comments and its bound. */
import assert from "node:assert/strict";
import { SseParser, SseTooLongError } from "./_sse.ts";

Deno.test("sse: messages split anywhere, LF / CRLF / CR line ends, comments, multi-line data", () => {
  const parser = new SseParser(1_000);
  const text = ': hello\n\nid: 7\nevent: change\ndata: {"a":\ndata:1}\n\r\n' +
    "data: plain\r\rid:8\revent:start\rdata:x\r\n\r\nevent: empty\n\n";
  const messages = [];
  for (const char of text) messages.push(...parser.push(char)); // one character at a time
  assert.deepEqual(messages, [
    { event: "change", data: '{"a":\n1}', id: "7" },
    { event: "message", data: "plain", id: undefined },
    { event: "start", data: "x", id: "8" },
  ]);
});

Deno.test("sse: a message or a line over the limit throws instead of growing", () => {
  const long = new SseParser(16);
  assert.throws(() => long.push(`data: ${"x".repeat(20)}`), SseTooLongError);
  const many = new SseParser(16);
  assert.throws(() => many.push("data: 12345\ndata: 12345\ndata: 12345\n"), SseTooLongError);
  const fine = new SseParser(16);
  assert.deepEqual(
    fine.push("data: 12345\n\ndata: 12345\n\n").length,
    2,
    "the bound is per message",
  );
});

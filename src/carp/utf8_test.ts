import assert from "node:assert/strict";
import fc from "fast-check";
import { compareUtf8, encodeUtf8, scratchBytes, utf8Bytes } from "./_utf8.ts";

const encoder = new TextEncoder();

/** Strings of any UTF-16 code units, lone surrogates included. */
const anyString = fc.string({
  unit: fc.oneof(
    fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
    fc.constantFrom("a", "é", "€", "😀", "\ud800", "\udfff"),
  ),
  maxLength: 40,
});

Deno.test("utf8: bytes equal TextEncoder's for any string, lone surrogates included", () => {
  fc.assert(
    fc.property(anyString, (text) => {
      assert.deepEqual(utf8Bytes(text), encoder.encode(text));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("utf8: the scratch buffer grows for long strings", () => {
  const text = "€".repeat(10_000) + "😀";
  const length = encodeUtf8(text);
  assert.equal(length, 30_004);
  assert.deepEqual(scratchBytes().slice(0, length), encoder.encode(text));
});

Deno.test("utf8: compareUtf8 orders by UTF-8 bytes, a prefix first", () => {
  assert.ok(compareUtf8("a", "b") < 0);
  assert.ok(compareUtf8("a", "ab") < 0);
  assert.equal(compareUtf8("node-1", "node-1"), 0);
  assert.ok(compareUtf8("Z", "a") < 0); // case preserved: uppercase sorts first
  // U+FF5E (3 bytes, EF ..) sorts before U+1F600 (4 bytes, F0 ..), unlike UTF-16 order
  assert.ok(compareUtf8("\uff5e", "😀") < 0);
  assert.ok("\uff5e" > "😀");
});

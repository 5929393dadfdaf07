/** base64url and byte order helpers. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { compareBytes, decodeBase64Url, encodeBase64Url, showKey } from "./_bytes.ts";

function reference(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

Deno.test("bytes: base64url agrees with btoa and round-trips", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const text = encodeBase64Url(bytes);
      assert.equal(text, reference(bytes));
      assert.deepEqual(decodeBase64Url(text), bytes);
      const padded = text + "=".repeat((4 - (text.length % 4)) % 4);
      assert.deepEqual(decodeBase64Url(padded), bytes);
    }),
  );
});

Deno.test("bytes: decoding refuses what is not strict base64url", () => {
  for (const bad of ["a", "ab+c", "ab/c", "ab c", "gJ", "=", "ab=", "abc=="]) {
    assert.equal(decodeBase64Url(bad), undefined, bad);
  }
  assert.deepEqual(decodeBase64Url(""), new Uint8Array(0));
  assert.deepEqual(decodeBase64Url("gII"), new Uint8Array([0x80, 0x82]));
});

Deno.test("bytes: unsigned byte order, a prefix first", () => {
  const order = [[], [0], [0, 0], [1], [0x7f], [0x80], [0xfe, 0xff], [0xff]].map((b) =>
    new Uint8Array(b)
  );
  const shuffled = [...order].reverse().sort(compareBytes);
  assert.deepEqual(shuffled, order);
  assert.equal(showKey(new TextEncoder().encode("user:1")), '"user:1"');
  assert.equal(showKey(new Uint8Array([0x80, 0x82])), "base64url:gII");
  assert.equal(showKey(new TextEncoder().encode("a\nb")), "base64url:YQpi");
});

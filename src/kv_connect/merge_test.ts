/** The merge of one range's answers from every cluster: order, reverse, limit, duplicates. */
import assert from "node:assert/strict";
import type { KvEntry } from "./_datapath.ts";
import { mergeRange } from "./_merge.ts";

const enc = new TextEncoder();
const entry = (key: string, vs = 1): KvEntry => ({
  key: enc.encode(key),
  value: enc.encode(`v${vs}`),
  encoding: 3,
  versionstamp: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, vs, 0, 0),
});
const keys = (entries: KvEntry[]) => entries.map((e) => new TextDecoder().decode(e.key));
const owner = (key: Uint8Array) => (key[0] % 2 === 0 ? "even" : "odd");

Deno.test("merge: every cluster's part in key order, at most limit", () => {
  const parts = [
    { cluster: "a", entries: [entry("b"), entry("e"), entry("h")] },
    { cluster: "b", entries: [entry("a"), entry("f")] },
    { cluster: "c", entries: [] },
    { cluster: "d", entries: [entry("c"), entry("d"), entry("g")] },
  ];
  assert.deepEqual(keys(mergeRange(parts, { limit: 100, reverse: false }, owner)), [
    ..."abcdefgh",
  ]);
  assert.deepEqual(keys(mergeRange(parts, { limit: 3, reverse: false }, owner)), ["a", "b", "c"]);
  assert.deepEqual(keys(mergeRange(parts, { limit: 1, reverse: false }, owner)), ["a"]);
  assert.deepEqual(mergeRange([], { limit: 5, reverse: false }, owner), []);
});

Deno.test("merge: reverse takes the largest keys first", () => {
  const parts = [
    { cluster: "a", entries: [entry("h"), entry("e"), entry("b")] },
    { cluster: "b", entries: [entry("f"), entry("a")] },
  ];
  assert.deepEqual(keys(mergeRange(parts, { limit: 3, reverse: true }, owner)), ["h", "f", "e"]);
  assert.deepEqual(keys(mergeRange(parts, { limit: 9, reverse: true }, owner)), [..."hfeba"]);
});

Deno.test("merge: bytes order (unsigned), not text order", () => {
  const parts = [
    { cluster: "a", entries: [{ ...entry(""), key: Uint8Array.of(0x02, 0xff) }] },
    { cluster: "b", entries: [{ ...entry(""), key: Uint8Array.of(0x02, 0x10) }] },
  ];
  const merged = mergeRange(parts, { limit: 2, reverse: false }, owner);
  assert.deepEqual(merged.map((e) => e.key[1]), [0x10, 0xff]);
});

Deno.test("merge: a key two clusters hold shows once, the owner's copy, and counts once", () => {
  // "b" (0x62, even) belongs to "even"; the stale copy in "odd" is dropped.
  const parts = [
    { cluster: "odd", entries: [entry("a"), entry("b", 1)] },
    { cluster: "even", entries: [entry("b", 7), entry("c")] },
  ];
  const merged = mergeRange(parts, { limit: 2, reverse: false }, owner);
  assert.deepEqual(keys(merged), ["a", "b"]);
  assert.equal(merged[1].versionstamp[7], 7);
  const reversed = mergeRange(parts, { limit: 2, reverse: true }, owner);
  assert.deepEqual(keys(reversed), ["c", "b"]);
  assert.equal(reversed[1].versionstamp[7], 7);
});

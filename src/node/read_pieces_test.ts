/**
 * Large read answers as pieces give exactly the bytes the whole encoders give: the msgpack of
 * a transaction's snapshot-read part and the protobuf of a KV Connect read, over the sizes
 * where each format changes its headers.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { encode } from "@msgpack/msgpack";
import {
  encodeSnapshotReadOutput,
  snapshotReadOutputPieces,
  SnapshotReadStatus,
} from "../kv_connect/_datapath.ts";
import { arrayHeader, binHeader, partPieces } from "./_read_pieces.ts";
import type { RangeEntry } from "./service.ts";
import { partOut } from "./_http_txn.ts";
import { concat } from "../storage/_log_layout.ts";

/** Value sizes at and around every header boundary of both formats. */
const SIZES = [0, 1, 15, 16, 127, 128, 255, 256, 16_383, 16_384, 65_535, 65_536, 70_000];

const entryArb: fc.Arbitrary<RangeEntry> = fc.record({
  key: fc.uint8Array({ maxLength: 40 }),
  size: fc.oneof(fc.constantFrom(...SIZES), fc.nat(300)),
  rev: fc.nat(),
  vs: fc.option(fc.maxSafeNat(), { nil: undefined }),
  encoding: fc.option(fc.constantFrom(1, 2, 3), { nil: undefined }),
  expireAt: fc.option(fc.maxSafeNat(), { nil: undefined }),
}).map(({ key, size, ...rest }) => ({
  key,
  entry: { value: new Uint8Array(size).fill(size & 0xff), ...rest },
}));

const listsArb = fc.array(fc.array(entryArb, { maxLength: 20 }), { maxLength: 4 });

const wholePart = (index: number, lists: RangeEntry[][]) =>
  encode(partOut({ index, entries: lists }));

Deno.test("read pieces: a snapshot-read part in pieces is the msgpack of the whole", () => {
  fc.assert(
    fc.property(fc.maxSafeNat(), listsArb, (index, lists) => {
      assert.deepEqual(concat(partPieces(index, lists)), wholePart(index, lists));
    }),
    { numRuns: 150 },
  );
});

Deno.test("read pieces: msgpack headers of every width match the encoder's", () => {
  for (const n of [0, 15, 16, 255, 256, 65_535, 65_536]) {
    const array = encode(new Array(n).fill(0));
    assert.deepEqual(arrayHeader(n), array.subarray(0, array.length - n), `array ${n}`);
    const bin = encode(new Uint8Array(n));
    assert.deepEqual(binHeader(n), bin.subarray(0, bin.length - n), `bin ${n}`);
  }
});

Deno.test("read pieces: the values are the stored arrays themselves, not copies", () => {
  const value = new Uint8Array(1 << 20);
  const lists = [[{ key: Uint8Array.of(1), entry: { value, rev: 1 } }]];
  assert.ok(partPieces(7, lists).includes(value));
  const output = {
    ranges: [{
      values: [{ key: Uint8Array.of(1), value, encoding: 1, versionstamp: new Uint8Array(10) }],
    }],
    readDisabled: false,
    readIsStronglyConsistent: true,
    status: SnapshotReadStatus.SUCCESS,
  };
  assert.ok(snapshotReadOutputPieces(output).includes(value));
});

Deno.test("read pieces: a KV Connect read output in pieces is the protobuf of the whole", () => {
  fc.assert(
    fc.property(
      listsArb,
      fc.boolean(),
      fc.boolean(),
      fc.constantFrom(...Object.values(SnapshotReadStatus)),
      (lists, readDisabled, strong, status) => {
        const output = {
          ranges: lists.map((list) => ({
            values: list.map(({ key, entry }) => ({
              key,
              value: entry.value,
              encoding: entry.encoding ?? 1,
              versionstamp: new Uint8Array(10).fill(entry.rev & 0xff),
            })),
          })),
          readDisabled,
          readIsStronglyConsistent: strong,
          status,
        };
        assert.deepEqual(
          concat(snapshotReadOutputPieces(output)),
          encodeSnapshotReadOutput(output),
        );
      },
    ),
    { numRuns: 150 },
  );
});

import assert from "node:assert/strict";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  AtomicWriteStatus,
  DatapathDecodeError,
  decodeAtomicWrite,
  decodeAtomicWriteOutput,
  decodeSnapshotRead,
  decodeSnapshotReadOutput,
  decodeWatch,
  encodeAtomicWrite,
  encodeAtomicWriteOutput,
  encodeSnapshotRead,
  encodeSnapshotReadOutput,
  MutationType,
  SnapshotReadStatus,
  ValueEncoding,
} from "./_datapath.ts";

const hex = (s: string) => Uint8Array.from(s.match(/../g)!, (x) => parseInt(x, 16));

Deno.test("datapath: the snapshot_read Deno 2.9.6's own client sent for kv.get(['a', 1])", () => {
  // Captured from Deno.openKv("http://127.0.0.1:…") against a probe server (2026-12-03).
  const body = hex(
    "0a1f0a0c02610021bff0000000000000120d02610021bff0000000000000001801",
  );
  const read = decodeSnapshotRead(body);
  assert.equal(read.ranges.length, 1);
  const [range] = read.ranges;
  assert.deepEqual([...range.start], [0x02, 0x61, 0x00, 0x21, 0xbf, 0xf0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...range.end], [...range.start, 0x00], "the key itself: start..start+0x00");
  assert.equal(range.limit, 1);
  assert.equal(range.reverse, false);
  assert.deepEqual(encodeSnapshotRead(read), body, "the same bytes back");
});

Deno.test("datapath: outputs and writes round trip", () => {
  const entry = {
    key: new Uint8Array([1, 2]),
    value: new Uint8Array([9]),
    encoding: ValueEncoding.BYTES,
    versionstamp: new Uint8Array(10).fill(7),
  };
  const out = {
    ranges: [{ values: [entry, { ...entry, key: new Uint8Array([3]) }] }, { values: [] }],
    readDisabled: false,
    readIsStronglyConsistent: true,
    status: SnapshotReadStatus.SUCCESS,
  };
  assert.deepEqual(decodeSnapshotReadOutput(encodeSnapshotReadOutput(out)), out);
  const write = {
    checks: [{ key: new Uint8Array([1]), versionstamp: new Uint8Array() }],
    mutations: [
      {
        key: new Uint8Array([1]),
        value: { data: new Uint8Array(8), encoding: ValueEncoding.LE64 },
        mutationType: MutationType.SUM,
        expireAtMs: 1_800_000_000_000n,
        sumMin: new Uint8Array(),
        sumMax: new Uint8Array(),
        sumClamp: false,
      },
      {
        key: new Uint8Array([2]),
        value: undefined,
        mutationType: MutationType.DELETE,
        expireAtMs: 0n,
        sumMin: new Uint8Array(),
        sumMax: new Uint8Array(),
        sumClamp: false,
      },
    ],
    enqueues: 0,
  };
  assert.deepEqual(decodeAtomicWrite(encodeAtomicWrite(write)), write);
  const result = {
    status: AtomicWriteStatus.CHECK_FAILURE,
    versionstamp: new Uint8Array(),
    failedChecks: [0, 3],
  };
  assert.deepEqual(decodeAtomicWriteOutput(encodeAtomicWriteOutput(result)), result);
});

Deno.test("datapath: repeated scalars packed or not, unknown fields skipped, enqueues counted", () => {
  const w = new BinaryWriter();
  w.tag(1, WireType.Varint).int32(AtomicWriteStatus.CHECK_FAILURE);
  w.tag(4, WireType.Varint).uint32(2); // unpacked
  w.tag(4, WireType.Varint).uint32(5);
  w.tag(99, WireType.LengthDelimited).bytes(new Uint8Array([1, 2, 3])); // unknown
  assert.deepEqual(decodeAtomicWriteOutput(w.finish()).failedChecks, [2, 5]);
  const a = new BinaryWriter();
  a.tag(3, WireType.LengthDelimited).bytes(new Uint8Array([0x0a, 0x01, 0x00]));
  a.tag(3, WireType.LengthDelimited).bytes(new Uint8Array());
  assert.equal(decodeAtomicWrite(a.finish()).enqueues, 2);
  const watch = new BinaryWriter();
  watch.tag(1, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).bytes(
    new Uint8Array([7]),
  ).join();
  assert.deepEqual(decodeWatch(watch.finish()).keys, [new Uint8Array([7])]);
});

Deno.test("datapath: bytes that are not the message are a DatapathDecodeError", () => {
  for (
    const bad of [
      new Uint8Array([0x0a, 0x05, 0x01]), // a length past the end
      new Uint8Array([0x08]), // a varint cut short
      new Uint8Array([0x0b]), // a group start
      new Uint8Array([0x09, 1, 2]), // a fixed64 cut short
    ]
  ) {
    assert.throws(() => decodeSnapshotRead(bad), DatapathDecodeError);
    assert.throws(() => decodeAtomicWrite(bad), DatapathDecodeError);
  }
  // A field of the wrong wire type.
  assert.throws(() => decodeSnapshotRead(new Uint8Array([0x08, 0x01])), DatapathDecodeError);
});

/**
 * The KV Connect data-path messages of `datapath.proto`, encoded and decoded by hand with
 * `@bufbuild/protobuf`'s wire reader and writer (no code generation step). Decoders skip
 * unknown fields, read repeated scalars packed or not, and throw {@linkcode DatapathDecodeError}
 * on bytes that are not the message.
 *
 * @module
 */
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

/** `ValueEncoding`. */
export const ValueEncoding = { V8: 1, LE64: 2, BYTES: 3 } as const;
/** `MutationType`. */
export const MutationType = {
  SET: 1,
  DELETE: 2,
  SUM: 3,
  MAX: 4,
  MIN: 5,
  SET_SUFFIX_VERSIONSTAMPED_KEY: 9,
} as const;
/** `SnapshotReadStatus`. */
export const SnapshotReadStatus = { SUCCESS: 1, READ_DISABLED: 2 } as const;
/** `AtomicWriteStatus`. */
export const AtomicWriteStatus = { SUCCESS: 1, CHECK_FAILURE: 2, WRITE_DISABLED: 5 } as const;

/** `ReadRange`. */
export interface ReadRange {
  start: Uint8Array;
  end: Uint8Array;
  limit: number;
  reverse: boolean;
}
/** Whether `range` holds exactly the key `start` (end = start + 0x00): a point read. */
export function isPointRange(range: Pick<ReadRange, "start" | "end">): boolean {
  const { start, end } = range;
  if (end.length !== start.length + 1 || end[start.length] !== 0) return false;
  for (let i = 0; i < start.length; i++) if (start[i] !== end[i]) return false;
  return true;
}

/** `SnapshotRead`. */
export interface SnapshotRead {
  ranges: ReadRange[];
}
/** `KvEntry`. */
export interface KvEntry {
  key: Uint8Array;
  value: Uint8Array;
  encoding: number;
  versionstamp: Uint8Array;
}
/** `SnapshotReadOutput`. */
export interface SnapshotReadOutput {
  ranges: { values: KvEntry[] }[];
  readDisabled: boolean;
  readIsStronglyConsistent: boolean;
  status: number;
}
/** `KvValue`. */
export interface KvValue {
  data: Uint8Array;
  encoding: number;
}
/** `Check`. */
export interface Check {
  key: Uint8Array;
  versionstamp: Uint8Array;
}
/** `Mutation`. */
export interface Mutation {
  key: Uint8Array;
  value: KvValue | undefined;
  mutationType: number;
  expireAtMs: bigint;
  sumMin: Uint8Array;
  sumMax: Uint8Array;
  sumClamp: boolean;
}
/** `AtomicWrite` (enqueues counted, not read). */
export interface AtomicWrite {
  checks: Check[];
  mutations: Mutation[];
  enqueues: number;
}
/** `AtomicWriteOutput`. */
export interface AtomicWriteOutput {
  status: number;
  versionstamp: Uint8Array;
  failedChecks: number[];
}
/** `Watch`. */
export interface Watch {
  keys: Uint8Array[];
}
/** `WatchOutput`. */
export interface WatchOutput {
  status: number;
  keys: { changed: boolean; entryIfChanged: KvEntry | undefined }[];
}

/** Bytes that are not the expected message. */
export class DatapathDecodeError extends Error {
  /** Creates the error naming the message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DatapathDecodeError";
  }
}

/** Reads the fields of one message; `field` is called for each, and skips what it ignores. */
function readFields(
  bytes: Uint8Array,
  what: string,
  field: (no: number, type: WireType, r: BinaryReader) => boolean,
): void {
  const r = new BinaryReader(bytes);
  try {
    while (r.pos < r.len) {
      const [no, type] = r.tag();
      if (!field(no, type, r)) r.skip(type);
    }
  } catch (error) {
    if (error instanceof DatapathDecodeError) throw error;
    throw new DatapathDecodeError(`Invalid ${what}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

function expect(type: WireType, want: WireType, what: string): void {
  if (type !== want) throw new DatapathDecodeError(`Invalid ${what}: wrong wire type ${type}`);
}

const LEN = WireType.LengthDelimited;
const VARINT = WireType.Varint;

function decodeEntry(bytes: Uint8Array): KvEntry {
  const e: KvEntry = {
    key: new Uint8Array(),
    value: new Uint8Array(),
    encoding: 0,
    versionstamp: new Uint8Array(),
  };
  readFields(bytes, "KvEntry", (no, type, r) => {
    if (no === 1) (expect(type, LEN, "KvEntry.key"), e.key = r.bytes());
    else if (no === 2) (expect(type, LEN, "KvEntry.value"), e.value = r.bytes());
    else if (no === 3) (expect(type, VARINT, "KvEntry.encoding"), e.encoding = r.int32());
    else if (no === 4) (expect(type, LEN, "KvEntry.versionstamp"), e.versionstamp = r.bytes());
    else return false;
    return true;
  });
  return e;
}

function encodeEntry(w: BinaryWriter, e: KvEntry): void {
  w.tag(1, LEN).bytes(e.key);
  w.tag(2, LEN).bytes(e.value);
  w.tag(3, VARINT).int32(e.encoding);
  w.tag(4, LEN).bytes(e.versionstamp);
}

function decodeValue(bytes: Uint8Array): KvValue {
  const v: KvValue = { data: new Uint8Array(), encoding: 0 };
  readFields(bytes, "KvValue", (no, type, r) => {
    if (no === 1) (expect(type, LEN, "KvValue.data"), v.data = r.bytes());
    else if (no === 2) (expect(type, VARINT, "KvValue.encoding"), v.encoding = r.int32());
    else return false;
    return true;
  });
  return v;
}

/** Decodes a `SnapshotRead`. */
export function decodeSnapshotRead(bytes: Uint8Array): SnapshotRead {
  const out: SnapshotRead = { ranges: [] };
  readFields(bytes, "SnapshotRead", (no, type, r) => {
    if (no !== 1) return false;
    expect(type, LEN, "SnapshotRead.ranges");
    const range: ReadRange = {
      start: new Uint8Array(),
      end: new Uint8Array(),
      limit: 0,
      reverse: false,
    };
    readFields(r.bytes(), "ReadRange", (n, t, rr) => {
      if (n === 1) (expect(t, LEN, "ReadRange.start"), range.start = rr.bytes());
      else if (n === 2) (expect(t, LEN, "ReadRange.end"), range.end = rr.bytes());
      else if (n === 3) (expect(t, VARINT, "ReadRange.limit"), range.limit = rr.int32());
      else if (n === 4) (expect(t, VARINT, "ReadRange.reverse"), range.reverse = rr.bool());
      else return false;
      return true;
    });
    out.ranges.push(range);
    return true;
  });
  return out;
}

/** Encodes a `SnapshotRead` (for tests and clients). */
export function encodeSnapshotRead(m: SnapshotRead): Uint8Array {
  const w = new BinaryWriter();
  for (const range of m.ranges) {
    w.tag(1, LEN).fork();
    w.tag(1, LEN).bytes(range.start);
    w.tag(2, LEN).bytes(range.end);
    w.tag(3, VARINT).int32(range.limit);
    if (range.reverse) w.tag(4, VARINT).bool(true);
    w.join();
  }
  return w.finish();
}

/** Encodes a `SnapshotReadOutput`. */
export function encodeSnapshotReadOutput(m: SnapshotReadOutput): Uint8Array {
  const w = new BinaryWriter();
  for (const range of m.ranges) {
    w.tag(1, LEN).fork();
    for (const e of range.values) {
      w.tag(1, LEN).fork();
      encodeEntry(w, e);
      w.join();
    }
    w.join();
  }
  if (m.readDisabled) w.tag(2, VARINT).bool(true);
  if (m.readIsStronglyConsistent) w.tag(4, VARINT).bool(true);
  w.tag(8, VARINT).int32(m.status);
  return w.finish();
}

/**
 * The bytes of {@linkcode encodeSnapshotReadOutput} as pieces: the small encoded parts around
 * each value and the values themselves (the same arrays, not copies). A large answer is then
 * never copied into one buffer, and can be written piece by piece (src/http/_pieced.ts).
 */
export function snapshotReadOutputPieces(m: SnapshotReadOutput): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const range of m.ranges) {
    const entries: Uint8Array[] = [];
    let rangeBytes = 0;
    for (const e of range.values) {
      const head = new BinaryWriter().tag(1, LEN).bytes(e.key).tag(2, LEN).uint32(e.value.length)
        .finish();
      const tail = new BinaryWriter().tag(3, VARINT).int32(e.encoding).tag(4, LEN)
        .bytes(e.versionstamp).finish();
      const entryBytes = head.length + e.value.length + tail.length;
      const wrap = new BinaryWriter().tag(1, LEN).uint32(entryBytes).finish();
      entries.push(wrap, head, e.value, tail);
      rangeBytes += wrap.length + entryBytes;
    }
    out.push(new BinaryWriter().tag(1, LEN).uint32(rangeBytes).finish());
    for (const piece of entries) out.push(piece); // not a spread: a range has many entries
  }
  const w = new BinaryWriter();
  if (m.readDisabled) w.tag(2, VARINT).bool(true);
  if (m.readIsStronglyConsistent) w.tag(4, VARINT).bool(true);
  w.tag(8, VARINT).int32(m.status);
  out.push(w.finish());
  return out;
}

/** Decodes a `SnapshotReadOutput` (for tests and clients). */
export function decodeSnapshotReadOutput(bytes: Uint8Array): SnapshotReadOutput {
  const out: SnapshotReadOutput = {
    ranges: [],
    readDisabled: false,
    readIsStronglyConsistent: false,
    status: 0,
  };
  readFields(bytes, "SnapshotReadOutput", (no, type, r) => {
    if (no === 1) {
      expect(type, LEN, "SnapshotReadOutput.ranges");
      const values: KvEntry[] = [];
      readFields(r.bytes(), "ReadRangeOutput", (n, t, rr) => {
        if (n !== 1) return false;
        expect(t, LEN, "ReadRangeOutput.values");
        values.push(decodeEntry(rr.bytes()));
        return true;
      });
      out.ranges.push({ values });
    } else if (no === 2) out.readDisabled = r.bool();
    else if (no === 4) out.readIsStronglyConsistent = r.bool();
    else if (no === 8) out.status = r.int32();
    else return false;
    return true;
  });
  return out;
}

/** Decodes an `AtomicWrite`. */
export function decodeAtomicWrite(bytes: Uint8Array): AtomicWrite {
  const out: AtomicWrite = { checks: [], mutations: [], enqueues: 0 };
  readFields(bytes, "AtomicWrite", (no, type, r) => {
    if (no === 1) {
      expect(type, LEN, "AtomicWrite.checks");
      const c: Check = { key: new Uint8Array(), versionstamp: new Uint8Array() };
      readFields(r.bytes(), "Check", (n, t, rr) => {
        if (n === 1) (expect(t, LEN, "Check.key"), c.key = rr.bytes());
        else if (n === 2) (expect(t, LEN, "Check.versionstamp"), c.versionstamp = rr.bytes());
        else return false;
        return true;
      });
      out.checks.push(c);
    } else if (no === 2) {
      expect(type, LEN, "AtomicWrite.mutations");
      const m: Mutation = {
        key: new Uint8Array(),
        value: undefined,
        mutationType: 0,
        expireAtMs: 0n,
        sumMin: new Uint8Array(),
        sumMax: new Uint8Array(),
        sumClamp: false,
      };
      readFields(r.bytes(), "Mutation", (n, t, rr) => {
        if (n === 1) (expect(t, LEN, "Mutation.key"), m.key = rr.bytes());
        else if (n === 2) (expect(t, LEN, "Mutation.value"), m.value = decodeValue(rr.bytes()));
        else if (n === 3) {
          (expect(t, VARINT, "Mutation.mutation_type"), m.mutationType = rr.int32());
        } else if (n === 4) {
          expect(t, VARINT, "Mutation.expire_at_ms");
          m.expireAtMs = BigInt(rr.int64());
        } else if (n === 5) (expect(t, LEN, "Mutation.sum_min"), m.sumMin = rr.bytes());
        else if (n === 6) (expect(t, LEN, "Mutation.sum_max"), m.sumMax = rr.bytes());
        else if (n === 7) (expect(t, VARINT, "Mutation.sum_clamp"), m.sumClamp = rr.bool());
        else return false;
        return true;
      });
      out.mutations.push(m);
    } else if (no === 3) {
      expect(type, LEN, "AtomicWrite.enqueues");
      r.bytes();
      out.enqueues++;
    } else return false;
    return true;
  });
  return out;
}

/** Encodes an `AtomicWrite` (for tests and clients). */
export function encodeAtomicWrite(m: AtomicWrite): Uint8Array {
  const w = new BinaryWriter();
  for (const c of m.checks) {
    w.tag(1, LEN).fork();
    w.tag(1, LEN).bytes(c.key);
    w.tag(2, LEN).bytes(c.versionstamp);
    w.join();
  }
  for (const x of m.mutations) {
    w.tag(2, LEN).fork();
    w.tag(1, LEN).bytes(x.key);
    if (x.value !== undefined) {
      w.tag(2, LEN).fork();
      w.tag(1, LEN).bytes(x.value.data);
      w.tag(2, VARINT).int32(x.value.encoding);
      w.join();
    }
    w.tag(3, VARINT).int32(x.mutationType);
    if (x.expireAtMs !== 0n) w.tag(4, VARINT).int64(x.expireAtMs);
    if (x.sumMin.length > 0) w.tag(5, LEN).bytes(x.sumMin);
    if (x.sumMax.length > 0) w.tag(6, LEN).bytes(x.sumMax);
    if (x.sumClamp) w.tag(7, VARINT).bool(true);
    w.join();
  }
  return w.finish();
}

/** Encodes an `AtomicWriteOutput`. */
export function encodeAtomicWriteOutput(m: AtomicWriteOutput): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, VARINT).int32(m.status);
  if (m.versionstamp.length > 0) w.tag(2, LEN).bytes(m.versionstamp);
  if (m.failedChecks.length > 0) {
    w.tag(4, LEN).fork();
    for (const i of m.failedChecks) w.uint32(i);
    w.join();
  }
  return w.finish();
}

/** Decodes an `AtomicWriteOutput`, `failed_checks` packed or not (for tests and clients). */
export function decodeAtomicWriteOutput(bytes: Uint8Array): AtomicWriteOutput {
  const out: AtomicWriteOutput = { status: 0, versionstamp: new Uint8Array(), failedChecks: [] };
  readFields(bytes, "AtomicWriteOutput", (no, type, r) => {
    if (no === 1) out.status = r.int32();
    else if (no === 2) out.versionstamp = r.bytes();
    else if (no === 4 && type === LEN) {
      const packed = new BinaryReader(r.bytes());
      while (packed.pos < packed.len) out.failedChecks.push(packed.uint32());
    } else if (no === 4) out.failedChecks.push(r.uint32());
    else return false;
    return true;
  });
  return out;
}

/** Decodes a `Watch`. */
export function decodeWatch(bytes: Uint8Array): Watch {
  const out: Watch = { keys: [] };
  readFields(bytes, "Watch", (no, type, r) => {
    if (no !== 1) return false;
    expect(type, LEN, "Watch.keys");
    let key: Uint8Array = new Uint8Array();
    readFields(r.bytes(), "WatchKey", (n, t, rr) => {
      if (n !== 1) return false;
      expect(t, LEN, "WatchKey.key");
      key = rr.bytes();
      return true;
    });
    out.keys.push(key);
    return true;
  });
  return out;
}

/** Encodes a `WatchOutput`. */
export function encodeWatchOutput(m: WatchOutput): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, VARINT).int32(m.status);
  for (const k of m.keys) {
    w.tag(2, LEN).fork();
    if (k.changed) w.tag(1, VARINT).bool(true);
    if (k.entryIfChanged !== undefined) {
      w.tag(2, LEN).fork();
      encodeEntry(w, k.entryIfChanged);
      w.join();
    }
    w.join();
  }
  return w.finish();
}

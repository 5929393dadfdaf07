/**
 * Wire form of Raft messages: compact msgpack arrays, validated field by field on the way in
 * (and on the way out: a message that would be refused by its receiver is never sent).
 *
 * Layout: `[code, from, to, term, ...fields of the type in MESSAGE_LAYOUTS order]`.
 * An entry is `[term, index, data]` (normal) or `[term, index, data, membership]` (config),
 * a membership `[voters, outgoing, learners]`, a snapshot meta `[index, term, membership]`.
 */

import type { Entry, Membership, Message, MessageType, SnapshotMeta } from "../raft/mod.ts";
import { MESSAGE_TYPES } from "../raft/mod.ts";

/** A message (or its wire form) breaks the message format; `reason` says how. */
export class MalformedMessageError extends Error {
  /** What is wrong, e.g. "field index must be an integer >= 0, got -1". */
  readonly reason: string;
  /** Creates the error with the reason. */
  constructor(reason: string, options?: ErrorOptions) {
    super(`Malformed message: ${reason}`, options);
    this.name = "MalformedMessageError";
    this.reason = reason;
  }
}

/** The kinds of type-specific fields. */
type FieldKind = "uint" | "bool" | "string" | "bytes" | "entries" | "snapMeta";

/** The wire code of each message type: fixed forever, independent of MESSAGE_TYPES' order. */
const WIRE_CODES: Readonly<Record<MessageType, number>> = {
  app: 1,
  appResp: 2,
  vote: 3,
  preVote: 4,
  voteResp: 5,
  preVoteResp: 6,
  heartbeat: 7,
  heartbeatResp: 8,
  snap: 9,
  snapResp: 10,
  timeoutNow: 11,
  readIndex: 12,
  readIndexResp: 13,
};

/** The fields after `term` of each message type, in wire order. */
const MESSAGE_LAYOUTS: Readonly<Record<MessageType, readonly (readonly [string, FieldKind])[]>> = {
  app: [["index", "uint"], ["logTerm", "uint"], ["commit", "uint"], ["entries", "entries"]],
  appResp: [["index", "uint"], ["reject", "bool"], ["rejectHint", "uint"], ["logTerm", "uint"]],
  vote: [["index", "uint"], ["logTerm", "uint"], ["transfer", "bool"]],
  preVote: [["index", "uint"], ["logTerm", "uint"], ["transfer", "bool"]],
  voteResp: [["reject", "bool"]],
  preVoteResp: [["reject", "bool"]],
  heartbeat: [["commit", "uint"], ["readSeq", "uint"]],
  heartbeatResp: [["readSeq", "uint"]],
  snap: [["meta", "snapMeta"], ["offset", "uint"], ["total", "uint"], ["chunk", "bytes"]],
  snapResp: [["snapIndex", "uint"], ["offset", "uint"]],
  timeoutNow: [],
  readIndex: [["context", "string"]],
  readIndexResp: [["context", "string"], ["index", "uint"]],
};

/** Fields every message starts with, after the code. */
const BASE_FIELDS = 4;

const TYPES_BY_CODE: ReadonlyMap<number, MessageType> = new Map(
  MESSAGE_TYPES.map((type) => [WIRE_CODES[type], type]),
);

// Start-up check: every message type of the core has its own code and layout.
if (
  TYPES_BY_CODE.size !== MESSAGE_TYPES.length ||
  Object.keys(WIRE_CODES).length !== MESSAGE_TYPES.length ||
  MESSAGE_TYPES.some((type) => MESSAGE_LAYOUTS[type] === undefined)
) {
  throw new Error("net codec out of date: MESSAGE_TYPES and WIRE_CODES disagree");
}

/**
 * The wire form of `m` (a msgpack-ready array). Throws {@linkcode MalformedMessageError} when
 * `m` is not a valid message: the receiver would refuse it.
 */
export function encodeMessage(m: Message): unknown[] {
  const type: unknown = m?.type;
  if (typeof type !== "string" || !Object.hasOwn(MESSAGE_LAYOUTS, type)) {
    throw new MalformedMessageError(`unknown type ${show(type)}`);
  }
  const layout = MESSAGE_LAYOUTS[m.type];
  const fields = m as unknown as Record<string, unknown>;
  let wire: unknown[];
  try {
    wire = [WIRE_CODES[m.type], m.from, m.to, m.term];
    for (const [name, kind] of layout) wire.push(encodeField(kind, fields[name]));
  } catch (error) {
    if (error instanceof MalformedMessageError) throw error;
    throw new MalformedMessageError(`${m.type}: ${String(error)}`, { cause: error });
  }
  decodeMessage(wire); // validates: what the receiver would refuse is never sent
  return wire;
}

/**
 * The message of a wire form. Validates every field and throws
 * {@linkcode MalformedMessageError} with the reason. Byte fields (`data`, `chunk`) are the
 * input's own `Uint8Array`s, not copies.
 */
export function decodeMessage(body: unknown): Message {
  if (!Array.isArray(body)) throw new MalformedMessageError(`not an array: ${show(body)}`);
  const type = TYPES_BY_CODE.get(body[0]);
  if (type === undefined) throw new MalformedMessageError(`unknown type code ${show(body[0])}`);
  const layout = MESSAGE_LAYOUTS[type];
  if (body.length !== BASE_FIELDS + layout.length) {
    throw new MalformedMessageError(
      `${type} must have ${BASE_FIELDS + layout.length} fields, got ${body.length}`,
    );
  }
  const m: Record<string, unknown> = {
    type,
    from: nodeId(body[1], "from"),
    to: nodeId(body[2], "to"),
    term: uint(body[3], "term"),
  };
  layout.forEach(([name, kind], i) => {
    m[name] = decodeField(kind, body[BASE_FIELDS + i], name);
  });
  checkRelations(m as unknown as Message);
  return m as unknown as Message;
}

function encodeField(kind: FieldKind, value: unknown): unknown {
  switch (kind) {
    case "entries":
      return (value as readonly Entry[]).map((e, i) => encodeEntry(e, i));
    case "snapMeta": {
      const meta = value as SnapshotMeta;
      return [meta.index, meta.term, encodeMembership(meta.membership)];
    }
    default:
      return value;
  }
}

function encodeEntry(e: Entry, i: number): unknown[] {
  if (e.type === "normal" && e.membership === undefined) return [e.term, e.index, e.data];
  if (e.type !== "config" || e.membership === undefined) {
    throw new MalformedMessageError(
      `entries[${i}]: a ${e.type} entry ${
        e.membership === undefined ? "without" : "with"
      } membership`,
    );
  }
  return [e.term, e.index, e.data, encodeMembership(e.membership)];
}

function encodeMembership(m: Membership): unknown[] {
  return [m.voters, m.outgoing, m.learners];
}

function decodeField(kind: FieldKind, value: unknown, field: string): unknown {
  switch (kind) {
    case "uint":
      return uint(value, field);
    case "bool":
      if (typeof value !== "boolean") throw invalid(field, "a boolean", value);
      return value;
    case "string":
      if (typeof value !== "string") throw invalid(field, "a string", value);
      return value;
    case "bytes":
      return bytes(value, field);
    case "entries":
      if (!Array.isArray(value)) throw invalid(field, "an array", value);
      return value.map((e, i) => decodeEntry(e, `entries[${i}]`));
    case "snapMeta":
      return decodeSnapMeta(value, field);
  }
}

function decodeEntry(value: unknown, field: string): Entry {
  if (!Array.isArray(value) || (value.length !== 3 && value.length !== 4)) {
    throw invalid(field, "an array of 3 (normal) or 4 (config) fields", value);
  }
  const term = uint(value[0], `${field}.term`);
  const index = uint(value[1], `${field}.index`);
  const data = bytes(value[2], `${field}.data`);
  if (value.length === 3) return { term, index, type: "normal", data };
  const membership = decodeMembership(value[3], `${field}.membership`);
  return { term, index, type: "config", data, membership };
}

function decodeSnapMeta(value: unknown, field: string): SnapshotMeta {
  if (!Array.isArray(value) || value.length !== 3) {
    throw invalid(field, "an array of 3 fields", value);
  }
  return {
    index: uint(value[0], `${field}.index`),
    term: uint(value[1], `${field}.term`),
    membership: decodeMembership(value[2], `${field}.membership`),
  };
}

/** A membership: three sorted lists of unique ids, learners disjoint from both voter lists. */
function decodeMembership(value: unknown, field: string): Membership {
  if (!Array.isArray(value) || value.length !== 3) {
    throw invalid(field, "an array of 3 id lists", value);
  }
  const voters = sortedIds(value[0], `${field}.voters`);
  const outgoing = sortedIds(value[1], `${field}.outgoing`);
  const learners = sortedIds(value[2], `${field}.learners`);
  for (const id of learners) {
    if (voters.includes(id) || outgoing.includes(id)) {
      throw new MalformedMessageError(`${field}: learner ${show(id)} is also a voter`);
    }
  }
  return { voters, outgoing, learners };
}

function sortedIds(value: unknown, field: string): string[] {
  if (!Array.isArray(value)) throw invalid(field, "an array of node ids", value);
  value.forEach((id, i) => nodeId(id, `${field}[${i}]`));
  for (let i = 1; i < value.length; i++) {
    if (!(value[i - 1] < value[i])) {
      throw invalid(field, "sorted and free of duplicates", value);
    }
  }
  return value as string[];
}

/** Relations between fields that the core relies on (see the docs of each message). */
function checkRelations(m: Message): void {
  if (m.type === "app") {
    let previousTerm = m.logTerm;
    m.entries.forEach((e, i) => {
      if (e.index !== m.index + 1 + i) {
        throw new MalformedMessageError(
          `app: entries must be contiguous from index ${m.index + 1}, entries[${i}] has ${e.index}`,
        );
      }
      if (e.term < previousTerm || e.term > m.term) {
        throw new MalformedMessageError(
          `app: entries[${i}].term ${e.term} must be in ${previousTerm}..${m.term}`,
        );
      }
      previousTerm = e.term;
    });
    if (m.logTerm > m.term) {
      throw new MalformedMessageError(`app: logTerm ${m.logTerm} is above term ${m.term}`);
    }
  } else if (m.type === "snap" && m.offset + m.chunk.length > m.total) {
    throw new MalformedMessageError(
      `snap: chunk [${m.offset}, ${m.offset + m.chunk.length}) is beyond total ${m.total}`,
    );
  }
}

function uint(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(field, "an integer >= 0", value);
  }
  return value;
}

function nodeId(value: unknown, field: string): string {
  if (typeof value !== "string" || value === "") throw invalid(field, "a non-empty string", value);
  return value;
}

function bytes(value: unknown, field: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalid(field, "a Uint8Array", value);
  return value;
}

function invalid(field: string, expected: string, value: unknown): MalformedMessageError {
  return new MalformedMessageError(`field ${field} must be ${expected}, got ${show(value)}`);
}

/** A short description of a value for error messages (never the whole of a large value). */
function show(value: unknown): string {
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  }
  if (value === null || typeof value !== "object") return String(value);
  return `an object (${value.constructor?.name ?? "no prototype"})`;
}

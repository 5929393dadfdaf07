import assert from "node:assert/strict";
import fc from "fast-check";
import type { Entry, Message } from "../raft/mod.ts";
import { MESSAGE_TYPES } from "../raft/mod.ts";
import { decodeMessage, encodeMessage, MalformedMessageError } from "./_codec.ts";
import { decodeFrameBody, encodeFrame, FRAME_HEADER_BYTES, MalformedFrameError } from "./_frame.ts";
import { isValidMessage, messageArbitrary } from "./_test_util.ts";

/** Through msgpack and back, as the receiver sees it. */
function roundTrip(m: Message): Message {
  const frame = encodeFrame(encodeMessage(m));
  return decodeMessage(decodeFrameBody(frame.subarray(FRAME_HEADER_BYTES)));
}

const MEMBERSHIP = { voters: ["a1", "a2", "a3"], outgoing: ["a1", "a2"], learners: ["a4"] };

const EXAMPLES: Message[] = [
  {
    type: "app",
    from: "a1",
    to: "a2",
    term: 3,
    index: 10,
    logTerm: 2,
    commit: 9,
    entries: [
      { term: 2, index: 11, type: "normal", data: new Uint8Array([1, 2]) },
      { term: 3, index: 12, type: "config", data: new Uint8Array(), membership: MEMBERSHIP },
    ],
  },
  {
    type: "appResp",
    from: "a2",
    to: "a1",
    term: 3,
    index: 12,
    reject: false,
    rejectHint: 0,
    logTerm: 0,
  },
  { type: "vote", from: "a1", to: "a2", term: 4, index: 12, logTerm: 3, transfer: true },
  { type: "preVote", from: "a1", to: "a2", term: 4, index: 12, logTerm: 3, transfer: false },
  { type: "voteResp", from: "a2", to: "a1", term: 4, reject: true },
  { type: "preVoteResp", from: "a2", to: "a1", term: 4, reject: false },
  { type: "heartbeat", from: "a1", to: "a2", term: 4, commit: 12, readSeq: 7 },
  { type: "heartbeatResp", from: "a2", to: "a1", term: 4, readSeq: 7 },
  {
    type: "snap",
    from: "a1",
    to: "a3",
    term: 4,
    meta: { index: 100, term: 4, membership: MEMBERSHIP },
    offset: 0,
    total: 3,
    chunk: new Uint8Array([7, 8, 9]),
  },
  { type: "snapResp", from: "a3", to: "a1", term: 4, snapIndex: 100, offset: 3 },
  { type: "timeoutNow", from: "a1", to: "a2", term: 4 },
  { type: "readIndex", from: "a2", to: "a1", term: 4, context: "r-1" },
  { type: "readIndexResp", from: "a1", to: "a2", term: 4, context: "r-1", index: 12 },
];

Deno.test("codec round-trips one message of every type", () => {
  assert.deepEqual(new Set(EXAMPLES.map((m) => m.type)), new Set(MESSAGE_TYPES));
  for (const m of EXAMPLES) {
    const back = roundTrip(m);
    assert.deepEqual(back, m);
    assert.ok(isValidMessage(back), m.type);
  }
});

Deno.test("codec keeps an absent membership absent and a present one present", () => {
  const back = roundTrip(EXAMPLES[0]) as Extract<Message, { type: "app" }>;
  assert.equal("membership" in back.entries[0], false);
  assert.deepEqual(back.entries[1].membership, MEMBERSHIP);
});

Deno.test("codec wire form is a compact array", () => {
  assert.deepEqual(encodeMessage(EXAMPLES[10]), [11, "a1", "a2", 4]);
  assert.deepEqual(encodeMessage(EXAMPLES[6]), [7, "a1", "a2", 4, 12, 7]);
});

Deno.test("codec round-trips arbitrary valid messages", () => {
  fc.assert(
    fc.property(messageArbitrary, (m) => {
      assert.deepEqual(roundTrip(m), m);
    }),
    { numRuns: 500 },
  );
});

/** Decoding `wire` throws MalformedMessageError whose reason contains `reason`. */
function assertRefused(wire: unknown, reason: string): void {
  assert.throws(() => decodeMessage(wire), (e: unknown) => {
    assert.ok(e instanceof MalformedMessageError, String(e));
    assert.equal(e.name, "MalformedMessageError");
    assert.match(e.reason, new RegExp(reason));
    return true;
  });
}

Deno.test("decodeMessage refuses wrong shapes and values, naming the problem", () => {
  const hb = [7, "a1", "a2", 4, 12, 7];
  assertRefused({ type: "heartbeat" }, "not an array");
  assertRefused([99, "a1", "a2", 4], "unknown type code 99");
  assertRefused(["heartbeat", "a1", "a2", 4, 1, 1], "unknown type code");
  assertRefused(hb.slice(0, 5), "must have 6 fields, got 5");
  assertRefused([...hb, 0], "must have 6 fields, got 7");
  assertRefused([7, "", "a2", 4, 12, 7], "field from must be a non-empty string");
  assertRefused([7, "a1", 5, 4, 12, 7], "field to");
  assertRefused([7, "a1", "a2", -1, 12, 7], "field term must be an integer >= 0, got -1");
  assertRefused([7, "a1", "a2", 1.5, 12, 7], "field term");
  assertRefused([7, "a1", "a2", 2 ** 64, 12, 7], "field term");
  assertRefused([7, "a1", "a2", 4, "12", 7], "field commit");
  assertRefused([5, "a1", "a2", 4, 1], "field reject must be a boolean");
  assertRefused([12, "a1", "a2", 4, null], "field context must be a string");
});

Deno.test("decodeMessage refuses bad entries, memberships and snapshot chunks", () => {
  const app = (
    entries: unknown[],
    index = 10,
    term = 3,
  ) => [1, "a1", "a2", term, index, 2, 9, entries];
  const data = new Uint8Array(1);
  const members = [["a", "b"], [], ["c"]];
  assert.equal(decodeMessage(app([[3, 11, data, members]])).type, "app");
  assertRefused(app([[3, 11, "text"]]), "entries\\[0\\].data must be a Uint8Array");
  assertRefused(app([[3, 11]]), "entries\\[0\\] must be an array of 3");
  assertRefused(app([[3, 11, data, null]]), "entries\\[0\\].membership");
  assertRefused(app([[3, 12, data]]), "contiguous from index 11");
  assertRefused(app([[3, 11, data], [3, 13, data]]), "entries\\[1\\] has 13");
  assertRefused(app([[4, 11, data]]), "entries\\[0\\].term 4 must be in 2..3");
  assertRefused(app([[3, 11, data], [2, 12, data]]), "entries\\[1\\].term 2");
  assertRefused(app([]).with(5, 7), "logTerm 7 is above term 3");
  assertRefused(app([[3, 11, data, [["b", "a"], [], []]]]), "voters must be sorted");
  assertRefused(app([[3, 11, data, [["a", "a"], [], []]]]), "voters must be sorted");
  assertRefused(app([[3, 11, data, [["a"], ["b"], ["b"]]]]), 'learner "b" is also a voter');
  assertRefused(app([[3, 11, data, [["a", ""], [], []]]]), "voters\\[1\\]");
  const meta = [100, 4, members];
  assert.equal(decodeMessage([9, "a1", "a2", 4, meta, 0, 3, new Uint8Array(3)]).type, "snap");
  assertRefused([9, "a1", "a2", 4, meta, 1, 3, new Uint8Array(3)], "beyond total 3");
  assertRefused([9, "a1", "a2", 4, [100, 4], 0, 3, data], "meta must be an array of 3");
  assertRefused([9, "a1", "a2", 4, meta, 0, 3, [1, 2, 3]], "chunk must be a Uint8Array");
});

Deno.test("encodeMessage refuses what the receiver would refuse", () => {
  const entry: Entry = {
    term: 1,
    index: 1,
    type: "normal",
    data: new Uint8Array(),
    membership: MEMBERSHIP,
  };
  const app: Message = {
    type: "app",
    from: "a",
    to: "b",
    term: 1,
    index: 0,
    logTerm: 0,
    commit: 0,
    entries: [entry],
  };
  assert.throws(() => encodeMessage(app), MalformedMessageError); // normal entry with membership
  const config = { ...entry, type: "config" as const, membership: undefined };
  assert.throws(() => encodeMessage({ ...app, entries: [config] }), MalformedMessageError);
  assert.throws(
    () => encodeMessage({ ...app, type: "nope" } as unknown as Message),
    /unknown type "nope"/,
  );
  assert.throws(
    () => encodeMessage({ ...app, type: "toString" } as unknown as Message),
    MalformedMessageError,
  );
  assert.throws(() => encodeMessage({ ...app, term: -1 }), MalformedMessageError);
  assert.throws(
    () => encodeMessage({ type: "snap", from: "a", to: "b", term: 1 } as unknown as Message),
    MalformedMessageError,
  );
});

/** Valid wire forms, then mutated: values swapped for garbage, fields dropped or added. */
const mutatedWire = fc
  .tuple(
    messageArbitrary,
    fc.array(fc.tuple(fc.nat(), fc.anything({ withTypedArray: true })), { maxLength: 3 }),
    fc.nat({ max: 3 }),
  )
  .map(([m, edits, op]) => {
    const wire = encodeMessage(m);
    for (const [at, value] of edits) {
      const i = at % (wire.length + 1);
      if (op === 0) wire[i] = value;
      else if (op === 1) wire.splice(i, 1);
      else if (op === 2) wire.splice(i, 0, value);
      else {
        const nested = wire[i];
        if (Array.isArray(nested) && nested.length > 0) nested[at % nested.length] = value;
      }
    }
    return wire as unknown;
  });

Deno.test("decodeMessage never yields an invalid message from garbage", () => {
  const garbage = fc.oneof(
    fc.anything({ withTypedArray: true, withNullPrototype: true }),
    fc.tuple(fc.integer({ min: 0, max: 14 }), fc.array(fc.anything(), { maxLength: 10 }))
      .map(([code, rest]) => [code, ...rest]),
    mutatedWire,
  );
  fc.assert(
    fc.property(garbage, (value) => {
      let m: Message;
      try {
        m = decodeMessage(value);
      } catch (e) {
        assert.ok(e instanceof MalformedMessageError, String(e));
        return;
      }
      assert.ok(isValidMessage(m), JSON.stringify(m));
      assert.deepEqual(roundTrip(m), m);
    }),
    { numRuns: 1_000 },
  );
});

Deno.test("random bytes either fail as a frame, fail as a message, or decode to a valid one", () => {
  const bodies = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 200 }),
    fc.tuple(messageArbitrary, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([m, at, byte]) => {
      const body = encodeFrame(encodeMessage(m)).slice(FRAME_HEADER_BYTES);
      body[at % body.length] = byte;
      return body;
    }),
  );
  fc.assert(
    fc.property(bodies, (body) => {
      try {
        const m = decodeMessage(decodeFrameBody(body));
        assert.ok(isValidMessage(m));
      } catch (e) {
        assert.ok(
          e instanceof MalformedFrameError || e instanceof MalformedMessageError,
          String(e),
        );
      }
    }),
    { numRuns: 1_000 },
  );
});

import assert from "node:assert/strict";
import fc from "fast-check";
import { majorityValue, majorityVote, quorumActive, quorumValue, quorumVote } from "./_quorum.ts";
import type { Membership, NodeId } from "./_types.ts";

function valuesOf(values: Record<NodeId, number>): (id: NodeId) => number {
  return (id) => values[id] ?? 0;
}

function votesOf(votes: Record<NodeId, boolean>): Map<NodeId, boolean> {
  return new Map(Object.entries(votes));
}

function joint(voters: NodeId[], outgoing: NodeId[]): Membership {
  return { voters, outgoing, learners: [] };
}

/** The definition: the highest v that at least floor(n/2)+1 voters have reached. */
function bruteMajorityValue(values: readonly number[]): number {
  if (values.length === 0) return Infinity;
  const need = Math.floor(values.length / 2) + 1;
  let best = -Infinity;
  for (const v of values) {
    if (values.filter((w) => w >= v).length >= need) best = Math.max(best, v);
  }
  return best;
}

Deno.test("majorityValue of no voters imposes no constraint", () => {
  assert.equal(majorityValue([], () => 7), Infinity);
});

Deno.test("majorityValue of one voter is its value", () => {
  assert.equal(majorityValue(["a"], valuesOf({ a: 5 })), 5);
  assert.equal(majorityValue(["a"], valuesOf({})), 0);
});

Deno.test("majorityValue of odd and even sets needs floor(n/2)+1 voters", () => {
  assert.equal(majorityValue(["a", "b"], valuesOf({ a: 5, b: 3 })), 3);
  assert.equal(majorityValue(["a", "b", "c"], valuesOf({ a: 5, b: 3, c: 1 })), 3);
  assert.equal(majorityValue(["a", "b", "c", "d"], valuesOf({ a: 4, b: 3, c: 2, d: 1 })), 2);
  assert.equal(majorityValue(["a", "b", "c", "d"], valuesOf({ a: 9, b: 9 })), 0);
  assert.equal(majorityValue(["a", "b", "c", "d", "e"], valuesOf({ a: 9, b: 9, c: 9 })), 9);
});

Deno.test("majorityValue does not reorder its voters argument", () => {
  const voters = ["c", "a", "b"];
  majorityValue(voters, valuesOf({ a: 1, b: 2, c: 3 }));
  assert.deepEqual(voters, ["c", "a", "b"]);
});

Deno.test("majorityValue equals the brute-force definition (property)", () => {
  fc.assert(fc.property(fc.array(fc.nat(20), { maxLength: 9 }), (values) => {
    const voters = values.map((_, i) => `n${i}`);
    const got = majorityValue(voters, (id) => values[Number(id.slice(1))]);
    assert.equal(got, bruteMajorityValue(values));
  }));
});

Deno.test("quorumValue of a joint membership is the lower of both majorities", () => {
  const values = valuesOf({ a: 10, b: 10, c: 1, d: 1, e: 1 });
  assert.equal(quorumValue(joint(["a", "b", "c"], []), values), 10);
  assert.equal(quorumValue(joint(["a", "b", "c"], ["c", "d", "e"]), values), 1);
  assert.equal(quorumValue(joint(["c", "d", "e"], ["a", "b", "c"]), values), 1);
  assert.equal(quorumValue(joint([], []), values), Infinity);
});

Deno.test("quorumValue ignores learners", () => {
  const m: Membership = { voters: ["a"], outgoing: [], learners: ["b", "c"] };
  assert.equal(quorumValue(m, valuesOf({ a: 4, b: 9, c: 9 })), 4);
});

Deno.test("majorityVote of no voters is won", () => {
  assert.equal(majorityVote([], votesOf({})), "won");
});

Deno.test("majorityVote counts granted, refused and missing votes", () => {
  assert.equal(majorityVote(["a"], votesOf({})), "pending");
  assert.equal(majorityVote(["a"], votesOf({ a: true })), "won");
  assert.equal(majorityVote(["a"], votesOf({ a: false })), "lost");
  assert.equal(majorityVote(["a", "b", "c"], votesOf({ a: true })), "pending");
  assert.equal(majorityVote(["a", "b", "c"], votesOf({ a: true, b: true })), "won");
  assert.equal(majorityVote(["a", "b", "c"], votesOf({ a: false, b: false })), "lost");
  assert.equal(majorityVote(["a", "b", "c"], votesOf({ a: true, b: false })), "pending");
});

Deno.test("majorityVote of an even set needs more than half", () => {
  assert.equal(majorityVote(["a", "b"], votesOf({ a: true, b: false })), "lost");
  assert.equal(majorityVote(["a", "b"], votesOf({ a: true })), "pending");
  const four = ["a", "b", "c", "d"];
  assert.equal(majorityVote(four, votesOf({ a: true, b: true, c: false, d: false })), "lost");
  assert.equal(majorityVote(four, votesOf({ a: true, b: true, c: false })), "pending");
  assert.equal(majorityVote(four, votesOf({ a: true, b: true, c: true, d: false })), "won");
});

Deno.test("majorityVote ignores votes of non-voters", () => {
  assert.equal(majorityVote(["a", "b", "c"], votesOf({ a: true, x: true, y: true })), "pending");
});

Deno.test("majorityVote agrees with counting (property)", () => {
  const vote = fc.constantFrom<boolean | undefined>(true, false, undefined);
  fc.assert(fc.property(fc.array(vote, { maxLength: 9 }), (cast) => {
    const voters = cast.map((_, i) => `n${i}`);
    const votes = new Map<NodeId, boolean>();
    cast.forEach((v, i) => v !== undefined && votes.set(`n${i}`, v));
    const need = Math.floor(voters.length / 2) + 1;
    const granted = cast.filter((v) => v === true).length;
    const open = cast.filter((v) => v === undefined).length;
    const expected = voters.length === 0 || granted >= need
      ? "won"
      : granted + open >= need
      ? "pending"
      : "lost";
    assert.equal(majorityVote(voters, votes), expected);
  }));
});

Deno.test("quorumVote of a joint membership needs both majorities", () => {
  const m = joint(["a", "b", "c"], ["c", "d", "e"]);
  assert.equal(quorumVote(m, votesOf({ a: true, b: true })), "pending");
  assert.equal(quorumVote(m, votesOf({ a: true, b: true, d: false, e: false })), "lost");
  assert.equal(quorumVote(m, votesOf({ a: true, b: true, c: true, d: true })), "won");
  assert.equal(quorumVote(m, votesOf({ c: true, d: true, e: true })), "pending");
  assert.equal(quorumVote(m, votesOf({ a: false, b: false, d: true, e: true })), "lost");
  assert.equal(quorumVote(m, votesOf({ c: true, a: true, d: true })), "won");
});

Deno.test("quorumVote of a simple membership is its majority vote", () => {
  const m = joint(["a", "b", "c"], []);
  assert.equal(quorumVote(m, votesOf({ a: true, b: true })), "won");
  assert.equal(quorumVote(m, votesOf({ a: false, b: false })), "lost");
  assert.equal(quorumVote(joint([], []), votesOf({})), "won");
});

Deno.test("quorumActive needs an active majority in each half", () => {
  const m = joint(["a", "b", "c"], ["c", "d", "e"]);
  const active = (ids: NodeId[]) => (id: NodeId) => ids.includes(id);
  assert.equal(quorumActive(m, active(["a", "b", "c", "d", "e"])), true);
  assert.equal(quorumActive(m, active(["a", "b", "d", "e"])), true);
  assert.equal(quorumActive(m, active(["a", "b"])), false);
  assert.equal(quorumActive(m, active(["d", "e"])), false);
  assert.equal(quorumActive(joint(["a", "b"], []), active(["a"])), false);
  assert.equal(quorumActive(joint(["a", "b", "c"], []), active(["a", "c"])), true);
});

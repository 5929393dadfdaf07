import assert from "node:assert/strict";
import fc from "fast-check";
import { MembershipChangeError, RaftInvariantError } from "./_errors.ts";
import {
  assertValidMembership,
  isJoint,
  isVoter,
  leaveJoint,
  type MembershipChange,
  membersOf,
  planChange,
  sameMembership,
} from "./_membership.ts";
import { EMPTY_MEMBERSHIP, type Membership, type NodeId } from "./_types.ts";

function m(
  voters: readonly NodeId[],
  learners: readonly NodeId[] = [],
  outgoing: readonly NodeId[] = [],
): Membership {
  return { voters, outgoing, learners };
}

const ABC = m(["a", "b", "c"]);
const ABC_D = m(["a", "b", "c"], ["d"]);

function addVoter(id: NodeId): MembershipChange {
  return { type: "addVoter", id };
}
function addLearner(id: NodeId): MembershipChange {
  return { type: "addLearner", id };
}
function remove(id: NodeId): MembershipChange {
  return { type: "remove", id };
}

function refused(current: Membership, changes: MembershipChange[], message: RegExp): void {
  assert.throws(() => planChange(current, changes), (error: unknown) => {
    assert.ok(error instanceof MembershipChangeError, `not a MembershipChangeError: ${error}`);
    assert.match(error.message, message);
    return true;
  });
}

Deno.test("isJoint, isVoter and membersOf read both halves", () => {
  const joint = m(["a", "b", "d"], ["e"], ["a", "b", "c"]);
  assert.equal(isJoint(joint), true);
  assert.equal(isJoint(ABC), false);
  assert.equal(isVoter(joint, "c"), true, "outgoing voters still vote");
  assert.equal(isVoter(joint, "d"), true);
  assert.equal(isVoter(joint, "e"), false, "learners never vote");
  assert.deepEqual(membersOf(joint), ["a", "b", "c", "d", "e"]);
  assert.deepEqual(membersOf(EMPTY_MEMBERSHIP), []);
});

Deno.test("sameMembership compares every role", () => {
  assert.equal(sameMembership(ABC, m(["a", "b", "c"])), true);
  assert.equal(sameMembership(ABC, ABC_D), false);
  assert.equal(sameMembership(ABC, m(["a", "b", "c"], [], ["a"])), false);
  assert.equal(sameMembership(ABC, m(["a", "b", "d"])), false);
});

Deno.test("assertValidMembership refuses unsorted, duplicate and overlapping lists", () => {
  assertValidMembership(m(["a", "b", "d"], ["e"], ["a", "b", "c"]));
  assert.throws(() => assertValidMembership(m(["b", "a"])), RaftInvariantError);
  assert.throws(() => assertValidMembership(m(["a", "a"])), RaftInvariantError);
  assert.throws(() => assertValidMembership(m(["a"], ["a"])), RaftInvariantError);
  assert.throws(() => assertValidMembership(m(["a"], ["b"], ["b"])), RaftInvariantError);
});

Deno.test("planChange refuses a change while joint", () => {
  refused(m(["a", "b", "d"], [], ["a", "b", "c"]), [addLearner("e")], /joint/);
});

Deno.test("planChange refuses an empty change list", () => {
  refused(ABC, [], /no change/);
});

Deno.test("planChange refuses an empty node id", () => {
  refused(ABC, [addVoter("")], /empty node id/);
  refused(ABC, [addLearner("")], /empty node id/);
  refused(ABC, [remove("")], /empty node id/);
});

Deno.test("planChange refuses adding a voter as a learner", () => {
  refused(ABC, [addLearner("b")], /Cannot add learner b: it is a voter/);
});

Deno.test("planChange refuses adding a learner twice", () => {
  refused(ABC_D, [addLearner("d")], /Cannot add learner d: it is a learner already/);
  refused(ABC, [addLearner("d"), addLearner("d")], /it is a learner already/);
});

Deno.test("planChange refuses adding a voter twice", () => {
  refused(ABC, [addVoter("a")], /Cannot add voter a/);
  refused(ABC, [addVoter("d"), addVoter("d")], /Cannot add voter d/);
});

Deno.test("planChange refuses removing a non-member", () => {
  refused(ABC, [remove("z")], /Cannot remove z: it is not a member/);
});

Deno.test("planChange refuses leaving no voter", () => {
  refused(m(["a"]), [remove("a")], /no voter/);
  refused(EMPTY_MEMBERSHIP, [addLearner("a")], /no voter/);
});

Deno.test("planChange refuses demoting a voter to learner in one change", () => {
  refused(ABC, [remove("c"), addLearner("c")], /Cannot make voter c a learner in one change/);
});

Deno.test("planChange enters a joint configuration when the voters change", () => {
  assert.deepEqual(planChange(ABC, [addVoter("d")]), m(["a", "b", "c", "d"], [], ["a", "b", "c"]));
  assert.deepEqual(planChange(ABC, [remove("b")]), m(["a", "c"], [], ["a", "b", "c"]));
  assert.deepEqual(
    planChange(ABC, [remove("a"), addVoter("e")]),
    m(["b", "c", "e"], [], ["a", "b", "c"]),
  );
});

Deno.test("planChange promotes a learner through a joint configuration", () => {
  assert.deepEqual(
    planChange(ABC_D, [addVoter("d")]),
    m(["a", "b", "c", "d"], [], ["a", "b", "c"]),
  );
});

Deno.test("planChange keeps learners across a joint change", () => {
  assert.deepEqual(
    planChange(ABC_D, [remove("a")]),
    m(["b", "c"], ["d"], ["a", "b", "c"]),
  );
});

Deno.test("planChange makes learner-only changes directly", () => {
  assert.deepEqual(planChange(ABC, [addLearner("d")]), ABC_D);
  assert.deepEqual(planChange(ABC_D, [remove("d")]), ABC);
  assert.deepEqual(
    planChange(ABC, [addLearner("e"), addLearner("d")]),
    m(["a", "b", "c"], ["d", "e"]),
  );
});

Deno.test("planChange refuses changes that cancel out", () => {
  assert.throws(() => planChange(ABC, [addVoter("d"), remove("d")]), MembershipChangeError);
});

Deno.test("planChange from the empty membership is direct", () => {
  const first = planChange(EMPTY_MEMBERSHIP, [addVoter("a")]);
  assert.deepEqual(first, m(["a"]));
  assert.equal(isJoint(first), false);
});

Deno.test("planChange results are valid memberships", () => {
  const plans: [Membership, MembershipChange[]][] = [
    [ABC, [addVoter("d")]],
    [ABC_D, [addVoter("d"), remove("a"), addLearner("z")]],
    [ABC, [addLearner("e"), addLearner("d")]],
  ];
  for (const [current, changes] of plans) assertValidMembership(planChange(current, changes));
});

Deno.test("planChange does not modify the current membership", () => {
  const current = m(["a", "b", "c"], ["d"]);
  planChange(current, [addVoter("d"), remove("a")]);
  assert.deepEqual(current, m(["a", "b", "c"], ["d"]));
});

Deno.test("leaveJoint keeps the incoming voters and the learners", () => {
  const joint = planChange(ABC_D, [remove("a"), addVoter("e")]);
  assert.deepEqual(leaveJoint(joint), m(["b", "c", "e"], ["d"]));
});

Deno.test("leaveJoint asserts that the membership is joint", () => {
  assert.throws(() => leaveJoint(ABC), RaftInvariantError);
});

Deno.test("planChange yields a valid membership or a MembershipChangeError (property)", () => {
  const ids = ["a", "b", "c", "d", "e"];
  const role = fc.constantFrom("voter", "learner", "none");
  const change = fc.record({
    type: fc.constantFrom("addLearner" as const, "addVoter" as const, "remove" as const),
    id: fc.constantFrom(...ids),
  });
  fc.assert(
    fc.property(
      fc.array(role, { minLength: 5, maxLength: 5 }),
      fc.array(change),
      (roles, changes) => {
        const current = m(
          ids.filter((_, i) => roles[i] === "voter"),
          ids.filter((_, i) => roles[i] === "learner"),
        );
        let next: Membership;
        try {
          next = planChange(current, changes);
        } catch (error) {
          assert.ok(error instanceof MembershipChangeError, `unexpected ${error}`);
          return;
        }
        assertValidMembership(next);
        assert.ok(next.voters.length > 0);
        const votersChanged = !sameMembership(m(next.voters), m(current.voters));
        assert.equal(isJoint(next), votersChanged && current.voters.length > 0);
        if (isJoint(next)) {
          assert.deepEqual(next.outgoing, current.voters);
          assertValidMembership(leaveJoint(next));
        }
      },
    ),
  );
});

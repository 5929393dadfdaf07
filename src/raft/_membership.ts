import { assert, MembershipChangeError } from "./_errors.ts";
import type { Membership, NodeId } from "./_types.ts";

/** One step of a membership change. `addVoter` of a learner promotes it. */
export interface MembershipChange {
  /** What to do with the node. */
  readonly type: "addLearner" | "addVoter" | "remove";
  /** The node. */
  readonly id: NodeId;
}

/** Whether decisions currently need two majorities (C_old,new). */
export function isJoint(membership: Membership): boolean {
  return membership.outgoing.length > 0;
}

/** Whether `id` votes in the membership (in either half of a joint one). */
export function isVoter(membership: Membership, id: NodeId): boolean {
  return membership.voters.includes(id) || membership.outgoing.includes(id);
}

/** Every node the membership names: voters of both halves and learners, sorted, unique. */
export function membersOf(membership: Membership): NodeId[] {
  return [...new Set([...membership.voters, ...membership.outgoing, ...membership.learners])]
    .sort();
}

/** Two memberships name the same nodes in the same roles. */
export function sameMembership(a: Membership, b: Membership): boolean {
  const eq = (x: readonly NodeId[], y: readonly NodeId[]) =>
    x.length === y.length && x.every((v, i) => v === y[i]);
  return eq(a.voters, b.voters) && eq(a.outgoing, b.outgoing) && eq(a.learners, b.learners);
}

/** Asserts the structural invariants of a membership: sorted, unique, roles disjoint. */
export function assertValidMembership(m: Membership): void {
  for (const list of [m.voters, m.outgoing, m.learners]) {
    for (let i = 1; i < list.length; i++) {
      assert(list[i - 1] < list[i], () => `membership list not sorted/unique: ${list}`);
    }
  }
  for (const id of m.learners) {
    assert(!isVoter(m, id), () => `node ${id} is both learner and voter`);
  }
}

/**
 * The membership that results from applying `changes` to `current`. When the voters change
 * the result is joint (C_old,new: `outgoing` = the old voters) and must be followed by
 * {@linkcode leaveJoint}; learner-only changes take effect directly. Throws
 * {@linkcode MembershipChangeError} for an invalid change.
 */
export function planChange(
  current: Membership,
  changes: readonly MembershipChange[],
): Membership {
  if (isJoint(current)) {
    throw new MembershipChangeError(
      "Cannot change membership: a joint configuration is still being left",
    );
  }
  if (changes.length === 0) throw new MembershipChangeError("Cannot change membership: no change");
  const voters = new Set(current.voters);
  const learners = new Set(current.learners);
  for (const { type, id } of changes) {
    if (id === "") throw new MembershipChangeError("Cannot change membership: empty node id");
    if (type === "addLearner") {
      if (voters.has(id)) {
        throw new MembershipChangeError(`Cannot add learner ${id}: it is a voter`);
      }
      if (learners.has(id)) {
        throw new MembershipChangeError(`Cannot add learner ${id}: it is a learner already`);
      }
      learners.add(id);
    } else if (type === "addVoter") {
      if (voters.has(id)) throw new MembershipChangeError(`Cannot add voter ${id}: it is one`);
      learners.delete(id);
      voters.add(id);
    } else {
      if (!voters.delete(id) && !learners.delete(id)) {
        throw new MembershipChangeError(`Cannot remove ${id}: it is not a member`);
      }
    }
  }
  if (voters.size === 0) {
    throw new MembershipChangeError("Cannot change membership: it would leave no voter");
  }
  const next: Membership = {
    voters: [...voters].sort(),
    outgoing: [],
    learners: [...learners].sort(),
  };
  if (sameMembership(next, current)) {
    throw new MembershipChangeError("Cannot change membership: the changes cancel out");
  }
  const votersChanged = next.voters.length !== current.voters.length ||
    next.voters.some((v, i) => v !== current.voters[i]);
  if (!votersChanged) return next;
  const joint: Membership = { ...next, outgoing: [...current.voters] };
  for (const id of joint.learners) {
    if (joint.outgoing.includes(id)) {
      throw new MembershipChangeError(
        `Cannot make voter ${id} a learner in one change: remove it, then add it as a learner`,
      );
    }
  }
  return joint;
}

/** The membership after leaving a joint configuration: the incoming voters alone. */
export function leaveJoint(membership: Membership): Membership {
  assert(isJoint(membership), "leaving a configuration that is not joint");
  return { voters: membership.voters, outgoing: [], learners: membership.learners };
}

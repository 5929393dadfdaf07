import type { Membership, NodeId } from "./_types.ts";

/** Outcome of counting votes. */
export type VoteResult = "won" | "lost" | "pending";

/**
 * The highest value that a majority of `voters` has reached, given each voter's value
 * (missing voters count as 0). An empty voter set imposes no constraint: +Infinity.
 */
export function majorityValue(
  voters: readonly NodeId[],
  valueOf: (id: NodeId) => number,
): number {
  const n = voters.length;
  if (n === 0) return Infinity;
  if (n === 1) return valueOf(voters[0]);
  const values = voters.map(valueOf).sort((a, b) => b - a);
  // Sorted descending, the value at position floor(n/2) is held by floor(n/2)+1 voters.
  return values[Math.floor(n / 2)];
}

/** The highest value reached by a majority of the membership (both majorities when joint). */
export function quorumValue(membership: Membership, valueOf: (id: NodeId) => number): number {
  return Math.min(
    majorityValue(membership.voters, valueOf),
    majorityValue(membership.outgoing, valueOf),
  );
}

/** Counts votes of one voter set: `votes` maps a voter to granted (true) or refused (false). */
export function majorityVote(
  voters: readonly NodeId[],
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  if (voters.length === 0) return "won";
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const need = Math.floor(voters.length / 2) + 1;
  if (granted >= need) return "won";
  if (granted + missing >= need) return "pending";
  return "lost";
}

/** Counts votes of the membership: when joint, both majorities must be won. */
export function quorumVote(
  membership: Membership,
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  const incoming = majorityVote(membership.voters, votes);
  const outgoing = majorityVote(membership.outgoing, votes);
  if (incoming === "lost" || outgoing === "lost") return "lost";
  if (incoming === "pending" || outgoing === "pending") return "pending";
  return "won";
}

/** Whether the given set of active members forms a quorum of the membership. */
export function quorumActive(membership: Membership, isActive: (id: NodeId) => boolean): boolean {
  return quorumValue(membership, (id) => (isActive(id) ? 1 : 0)) >= 1;
}

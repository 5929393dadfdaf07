/**
 * Election and term rules that need no state of their own (Raft §5.1, §5.2, §5.4.1;
 * dissertation §4.2.2, §4.2.3 and §9.6): who may campaign, whom to ask, what a higher term does,
 * when to ignore or grant a vote request and how to answer it.
 *
 * @module
 */
import { isVoter, membersOf } from "./_membership.ts";
import type { Message, VoteMessage, VoteResponseMessage } from "./_message.ts";
import type { Outgoing } from "./_follower.ts";
import type { RaftLog } from "./_raft_log.ts";
import { type NodeId, NONE } from "./_types.ts";

/**
 * A voter of the membership in effect may campaign. So may a voter that the latest, still
 * uncommitted, config entry removes: it may hold the only up-to-date log (say, a leader that
 * removed itself and restarted), and the remaining voters need it to lead until the removal
 * commits. It counts votes with the new membership, like a leader that is not part of C_new
 * (dissertation §4.2.2), and steps down once that commits.
 */
export function promotable(log: RaftLog, id: NodeId): boolean {
  if (isVoter(log.membership(), id)) return true;
  const previous = log.previousMembership();
  return log.membershipIndex() > log.committed && previous !== undefined &&
    isVoter(previous, id);
}

/** The vote (or pre-vote) requests of a campaign in `term`, one per other voter. */
export function voteRequests(
  log: RaftLog,
  from: NodeId,
  request: { type: "vote" | "preVote"; term: number; transfer: boolean },
): VoteMessage[] {
  const membership = log.membership();
  const index = log.lastIndex();
  const logTerm = log.lastTerm();
  const out: VoteMessage[] = [];
  for (const to of membersOf(membership)) {
    if (to === from || !isVoter(membership, to)) continue;
    out.push({ ...request, from, to, index, logTerm });
  }
  return out;
}

/**
 * Whether to ignore a vote request of a higher term: while a leader is heard from (check-quorum
 * lease, §4.2.3) it most likely comes from a node that was partitioned or removed, unless a
 * leadership transfer sent it.
 */
export function inLease(
  m: VoteMessage,
  state: { checkQuorum: boolean; lead: NodeId; electionTimeoutPassed: boolean },
): boolean {
  return state.checkQuorum && state.lead !== NONE && !state.electionTimeoutPassed &&
    !m.transfer;
}

/**
 * What a message of a higher term does. A node adopts any higher term it sees (§5.1), except
 * that it ignores a vote request within a leader lease ({@linkcode inLease}), and that neither
 * answering a pre-vote nor having its own pre-vote granted changes its term (§9.6). Returns
 * `"ignore"` (drop the message), `"keep"` (process it in the current term), or the leader of
 * the new term to follow: the sender when it is that leader, else {@linkcode NONE}.
 */
export function higherTermRule(
  m: Message,
  lease: Parameters<typeof inLease>[1],
): "ignore" | "keep" | { readonly lead: NodeId } {
  if ((m.type === "vote" || m.type === "preVote") && inLease(m, lease)) return "ignore";
  if (m.type === "preVote") return "keep"; // answering a pre-vote never changes our term
  if (m.type === "preVoteResp" && !m.reject) return "keep"; // our own pre-vote, granted
  const fromLeader = m.type === "app" || m.type === "heartbeat" || m.type === "snap" ||
    m.type === "timeoutNow";
  return { lead: fromLeader ? m.from : NONE };
}

/**
 * The answer of `state.id` to a vote request of its term (or a pre-vote for a later one),
 * granted as {@linkcode grantsVote} decides. A granted pre-vote carries the term it was asked
 * for, so the candidate counts it; a refusal carries the voter's term.
 */
export function answerVote(
  m: VoteMessage,
  state: { id: NodeId; vote: NodeId; lead: NodeId; term: number; log: RaftLog },
): VoteResponseMessage {
  const type = m.type === "vote" ? "voteResp" : "preVoteResp";
  if (grantsVote(m, state)) {
    return { type, from: state.id, to: m.from, term: m.term, reject: false };
  }
  return { type, to: m.from, reject: true, from: state.id, term: state.term };
}

/** Whether to grant a vote request of the current term (or a pre-vote for a later one). */
export function grantsVote(
  m: VoteMessage,
  state: { vote: NodeId; lead: NodeId; term: number; log: RaftLog },
): boolean {
  const canVote = state.vote === m.from ||
    (state.vote === NONE && state.lead === NONE) ||
    (m.type === "preVote" && m.term > state.term);
  return canVote && state.log.isUpToDate(m.index, m.logTerm);
}

/**
 * The answer to a message of a lower term, if any: a stale leader learns our term (so it steps
 * down even when pre-vote or check-quorum keep our term from reaching it otherwise), a stale
 * pre-candidate learns it lost.
 */
export function answerToLowerTerm(
  m: Message,
  options: { checkQuorum: boolean; preVote: boolean },
): Outgoing | undefined {
  if ((options.checkQuorum || options.preVote) && (m.type === "app" || m.type === "heartbeat")) {
    return { type: "appResp", to: m.from, index: 0, reject: false, rejectHint: 0, logTerm: 0 };
  }
  if (m.type === "preVote") return { type: "preVoteResp", to: m.from, reject: true };
  return undefined;
}

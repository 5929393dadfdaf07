/**
 * The planted bugs of `deno task mutants`: each one replaces one exact piece of the Raft core
 * with a known-wrong variant. Every mutant must keep the core type-checking (so a "catch" is
 * never a compile error) and its `find` text must occur exactly once in its file
 * (`scripts/mutants_test.ts` checks that on every `deno task test`, so the list cannot rot
 * silently while the core is refactored).
 *
 * @module
 */

/** One planted bug. */
export interface Mutant {
  /** Short name, for the table. */
  readonly name: string;
  /** What is wrong, in the words of the paper or the dissertation. */
  readonly bug: string;
  /** The file it changes, relative to the repository root. */
  readonly file: string;
  /** The exact text to replace (must occur exactly once). */
  readonly find: string;
  /** The replacement. */
  readonly replace: string;
}

/** Every mutant, in the order the table prints them. */
export const MUTANTS: readonly Mutant[] = [
  {
    name: "figure8-count-replicas",
    bug: "a leader commits an entry of an earlier term by counting replicas (Figure 8)",
    file: "src/raft/_raft_log.ts",
    find: "if (index > this.committed && this.term(index) === term) {",
    replace: "if (index > this.committed && this.term(index)! <= term) {",
  },
  {
    name: "follower-commit-beyond-last-new",
    bug: "a follower commits up to leaderCommit, not min(leaderCommit, last new entry)",
    file: "src/raft/_raft_log.ts",
    find: "this.commitTo(Math.min(committed, lastNew));",
    replace: "this.commitTo(Math.min(committed, this.lastIndex()));",
  },
  {
    name: "membership-without-joint",
    bug: "a change of the voter set takes effect directly, without C_old,new",
    file: "src/raft/_membership.ts",
    find: "if (!votersChanged) return next;",
    replace: "if (votersChanged || !votersChanged) return next;",
  },
  {
    name: "vote-not-persisted",
    bug: "the vote is left out of the hard state handed out for persisting",
    file: "src/raft/raft.ts",
    find: "return { term: this.#term, vote: this.#vote, commit: this.#log.committed };",
    replace: "return { term: this.#term, vote: NONE, commit: this.#log.committed };",
  },
  {
    name: "vote-sent-before-persist",
    bug: "a granted vote leaves before the vote is durable",
    file: "src/raft/_ready.ts",
    find: 'm.type === "vote" || m.type === "voteResp" || m.type === "preVoteResp"',
    replace: 'm.type === "vote" || m.type === "preVoteResp"',
  },
  {
    name: "read-index-without-term-commit",
    bug: "a new leader serves ReadIndex before it committed an entry of its term",
    file: "src/raft/_leader.ts",
    find: "if (log.term(log.committed) !== term) {\n      // Until an entry of this term",
    replace:
      "if (log.term(log.committed) !== term && false) {\n      // Until an entry of this term",
  },
  {
    name: "append-ack-before-persist",
    bug: "a follower acknowledges entries before they are durable",
    file: "src/raft/_ready.ts",
    find: "this.sendAfterPersist(m, m.reject ? 0 : m.index);",
    replace: "this.sendNow(m);",
  },
  {
    name: "vote-twice",
    bug: "a node that voted in this term votes again for another candidate",
    file: "src/raft/_election.ts",
    find: "(state.vote === NONE && state.lead === NONE) ||",
    replace: "state.lead === NONE ||",
  },
  {
    name: "no-truncate-conflict",
    bug: "a follower keeps a conflicting entry instead of truncating its log there",
    file: "src/raft/_raft_log.ts",
    find: "if (!this.matchTerm(e.index, e.term)) return e.index;",
    replace: "if (e.index > this.lastIndex()) return e.index;",
  },
  {
    name: "read-without-heartbeat-quorum",
    bug: "ReadIndex answers without a quorum confirming the leadership",
    file: "src/raft/_replication.ts",
    find: "    return quorumValue(\n      this.#host.log.membership(),\n" +
      "      (id) => (id === this.#host.id ? seq : this.progress.get(id)?.readSeqAcked ?? 0),\n" +
      "    );\n",
    replace: "    return seq;\n",
  },
  {
    name: "leader-self-match-before-persist",
    bug: "the leader counts its own entries in the commit quorum before they are durable",
    file: "src/raft/_leader.ts",
    find: "    // The leader's own match moves only when its entries are durable (advance()).\n",
    replace: "    this.repl.progress.get(this.#host.id)?.maybeUpdate(last);\n",
  },
  {
    name: "joint-commit-new-majority-only",
    bug: "in a joint configuration, commitment needs only a majority of C_new",
    file: "src/raft/_quorum.ts",
    find: "    majorityValue(membership.outgoing, valueOf),\n",
    replace: "    majorityValue([], valueOf),\n",
  },
  {
    name: "joint-election-new-majority-only",
    bug: "in a joint configuration, an election needs only a majority of C_new",
    file: "src/raft/_quorum.ts",
    find: "const outgoing = majorityVote(membership.outgoing, votes);",
    replace: "const outgoing = majorityVote([], votes);",
  },
  {
    name: "heartbeat-commit-unclamped",
    bug: "a heartbeat carries the leader's commit index, not min(match, commit)",
    file: "src/raft/_replication.ts",
    find: "commit: Math.min(pr.match, log.committed),",
    replace: "commit: Math.min(pr.match + Infinity, log.committed),",
  },
  {
    name: "up-to-date-longer-log-wins",
    bug: "a voter grants a longer log with an older last term (§5.4.1 compares terms first)",
    file: "src/raft/_raft_log.ts",
    find: "return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());",
    replace: "return lastTerm > myTerm || lastIndex >= this.lastIndex();",
  },
  {
    name: "hard-state-commit-beyond-durable",
    bug: "the persisted commit index passes the entries persisted with it",
    file: "src/raft/_ready_cycle.ts",
    find: "commit: Math.min(log.committed, durableLast) };",
    replace: "commit: log.committed };",
  },
];

/** How many times `find` occurs in `text`. */
export function occurrences(text: string, find: string): number {
  let n = 0;
  for (let i = text.indexOf(find); i !== -1; i = text.indexOf(find, i + 1)) n++;
  return n;
}

/**
 * Applies `mutant` to the source `text` of its file; throws, naming the mutant and the file,
 * when its text is missing or ambiguous.
 */
export function applyMutant(mutant: Mutant, text: string): string {
  const n = occurrences(text, mutant.find);
  if (n === 0) {
    throw new Error(`mutant ${mutant.name} does not apply: text not found in ${mutant.file}`);
  }
  if (n > 1) {
    throw new Error(
      `mutant ${mutant.name} does not apply: text found ${n} times in ${mutant.file}`,
    );
  }
  return text.replace(mutant.find, () => mutant.replace);
}

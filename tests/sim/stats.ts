/**
 * What a run counts: how often each fault was injected, and coverage counters that show the
 * simulation reached the states where subtle Raft bugs live (each of them must be non-zero
 * over a long sweep, or the sweep proves nothing about that state).
 *
 * @module
 */

/** How often each kind of fault or event happened in a run. */
export interface FaultStats {
  /** Messages dropped (loss or partition). */
  drop: number;
  /** Messages delivered twice. */
  duplicate: number;
  /** Partitions started. */
  partition: number;
  /** Node crashes (unpersisted state lost). */
  crash: number;
  /** Node restarts from disk. */
  restart: number;
  /** Node pauses (time passes, the node does nothing, then resumes with a backlog). */
  pause: number;
  /** Snapshots taken and logs compacted. */
  compaction: number;
  /** Snapshots received over InstallSnapshot and installed. */
  snapshotInstall: number;
  /** Membership changes committed (joint entries, leave-joint entries, learner changes). */
  membershipChange: number;
  /** Leadership transfers that made their target leader. */
  leaderTransfer: number;
  /** Distinct leader terms. */
  election: number;
  /** Client writes acknowledged. */
  writeAcked: number;
  /** Linearizable reads checked. */
  readChecked: number;
}

/** Counters of the hard states a run reached (see {@linkcode COVERAGE_DOCS}). */
export interface CoverageStats {
  /** Entries of an earlier term first committed by a leader through an entry of its own term. */
  oldTermCommitted: number;
  /** Reads whose index a leader handed out that was deposed by the time they were checked. */
  deposedLeaderRead: number;
  /** Reads asked of a leader before it had committed an entry of its term. */
  readBeforeTermCommit: number;
  /** Leaders elected while their membership was joint (C_old,new). */
  jointElection: number;
  /** Membership proposals of several changes at once that the leader accepted. */
  multiChange: number;
  /** Crashes while a persist was in progress (the write is lost or partly written). */
  crashInPersist: number;
  /** Of those, crashes that left a proper prefix of the write on disk. */
  partialPersist: number;
  /** Crashes after a persist completed but before its messages were sent or applied. */
  crashAfterPersist: number;
  /** Crashes within 50 ms after persisting a vote. */
  crashAfterVote: number;
  /** Restarts whose commit index went back (a lone commit index is written lazily). */
  commitRegressed: number;
  /** Messages sent while the node's persist was still in progress (readyMessages). */
  sentDuringPersist: number;
  /** Committed entries applied between Readys (readyToApply), e.g. while a persist ran. */
  appliedOutsideReady: number;
  /** Leaders isolated right after they appended or committed (Figure-8 churn). */
  leaderIsolated: number;
}

/** Everything a run counts. */
export type SimStats = FaultStats & CoverageStats;

/** The coverage counters, each with what it shows (printed by the sweep). */
export const COVERAGE_DOCS: Readonly<Record<keyof CoverageStats, string>> = {
  oldTermCommitted: "old-term entries committed through a current-term entry",
  deposedLeaderRead: "reads answered by a leader that was deposed, checked",
  readBeforeTermCommit: "reads asked of a leader before its term's first commit",
  jointElection: "leaders elected in a joint configuration",
  multiChange: "membership proposals with several changes (joint consensus)",
  crashInPersist: "crashes inside a persist",
  partialPersist: "crashes that kept a proper prefix of the write",
  crashAfterPersist: "crashes between persist and send",
  crashAfterVote: "crashes right after persisting a vote",
  commitRegressed: "restarts with a lagging commit index",
  sentDuringPersist: "messages sent while persisting (readyMessages)",
  appliedOutsideReady: "entries applied between Readys (readyToApply)",
  leaderIsolated: "leaders isolated right after appending or committing",
};

/** A zero for every counter. */
export function emptyStats(): SimStats {
  return {
    drop: 0,
    duplicate: 0,
    partition: 0,
    crash: 0,
    restart: 0,
    pause: 0,
    compaction: 0,
    snapshotInstall: 0,
    membershipChange: 0,
    leaderTransfer: 0,
    election: 0,
    writeAcked: 0,
    readChecked: 0,
    oldTermCommitted: 0,
    deposedLeaderRead: 0,
    readBeforeTermCommit: 0,
    jointElection: 0,
    multiChange: 0,
    crashInPersist: 0,
    partialPersist: 0,
    crashAfterPersist: 0,
    crashAfterVote: 0,
    commitRegressed: 0,
    sentDuringPersist: 0,
    appliedOutsideReady: 0,
    leaderIsolated: 0,
  };
}

/** Whether `key` names a coverage counter (as opposed to a fault count). */
export function isCoverage(key: string): key is keyof CoverageStats {
  return key in COVERAGE_DOCS;
}

/**
 * What one seed draws before it starts: the cluster's shape, the core's options (pre-vote,
 * check-quorum, tick settings, limits), the disk's speed, the fault rates, and a bias that
 * steers the faults towards one family of hard states. Calm seeds, hostile seeds and seeds
 * aimed at one corner all come out of the same generator.
 *
 * @module
 */
import type { RaftLimits } from "../../src/raft/mod.ts";
import type { Prng } from "./prng.ts";

/**
 * A family of hard states one seed aims at:
 * - `plain`: every fault at its own random rate;
 * - `figure8`: leader churn: leaders isolated or killed right after they appended or
 *   committed, one entry per AppendEntries, short partitions (Figure 8 of the Raft paper);
 * - `reads`: clients that keep talking to the leader they knew, reads right after elections,
 *   leaders cut off while reads are pending;
 * - `membership`: frequent membership changes, several at a time, during failures;
 * - `disk`: slow disks and crashes inside and right after persists and votes.
 */
export type Bias = "plain" | "figure8" | "reads" | "membership" | "disk";

/** The fault rates of one seed (probabilities per message, per event or per chaos round). */
export interface FaultRates {
  /** A message is dropped. */
  readonly drop: number;
  /** A message is delivered twice. */
  readonly duplicate: number;
  /** Largest network delay in ms (delays are uniform in [1, max], so messages reorder). */
  readonly delayMaxMs: number;
  /** Per chaos round: crash a node. */
  readonly crash: number;
  /** Per chaos round: start a partition. */
  readonly partition: number;
  /** Shortest and longest partition in ms. */
  readonly partitionMs: readonly [number, number];
  /** Per chaos round: a node snapshots and compacts its log. */
  readonly snapshot: number;
  /** Per chaos round: the leader proposes a membership change. */
  readonly membership: number;
  /** Of membership proposals: the share with several changes at once. */
  readonly multiChange: number;
  /** Per chaos round: the leader transfers leadership. */
  readonly transfer: number;
  /** Per chaos round: a node pauses (a GC pause or a stopped VM): no ticks, no input. */
  readonly pause: number;
  /** Each node's clock runs at a rate drawn from [1 - drift, 1 + drift]. */
  readonly clockDrift: number;
  /** A new leader crashes within a few ms of winning (mid-replication of old entries). */
  readonly leaderKill: number;
  /** Per persist started: the node crashes before it completes. */
  readonly crashInPersist: number;
  /** Per persist completed: the node crashes before sending and applying. */
  readonly crashAfterPersist: number;
  /** Per vote persisted: the node crashes right after, and restarts at once. */
  readonly crashAfterVote: number;
  /** Per Ready of a leader with new entries: the leader is isolated a few ms later. */
  readonly isolateAfterAppend: number;
  /** Per commit advance of a leader: the leader is isolated at once. */
  readonly isolateAfterCommit: number;
  /** Per client request: the client sticks to the leader it knew instead of the current. */
  readonly staleLeaderHint: number;
  /** Share of client requests that are reads. */
  readonly readShare: number;
}

/** Everything one seed draws up front. */
export interface SimConfig {
  /** What the faults aim at. */
  readonly bias: Bias;
  /** Voters at the start. */
  readonly voters: number;
  /** Clients issuing requests. */
  readonly clients: number;
  /** Raft option: pre-vote. */
  readonly preVote: boolean;
  /** Raft option: check-quorum (with leader leases for votes). */
  readonly checkQuorum: boolean;
  /** Raft option: the election timeout's lower bound in ticks. */
  readonly electionTicks: number;
  /** Raft option: the election timeout's (exclusive) upper bound in ticks. */
  readonly electionTicksMax: number;
  /** Raft option: the heartbeat interval in ticks. */
  readonly heartbeatTicks: number;
  /** Raft limits the seed overrides. */
  readonly limits: Partial<RaftLimits>;
  /** Longest simulated persist in ms (each persist takes a uniform time up to it). */
  readonly diskLatencyMaxMs: number;
  /** The fault rates. */
  readonly rates: FaultRates;
}

/** Largest simulated disk latency of a persist, in ms. */
export const DISK_LATENCY_MAX_MS = 40;
/** Milliseconds of simulated time between two ticks of a node (before clock drift). */
export const TICK_MS = 10;

const BIASES: readonly Bias[] = ["plain", "plain", "figure8", "reads", "membership", "disk"];

/** Draws the configuration of a seed. */
export function drawConfig(prng: Prng): SimConfig {
  const bias = prng.pick(BIASES);
  const pick = (max: number) => (prng.chance(0.2) ? 0 : prng.next() * max);
  const focus = (on: boolean, max: number, min = 0) => on ? min + prng.next() * (max - min) : 0;
  const diskLatencyMaxMs = bias === "disk"
    ? prng.int(10, DISK_LATENCY_MAX_MS)
    : prng.pick([0, 3, prng.int(1, DISK_LATENCY_MAX_MS)]);
  const delayMaxMs = prng.int(2, 40);
  // Raft's timing requirement (§5.6): an election round (persist the vote, ask, persist the
  // answer, reply) must fit well within the election timeout, or candidates keep timing out
  // before their votes arrive.
  const roundTicks = Math.ceil((2 * diskLatencyMaxMs + 2 * delayMaxMs) / TICK_MS);
  const electionTicks = Math.max(prng.int(4, 16), roundTicks + 1);
  const config: SimConfig = {
    bias,
    voters: bias === "figure8" ? prng.pick([3, 3, 5]) : prng.pick([3, 3, 3, 4, 5, 5, 7]),
    clients: prng.int(2, 5),
    preVote: bias === "figure8" ? prng.chance(0.25) : prng.chance(0.6),
    checkQuorum: bias === "figure8" ? prng.chance(0.25) : prng.chance(0.6),
    electionTicks,
    // A span of one tick would give every node the same timeout: candidates in lockstep
    // split the vote forever.
    electionTicksMax: electionTicks +
      prng.int(Math.max(2, Math.ceil(electionTicks / 2)), electionTicks),
    heartbeatTicks: prng.int(1, Math.max(1, Math.floor(electionTicks / 3))),
    limits: {
      appendEntriesMax: prng.chance(bias === "figure8" ? 0.7 : 0.3) ? 1 : prng.int(1, 64),
      inflightAppendsMax: prng.int(1, 8),
      snapshotChunkBytes: prng.int(16, 512),
      // Small batches split one proposal burst over several Readies and persists.
      persistBytesMax: prng.chance(0.3) ? prng.int(1, 400) : 4 << 20,
    },
    diskLatencyMaxMs,
    rates: {
      drop: bias === "figure8" ? pick(0.03) : pick(0.15),
      duplicate: pick(0.1),
      delayMaxMs,
      crash: pick(bias === "disk" ? 0.12 : 0.08),
      partition: bias === "figure8" ? focus(true, 0.25, 0.05) : pick(0.06),
      partitionMs: bias === "figure8" ? [30, prng.int(100, 600)] : [100, 2000],
      snapshot: pick(0.15),
      membership: bias === "membership" ? focus(true, 0.3, 0.1) : pick(0.08),
      multiChange: bias === "membership" ? 0.6 : prng.next() * 0.4,
      transfer: pick(0.05),
      pause: pick(0.05),
      clockDrift: pick(0.5),
      leaderKill: bias === "figure8" ? focus(true, 0.5, 0.1) : pick(0.3),
      crashInPersist: bias === "disk" ? focus(true, 0.1, 0.01) : pick(0.01),
      crashAfterPersist: bias === "disk" ? focus(true, 0.05, 0.005) : pick(0.005),
      crashAfterVote: bias === "disk" || bias === "figure8" ? focus(true, 0.5, 0.1) : pick(0.1),
      isolateAfterAppend: bias === "figure8" ? focus(true, 0.6, 0.2) : pick(0.01),
      isolateAfterCommit: bias === "figure8"
        ? focus(true, 0.7, 0.3)
        : bias === "reads"
        ? focus(true, 0.3, 0.05)
        : pick(0.01),
      staleLeaderHint: bias === "reads" ? focus(true, 0.9, 0.5) : pick(0.5),
      readShare: bias === "reads" ? 0.7 : 0.5,
    },
  };
  return config;
}

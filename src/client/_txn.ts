/**
 * Runs cross-cluster transactions and snapshot reads over the network (docs/transactions.md):
 * the step machines of `src/txn/` driven by a transport that reaches each cluster's
 * transaction endpoints. Attempts are retried with new ids and jittered back-off until a
 * total deadline; a lock in the way is waited for, or resolved once its deadline passed.
 *
 * @module
 */
import {
  type KeySpan,
  type MergeRange,
  type PlacedRange,
  type ReadRange,
  type SnapshotCheck,
  type SnapshotPart,
  SnapshotRead,
  type SnapshotStep,
  type TxnAnswer,
  TxnAttempt,
  type TxnAttemptResult,
  type TxnCommand,
  type TxnLockInfo,
  TxnResolution,
  type TxnSend,
  type TxnShare,
} from "../txn/mod.ts";
import { KoiError } from "./errors.ts";

/** How a coordinator reaches the clusters. Each call throws on a failure. */
export interface TxnTransport<M, E> {
  /** Proposes `cmd` at `cluster` (its leader) and answers what applying it answered. */
  command(cluster: string, cmd: TxnCommand<M>): Promise<TxnAnswer>;
  /** A snapshot read's first round at `cluster`. */
  read(cluster: string, ranges: readonly ReadRange[]): Promise<SnapshotPart<E>>;
  /** A snapshot read's second round at `cluster`. */
  check(cluster: string, spans: readonly KeySpan[], since: number): Promise<SnapshotCheck>;
}

/**
 * A transport's refusal of a command as malformed (a 4xx that is no vote): not retried; a
 * prepare refused so ends the attempt as invalid.
 */
export class TxnRejectedError extends Error {
  /** The HTTP status of the refusal (`421`: the routing table is out of date). */
  readonly status: number;
  /** Creates the error. */
  constructor(message: string, status = 400) {
    super(message);
    this.name = "TxnRejectedError";
    this.status = status;
  }
}

/** Time for the drivers: injected, so that tests control it. */
export interface TxnClock {
  /** ms since 1970 (the scale of versionstamps' log time). */
  now(): number;
  /** Resolves after `ms`. */
  sleep(ms: number): Promise<void>;
  /** A uniform number in [0, 1), for jitter. */
  random(): number;
}

/** The real clock. */
export const SYSTEM_TXN_CLOCK: TxnClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  random: Math.random,
};

/** Limits of the drivers. */
export interface TxnTimings {
  /** How long one attempt may take (its deadline: participants refuse it after). */
  readonly attemptMs: number;
  /** After an attempt's deadline, how long its coordinator still asks for the decision. */
  readonly decideGraceMs: number;
  /** How long a transaction or a snapshot read may take in all, retries included. */
  readonly totalMs: number;
}

/** The default timings. */
export const TXN_TIMINGS: TxnTimings = { attemptMs: 5_000, decideGraceMs: 5_000, totalMs: 20_000 };

/**
 * How long a snapshot read's fence may stand, in milliseconds (log time): writers of its ranges
 * wait for it until then, unless the reader releases it first (it does as soon as it read).
 */
export const SNAPSHOT_FENCE_MS = 2_000;

/** Back-off before retry number `n` (1, 2, ...): 5 ms doubling to 500 ms, jittered. */
function backoff(n: number, clock: TxnClock): number {
  const base = Math.min(500, 5 * 2 ** Math.min(n, 7));
  return Math.round(base * (0.5 + clock.random()));
}

/**
 * Sends `sends` and what the machine asks next, feeding it answers and failures, until it
 * asks nothing more. `onStep` runs after each answer.
 */
function pump<M, E>(
  machine: TxnAttempt<M> | TxnResolution<M>,
  sends: readonly TxnSend<M>[],
  t: TxnTransport<M, E>,
  clock: TxnClock,
  giveUpAt: number,
  onStep: () => void,
): Promise<void> {
  return new Promise((resolve) => {
    let inflight = 0;
    const send = (s: TxnSend<M>, failures: number) => {
      inflight++;
      t.command(s.to, s.cmd).then(
        (answer) => ({ more: machine.onAnswer(s.to, s.cmd, answer), failed: false }),
        (error) => {
          const gaveUp = clock.now() > giveUpAt;
          if (machine instanceof TxnResolution) return { more: gaveUp ? [] : [s], failed: true };
          if (error instanceof TxnRejectedError) {
            return { more: machine.onRejected(s.to, s.cmd, error.message), failed: false };
          }
          return { more: machine.onFailure(s.to, s.cmd, gaveUp), failed: true };
        },
      ).then(async ({ more, failed }) => {
        onStep();
        if (failed && more.length > 0) await clock.sleep(backoff(failures + 1, clock));
        for (const m of more) send(m, failed ? failures + 1 : 0);
        inflight--;
        if (inflight === 0) resolve();
      });
    };
    for (const s of sends) send(s, 0);
    if (sends.length === 0) resolve();
  });
}

/** Resolves `lock`, met at cluster `at`: the primary decides, then `at` applies that. */
export async function resolveLock<M, E>(
  lock: TxnLockInfo,
  at: string,
  t: TxnTransport<M, E>,
  clock: TxnClock,
  giveUpAt: number,
): Promise<"committed" | "aborted" | undefined> {
  const res = new TxnResolution<M>(lock, at);
  await pump(res, res.start(), t, clock, giveUpAt, () => {});
  return res.outcome;
}

/** One attempt: resolves with its result once known (the rest goes on in `finished`). */
export function runAttempt<M, E>(
  attempt: TxnAttempt<M>,
  t: TxnTransport<M, E>,
  clock: TxnClock,
  giveUpAt: number,
): { result: Promise<TxnAttemptResult>; finished: Promise<void> } {
  let answer!: (r: TxnAttemptResult) => void;
  const result = new Promise<TxnAttemptResult>((r) => (answer = r));
  const onStep = () => {
    const r = attempt.result;
    if (r !== undefined && (r.kind === "committed" || attempt.finished)) answer(r);
  };
  const finished = pump(attempt, attempt.start(), t, clock, giveUpAt, onStep).then(() => {
    // Nothing left to send and no result: every command failed past the grace.
    if (attempt.result === undefined) answer({ kind: "unknown" });
  });
  return { result, finished };
}

/** What a transaction's runner needs besides the transport. */
export interface TxnPlan<M> {
  /** Per cluster, its share. */
  readonly shares: ReadonlyMap<string, TxnShare<M>>;
  /** The cluster that decides. */
  readonly primary: string;
}

/** A transaction's final answer and how much it took. */
export interface TxnRun {
  /** The last attempt's result (committed, check_failed, invalid, refused, or unknown). */
  readonly result: TxnAttemptResult;
  /** Attempts made. */
  readonly attempts: number;
  /** Locks resolved on the way. */
  readonly resolved: number;
  /** Every attempt's background work (applying the decision, forgetting), for tests. */
  readonly finished: Promise<void>;
}

/**
 * Runs a transaction to an answer: attempts with ids `newId()`, each with a deadline
 * `attemptMs` ahead; after `locked` (resolved past its deadline, else waited for) or `retry`,
 * another attempt, until `totalMs` passed (then the last result, or `retry`).
 */
export async function runTransaction<M, E>(
  plan: TxnPlan<M>,
  newId: () => string,
  t: TxnTransport<M, E>,
  clock: TxnClock = SYSTEM_TXN_CLOCK,
  timings: TxnTimings = TXN_TIMINGS,
): Promise<TxnRun> {
  const endAt = clock.now() + timings.totalMs;
  const background: Promise<void>[] = [];
  let resolved = 0;
  for (let attempts = 1;; attempts++) {
    const deadline = Math.min(clock.now() + timings.attemptMs, endAt);
    const attempt = new TxnAttempt(newId(), plan.shares, plan.primary, deadline);
    const run = runAttempt(attempt, t, clock, deadline + timings.decideGraceMs);
    background.push(run.finished);
    const result = await run.result;
    const again = result.kind === "locked" || result.kind === "retry";
    if (!again || clock.now() >= endAt) {
      return { result, attempts, resolved, finished: Promise.all(background).then(() => {}) };
    }
    if (result.kind === "locked" && result.lock.deadline < clock.now()) {
      resolved++;
      await resolveLock(result.lock, result.cluster, t, clock, endAt);
    } else {
      await clock.sleep(backoff(attempts, clock));
    }
  }
}

/**
 * A consistent snapshot read of `placed` (docs/transactions.md, "Snapshot reads"): per range,
 * the merged entries. Throws `KoiError` `unavailable` when it could not finish within
 * `totalMs` (clusters that kept failing, or changes in every round).
 */
export async function snapshotRead<M, E extends { readonly key: Uint8Array }>(
  placed: readonly PlacedRange[],
  merge: MergeRange<E>,
  t: TxnTransport<M, E>,
  clock: TxnClock = SYSTEM_TXN_CLOCK,
  timings: TxnTimings = TXN_TIMINGS,
): Promise<E[][]> {
  const endAt = clock.now() + timings.totalMs;
  const read = new SnapshotRead<E>(placed, merge);
  let failures = 0;
  let lastFailure: unknown;
  // A read fence's attempt id (the same at every cluster: each holds its own) and the clusters
  // asked to place it, released once the read is over, whatever its outcome.
  const fenceId = `fence-${crypto.randomUUID()}`;
  /** Per fencing of the read (a fresh attempt each): its deadline and where it was asked. */
  const fencings = new Map<number, { deadline: number; at: Set<string> }>();
  const fence = async (
    to: string,
    spans: readonly KeySpan[],
    attempt: number,
  ): Promise<SnapshotStep[]> => {
    let f = fencings.get(attempt);
    if (f === undefined) {
      f = { deadline: clock.now() + SNAPSHOT_FENCE_MS, at: new Set() };
      fencings.set(attempt, f);
    }
    f.at.add(to);
    try {
      const vote = await t.command(to, {
        type: "prepare",
        txn: `${fenceId}-${attempt}`,
        primary: to,
        participants: [to],
        checks: [],
        mutations: [],
        deadline: f.deadline,
        spans,
      });
      return read.onFenced(to, "vote" in vote && vote.vote === "yes");
    } catch (error) {
      if (error instanceof TxnRejectedError) throw error;
      lastFailure = error;
      return read.onFenced(to, false); // it may stand all the same: released below
    }
  };
  const retryAt = async (at: string): Promise<SnapshotStep[]> => {
    await clock.sleep(backoff(++failures, clock));
    return read.retry(at);
  };
  const run = async (s: SnapshotStep): Promise<SnapshotStep[]> => {
    if (clock.now() > endAt) return [];
    if (s.kind === "fence") return await fence(s.to, s.spans, s.attempt);
    if (s.kind === "lock") {
      if (s.lock.deadline < clock.now()) await resolveLock(s.lock, s.at, t, clock, endAt);
      // Under fences the writers that hold the locks are the last ones: their locks go soon,
      // and every millisecond the read waits, the fences hold every other writer back.
      else if (read.fenced) await clock.sleep(backoff(1, clock));
      else await clock.sleep(backoff(++failures, clock));
      return read.retry(s.at);
    }
    try {
      return s.kind === "read"
        ? read.onRead(s.to, await t.read(s.to, s.ranges))
        : read.onCheck(s.to, await t.check(s.to, s.spans, s.since));
    } catch (error) {
      if (error instanceof TxnRejectedError) throw error;
      lastFailure = error;
      // A read fails: ask again; a check fails: count it as a change.
      return s.kind === "read" ? await retryAt(s.to) : read.onCheck(s.to, { valid: false });
    }
  };
  let steps = read.start();
  try {
    while (steps.length > 0) {
      const next = await Promise.all(steps.map(run));
      steps = next.flat();
    }
  } finally {
    // Writers wait while a fence stands: it goes now, not at its deadline. A release that
    // fails leaves the fence to its deadline (then anyone who meets it aborts it).
    await Promise.all(
      [...fencings].flatMap(([attempt, f]) =>
        [...f.at].map((to) =>
          t.command(to, { type: "abort", txn: `${fenceId}-${attempt}`, deadline: f.deadline })
            .catch(() => {})
        )
      ),
    );
  }
  const result = read.result;
  if (result !== undefined) return result as E[][];
  const last = lastFailure instanceof Error ? `; last: ${lastFailure.message}` : "";
  throw new KoiError(
    "unavailable",
    read.contended
      ? `A snapshot read over ${placed.length} ranges saw changes in each of its ${read.rounds} rounds`
      : `A snapshot read could not finish within ${timings.totalMs} ms${last}`,
    { cause: lastFailure },
  );
}

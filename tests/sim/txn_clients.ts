/**
 * The bank's clients in the multi-cluster mode: each runs one operation at a time, a transfer
 * (a snapshot read of two accounts, then a commit that checks both: one plain command when
 * they share a cluster, a cross-cluster transaction otherwise) or an audit (a snapshot read
 * of every account, whose total must never change). They drive the coordinators of
 * `src/txn/` over the simulated network, resolve locks whose deadline passed, and crash
 * mid-operation, leaving their locks to others.
 *
 * @module
 */
import {
  type PlacedRange,
  type ReadRange,
  SnapshotRead,
  type SnapshotStep,
  TxnAttempt,
  type TxnAttemptResult,
  type TxnCommand,
  type TxnLockInfo,
  TxnResolution,
  type TxnSend,
  type TxnShare,
} from "../../src/txn/mod.ts";
import { SimViolation } from "./checker.ts";
import type { Account, BankMutation, PlainAnswer } from "./txn_bank.ts";
import { OPENING_BALANCE } from "./txn_bank.ts";
import type { ReadOp, WriteOp } from "./txn_checker.ts";
import type { NetReply, TxnNet } from "./txn_net.ts";

/** How long an attempt may take before participants refuse it and resolvers may abort it. */
export const ATTEMPT_MS = 1_500;
/** After its deadline, how long a coordinator still retries asking for the decision. */
const DECIDE_GRACE_MS = 1_000;
/** Tries of one transfer (read, then commit) before it gives up. */
const TRANSFER_TRIES = 6;

/** What the clients need of the world. */
export interface ClientWorld {
  /** Simulated now. */
  readonly now: number;
  /** Whether faults are on. */
  readonly faulty: boolean;
  /** Chance. */
  chance(p: number): boolean;
  /** A uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number;
  /** Runs `fn` at `time`. */
  at(time: number, fn: () => void): void;
  /** The network. */
  readonly net: TxnNet;
  /** The account keys. */
  readonly keys: readonly Uint8Array[];
  /** The cluster that owns `key`. */
  owner(key: Uint8Array): string;
  /** Every cluster id. */
  readonly clusters: readonly string[];
  /** The history. */
  readonly writes: WriteOp[];
  /** The history's reads. */
  readonly reads: ReadOp[];
  /** Counters. */
  readonly counts: Record<string, number>;
}

/** One client. */
export class BankClient {
  readonly #w: ClientWorld;
  readonly #id: number;
  /** Bumped by a crash: callbacks of an earlier life are ignored. */
  #life = 0;
  /** Read fences this client placed (their ids). */
  #fences = 0;
  #seq = 0;
  /** Whether it is in an operation. */
  busy = false;
  /** Whether it stops after the current operation (phase two). */
  stopping = false;

  /** Client `id` of world `w`. */
  constructor(w: ClientWorld, id: number) {
    this.#w = w;
    this.#id = id;
  }

  /** Starts the next operation unless busy or stopping. */
  next(): void {
    if (this.busy || this.stopping) return;
    this.busy = true;
    const life = this.#life;
    const done = () => {
      if (life !== this.#life) return;
      this.busy = false;
      this.#w.at(this.#w.now + this.#w.int(1, 30), () => this.next());
    };
    if (this.#w.chance(0.25)) this.audit(done);
    else this.#transfer(TRANSFER_TRIES, done);
  }

  /** Crashes: whatever it was doing is abandoned (its locks stay); restarts later. */
  crash(restartMs: number): void {
    this.#life++;
    this.busy = false;
    this.#w.counts.clientCrash++;
    this.#w.at(this.#w.now + restartMs, () => this.next());
  }

  /** A snapshot read of every account; the total must be the opening one. */
  audit(done: (seen: Account[] | undefined) => void): void {
    const w = this.#w;
    const range: ReadRange = {
      start: new TextEncoder().encode("acct/"),
      end: new TextEncoder().encode("acct0"),
      limit: 1000,
      reverse: false,
    };
    this.#snapshot([{ range, clusters: w.clusters }], (got) => {
      if (got === undefined) return done(undefined);
      const all = got[0];
      const total = all.reduce((s, a) => s + a.n, 0);
      if (all.length !== w.keys.length || total !== OPENING_BALANCE * w.keys.length) {
        throw new SimViolation(
          `txn: an audit saw ${all.length} accounts totalling ${total}, not ${w.keys.length} ` +
            `totalling ${OPENING_BALANCE * w.keys.length}: ${
              all.map((a) => `${new TextDecoder().decode(a.key)}=${a.n}@${a.vs}`).join(" ")
            }`,
        );
      }
      w.counts.audit++;
      done(all);
    });
  }

  #transfer(tries: number, done: () => void): void {
    const w = this.#w;
    if (tries === 0) {
      w.counts.transferGaveUp++;
      return done();
    }
    const a = w.keys[w.int(0, w.keys.length - 1)];
    let b = w.keys[w.int(0, w.keys.length - 1)];
    if (b === a) b = w.keys[(w.keys.indexOf(a) + 1) % w.keys.length];
    const point = (k: Uint8Array): PlacedRange => ({
      range: { start: k, end: justAfter(k), limit: 1, reverse: false },
      clusters: [w.owner(k)],
    });
    this.#snapshot([point(a), point(b)], (got) => {
      if (this.stopping) return done();
      if (got === undefined || got[0].length !== 1 || got[1].length !== 1) {
        return this.#later(() => this.#transfer(tries - 1, done));
      }
      const [from, to] = [got[0][0], got[1][0]];
      const amount = w.int(1, 30);
      if (from.n < amount) return done();
      this.#commit(from, to, amount, (result) => {
        if (result === "retry") return this.#later(() => this.#transfer(tries - 1, done));
        done();
      });
    });
  }

  #commit(
    from: Account,
    to: Account,
    amount: number,
    done: (r: "ok" | "retry") => void,
  ): void {
    const w = this.#w;
    const id = `c${this.#id}.${++this.#seq}`;
    const checks = [{ key: from.key, vs: from.vs }, { key: to.key, vs: to.vs }];
    const mutations: BankMutation[] = [
      { key: from.key, n: from.n - amount, by: id },
      { key: to.key, n: to.n + amount, by: id },
    ];
    const op: WriteOp = {
      id,
      start: w.now,
      end: Infinity,
      status: "unknown",
      vs: 0,
      checks,
      writes: [from.key, to.key],
    };
    w.writes.push(op);
    const life = this.#life;
    const finish = (status: WriteOp["status"], vs: number, again: boolean) => {
      if (life !== this.#life) return;
      op.status = status;
      op.vs = vs;
      if (status !== "unknown") op.end = w.now;
      done(again ? "retry" : "ok");
    };
    const cA = w.owner(from.key);
    const cB = w.owner(to.key);
    if (cA === cB) {
      w.counts.plain++;
      this.#send(cA, { type: "plain", checks, mutations }, (reply) => {
        if (reply.kind !== "answer") return finish("unknown", 0, false);
        const a = reply.answer as PlainAnswer;
        if (a.ok) return finish("committed", a.vs, false);
        if ("lock" in a) {
          return this.#onLock(a.lock, cA, () => finish("failed", 0, true));
        }
        finish("failed", 0, a.refusal.code !== "check_failed");
      });
      return;
    }
    w.counts.cross++;
    const shares = new Map<string, TxnShare<BankMutation>>([
      [cA, {
        checks: [{ ...checks[0], index: 0 }],
        mutations: [{ mutation: mutations[0], index: 0 }],
      }],
      [cB, {
        checks: [{ ...checks[1], index: 1 }],
        mutations: [{ mutation: mutations[1], index: 1 }],
      }],
    ]);
    const deadline = w.now + ATTEMPT_MS;
    const attempt = new TxnAttempt<BankMutation>(id, shares, cA, deadline);
    let answered = false;
    const onStep = () => {
      const r = attempt.result;
      if (r === undefined || answered) return;
      if (r.kind === "committed" || attempt.finished) {
        answered = true;
        this.#onAttemptResult(r, finish);
      }
    };
    this.#drive(attempt.start(), attempt, deadline + DECIDE_GRACE_MS, onStep);
  }

  #onAttemptResult(
    r: TxnAttemptResult,
    finish: (status: WriteOp["status"], vs: number, again: boolean) => void,
  ): void {
    const w = this.#w;
    switch (r.kind) {
      case "committed":
        w.counts.crossCommitted++;
        return finish("committed", r.vs, false);
      case "check_failed":
        return finish("failed", 0, false);
      case "locked":
        return this.#onLock(r.lock, r.cluster, () => finish("failed", 0, true));
      case "retry":
        w.counts[`retry_${r.reason}`] = (w.counts[`retry_${r.reason}`] ?? 0) + 1;
        return finish("failed", 0, true);
      case "invalid":
        throw new SimViolation(`txn: a valid transfer was refused: ${r.message}`);
      case "refused":
        throw new SimViolation(`txn: a valid transfer was refused: ${r.refusal.code}`);
      case "unknown":
        w.counts.crossUnknown++;
        return finish("unknown", 0, false);
    }
  }

  /** Sends the step machine's commands, feeding it answers and failures until it is finished. */
  #drive(
    sends: TxnSend<BankMutation>[],
    machine: TxnAttempt<BankMutation> | TxnResolution<BankMutation>,
    giveUpAt: number,
    onStep: () => void,
  ): void {
    const w = this.#w;
    const life = this.#life;
    if (life !== this.#life) return;
    for (const s of sends) {
      this.#send(s.to, s.cmd, (reply) => {
        let more: TxnSend<BankMutation>[];
        if (reply.kind === "answer" && !("ok" in reply.answer)) {
          more = machine.onAnswer(s.to, s.cmd, reply.answer as never);
        } else if (machine instanceof TxnAttempt) {
          more = machine.onFailure(s.to, s.cmd, w.now > giveUpAt);
        } else {
          more = w.now > giveUpAt ? [] : [s]; // a resolution asks again
        }
        onStep();
        if (more.length > 0) {
          w.at(w.now + (reply.kind === "failed" ? w.int(1, 20) : 0), () => {
            if (life === this.#life) this.#drive(more, machine, giveUpAt, onStep);
          });
        }
      });
    }
  }

  /** A lock stood in the way: resolve it past its deadline, else wait a little; then `then`. */
  #onLock(lock: TxnLockInfo, at: string, then: () => void): void {
    const w = this.#w;
    const life = this.#life;
    const guarded = () => {
      if (life === this.#life) then();
    };
    if (lock.deadline >= w.now) {
      w.counts.lockWait++;
      return w.at(w.now + w.int(5, 60), guarded);
    }
    w.counts.resolve++;
    const res = new TxnResolution<BankMutation>(lock, at);
    let called = false;
    const onStep = () => {
      if (called || !res.finished) return;
      called = true;
      if (res.outcome === "committed") w.counts.resolvedForward++;
      else w.counts.resolvedAbort++;
      guarded();
    };
    this.#drive(res.start(), res, w.now + 2_000, onStep);
    w.at(w.now + 2_500, () => {
      if (!called) {
        called = true;
        guarded();
      }
    });
  }

  /** A snapshot read; `done(undefined)` when it could not finish. */
  #snapshot(placed: PlacedRange[], done: (got: readonly Account[][] | undefined) => void): void {
    const w = this.#w;
    const life = this.#life;
    const start = w.now;
    const read = new SnapshotRead<Account>(placed, mergeAccounts);
    let ended = false;
    const giveUpAt = w.now + 5_000;
    // A read fence (after rounds that each saw a change): placed by a prepare with spans at
    // each cluster, released (aborted) when the read ends; one the client crashed before
    // releasing stands until its deadline, and whoever meets it then aborts it.
    const fenceId = `fence-${this.#id}-${++this.#fences}`;
    // Per fencing of the read (a fresh attempt each): its deadline and where it was asked.
    const fencings = new Map<number, { deadline: number; at: Set<string> }>();
    const release = () => {
      for (const [attempt, f] of fencings) {
        for (const to of f.at) {
          const abort = {
            type: "abort" as const,
            txn: `${fenceId}-${attempt}`,
            deadline: f.deadline,
          };
          this.#send(to, abort, () => {});
        }
      }
    };
    const end = () => {
      if (ended || !read.finished) return;
      ended = true;
      release();
      if (read.fenced) w.counts.readFenced++;
      const result = read.result;
      if (result === undefined) {
        w.counts.readContended++;
        return done(undefined);
      }
      w.reads.push({
        start,
        end: w.now,
        seen: result.flat().map((a) => ({ key: a.key, vs: a.vs, by: a.by })),
      });
      done(result);
    };
    const run = (steps: SnapshotStep[]) => {
      if (life !== this.#life) return; // crashed: abandoned
      for (const s of steps) {
        if (s.kind === "lock") {
          this.#onLock(s.lock, s.at, () => run(read.retry(s.at)));
          continue;
        }
        if (s.kind === "fence") {
          let f = fencings.get(s.attempt);
          if (f === undefined) {
            f = { deadline: w.now + ATTEMPT_MS, at: new Set() };
            fencings.set(s.attempt, f);
          }
          f.at.add(s.to);
          const fence = {
            type: "prepare" as const,
            txn: `${fenceId}-${s.attempt}`,
            primary: s.to,
            participants: [s.to],
            checks: [],
            mutations: [],
            deadline: f.deadline,
            spans: s.spans,
          };
          this.#send(s.to, fence, (reply: NetReply) => {
            if (ended || life !== this.#life) return;
            const yes = reply.kind === "answer" && "vote" in reply.answer &&
              reply.answer.vote === "yes";
            run(read.onFenced(s.to, yes));
            end();
          });
          continue;
        }
        const request = s.kind === "read"
          ? { kind: "read" as const, ranges: s.ranges }
          : { kind: "check" as const, spans: s.spans, since: s.since };
        this.#w.net.send(this.#id, s.to, request, (reply: NetReply) => {
          if (ended || life !== this.#life) return;
          if (reply.kind === "part") run(read.onRead(s.to, reply.part));
          else if (reply.kind === "checked") run(read.onCheck(s.to, reply.check));
          else if (w.now > giveUpAt) {
            ended = true;
            release();
            w.counts.readGaveUp++;
            return done(undefined);
          } else if (s.kind === "read") {
            w.at(w.now + w.int(1, 20), () => run(read.retry(s.to)));
          } else {
            // A lost check: treat as changed and read again.
            w.at(w.now + w.int(1, 20), () => run(read.onCheck(s.to, { valid: false })));
          }
          end();
        });
      }
      end();
    };
    run(read.start());
  }

  #send(
    cluster: string,
    cmd: TxnCommand<BankMutation> | { type: "plain"; checks: unknown; mutations: unknown },
    onReply: (r: NetReply) => void,
  ): void {
    const life = this.#life;
    this.#w.net.send(this.#id, cluster, { kind: "cmd", cmd: cmd as never }, (r) => {
      if (life === this.#life) onReply(r);
    });
  }

  #later(fn: () => void): void {
    const life = this.#life;
    this.#w.at(this.#w.now + this.#w.int(5, 50), () => {
      if (life === this.#life) fn();
    });
  }
}

/** The merge of one range's parts: in key order (or reversed), the first `limit`. */
function mergeAccounts(
  range: ReadRange,
  parts: readonly { readonly cluster: string; readonly entries: readonly Account[] }[],
): Account[] {
  const all = parts.flatMap((p) => [...p.entries]);
  const cmp = (x: Account, y: Account) => compare(x.key, y.key) * (range.reverse ? -1 : 1);
  return all.sort(cmp).slice(0, range.limit);
}

function compare(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function justAfter(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1);
  out.set(key);
  return out;
}

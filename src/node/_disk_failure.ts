/**
 * A data directory that fails while the node runs (full, read-only, I/O errors): which errors
 * are disk problems, and the "disk failed" state of a node that retries its persist with
 * backoff instead of stopping.
 *
 * Retrying is a very slow persist, nothing more: the driver retries the same Ready, holds its
 * `messagesAfterPersist` (the acknowledgements and votes that promise durability) and calls
 * the core's `advance()` only once the write succeeded, so the core never believes in a state
 * the disk does not hold. KvLogStorage changes its in-memory mirror only after a write's last
 * commit, and a write that failed part way left a crash-consistent prefix of its commits (the
 * crash tests open every prefix), which the retry of the same batch rewrites whole.
 *
 * @module
 */
import type { Message } from "../raft/mod.ts";
import { DiskFailedError } from "./errors.ts";
import type { NodeLog } from "./_driver_options.ts";

/** The first pause before a failed persist is tried again. */
export const DISK_RETRY_MS_MIN = 100;
/** The longest pause between two tries (the pause doubles up to it). */
export const DISK_RETRY_MS_MAX = 2_000;
/** A disk that keeps failing is logged again at most this often (every try is counted). */
export const DISK_FAILURE_LOG_INTERVAL_MS = 30_000;

/**
 * What Deno.Kv (SQLite) and Deno's file system throw for a disk problem, by message; measured
 * with Deno 2.9.6 (see docs/disk_failures.md): a full tmpfs gives a `TypeError` "database or
 * disk is full" on commit, an ext4 remounted read-only after an error gives "disk I/O error",
 * a store opened on a read-only file system "Can not write to a read-only database.". The
 * others are SQLite's and the OS's wordings of the same conditions (EROFS, EACCES, EPERM,
 * EIO, ENOSPC, EDQUOT).
 */
const DISK_ERROR_PATTERNS: readonly RegExp[] = [
  /database or disk is full/i,
  /disk I\/O error/i,
  /read-?only database/i, // "attempt to write a readonly database", Deno.Kv's own wording
  /unable to open database file/i, // SQLite cannot create its WAL or journal
  /no space left on device|os error 28\b/i, // ENOSPC
  /disk quota exceeded|os error 122\b/i, // EDQUOT
  /read-only file system|os error 30\b/i, // EROFS
  /input\/output error|os error 5\b/i, // EIO
  /permission denied|os error 13\b/i, // EACCES
  /operation not permitted|os error 1\b/i, // EPERM
];

/**
 * Whether `error` (or an error in its `cause` chain) is a disk problem the node can outlive:
 * it stops taking writes and retries. Anything else is a bug and stops the node.
 */
export function isDiskError(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof DiskFailedError) return true;
    // Deno's permission checks (--allow-write) throw NotCapable, a configuration error.
    if (e instanceof Deno.errors.NotCapable) return false;
    if (e instanceof Deno.errors.PermissionDenied) return true;
    if (DISK_ERROR_PATTERNS.some((p) => p.test(e instanceof Error ? e.message : ""))) return true;
  }
  return false;
}

/**
 * Peer messages a node whose disk failed does not take in. Entries and snapshot chunks from
 * the leader would pile up in memory (the leader resends an append at every heartbeat answer
 * once its window is full), and could not be acknowledged anyway; vote requests could only be
 * answered once the vote is durable, and each would queue an answer until then. The leader
 * sends the entries again once the node answers again; everything else (heartbeats, which keep
 * it following, and the answers a leader handing off needs) goes on. TimeoutNow is taken in
 * and ignored by the core, whose campaigns the driver holds.
 */
export function dropsWhileDiskFailed(m: Message): boolean {
  return m.type === "app" || m.type === "snap" || m.type === "vote" || m.type === "preVote";
}

/** The disk state for `/healthz`, `/v1/status` and `/metrics`. */
export interface DiskStatus {
  /** `"ok"`, or `"failed"` while writes to the data directory fail. */
  readonly state: "ok" | "failed";
  /** The last disk error, while failed. */
  readonly error?: string;
  /** When the current failure started (ISO 8601), while failed. */
  readonly since?: string;
  /** Persists (Ready batches) that failed with a disk error, since start. */
  readonly persistFailures: number;
  /** Times the node recovered from a failed disk, since start. */
  readonly recoveries: number;
}

/** What {@linkcode DiskFailure} needs from the driver. */
export interface DiskFailureHost {
  /** Structured log. */
  readonly log: NodeLog;
  /** Milliseconds per tick of the driver's clock (the retry pauses are counted in ticks). */
  readonly tickMs: number;
  /** Whether the node is closing (a waiting retry gives up). */
  closed(): boolean;
  /** The disk just failed: hold campaigns, stop taking writes, step aside. */
  onFailed(): void;
  /** Called every tick while failed (a leader retries handing off). */
  whileFailed(): void;
  /** A persist succeeded after failures: the node goes on. */
  onRecovered(): void;
  /** Wall clock, for the log and the status (default `Date.now`). */
  now?(): number;
}

/**
 * The disk state of one node: persists that fail with a disk error are retried, pausing
 * {@linkcode DISK_RETRY_MS_MIN} doubling to {@linkcode DISK_RETRY_MS_MAX} (counted in the
 * driver's ticks, so tests advance them), until they succeed or the node closes.
 */
export class DiskFailure {
  readonly #host: DiskFailureHost;
  #since: number | undefined;
  #lastError = "";
  #loggedAt = -Infinity;
  #failedTries = 0;
  #persistFailures = 0;
  #recoveries = 0;
  /** Ticks left before the waiting retry, and how to wake it. */
  #wait: { ticks: number; wake: () => void } | undefined;

  /** Creates the state of a healthy disk. */
  constructor(host: DiskFailureHost) {
    this.#host = host;
  }

  /** Whether writes to the data directory fail now. */
  get failed(): boolean {
    return this.#since !== undefined;
  }

  /**
   * Runs `write` until it succeeds; a disk error is retried after a pause, anything else is
   * thrown. Resolves true once written, false when the node closed while the disk failed
   * (nothing may then be treated as durable).
   */
  async persist(write: () => Promise<void>): Promise<boolean> {
    for (;;) {
      try {
        await write();
      } catch (error) {
        if (!isDiskError(error)) throw error;
        this.#noteFailure(error);
        if (!(await this.#pause())) return false;
        continue;
      }
      if (this.failed) this.#recover();
      return true;
    }
  }

  /** One tick of the driver's clock: counts down the pause, retries a hand-off. */
  tick(): void {
    if (!this.failed) return;
    this.#host.whileFailed();
    const w = this.#wait;
    if (w !== undefined && --w.ticks <= 0) {
      this.#wait = undefined;
      w.wake();
    }
  }

  /** The node closes: a waiting retry gives up. */
  close(): void {
    const w = this.#wait;
    this.#wait = undefined;
    w?.wake();
  }

  /** The error answered to writes while failed. */
  error(what: string): DiskFailedError {
    return new DiskFailedError(
      `${what}: this node cannot write its data directory (${this.#lastError}); it takes no ` +
        `writes until it can`,
    );
  }

  /** The state for `/healthz`, `/v1/status` and `/metrics`. */
  status(): DiskStatus {
    const counts = { persistFailures: this.#persistFailures, recoveries: this.#recoveries };
    if (this.#since === undefined) return { state: "ok", ...counts };
    return {
      state: "failed",
      error: this.#lastError,
      since: new Date(this.#since).toISOString(),
      ...counts,
    };
  }

  /** Seconds the current failure lasts (0 when healthy). */
  failedSeconds(): number {
    return this.#since === undefined ? 0 : Math.max(0, (this.#now() - this.#since) / 1000);
  }

  #now(): number {
    return this.#host.now?.() ?? Date.now();
  }

  #noteFailure(error: unknown): void {
    this.#persistFailures++;
    this.#failedTries++;
    this.#lastError = error instanceof Error ? error.message : String(error);
    const now = this.#now();
    const first = this.#since === undefined;
    if (first) this.#since = now;
    if (first || now - this.#loggedAt >= DISK_FAILURE_LOG_INTERVAL_MS) {
      this.#loggedAt = now;
      this.#host.log(
        "error",
        first
          ? "Cannot write the data directory: the node takes no writes, does not campaign and " +
            "hands leadership off; it retries until the disk takes writes again"
          : "The data directory still takes no writes: retrying",
        { error: this.#lastError, tries: this.#failedTries, retryInMs: this.#delayMs() },
      );
    }
    if (first) this.#host.onFailed();
  }

  #recover(): void {
    const ms = this.#now() - this.#since!;
    this.#host.log("info", "The data directory takes writes again: the node catches up", {
      failedMs: ms,
      tries: this.#failedTries,
    });
    this.#since = undefined;
    this.#failedTries = 0;
    this.#loggedAt = -Infinity;
    this.#recoveries++;
    this.#host.onRecovered();
  }

  /** The pause before the next try: 100 ms after the first failure, doubling to 2 s. */
  #delayMs(): number {
    const doublings = Math.min(this.#failedTries - 1, 30);
    return Math.min(DISK_RETRY_MS_MAX, DISK_RETRY_MS_MIN * 2 ** doublings);
  }

  /** Waits the pause out in ticks; false when the node closed meanwhile. */
  #pause(): Promise<boolean> {
    if (this.#host.closed()) return Promise.resolve(false);
    const ticks = Math.max(1, Math.ceil(this.#delayMs() / this.#host.tickMs));
    return new Promise((resolve) => {
      this.#wait = { ticks, wake: () => resolve(!this.#host.closed()) };
    });
  }
}

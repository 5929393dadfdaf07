/**
 * Logging of peer messages the core dropped. Every drop is counted in /metrics; the log says
 * which reason occurred, at most once per reason in {@linkcode DROP_LOG_INTERVAL_MS} (a peer
 * replaying garbage must not flood it).
 *
 * @module
 */
import type { Message } from "../raft/mod.ts";
import { DROP_LOG_INTERVAL_MS, type NodeLog } from "./_driver_options.ts";

/** Logs dropped peer messages, rate-limited per reason. */
export class DropLog {
  readonly #log: NodeLog;
  readonly #now: () => number;
  readonly #loggedAt = new Map<string, number>();

  /** Logs to `log`, timing with `now` (ms; the wall clock unless given). */
  constructor(log: NodeLog, now: () => number = Date.now) {
    this.#log = log;
    this.#now = now;
  }

  /** The core dropped `message` for `reason`. */
  note(reason: string, message: unknown): void {
    const now = this.#now();
    if ((this.#loggedAt.get(reason) ?? -Infinity) > now - DROP_LOG_INTERVAL_MS) return;
    this.#loggedAt.set(reason, now);
    const m = message as Partial<Message> | undefined;
    if (reason === "divergedCommit") {
      // Not expected in any healthy cluster: this node cannot follow the leader any more.
      this.#log(
        "error",
        "this node's committed entries differ from the leader's log: it cannot follow it; " +
          "remove it (DELETE /v1/members) and add it back with an empty data directory",
        { reason, from: m?.from },
      );
      return;
    }
    // Some are expected (a chunk of a transfer the leader moved to a newer snapshot, a stale
    // answer, heartbeats beyond the log of a node that rejoins), others point at a broken or
    // hostile peer: the reason tells which.
    this.#log("info", "dropped a peer message that does not fit this node's state", {
      reason,
      type: m?.type,
      from: m?.from,
      term: m?.term,
    });
  }
}

/**
 * Expiry (docs/kv_connect.md, "Expiry"): the leader looks for keys whose expiry time has
 * passed every {@linkcode EXPIRY_SWEEP_MS} and proposes one command of `expire` mutations for
 * at most {@linkcode EXPIRY_KEYS_PER_COMMAND} of them. Each replica then deletes a key only if
 * its expiry time is at or before the command's versionstamp time, so the log, not a
 * replica's clock, decides, and a key rewritten meanwhile survives.
 *
 * @module
 */
import type { KvCommand, KvStateMachine } from "../storage/mod.ts";

/** How often a leader looks for expired keys, in milliseconds. */
export const EXPIRY_SWEEP_MS = 250;
/** Keys one expiry command deletes at most. */
export const EXPIRY_KEYS_PER_COMMAND = 500;

/** What the sweeper needs from its node. */
export interface ExpiryHost {
  /** Whether this node leads its cluster now. */
  leads(): boolean;
  /** The state machine (it is replaced when a snapshot is installed). */
  stateMachine(): KvStateMachine;
  /** Whether this cluster owns `key` now (a key being moved waits for its new owner). */
  owns(key: Uint8Array): boolean;
  /** Proposes a command and resolves once applied (or rejects). */
  write(command: KvCommand): Promise<unknown>;
  /** ms since 1970. */
  wall(): number;
}

/** Proposes the deletion of expired keys while its node leads; one command at a time. */
export class ExpirySweeper {
  readonly #host: ExpiryHost;
  #lastSweep = -Infinity;
  #inFlight = false;
  /** Keys whose expiry the sweeper proposed (applied or not: a key gone meanwhile counts). */
  proposed = 0;

  /** Creates a sweeper over `host`. */
  constructor(host: ExpiryHost) {
    this.#host = host;
  }

  /** Called on every tick: sweeps when it is time. */
  tick(): void {
    const now = this.#host.wall();
    if (this.#inFlight || now - this.#lastSweep < EXPIRY_SWEEP_MS || !this.#host.leads()) return;
    this.#lastSweep = now;
    const sm = this.#host.stateMachine();
    if (sm.expiringKeys === 0) return;
    const keys = sm.expiredKeys(now, EXPIRY_KEYS_PER_COMMAND).filter((k) => this.#host.owns(k));
    if (keys.length === 0) return;
    this.#inFlight = true;
    this.proposed += keys.length;
    this.#host.write({ checks: [], mutations: keys.map((key) => ({ type: "expire", key })) })
      .catch(() => {}) // not leading any more, or overloaded: the next sweep tries again
      .finally(() => this.#inFlight = false);
  }
}

/** What the connection loops share with their transport: settings, counters, logging. */

import type { TlsMaterial } from "../config/mod.ts";
import type { Message } from "../raft/mod.ts";

/** Log levels of {@linkcode LogFunction}. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Where the transport reports what happens (connections refused, closed, retried). */
export type LogFunction = (
  level: LogLevel,
  message: string,
  fields?: Record<string, unknown>,
) => void;

/** The names of the transport's counters, in the order /metrics should list them. */
export const TRANSPORT_COUNTERS = [
  "framesSent",
  "framesReceived",
  "bytesSent",
  "bytesReceived",
  "writes",
  "dropsQueueFull",
  "dropsUnknownPeer",
  "dropsTooLarge",
  "dropsWriteFailed",
  "connectionsAccepted",
  "connectionsRefused",
  "malformedFrames",
  "reconnects",
] as const;

/** One counter of the transport. */
export type TransportCounter = typeof TRANSPORT_COUNTERS[number];

/** The counters, mutable by the loops. */
export type Counters = Record<TransportCounter, number>;

/** All counters at zero. */
export function newCounters(): Counters {
  return Object.fromEntries(TRANSPORT_COUNTERS.map((name) => [name, 0])) as Counters;
}

/** What a handshake taught about a peer (see `TransportOptions.onPeerState`). */
export type PeerState =
  /** The peer answered: whether its data directory holds a cluster (a refusal implies it). */
  | { readonly formed: boolean }
  /** A dial failed before the peer said anything (refused, timed out, bad answer). */
  | { readonly unreachable: string };

/** The transport as its connection loops see it. */
export interface LinkContext {
  /** This node's cluster. */
  readonly clusterId: string;
  /** This node's id. */
  readonly nodeId: string;
  /** The key of the cluster secret, or undefined without one (resolves before any use). */
  readonly key: Promise<CryptoKey | undefined>;
  /** Limit of one frame body. */
  readonly frameBytesMax: number;
  /** Limit of the frames queued for one peer. */
  readonly sendQueueBytesMax: number;
  /** Range of the reconnect delay. */
  readonly reconnectDelayMs: { readonly min: number; readonly max: number };
  /** Time allowed for dialing plus handshake. */
  readonly handshakeTimeoutMs: number;
  /** With TLS: this node's certificate and key and the deployment's CA (mutual TLS). */
  readonly tls: TlsMaterial | undefined;
  /** The counters to update. */
  readonly counters: Counters;
  /** Where to report. */
  readonly log: LogFunction;
  /** Jitter source in [0, 1). */
  readonly random: () => number;
  /** Whether `id` is a current peer (never this node itself). */
  isPeer(id: string): boolean;
  /** Whether the transport is closing: errors then are expected and not reported. */
  closing(): boolean;
  /** Delivers a message received from an authenticated peer. */
  deliver(m: Message): void;
  /** This node's incarnation, sent in every hello and welcome. */
  readonly incarnation: string;
  /** Why to refuse an authenticated peer presenting `incarnation`, or undefined to accept. */
  verifyPeer(peer: string, incarnation: string): string | undefined;
  /** Called after a handshake with `peer` succeeded (both directions). */
  notePeer(peer: string, incarnation: string): void;
  /** Refusal warnings, one per episode and peer. */
  readonly refusals: RefusalLog;
  /** Warnings about connections that never authenticated, rate-limited per kind. */
  readonly throttled: ThrottledLog;
  /** Whether this node's data directory holds a cluster, sent in every hello and welcome. */
  formed(): boolean;
  /** Reports what a handshake taught about `peer`. */
  peerState(peer: string, state: PeerState): void;
}

/** Lines of one kind that {@linkcode ThrottledLog} prints at most once per this interval. */
export const THROTTLED_LOG_INTERVAL_MS = 10_000;

/**
 * Rate-limits lines by kind: the first line of a kind is logged, and then at most one per
 * {@linkcode THROTTLED_LOG_INTERVAL_MS}, carrying the number of lines of that kind left out
 * since the last one. For what anyone can cause by connecting (stalled or malformed
 * handshakes): a flood of connections must not become a flood of log lines.
 */
export class ThrottledLog {
  readonly #log: LogFunction;
  readonly #now: () => number;
  readonly #kinds = new Map<string, { at: number; suppressed: number }>();

  /** Creates the log writing to `log`; `now` in milliseconds (default performance.now). */
  constructor(log: LogFunction, now: () => number = () => performance.now()) {
    this.#log = log;
    this.#now = now;
  }

  /** Logs `message` unless a line of `kind` was logged in the last interval (then counts it). */
  report(kind: string, level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    const now = this.#now();
    const last = this.#kinds.get(kind);
    if (last !== undefined && now - last.at < THROTTLED_LOG_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.#kinds.set(kind, { at: now, suppressed: 0 });
    const more = suppressed === 0
      ? ""
      : ` (and ${suppressed} more of this kind since the last such line ${
        Math.round((now - last!.at) / 1000)
      } s ago)`;
    this.#log(level, `${message}${more}`, { ...fields, kind, suppressed });
  }
}

/**
 * Logs refusals of a peer's identity once per episode: the first refusal (or one with a new
 * reason) is a warning, repeats are debug lines, and a successful handshake ends the episode.
 * A wiped node redials every couple of seconds; its operator needs one line, not a flood.
 */
export class RefusalLog {
  readonly #log: LogFunction;
  readonly #last = new Map<string, string>();

  /** Creates the log writing to `log`. */
  constructor(log: LogFunction) {
    this.#log = log;
  }

  /** Reports `message` about `peer` (a warning unless it repeats the episode's last one). */
  report(peer: string, reason: string, message: string): void {
    const repeated = this.#last.get(peer) === reason;
    this.#last.set(peer, reason);
    this.#log(repeated ? "debug" : "warn", message, { peer });
  }

  /** Ends the episode of `peer`: its next refusal is a warning again. */
  clear(peer: string): void {
    this.#last.delete(peer);
  }
}

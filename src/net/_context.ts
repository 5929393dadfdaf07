/** What the connection loops share with their transport: settings, counters, logging. */

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

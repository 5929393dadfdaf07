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
}

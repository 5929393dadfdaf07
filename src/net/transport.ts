/**
 * {@linkcode PeerTransport}: Raft messages between the nodes of one cluster over raw TCP.
 *
 * Each node dials one long-lived outbound connection to every peer it sends to and writes
 * its messages there; it receives on the connections its peers dialed. So every pair of
 * nodes has two TCP connections, one per direction: no tie-breaking between simultaneous
 * dials, no multiplexing, and each side's sending is independent of the other's.
 */

import type { HostPort, TlsMaterial } from "../config/mod.ts";
import type { Message } from "../raft/mod.ts";
import { describeError, Sleeper } from "./_async.ts";
import { encodeMessage } from "./_codec.ts";
import { FrameConnection } from "./_connection.ts";
import {
  type LinkContext,
  type LogFunction,
  newCounters,
  type PeerState,
  RefusalLog,
  ThrottledLog,
} from "./_context.ts";
import { checkFrameBytesMax, encodeFrame, FRAME_BYTES_MAX, FrameTooLargeError } from "./_frame.ts";
import { HANDSHAKE_TIMEOUT_MS, importHelloKey, INCARNATION_CHARS_MAX } from "./_hello.ts";
import { serveInbound } from "./_inbound.ts";
import { OutboundPeer } from "./_outbound.ts";
import { type ByteConn, listenTls, type TlsPeerListener } from "./_tls.ts";

/** Default bound of the frames queued for one peer, in bytes. */
export const SEND_QUEUE_BYTES_MAX = 64 * 1024 * 1024;

/** Default range of the reconnect backoff, in milliseconds. */
export const RECONNECT_DELAY_MS: { readonly min: number; readonly max: number } = {
  min: 50,
  max: 2_000,
};

/**
 * Connections accepted but not yet through the handshake, at most. When all are taken, a new
 * connection evicts the oldest one still waiting for its hello from the remote host that has
 * the most of them: a real peer sends its hello at once, a stalled connection holds a slot
 * for nothing, so a flood (from one host or many) cannot lock out a real peer. A pending
 * handshake holds a few KiB (see HELLO_FRAME_BYTES_MAX) and one file descriptor.
 */
export const HANDSHAKES_PENDING_MAX = 128;

/**
 * Default time from the accept to the complete hello, in milliseconds (a real dialer sends
 * its hello at once, or one round trip after the challenge); the rest of the handshake has
 * {@linkcode HANDSHAKE_TIMEOUT_MS}.
 */
export const HELLO_TIMEOUT_MS = 2_000;

/** Settings of a {@linkcode PeerTransport}. */
export interface TransportOptions {
  /** This node's cluster; hellos naming another cluster are refused. */
  clusterId: string;
  /** This node's id. */
  nodeId: string;
  /** Where to listen for peers (port 0: any free port, see {@linkcode PeerTransport.start}). */
  listen: HostPort;
  /** The cluster secret: peers must prove it in the hello (HMAC over a nonce). */
  secret?: string;
  /**
   * Mutual TLS: this node presents `cert` (with `key`) when it dials and when it listens, and
   * accepts only peers whose certificate chains to `ca` (the dialer also checks that the
   * listener's certificate names the address dialed). The hello and its HMAC run inside TLS
   * as before. Default: plain TCP.
   */
  tls?: TlsMaterial;
  /** Current peers (id -> raft address); may change at run time via setPeers. */
  peers: ReadonlyMap<string, HostPort>;
  /** Called for every valid message received from an authenticated peer. */
  onMessage(m: Message): void;
  /** Limit of one frame body in bytes; default {@linkcode FRAME_BYTES_MAX}. */
  frameBytesMax?: number;
  /** Bound of the frames queued for one peer; when full, new messages to it are dropped. */
  sendQueueBytesMax?: number;
  /** Reconnect backoff range (exponential with jitter); default {@linkcode RECONNECT_DELAY_MS}. */
  reconnectDelayMs?: { min: number; max: number };
  /** Time allowed for dialing plus handshake; default {@linkcode HANDSHAKE_TIMEOUT_MS}. */
  handshakeTimeoutMs?: number;
  /**
   * Time a listener waits for the hello of an accepted connection; default
   * {@linkcode HELLO_TIMEOUT_MS} (at most `handshakeTimeoutMs`).
   */
  helloTimeoutMs?: number;
  /** Where to report refused and failed connections; default: warnings and errors to the console. */
  log?: LogFunction;
  /** Jitter source in [0, 1); default Math.random. */
  random?: () => number;
  /**
   * This node's incarnation (the id of its data directory), sent in every hello and welcome;
   * default: a random id for this transport's lifetime.
   */
  incarnation?: string;
  /**
   * Asked after a peer authenticated (as dialer or listener) with the incarnation it
   * presented: a reason refuses the connection (closed, one warning per episode), undefined
   * accepts it. Default: accept all.
   */
  verifyPeer?(peer: string, incarnation: string): string | undefined;
  /** Called after a handshake with `peer` succeeded, with the incarnation it presented. */
  notePeer?(peer: string, incarnation: string): void;
  /**
   * Whether this node's data directory already holds a cluster (any log entry or snapshot),
   * asked for every hello and welcome sent; default: true.
   */
  formed?(): boolean;
  /**
   * Reports what a handshake taught about `peer`: `{formed}` from its authenticated hello or
   * welcome (a refusal means formed), `{unreachable}` when a dial to it failed before it
   * answered.
   */
  onPeerState?(peer: string, state: PeerState): void;
}

/**
 * Raft messages to and from the peers of one node, over TCP: one outbound connection per
 * peer (dialed on the first send, redialed with backoff), and the inbound connections the
 * peers dialed. Messages to one peer arrive in the order sent, unless dropped (full queue,
 * broken connection): Raft tolerates loss and retries. The `data` and `chunk` bytes of a
 * delivered message are views of its received frame, never reused by the transport.
 */
export class PeerTransport {
  readonly #options: TransportOptions;
  readonly #ctx: LinkContext;
  readonly #counters = newCounters();
  #peers: ReadonlyMap<string, HostPort>;
  readonly #outbound = new Map<string, OutboundPeer>();
  /** The authenticated inbound connection of each peer. */
  readonly #inbound = new Map<string, FrameConnection>();
  /** Every accepted connection, authenticated or not. */
  readonly #accepted = new Set<FrameConnection>();
  /** Accepted connections still in the handshake, oldest first. */
  readonly #pending = new Map<FrameConnection, PendingHandshake>();
  readonly #helloTimeoutMs: number;
  /** Loops and closings to await in close(). */
  readonly #tasks = new Set<Promise<void>>();
  readonly #acceptSleeper = new Sleeper();
  #listener: Deno.TcpListener | undefined;
  #tlsListener: TlsPeerListener | undefined;
  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  /** Checks the options; nothing is opened before {@linkcode PeerTransport.start} or a send. */
  constructor(options: TransportOptions) {
    checkOptions(options);
    this.#options = options;
    this.#peers = new Map(options.peers);
    const log = options.log ?? consoleLog;
    const key = options.secret === undefined
      ? Promise.resolve(undefined)
      : importHelloKey(options.secret);
    key.catch(() => {}); // a failed import fails each handshake (logged there), never unhandled
    this.#ctx = {
      clusterId: options.clusterId,
      nodeId: options.nodeId,
      key,
      frameBytesMax: options.frameBytesMax ?? FRAME_BYTES_MAX,
      sendQueueBytesMax: options.sendQueueBytesMax ?? SEND_QUEUE_BYTES_MAX,
      reconnectDelayMs: options.reconnectDelayMs ?? RECONNECT_DELAY_MS,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
      tls: options.tls,
      counters: this.#counters,
      log,
      random: options.random ?? Math.random,
      isPeer: (id) => id !== options.nodeId && this.#peers.has(id),
      closing: () => this.#closed,
      deliver: (m) => options.onMessage(m),
      incarnation: options.incarnation ?? crypto.randomUUID(),
      verifyPeer: (peer, incarnation) => options.verifyPeer?.(peer, incarnation),
      notePeer: (peer, incarnation) => options.notePeer?.(peer, incarnation),
      refusals: new RefusalLog(log),
      throttled: new ThrottledLog(log),
      formed: () => options.formed?.() ?? true,
      peerState: (peer, state) => options.onPeerState?.(peer, state),
    };
    this.#helloTimeoutMs = options.helloTimeoutMs ?? HELLO_TIMEOUT_MS;
  }

  /** Starts listening; resolves with the bound port (listen.port may be 0 in tests). */
  async start(): Promise<{ port: number }> {
    if (this.#started || this.#closed) {
      throw new Error(
        `Cannot start transport of node ${this.#ctx.nodeId}: already started or closed`,
      );
    }
    this.#started = true;
    await this.#ctx.key; // a bad secret fails here, loudly
    if (this.#closed) throw new Error(`Cannot start transport of node ${this.#ctx.nodeId}: closed`);
    const { host, port } = this.#options.listen;
    let bound: number;
    if (this.#options.tls !== undefined) {
      this.#tlsListener = await this.#listenTls(this.#options.tls);
      bound = this.#tlsListener.port;
      if (this.#closed) this.#tlsListener.close();
    } else {
      const listener = Deno.listen({ hostname: host, port, transport: "tcp" });
      this.#listener = listener;
      this.#track(this.#acceptLoop(listener));
      bound = listener.addr.port;
    }
    const tls = this.#options.tls === undefined ? "" : " (mutual TLS)";
    this.#ctx.log("info", `Listening for peers on ${host}:${bound}${tls}`, {
      node: this.#ctx.nodeId,
    });
    return { port: bound };
  }

  /** The mutual-TLS listener: handshakes bounded like hellos, refusals counted and logged. */
  #listenTls(tls: TlsMaterial): Promise<TlsPeerListener> {
    return listenTls({
      listen: this.#options.listen,
      tls,
      handshakeTimeoutMs: Math.min(this.#helloTimeoutMs, this.#ctx.handshakeTimeoutMs),
      handshakesMax: HANDSHAKES_PENDING_MAX,
      onConnection: (conn) => this.#accept(conn),
      onRefused: (remote, reason) => {
        if (this.#closed) return;
        this.#counters.connectionsRefused++;
        this.#ctx.throttled.report(
          "TLS handshake refused",
          "warn",
          `Refused peer connection from ${remote}: TLS handshake failed (${reason}); a peer ` +
            `must present a certificate signed by the deployment's CA`,
          { remote },
        );
      },
    });
  }

  /**
   * Queues messages; messages queued in the same turn to the same peer go out in ONE write.
   * Messages to unknown peers (or this node) are dropped and counted, as are messages to a
   * peer whose queue is full and messages whose frame exceeds the limit. Throws
   * {@linkcode MalformedMessageError} for an invalid message, and a RangeError for one whose
   * `from` is not this node: both are bugs of the caller. Ignored after close.
   */
  send(messages: readonly Message[]): void {
    if (this.#closed) return;
    for (const m of messages) {
      const address = this.#ctx.isPeer(m.to) ? this.#peers.get(m.to) : undefined;
      if (address === undefined) {
        this.#counters.dropsUnknownPeer++;
        continue;
      }
      if (m.from !== this.#ctx.nodeId) {
        throw new RangeError(
          `Cannot send a ${m.type} message from ${m.from}: this transport is node ${this.#ctx.nodeId}`,
        );
      }
      const frame = this.#encode(m);
      if (frame === undefined) continue;
      let peer = this.#outbound.get(m.to);
      if (peer === undefined) {
        peer = new OutboundPeer(m.to, address, this.#ctx);
        this.#outbound.set(m.to, peer);
      }
      if (!peer.enqueue(frame)) this.#counters.dropsQueueFull++;
    }
  }

  /**
   * Dials `peers` now and keeps their links up (redialing with backoff) even while nothing is
   * sent to them, so that their welcomes report their state (`onPeerState`); every other
   * peer is dialed on its first message again. Peers must be in the peer set.
   */
  keepConnected(peers: ReadonlySet<string>): void {
    if (this.#closed) return;
    for (const id of peers) {
      const address = this.#ctx.isPeer(id) ? this.#peers.get(id) : undefined;
      if (address === undefined || this.#outbound.has(id)) continue;
      this.#outbound.set(id, new OutboundPeer(id, address, this.#ctx));
    }
    for (const [id, peer] of this.#outbound) peer.keepConnected(peers.has(id));
  }

  /** Replaces the peer set: links to removed peers close, moved peers are redialed. */
  setPeers(peers: ReadonlyMap<string, HostPort>): void {
    this.#peers = new Map(peers);
    for (const [id, peer] of this.#outbound) {
      const address = this.#ctx.isPeer(id) ? this.#peers.get(id) : undefined;
      if (address !== undefined) {
        peer.setAddress(address);
        continue;
      }
      this.#outbound.delete(id);
      this.#track(peer.close());
    }
    for (const [id, connection] of this.#inbound) {
      if (!this.#ctx.isPeer(id)) {
        this.#ctx.log("info", `Closing the connection of removed peer ${id}`, { peer: id });
        connection.close();
      }
    }
  }

  /** Counters (and gauges `queuedBytes`, `outboundConnected`, `inboundConnected`) for /metrics. */
  stats(): Readonly<Record<string, number>> {
    let queuedBytes = 0;
    let outboundConnected = 0;
    for (const peer of this.#outbound.values()) {
      queuedBytes += peer.queuedBytes;
      if (peer.connected) outboundConnected++;
    }
    return {
      ...this.#counters,
      queuedBytes,
      outboundConnected,
      inboundConnected: this.#inbound.size,
    };
  }

  /** Closes the listener and all connections, stops reconnecting; resolves when all is closed. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#listener?.close();
    this.#tlsListener?.close();
    this.#acceptSleeper.cancel();
    for (const connection of this.#accepted) connection.close();
    for (const peer of this.#outbound.values()) this.#track(peer.close());
    this.#outbound.clear();
    while (this.#tasks.size > 0) await Promise.all([...this.#tasks]);
  }

  /** The frame of `m`, or undefined (dropped, counted, logged) when it is too large. */
  #encode(m: Message): Uint8Array | undefined {
    try {
      return encodeFrame(encodeMessage(m), this.#ctx.frameBytesMax);
    } catch (error) {
      if (!(error instanceof FrameTooLargeError)) throw error;
      this.#counters.dropsTooLarge++;
      this.#ctx.log("error", `Dropped a ${m.type} message to ${m.to}: ${error.message}`, {
        peer: m.to,
      });
      return undefined;
    }
  }

  async #acceptLoop(listener: Deno.TcpListener): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.TcpConn | undefined;
      try {
        conn = await listener.accept();
        conn.setNoDelay(true);
        this.#accept(conn);
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource) return;
        try {
          conn?.close();
        } catch { /* already closed */ }
        // E.g. out of file descriptors: pause instead of spinning.
        this.#ctx.log("error", `Accepting a peer connection failed: ${describeError(error)}`);
        await this.#acceptSleeper.sleep(this.#ctx.reconnectDelayMs.max);
      }
    }
  }

  #accept(conn: ByteConn): void {
    if (this.#closed) {
      conn.close();
      return;
    }
    const connection = new FrameConnection(conn, this.#ctx);
    const host = (conn.remoteAddr as Deno.NetAddr).hostname;
    if (!this.#makeRoom()) {
      this.#counters.connectionsRefused++;
      this.#ctx.throttled.report(
        "too many handshakes",
        "warn",
        `Refused peer connection from ${connection.remote}: too many handshakes`,
        { remote: connection.remote },
      );
      connection.close();
      return;
    }
    const pending: PendingHandshake = { host, awaitingHello: true, evicted: undefined };
    this.#pending.set(connection, pending);
    this.#counters.connectionsAccepted++;
    this.#accepted.add(connection);
    let peerId: string | undefined;
    const authenticated = (peer: string) => {
      peerId = peer;
      this.#pending.delete(connection);
      this.#inbound.get(peer)?.close(); // the peer redialed: its old connection is dead to it
      this.#inbound.set(peer, connection);
    };
    const task = serveInbound(connection, {
      ...this.#ctx,
      helloTimeoutMs: this.#helloTimeoutMs,
      helloReceived: () => pending.awaitingHello = false,
      evicted: () => pending.evicted,
      authenticated,
    }).finally(() => {
      this.#accepted.delete(connection);
      this.#pending.delete(connection);
      if (peerId !== undefined && this.#inbound.get(peerId) === connection) {
        this.#inbound.delete(peerId);
      }
    });
    this.#track(task);
  }

  /**
   * Makes room for one more pending handshake: below {@linkcode HANDSHAKES_PENDING_MAX}
   * there is room; at it, the oldest handshake still waiting for its hello from the host with
   * the most such handshakes is evicted. False when every pending handshake has its hello
   * already (they finish soon): then the new connection is refused.
   */
  #makeRoom(): boolean {
    if (this.#pending.size < HANDSHAKES_PENDING_MAX) return true;
    const byHost = new Map<string, { count: number; oldest: FrameConnection }>();
    let heaviest: { count: number; oldest: FrameConnection } | undefined;
    for (const [connection, p] of this.#pending) {
      if (!p.awaitingHello) continue;
      let host = byHost.get(p.host);
      if (host === undefined) byHost.set(p.host, host = { count: 0, oldest: connection });
      host.count++;
      if (heaviest === undefined || host.count > heaviest.count) heaviest = host;
    }
    if (heaviest === undefined) return false;
    this.#evict(heaviest.oldest, `${this.#pending.size} handshakes pending`);
    return true;
  }

  #evict(connection: FrameConnection, why: string): void {
    const pending = this.#pending.get(connection)!;
    pending.evicted = `${why}; the oldest waiting for its hello is closed for a new connection`;
    this.#pending.delete(connection); // its slot is free now; it finishes (logs) on its own
    connection.close();
  }

  /** Keeps `task` for close() to await; it must never reject (the loops catch everything). */
  #track(task: Promise<void>): void {
    const tracked = task.catch((error) => {
      this.#ctx.log("error", "Transport task failed unexpectedly", { error: describeError(error) });
    }).finally(() => this.#tasks.delete(tracked));
    this.#tasks.add(tracked);
  }
}

/** An accepted connection in the handshake. */
interface PendingHandshake {
  /** The remote host (IP address). */
  readonly host: string;
  /** True until its hello frame has arrived. */
  awaitingHello: boolean;
  /** Why it was closed to make room, once it was. */
  evicted: string | undefined;
}

function checkOptions(options: TransportOptions): void {
  if (options.clusterId === "" || options.nodeId === "") {
    throw new RangeError("Invalid transport options: clusterId and nodeId must not be empty");
  }
  if (options.secret === "") {
    throw new RangeError("Invalid transport options: secret must not be empty when set");
  }
  const incarnation = options.incarnation;
  if (
    incarnation !== undefined &&
    (incarnation === "" || incarnation.length > INCARNATION_CHARS_MAX)
  ) {
    throw new RangeError(
      `Invalid transport options: incarnation must be 1..${INCARNATION_CHARS_MAX} characters`,
    );
  }
  const frameBytesMax = options.frameBytesMax ?? FRAME_BYTES_MAX;
  checkFrameBytesMax(frameBytesMax);
  const queueMax = options.sendQueueBytesMax ?? SEND_QUEUE_BYTES_MAX;
  if (!Number.isSafeInteger(queueMax) || queueMax < frameBytesMax + 4) {
    throw new RangeError(
      `Invalid sendQueueBytesMax: must hold one largest frame (${
        frameBytesMax + 4
      } bytes), got ${queueMax}`,
    );
  }
  const { min, max } = options.reconnectDelayMs ?? RECONNECT_DELAY_MS;
  if (!(min > 0 && min <= max && Number.isFinite(max))) {
    throw new RangeError(`Invalid reconnectDelayMs: need 0 < min <= max, got ${min}..${max}`);
  }
  const timeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  if (!(timeoutMs > 0 && Number.isFinite(timeoutMs))) {
    throw new RangeError(`Invalid handshakeTimeoutMs: must be > 0, got ${timeoutMs}`);
  }
  const helloMs = options.helloTimeoutMs ?? HELLO_TIMEOUT_MS;
  if (!(helloMs > 0 && Number.isFinite(helloMs))) {
    throw new RangeError(`Invalid helloTimeoutMs: must be > 0, got ${helloMs}`);
  }
}

/** The default log: warnings and errors to the console, the rest dropped. */
function consoleLog(level: string, message: string, fields?: Record<string, unknown>): void {
  if (level === "error") console.error(message, fields ?? "");
  else if (level === "warn") console.warn(message, fields ?? "");
}

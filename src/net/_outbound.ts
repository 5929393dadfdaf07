/**
 * The dialer's side: one long-lived outbound connection per peer, dialed lazily, redialed
 * with backoff, fed from a bounded queue by one writer loop.
 */

import type { HostPort } from "../config/mod.ts";
import { describeError, Signal, Sleeper } from "./_async.ts";
import { FrameConnection } from "./_connection.ts";
import type { LinkContext } from "./_context.ts";
import { decodeFrameBody, encodeFrame } from "./_frame.ts";
import {
  checkWelcome,
  encodeHello,
  HandshakeError,
  HELLO_VERSION,
  parseChallenge,
  parseWelcome,
  signHello,
} from "./_hello.ts";
import { isBadInput } from "./_inbound.ts";
import { dialTls } from "./_tls.ts";

/** Queued frames are joined into writes of at most this many bytes (a larger frame goes alone). */
export const WRITE_BATCH_BYTES_MAX = 4 * 1024 * 1024;

/**
 * A link that has failed for this long is reported as a warning (once per outage); shorter
 * outages, such as peers starting one after the other, are debug lines only.
 */
export const LINK_DOWN_WARN_MS = 10_000;

/** The peer answered the hello with a refusal, or its welcome is refused here. */
class PeerRefusedError extends Error {
  /** The reason, as the refusing side gave it. */
  readonly reason: string;
  constructor(message: string, reason: string) {
    super(message);
    this.name = "PeerRefusedError";
    this.reason = reason;
  }
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first), with "equal jitter": uniform
 * in `[c/2, c)` for a ceiling `c = min * 2^(attempt + 1)` capped at `max`; never below `min`.
 * So the first retry waits `min..2*min` and a long outage `max/2..max`.
 */
export function backoffDelayMs(
  attempt: number,
  options: { readonly min: number; readonly max: number; readonly random: () => number },
): number {
  const { min, max, random } = options;
  const ceiling = Math.min(max, min * 2 ** (Math.min(attempt, 32) + 1));
  return Math.max(min, ceiling * (0.5 + random() / 2));
}

/** The outbound link to one peer. */
export class OutboundPeer {
  /** The peer's node id. */
  readonly id: string;
  readonly #ctx: LinkContext;
  #address: HostPort;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  readonly #wake = new Signal();
  readonly #sleeper = new Sleeper();
  #connection: FrameConnection | undefined;
  #connected = false;
  #dialAbort: AbortController | undefined;
  #task: Promise<void> | undefined;
  #closed = false;
  #dials = 0;
  /** When the current outage began (performance.now()), or undefined while the link is up. */
  #downSinceMs: number | undefined;
  #warned = false;
  /** Dial (and redial) even with nothing to send: see {@linkcode OutboundPeer.keepConnected}. */
  #eager = false;

  /** Creates the link; nothing is dialed before the first frame is queued. */
  constructor(id: string, address: HostPort, ctx: LinkContext) {
    this.id = id;
    this.#address = address;
    this.#ctx = ctx;
  }

  /** Bytes of the frames waiting to be written. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Whether the connection is up (handshake sent). */
  get connected(): boolean {
    return this.#connected;
  }

  /** Queues a frame; false (dropped) when the queue would exceed its bound, or after close. */
  enqueue(frame: Uint8Array): boolean {
    if (this.#closed || this.#queuedBytes + frame.length > this.#ctx.sendQueueBytesMax) {
      return false;
    }
    this.#queue.push(frame);
    this.#queuedBytes += frame.length;
    this.#wake.notify(); // the writer resumes after the current turn: one write for the turn
    this.#task ??= this.#run();
    return true;
  }

  /**
   * With `eager`, the link is dialed now and redialed after failures even while nothing is
   * queued (to learn the peer's state from its welcome); without, only when frames wait.
   */
  keepConnected(eager: boolean): void {
    if (this.#closed || this.#eager === eager) return;
    this.#eager = eager;
    if (eager) {
      this.#wake.notify();
      this.#task ??= this.#run();
    }
  }

  /** Moves the peer to `address`: a live connection to the old one is closed and redialed. */
  setAddress(address: HostPort): void {
    if (address.host === this.#address.host && address.port === this.#address.port) return;
    this.#address = address;
    this.#dialAbort?.abort();
    this.#connection?.close();
    this.#sleeper.cancel();
    this.#wake.notify();
  }

  /** Closes the connection, stops redialing, drops the queue; resolves when all has stopped. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#dialAbort?.abort();
    this.#connection?.close();
    this.#sleeper.cancel();
    this.#wake.notify();
    await this.#task;
    this.#queue = [];
    this.#queuedBytes = 0;
  }

  async #run(): Promise<void> {
    try {
      let attempt = 0;
      while (!this.#closed) {
        if (this.#queue.length === 0 && !this.#eager) {
          await this.#wake.wait(); // idle: dial again only when there is something to send
          continue;
        }
        const connection = await this.#dial();
        if (connection !== undefined) {
          const started = performance.now();
          await this.#serve(connection);
          const livedMs = Math.round(performance.now() - started);
          // A connection that lived a while resets the backoff; one the peer drops at once
          // (e.g. a refused handshake) does not, so a refusing peer is not hammered.
          if (livedMs >= this.#ctx.reconnectDelayMs.max) {
            attempt = 0;
          } else if (!this.#closed && !this.#ctx.closing()) {
            this.#reportFailure(
              `the connection ended ${livedMs} ms after the hello (refused? check the cluster ` +
                `id and secret, and the peer's log)`,
            );
          }
        }
        if (this.#closed) break;
        const delayMs = backoffDelayMs(attempt++, {
          ...this.#ctx.reconnectDelayMs,
          random: this.#ctx.random,
        });
        await this.#sleeper.sleep(delayMs);
      }
    } catch (error) {
      this.#ctx.log("error", `Outbound link to peer ${this.id} failed unexpectedly`, {
        peer: this.id,
        error: describeError(error),
      });
    }
  }

  /** Connects and sends the hello within the handshake timeout; undefined on failure. */
  async #dial(): Promise<FrameConnection | undefined> {
    const ctx = this.#ctx;
    if (this.#dials++ > 0) ctx.counters.reconnects++;
    const { host, port } = this.#address;
    const abort = new AbortController();
    this.#dialAbort = abort;
    let connection: FrameConnection | undefined;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.abort();
      connection?.close();
    }, ctx.handshakeTimeoutMs);
    try {
      let conn: Deno.TcpConn | Awaited<ReturnType<typeof dialTls>>;
      if (ctx.tls === undefined) {
        conn = await Deno.connect({ hostname: host, port, signal: abort.signal });
        conn.setNoDelay(true);
      } else {
        conn = await dialTls(this.#address, ctx.tls, abort.signal);
      }
      connection = new FrameConnection(conn, ctx);
      this.#connection = connection;
      if (this.#closed || abort.signal.aborted) throw new Error("dial cancelled");
      await this.#handshake(connection);
      this.#connected = true;
      this.#noteUp();
      ctx.log("debug", `Connected to peer ${this.id} at ${host}:${port}`, { peer: this.id });
      return connection;
    } catch (error) {
      connection?.close();
      this.#connection = undefined;
      const cancelled = abort.signal.aborted && !timedOut; // closing, or the peer moved
      if (error instanceof PeerRefusedError && !this.#closed && !ctx.closing()) {
        ctx.refusals.report(this.id, error.reason, error.message);
        this.#reportFailure(error.message, { quiet: true });
      } else if (!cancelled && !this.#closed && !ctx.closing()) {
        const reason = timedOut
          ? `no handshake within ${ctx.handshakeTimeoutMs} ms`
          : describeError(error);
        ctx.peerState(this.id, { unreachable: reason });
        this.#reportFailure(reason);
      }
      return undefined;
    } finally {
      clearTimeout(timer);
      this.#dialAbort = undefined;
    }
  }

  /**
   * Logs a failed link: debug lines while the outage is short (peers start one after the
   * other), one warning once it has lasted {@linkcode LINK_DOWN_WARN_MS} (unless `quiet`:
   * a refusal has its own warning).
   */
  #reportFailure(reason: string, options: { quiet?: boolean } = {}): void {
    const now = performance.now();
    this.#downSinceMs ??= now;
    const downMs = now - this.#downSinceMs;
    const warn = !this.#warned && !options.quiet && downMs >= LINK_DOWN_WARN_MS;
    if (warn || options.quiet) this.#warned = true;
    const lasting = warn ? ` (down for ${Math.round(downMs / 1000)} s)` : "";
    this.#ctx.log(
      warn ? "warn" : "debug",
      `Cannot connect to peer ${this.id} at ${this.#address.text}: ${reason}${lasting}`,
      { peer: this.id },
    );
  }

  /** The link is up: ends the outage (with a line when it had been reported). */
  #noteUp(): void {
    if (this.#warned && this.#downSinceMs !== undefined) {
      const downMs = Math.round(performance.now() - this.#downSinceMs);
      this.#ctx.log("info", `Connected to peer ${this.id} again after ${downMs} ms`, {
        peer: this.id,
      });
    }
    this.#downSinceMs = undefined;
    this.#warned = false;
  }

  /**
   * The dialer's half of the handshake: answer the challenge (with a secret), send the hello,
   * then check the listener's welcome and its incarnation.
   */
  async #handshake(connection: FrameConnection): Promise<void> {
    const ctx = this.#ctx;
    const key = await ctx.key;
    const fields = {
      cluster: ctx.clusterId,
      from: ctx.nodeId,
      to: this.id,
      incarnation: ctx.incarnation,
      formed: ctx.formed(),
    };
    let nonce: Uint8Array | undefined;
    let mac: Uint8Array | undefined;
    if (key !== undefined) {
      const body = await connection.readBody();
      if (body === null) {
        throw new HandshakeError("the peer closed the connection before its challenge");
      }
      nonce = parseChallenge(decodeFrameBody(body));
      mac = await signHello(key, { ...fields, nonce });
    }
    const hello = encodeHello({ v: HELLO_VERSION, ...fields, nonce, mac });
    await connection.writeAll(encodeFrame(hello, ctx.frameBytesMax), 1);
    const body = await connection.readBody();
    if (body === null) {
      throw new HandshakeError("the peer closed the connection instead of welcoming the hello");
    }
    const welcome = parseWelcome(decodeFrameBody(body));
    const badMac = await checkWelcome(welcome, {
      key,
      fields: {
        cluster: ctx.clusterId,
        from: this.id,
        to: ctx.nodeId,
        nonce: nonce ?? new Uint8Array(),
      },
    });
    if (badMac !== undefined) throw new HandshakeError(badMac);
    if ("refused" in welcome) {
      ctx.peerState(this.id, { formed: true }); // only a member of a cluster refuses
      throw new PeerRefusedError(
        `Peer ${this.id} refuses this node: ${welcome.refused}`,
        welcome.refused,
      );
    }
    ctx.peerState(this.id, { formed: welcome.formed });
    const refused = ctx.verifyPeer(this.id, welcome.incarnation);
    if (refused !== undefined) {
      ctx.counters.connectionsRefused++;
      throw new PeerRefusedError(`Refusing peer ${this.id}: ${refused}`, refused);
    }
    ctx.refusals.clear(this.id);
    ctx.notePeer(this.id, welcome.incarnation);
  }

  /** Runs the writer and a watcher (the peer never sends on this connection) until it ends. */
  async #serve(connection: FrameConnection): Promise<void> {
    const watcher = this.#watch(connection);
    try {
      await this.#writeLoop(connection);
    } finally {
      connection.close();
      await watcher;
      this.#connected = false;
      this.#connection = undefined;
    }
  }

  async #writeLoop(connection: FrameConnection): Promise<void> {
    while (!this.#closed && !connection.closed) {
      if (this.#queue.length === 0) {
        await this.#wake.wait();
        continue;
      }
      const { bytes, frames } = this.#takeBatch();
      try {
        await connection.writeAll(bytes, frames);
        this.#ctx.counters.writes++;
      } catch (error) {
        this.#ctx.counters.dropsWriteFailed += frames; // Raft resends what matters
        if (!connection.closed && !this.#ctx.closing()) {
          this.#ctx.log("info", `Write to peer ${this.id} failed: ${describeError(error)}`, {
            peer: this.id,
          });
        }
        return;
      }
    }
  }

  /** Waits for the end of the connection: the peer closing it, or anything it sends. */
  async #watch(connection: FrameConnection): Promise<void> {
    const ctx = this.#ctx;
    try {
      const body = await connection.readBody();
      if (body === null) {
        ctx.log("debug", `Peer ${this.id} closed our connection`, { peer: this.id });
      } else if (!connection.closed) {
        ctx.counters.malformedFrames++;
        ctx.log("warn", `Peer ${this.id} sent a frame on our outbound connection; closing`, {
          peer: this.id,
        });
      }
    } catch (error) {
      if (!connection.closed && !ctx.closing()) {
        if (isBadInput(error)) ctx.counters.malformedFrames++;
        ctx.log("info", `Connection to peer ${this.id} failed: ${describeError(error)}`, {
          peer: this.id,
        });
      }
    } finally {
      connection.close();
      this.#wake.notify();
    }
  }

  /** Takes the queued frames (up to {@linkcode WRITE_BATCH_BYTES_MAX}) as one buffer. */
  #takeBatch(): { bytes: Uint8Array; frames: number } {
    let count = 0;
    let size = 0;
    while (
      count < this.#queue.length &&
      (count === 0 || size + this.#queue[count].length <= WRITE_BATCH_BYTES_MAX)
    ) {
      size += this.#queue[count].length;
      count++;
    }
    const taken = this.#queue.splice(0, count);
    this.#queuedBytes -= size;
    if (count === 1) return { bytes: taken[0], frames: 1 };
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const frame of taken) {
      bytes.set(frame, at);
      at += frame.length;
    }
    return { bytes, frames: count };
  }
}

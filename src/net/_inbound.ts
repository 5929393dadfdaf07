/**
 * The listener's side of a connection: handshake, then a loop that delivers the peer's
 * messages. Any bad input closes the connection with a logged reason; nothing escapes.
 */

import type { Message } from "../raft/mod.ts";
import { decodeMessage, MalformedMessageError } from "./_codec.ts";
import type { FrameConnection } from "./_connection.ts";
import type { LinkContext } from "./_context.ts";
import { describeError } from "./_async.ts";
import { decodeFrameBody, encodeFrame, FrameTooLargeError, MalformedFrameError } from "./_frame.ts";
import {
  checkHello,
  encodeChallenge,
  encodeWelcome,
  HandshakeError,
  type Hello,
  type HelloRefusal,
  newNonce,
  parseHello,
  signRefusal,
  signWelcome,
} from "./_hello.ts";

/** The transport as an inbound connection sees it. */
export interface InboundContext extends LinkContext {
  /** Time allowed from the accept to the complete hello. */
  readonly helloTimeoutMs: number;
  /** The hello arrived: the connection is no longer a candidate for eviction. */
  helloReceived(): void;
  /** Why the transport closed this connection before its hello, if it did. */
  evicted(): string | undefined;
  /** Called once the peer is authenticated: the transport tracks the connection by peer id. */
  authenticated(peer: string): void;
}

/**
 * Serves one accepted connection until it ends. Never rejects; always closes `connection`.
 */
export async function serveInbound(
  connection: FrameConnection,
  ctx: InboundContext,
): Promise<void> {
  try {
    const peer = await acceptHello(connection, ctx);
    if (peer === undefined) return;
    connection.authenticated(); // full-size frames from now on
    ctx.authenticated(peer);
    await receiveMessages(connection, peer, ctx);
  } catch (error) {
    ctx.log("error", "Inbound connection failed unexpectedly", {
      remote: connection.remote,
      error: describeError(error),
    });
  } finally {
    connection.close();
  }
}

/** A hello that {@linkcode checkHello} refused. */
class RefusedHelloError extends Error {
  readonly refusal: HelloRefusal;
  constructor(refusal: HelloRefusal) {
    super(refusal.reason);
    this.refusal = refusal;
  }
}

/** Runs the listener's half of the handshake; the peer's id, or undefined when refused. */
async function acceptHello(
  connection: FrameConnection,
  ctx: InboundContext,
): Promise<string | undefined> {
  let timedOut: string | undefined;
  const helloMs = Math.min(ctx.helloTimeoutMs, ctx.handshakeTimeoutMs);
  const expire = (reason: string) => () => {
    timedOut = reason;
    connection.close();
  };
  let timer = setTimeout(expire(`no hello within ${helloMs} ms`), helloMs);
  try {
    const key = await ctx.key;
    const nonce = key === undefined ? undefined : newNonce();
    if (nonce !== undefined) {
      await connection.writeAll(encodeFrame(encodeChallenge(nonce), ctx.frameBytesMax), 1);
    }
    const body = await connection.readBody();
    if (body === null) throw new HandshakeError("the peer closed the connection before its hello");
    ctx.helloReceived();
    clearTimeout(timer);
    timer = setTimeout(
      expire(`no handshake within ${ctx.handshakeTimeoutMs} ms`),
      ctx.handshakeTimeoutMs,
    );
    const hello = parseHello(decodeFrameBody(body));
    const refusal = await checkHello(hello, {
      clusterId: ctx.clusterId,
      nodeId: ctx.nodeId,
      isPeer: (id) => ctx.isPeer(id),
      key,
      nonce,
    });
    if (refusal !== undefined) throw new RefusedHelloError(refusal);
    ctx.peerState(hello.from, { formed: hello.formed }); // authenticated: worth believing
    if (!(await welcome(connection, hello, { ctx, key, nonce }))) return undefined;
    return hello.from;
  } catch (error) {
    if (ctx.closing()) return undefined;
    ctx.counters.connectionsRefused++;
    const evicted = ctx.evicted();
    const remote = connection.remote;
    if (evicted !== undefined) {
      ctx.throttled.report(
        "evicted",
        "warn",
        `Closed a pending peer handshake from ${remote}: ${evicted}`,
        { remote },
      );
    } else {
      const [kind, reason] = timedOut !== undefined
        ? ["handshake timeout", timedOut]
        : error instanceof RefusedHelloError
        ? [error.refusal.kind, error.refusal.reason]
        : error instanceof FrameTooLargeError
        ? ["oversized handshake frame", error.message]
        : isBadInput(error)
        ? ["malformed handshake", (error as Error).message]
        : ["handshake failed", describeError(error)];
      ctx.throttled.report(kind, "warn", `Refused peer connection from ${remote}: ${reason}`, {
        remote,
      });
    }
    connection.close();
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Asks whether the authenticated sender's incarnation is the one the cluster knows, then
 * answers with a welcome carrying this node's incarnation, or with the refusal (and closes).
 * The refusal on the wire is the fixed REFUSAL_REASON; the detailed reason is logged here.
 */
async function welcome(
  connection: FrameConnection,
  hello: Hello,
  options: { ctx: LinkContext; key: CryptoKey | undefined; nonce: Uint8Array | undefined },
): Promise<boolean> {
  const { ctx, key, nonce } = options;
  const names = { cluster: ctx.clusterId, from: ctx.nodeId, to: hello.from };
  const refused = ctx.verifyPeer(hello.from, hello.incarnation);
  if (refused !== undefined) {
    ctx.counters.connectionsRefused++;
    ctx.refusals.report(
      hello.from,
      refused,
      `Refusing peer ${hello.from}: ${refused}`,
    );
    const mac = key === undefined || nonce === undefined
      ? undefined
      : await signRefusal(key, { ...names, nonce });
    const frame = encodeWelcome({ refused: true, ...(mac ? { mac } : {}) });
    await connection.writeAll(encodeFrame(frame, ctx.frameBytesMax), 1)
      .catch(() => {}); // the dialer may be gone already; it is refused either way
    connection.close();
    return false;
  }
  const fields = { ...names, incarnation: ctx.incarnation, formed: ctx.formed() };
  const mac = key === undefined || nonce === undefined
    ? undefined
    : await signWelcome(key, { ...fields, nonce });
  const frame = encodeWelcome({
    incarnation: fields.incarnation,
    formed: fields.formed,
    ...(mac ? { mac } : {}),
  });
  await connection.writeAll(encodeFrame(frame, ctx.frameBytesMax), 1);
  // The refusal episode ends with the first message, not here: the dialer may still refuse
  // this welcome, and clearing now would warn again on every redial.
  ctx.notePeer(hello.from, hello.incarnation);
  return true;
}

/** Delivers the peer's messages until the connection ends or carries something invalid. */
async function receiveMessages(
  connection: FrameConnection,
  peer: string,
  ctx: LinkContext,
): Promise<void> {
  let first = true;
  try {
    while (true) {
      const body = await connection.readBody();
      if (connection.closed) return; // closed meanwhile (replaced, removed, shut down)
      if (body === null) {
        ctx.log("debug", `Peer ${peer} closed its connection`, { peer });
        return;
      }
      const m = decodeMessage(decodeFrameBody(body));
      if (m.from !== peer || m.to !== ctx.nodeId) {
        throw new MalformedMessageError(
          `${m.type} from ${m.from} to ${m.to} on the connection of ${peer} to ${ctx.nodeId}`,
        );
      }
      if (first) {
        first = false;
        ctx.refusals.clear(peer); // the dialer accepted our welcome: the link works
      }
      if (!deliver(m, ctx, connection)) return;
    }
  } catch (error) {
    if (connection.closed || ctx.closing()) return; // closed on purpose: replaced or shut down
    if (isBadInput(error)) {
      ctx.counters.malformedFrames++;
      ctx.log("warn", `Closing the connection of peer ${peer}: ${(error as Error).message}`, {
        peer,
        remote: connection.remote,
      });
    } else {
      ctx.log("info", `Connection of peer ${peer} failed: ${describeError(error)}`, { peer });
    }
  }
}

/** Hands `m` over; false (connection closed) when the handler throws: that is its bug. */
function deliver(m: Message, ctx: LinkContext, connection: FrameConnection): boolean {
  try {
    ctx.deliver(m);
    return true;
  } catch (error) {
    ctx.log("error", `onMessage threw for a ${m.type} message from ${m.from}; closing`, {
      error: describeError(error),
    });
    connection.close();
    return false;
  }
}

/** Errors caused by what the peer sent (as opposed to I/O errors). */
export function isBadInput(error: unknown): boolean {
  return error instanceof MalformedFrameError || error instanceof FrameTooLargeError ||
    error instanceof MalformedMessageError || error instanceof HandshakeError;
}

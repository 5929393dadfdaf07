/**
 * The peer transport over mutual TLS (`node:tls`): both ends present a certificate signed by
 * the deployment's CA and verify the other's, and the dialer checks that the listener's
 * certificate names the address it dialed. Deno 2.9.6's `node:tls` server honours
 * `requestCert` / `rejectUnauthorized` / `ca` (denoland/deno#33439): a dialer without a
 * certificate, or with one from another CA, fails the handshake. `Deno.listenTls` cannot
 * verify client certificates, and `Deno.connectTls` sets no TCP_NODELAY (Nagle would hold
 * back the small frames of Raft), so both ends use `node:tls`, whose sockets are adapted to
 * the `read`/`write`/`close` of a `Deno.Conn` here. The plain transport does not touch this.
 *
 * @module
 */

import { connect as tlsConnect, createServer, type TLSSocket } from "node:tls";
import type { Server } from "node:tls";
import type { Socket } from "node:net";
import type { HostPort, TlsMaterial } from "../config/mod.ts";

/** What a FrameConnection needs of a connection: the part of `Deno.Conn` it uses. */
export interface ByteConn {
  /** Reads into `p`; the byte count, or null at the end of the stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes (part of) `p`; the byte count. */
  write(p: Uint8Array): Promise<number>;
  /** Closes the connection; pending reads and writes reject. */
  close(): void;
  /** The other end. */
  readonly remoteAddr: Deno.Addr;
}

/** Received bytes buffered per connection before the socket is paused (backpressure). */
export const TLS_READ_BUFFER_BYTES_MAX = 1 << 20;

/** A `node:tls` socket as a {@linkcode ByteConn}. */
export class TlsSocketConn implements ByteConn {
  readonly remoteAddr: Deno.NetAddr;
  readonly #socket: TLSSocket;
  readonly #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #closed = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  /** Wraps a connected (handshake done) socket and starts reading from it. */
  constructor(socket: TLSSocket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    this.remoteAddr = {
      transport: "tcp",
      hostname: socket.remoteAddress ?? "unknown",
      port: socket.remotePort ?? 0,
    };
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered >= TLS_READ_BUFFER_BYTES_MAX) socket.pause();
      this.#notify();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on("error", (error: Error) => {
      this.#error ??= error;
      this.#notify();
    });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Copies buffered bytes into `p`, waiting for some; null once the peer ended the stream. */
  async read(p: Uint8Array): Promise<number | null> {
    while (this.#buffered === 0) {
      if (this.#closed) throw new Deno.errors.BadResource("The connection is closed");
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    let n = 0;
    while (n < p.length && this.#chunks.length > 0) {
      const chunk = this.#chunks[0];
      const take = Math.min(chunk.length, p.length - n);
      p.set(chunk.subarray(0, take), n);
      n += take;
      if (take === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    this.#buffered -= n;
    if (this.#socket.isPaused() && this.#buffered < TLS_READ_BUFFER_BYTES_MAX / 2) {
      this.#socket.resume();
    }
    return n;
  }

  /** Writes all of `p` (the socket buffers it); resolves once it is handed to the kernel. */
  write(p: Uint8Array): Promise<number> {
    if (this.#closed) {
      return Promise.reject(new Deno.errors.BadResource("The connection is closed"));
    }
    return new Promise((resolve, reject) => {
      this.#socket.write(p, (error?: Error | null) => {
        if (error) reject(error);
        else resolve(p.length);
      });
    });
  }

  /** Destroys the socket; a pending read rejects. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    this.#notify();
  }
}

/**
 * Dials `address` over TLS with this node's certificate; resolves once the handshake verified
 * the listener's certificate (chain to the CA, and the dialed host in its names). Rejects on
 * a failed handshake, or when `signal` aborts.
 */
export function dialTls(
  address: HostPort,
  tls: TlsMaterial,
  signal: AbortSignal,
): Promise<TlsSocketConn> {
  return new Promise((resolve, reject) => {
    const isIp = /^[\d.]+$/.test(address.host) || address.host.includes(":");
    const socket = tlsConnect({
      host: address.host,
      port: address.port,
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      ...(isIp ? {} : { servername: address.host }),
    });
    const onAbort = () => {
      socket.destroy();
      reject(signal.reason ?? new Error("dial cancelled"));
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    const fail = (error: Error) => {
      signal.removeEventListener("abort", onAbort);
      socket.destroy();
      reject(
        new Error(`TLS handshake with ${address.text} failed: ${error.message}`, { cause: error }),
      );
    };
    socket.once("error", fail);
    socket.once("secureConnect", () => {
      signal.removeEventListener("abort", onAbort);
      socket.off("error", fail);
      resolve(new TlsSocketConn(socket));
    });
  });
}

/** Options of {@linkcode listenTls}. */
export interface TlsListenOptions {
  /** Where to listen. */
  readonly listen: HostPort;
  /** This node's certificate and key, and the CA the dialers' certificates must chain to. */
  readonly tls: TlsMaterial;
  /** Time a connection has to complete the TLS handshake. */
  readonly handshakeTimeoutMs: number;
  /** TLS handshakes in progress, at most: beyond, the oldest is closed for the new one. */
  readonly handshakesMax: number;
  /** Called with each connection whose dialer presented a certificate of the CA. */
  onConnection(conn: TlsSocketConn): void;
  /** Called for each connection refused in the TLS handshake (wrong CA, no certificate, ...). */
  onRefused(remote: string, reason: string): void;
}

/** A listening mutual-TLS server of the peer port. */
export interface TlsPeerListener {
  /** The bound port. */
  readonly port: number;
  /** Stops listening (connections already handed over are not closed here). */
  close(): void;
}

/**
 * Listens for peers over mutual TLS: a connection reaches `onConnection` only after its
 * dialer proved a certificate of the deployment's CA. Rejects with the listen error.
 */
export async function listenTls(options: TlsListenOptions): Promise<TlsPeerListener> {
  const { tls } = options;
  const server: Server = createServer({
    cert: tls.cert,
    key: tls.key,
    ca: tls.ca,
    requestCert: true,
    rejectUnauthorized: true,
    handshakeTimeout: options.handshakeTimeoutMs,
  });
  // Raw connections still in the TLS handshake, oldest first: a flood of stalled handshakes
  // evicts the oldest rather than piling up until the handshake timeout.
  const handshaking = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    handshaking.add(socket);
    socket.once("close", () => handshaking.delete(socket));
    if (handshaking.size > options.handshakesMax) {
      const oldest = handshaking.values().next().value!;
      handshaking.delete(oldest);
      oldest.destroy();
    }
  });
  server.on("secureConnection", (socket: TLSSocket) => {
    for (const raw of handshaking) {
      if (raw.remotePort === socket.remotePort && raw.remoteAddress === socket.remoteAddress) {
        handshaking.delete(raw);
        break;
      }
    }
    // rejectUnauthorized refused the others already; checked again because it is the point.
    if (!socket.authorized) {
      options.onRefused(remoteOf(socket), String(socket.authorizationError ?? "unauthorized"));
      socket.destroy();
      return;
    }
    options.onConnection(new TlsSocketConn(socket));
  });
  server.on("tlsClientError", (error: Error, socket: TLSSocket) => {
    options.onRefused(remoteOf(socket), error.message);
    socket.destroy();
  });
  server.on("error", () => {}); // listen errors reject below; later ones close the server
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.listen.port, options.listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.listen.port;
  return {
    port,
    close: () => {
      server.close();
      for (const raw of handshaking) raw.destroy();
      handshaking.clear();
    },
  };
}

interface Remote {
  remoteAddress?: string;
  remotePort?: number;
  /** The raw socket under a TLS socket (Node's internal name): it still knows the peer. */
  _parent?: Remote;
}

/** "host:port" of a socket's peer; after a failed handshake only the raw socket knows it. */
function remoteOf(socket: Remote): string {
  const known = socket.remoteAddress !== undefined ? socket : socket._parent ?? socket;
  const host = known.remoteAddress ?? "unknown";
  return `${host.includes(":") ? `[${host}]` : host}:${known.remotePort ?? 0}`;
}

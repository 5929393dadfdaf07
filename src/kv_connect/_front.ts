/**
 * The KV Connect listener's front door: `Deno.serve` in Deno 2.9.6 has no bound on connections,
 * no deadline for a first request, and its accept loop dies for good when the process runs out
 * of file descriptors; `Deno.listenTls` cannot close a connection whose handshake has not
 * finished (`close()` leaves the TCP socket open until the peer goes). So the public address is
 * a plain TCP listener of koi's own, which
 *
 * - bounds open connections in all ({@linkcode frontConnectionsMax}: at most
 *   {@linkcode FRONT_CONNECTIONS_MAX}, fewer when the soft limit of file descriptors is low) and
 *   per remote address ({@linkcode FRONT_CONNECTIONS_PER_ADDRESS_MAX}; IPv6 per /64): when all are
 *   taken, the connection silent for longest is closed to let the new one in; one more from an
 *   address at its bound is closed at once;
 * - opens the connection to `Deno.serve` only once the client sent its first bytes (a silent
 *   connection costs one file descriptor, a served one three);
 * - closes a connection that sends nothing for {@linkcode FRONT_FIRST_BYTE_MS} after it opened,
 *   that has not finished its TLS handshake within {@linkcode FRONT_HANDSHAKE_MS}, or that is
 *   silent both ways for {@linkcode FRONT_IDLE_MS}, or whose client's bytes got nothing back
 *   for {@linkcode FRONT_UNANSWERED_MS} (request headers dripped in);
 * - terminates TLS itself (`node:tls` over the accepted TCP connection, ALPN `h2` and
 *   `http/1.1`), so that closing a connection closes its socket, handshake or not;
 * - bounds the HTTP/2 streams open at once per connection
 *   ({@linkcode FRONT_STREAMS_PER_CONNECTION_MAX}, which it advertises in the server's SETTINGS)
 *   and per remote address ({@linkcode FRONT_STREAMS_PER_ADDRESS_MAX}): a connection that opens
 *   one more is closed;
 * - keeps accepting after an accept error (out of file descriptors: it waits and tries again);
 *
 * and relays each connection's bytes to `Deno.serve` on a Unix socket in a private directory,
 * which detects HTTP/2 with prior knowledge or HTTP/1.1 itself.
 *
 * @module
 */

import { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";

/** Open connections, at most, whatever the file descriptors allow. */
export const FRONT_CONNECTIONS_MAX = 1024;
/** Open connections from one remote address (IPv6: one /64), at most (Deno's client uses one). */
export const FRONT_CONNECTIONS_PER_ADDRESS_MAX = 64;
/** A new connection must send its first bytes within this many ms. */
export const FRONT_FIRST_BYTE_MS = 10_000;
/** A TLS connection must finish its handshake within this many ms of being accepted. */
export const FRONT_HANDSHAKE_MS = 10_000;
/** A connection silent both ways this long is closed (a watch sends a keep-alive every 5 s). */
export const FRONT_IDLE_MS = 120_000;
/**
 * A connection whose client sent bytes that got nothing back for this long is closed: a
 * request whose head (or HTTP/2 frame) drips in a byte now and then is never answered, while
 * every whole request gets its answer (or the listener's 503/408) within 15 s, and a watch a
 * keep-alive every 5 s.
 */
export const FRONT_UNANSWERED_MS = 20_000;
/** How long the accept loop waits after an accept error before it accepts again. */
export const FRONT_ACCEPT_RETRY_MS = 200;
/**
 * File descriptors a served connection costs: the client's socket, the front's connection to
 * the Unix socket, and `Deno.serve`'s end of it.
 */
export const FRONT_FDS_PER_CONNECTION = 3;
/**
 * File descriptors left to the rest of the admin (its HTTP server and clients, the nodes' pipes,
 * files, the runtime's own) when the connection bound is derived from the soft limit.
 */
export const FRONT_FD_RESERVE = 256;
/** The soft limit of file descriptors assumed when `/proc/self/limits` cannot be read. */
export const FRONT_FD_LIMIT_FALLBACK = 1024;
/** HTTP/2 streams open at once on one connection, at most (advertised to the client). */
export const FRONT_STREAMS_PER_CONNECTION_MAX = 128;
/** HTTP/2 streams open at once over all connections from one remote address, at most. */
export const FRONT_STREAMS_PER_ADDRESS_MAX = 256;
/** Bytes read at once from either side. */
const RELAY_CHUNK_BYTES = 64 * 1024;

/** The soft limit in the text of `/proc/self/limits` ("Max open files"), or undefined. */
export function parseFdSoftLimit(limits: string): number | undefined {
  const line = limits.split("\n").find((l) => l.startsWith("Max open files"));
  const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
  if (soft === undefined) return undefined;
  if (soft === "unlimited") return Number.MAX_SAFE_INTEGER;
  const n = Number(soft);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** This process's soft limit of open files (Linux); {@linkcode FRONT_FD_LIMIT_FALLBACK} else. */
export function fdSoftLimit(): number {
  try {
    return parseFdSoftLimit(Deno.readTextFileSync("/proc/self/limits")) ??
      FRONT_FD_LIMIT_FALLBACK;
  } catch {
    return FRONT_FD_LIMIT_FALLBACK;
  }
}

/**
 * The bound on open connections for a soft limit of `softLimit` file descriptors: as many as fit
 * beside {@linkcode FRONT_FD_RESERVE} at {@linkcode FRONT_FDS_PER_CONNECTION} each, at most
 * {@linkcode FRONT_CONNECTIONS_MAX}, at least 1 (1024 files: 256 connections).
 */
export function frontConnectionsMax(softLimit: number = fdSoftLimit()): number {
  const fit = Math.floor((softLimit - FRONT_FD_RESERVE) / FRONT_FDS_PER_CONNECTION);
  return Math.max(1, Math.min(FRONT_CONNECTIONS_MAX, fit));
}

/**
 * What the per-address bounds count by: the IPv4 address, or the /64 of an IPv6 one (a single
 * host commonly has a whole /64); an IPv4-mapped IPv6 address counts as its IPv4 address.
 */
export function addressKey(hostname: string): string {
  const host = hostname.replace(/^\[|\]$/g, "").replace(/%.*$/, "").toLowerCase();
  if (!host.includes(":")) return host;
  const mapped = /^(?:0*:)*:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host) ??
    /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
  if (mapped !== null) return mapped[1];
  // Expand "::" to the missing groups (an embedded IPv4 tail counts as two).
  const [head, tail] = host.includes("::") ? host.split("::") : [host, undefined];
  const groups = (s: string | undefined) => (s === undefined || s === "" ? [] : s.split(":"));
  const left = groups(head);
  const right = groups(tail);
  const width = (gs: string[]) => gs.reduce((n, g) => n + (g.includes(".") ? 2 : 1), 0);
  const missing = tail === undefined ? 0 : 8 - width(left) - width(right);
  const all = [...left, ...Array(Math.max(0, missing)).fill("0"), ...right];
  return all.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(":") + "::/64";
}

/** Options of {@linkcode listenFront}. */
export interface FrontOptions {
  readonly hostname: string;
  readonly port: number;
  /** Terminate TLS here (with ALPN h2 and http/1.1). */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** The Unix socket `Deno.serve` listens on. */
  readonly upstream: string;
  /** Default {@linkcode frontConnectionsMax} of this process's soft limit. */
  readonly connectionsMax?: number;
  readonly connectionsPerAddressMax?: number;
  readonly firstByteMs?: number;
  readonly handshakeMs?: number;
  readonly idleMs?: number;
  /** Default {@linkcode FRONT_UNANSWERED_MS}. */
  readonly unansweredMs?: number;
  readonly streamsPerConnectionMax?: number;
  readonly streamsPerAddressMax?: number;
  /** Told of accept errors (at most one report per second). */
  readonly onError?: (message: string, error: unknown) => void;
}

/** A running front. */
export interface Front {
  /** The bound port. */
  readonly port: number;
  /** The bound on open connections in force. */
  readonly connectionsMax: number;
  /** Connections open now. */
  readonly connections: number;
  /** Connections to `Deno.serve` open now (one per connection that sent bytes). */
  readonly upstreams: number;
  /** Connections closed at once because their address was at its bound. */
  readonly refused: number;
  /** Connections closed, silent for longest, to let a new one in when all were taken. */
  readonly evicted: number;
  /** Connections closed because they opened more HTTP/2 streams than their bound. */
  readonly streamsRefused: number;
  /** Connections closed because their client's bytes got no answer in time. */
  readonly unansweredClosed: number;
  /** Stops accepting new connections; open ones go on. */
  stopAccepting(): void;
  /** Stops accepting and closes every connection. */
  close(): void;
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch { /* closed already */ }
}

async function writeAll(to: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await to.write(bytes.subarray(at));
}

/** One side of a relay: the client (plain or through TLS) or `Deno.serve`. */
interface Side {
  read(): Promise<Uint8Array | null>;
  write(bytes: Uint8Array): Promise<void>;
}

function connSide(conn: Deno.Conn, onBytes: () => void): Side {
  const buf = new Uint8Array(RELAY_CHUNK_BYTES);
  return {
    read: async () => {
      const n = await conn.read(buf);
      if (n === null) return null;
      onBytes();
      return buf.subarray(0, n);
    },
    write: async (bytes) => {
      await writeAll(conn, bytes);
      onBytes();
    },
  };
}

/**
 * A `node:stream` Duplex over the accepted TCP connection, for `node:tls` to run the server side
 * of TLS on; destroying it closes the socket (what `Deno.listenTls` cannot do mid-handshake).
 */
function rawDuplex(conn: Deno.Conn, onBytes: () => void): Duplex {
  let reading = false;
  return new Duplex({
    read() {
      if (reading) return;
      reading = true;
      const buf = new Uint8Array(RELAY_CHUNK_BYTES);
      conn.read(buf).then((n) => {
        reading = false;
        if (n === null) this.push(null);
        else {
          onBytes();
          this.push(buf.subarray(0, n));
        }
      }, (error) => {
        reading = false;
        this.destroy(error);
      });
    },
    write(chunk: Uint8Array, _encoding, callback) {
      writeAll(conn, chunk).then(() => (onBytes(), callback()), (error) => callback(error));
    },
    final(callback) {
      conn.closeWrite().then(() => callback(), () => callback());
    },
    destroy(error, callback) {
      closeQuietly(conn);
      callback(error);
    },
  });
}

function tlsSide(tls: TLSSocket): Side {
  const chunks = tls[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  return {
    read: async () => {
      const next = await chunks.next();
      return next.done ? null : next.value;
    },
    write: (bytes) =>
      new Promise<void>((resolve, reject) =>
        tls.write(bytes, (error) => (error ? reject(error) : resolve()))
      ),
  };
}

const H2_PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const H2_DATA = 0x0;
const H2_HEADERS = 0x1;
const H2_RST_STREAM = 0x3;
const H2_CONTINUATION = 0x9;
const H2_SETTINGS = 0x4;
const H2_END_STREAM = 0x1;
const H2_ACK = 0x1;
const H2_SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;

/** Reads HTTP/2 frame headers out of a byte stream cut anywhere; payloads are skipped. */
class FrameScanner {
  readonly #head = new Uint8Array(9);
  #headLength = 0;
  #skip = 0;
  constructor(readonly onFrame: (type: number, flags: number, stream: number) => void) {}
  /** Whether the bytes fed so far end inside a frame (its head or its payload). */
  get midFrame(): boolean {
    return this.#headLength > 0 || this.#skip > 0;
  }
  feed(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, bytes.length - at);
        this.#skip -= n;
        at += n;
        continue;
      }
      const n = Math.min(9 - this.#headLength, bytes.length - at);
      this.#head.set(bytes.subarray(at, at + n), this.#headLength);
      this.#headLength += n;
      at += n;
      if (this.#headLength < 9) continue;
      const h = this.#head;
      this.#headLength = 0;
      this.#skip = (h[0] << 16) | (h[1] << 8) | h[2];
      this.onFrame(h[3], h[4], ((h[5] & 0x7f) << 24 | h[6] << 16 | h[7] << 8 | h[8]) >>> 0);
    }
  }
}

/**
 * The HTTP/2 streams of one connection, seen from both directions: a stream is open from the
 * client's HEADERS until the server ended it (END_STREAM) or either side reset it. `Deno.serve`
 * takes 200 streams per connection and cannot be told fewer, so the front lowers the
 * MAX_CONCURRENT_STREAMS of the server's first SETTINGS (a client such as Deno's honours it) and
 * closes a connection that goes beyond it anyway.
 */
class H2Streams {
  #mode: "unknown" | "h2" | "other" = "unknown";
  #prefaceSeen = 0;
  #highest = 0;
  readonly open = new Set<number>();
  #exceeded = false;
  readonly #client = new FrameScanner((type, _flags, stream) => this.#fromClient(type, stream));
  readonly #server = new FrameScanner((type, flags, stream) =>
    this.#fromServer(type, flags, stream)
  );
  #serverHead: Uint8Array | undefined = new Uint8Array(0);
  #asking = false;

  constructor(readonly max: number, readonly onChange: (delta: number) => boolean) {}

  /**
   * Whether the client's last bytes wait for an answer: any bytes but HTTP/2's, and of HTTP/2
   * a request's frames (HEADERS, CONTINUATION, DATA) or a frame not yet whole. A client's
   * WINDOW_UPDATE or SETTINGS ACK gets none, so an idle HTTP/2 connection whose last frames
   * were those is idle, not unanswered.
   */
  get awaitsAnswer(): boolean {
    return this.#mode !== "h2" || this.#asking || this.#client.midFrame;
  }

  /** Whether the connection stays within its bound after these client bytes. */
  client(bytes: Uint8Array): boolean {
    this.#asking = false;
    if (this.#mode === "other") return true;
    let at = 0;
    if (this.#mode === "unknown") {
      while (at < bytes.length && this.#prefaceSeen < H2_PREFACE.length) {
        if (bytes[at] !== H2_PREFACE[this.#prefaceSeen]) {
          this.#mode = "other";
          this.#serverHead = undefined;
          return true;
        }
        at++;
        this.#prefaceSeen++;
      }
      if (this.#prefaceSeen < H2_PREFACE.length) return true;
      this.#mode = "h2";
    }
    this.#client.feed(bytes.subarray(at));
    return !this.#exceeded;
  }

  /** The server's bytes to send on: its first SETTINGS frame with the lowered stream bound. */
  server(bytes: Uint8Array): Uint8Array {
    if (this.#mode !== "h2") return bytes;
    if (this.#serverHead === undefined) {
      this.#server.feed(bytes);
      return bytes;
    }
    const head = new Uint8Array(this.#serverHead.length + bytes.length);
    head.set(this.#serverHead);
    head.set(bytes, this.#serverHead.length);
    if (head.length < 9) return (this.#serverHead = head, new Uint8Array(0));
    const length = (head[0] << 16) | (head[1] << 8) | head[2];
    if (head[3] !== H2_SETTINGS || (head[4] & H2_ACK) !== 0) {
      this.#serverHead = undefined; // not the expected first SETTINGS: leave it alone
      this.#server.feed(head);
      return head;
    }
    if (head.length < 9 + length) return (this.#serverHead = head, new Uint8Array(0));
    this.#serverHead = undefined;
    const entries: Array<[number, number]> = [];
    const view = new DataView(head.buffer, head.byteOffset + 9, length);
    for (let at = 0; at + 6 <= length; at += 6) {
      entries.push([view.getUint16(at), view.getUint32(at + 2)]);
    }
    const bound = entries.find(([id]) => id === H2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (bound === undefined) entries.push([H2_SETTINGS_MAX_CONCURRENT_STREAMS, this.max]);
    else bound[1] = Math.min(bound[1], this.max);
    const rest = head.subarray(9 + length);
    const out = new Uint8Array(9 + entries.length * 6 + rest.length);
    const o = new DataView(out.buffer);
    o.setUint32(0, (entries.length * 6) << 8 | H2_SETTINGS); // 24-bit length, type
    out[4] = head[4];
    out.set(head.subarray(5, 9), 5);
    entries.forEach((
      [id, value],
      i,
    ) => (o.setUint16(9 + i * 6, id), o.setUint32(11 + i * 6, value)));
    out.set(rest, 9 + entries.length * 6);
    this.#server.feed(rest);
    return out;
  }

  #fromClient(type: number, stream: number): void {
    if (type === H2_HEADERS || type === H2_CONTINUATION || type === H2_DATA) this.#asking = true;
    if (type === H2_HEADERS && stream > this.#highest && stream % 2 === 1) {
      this.#highest = stream;
      this.open.add(stream);
      const withinAddress = this.onChange(1);
      if (this.open.size > this.max || !withinAddress) this.#exceeded = true;
    } else if (type === H2_RST_STREAM) this.#end(stream);
  }

  #fromServer(type: number, flags: number, stream: number): void {
    if (type === H2_RST_STREAM) this.#end(stream);
    else if ((type === H2_HEADERS || type === H2_DATA) && (flags & H2_END_STREAM) !== 0) {
      this.#end(stream);
    }
  }

  #end(stream: number): void {
    if (this.open.delete(stream)) this.onChange(-1);
  }
}

interface Entry {
  readonly key: string;
  readonly opened: number;
  last: number;
  sawBytes: boolean;
  /** When the client sent its first bytes since the server last sent any; undefined: none. */
  unanswered: number | undefined;
  handshaking: boolean;
  upstream: Deno.Conn | undefined;
  readonly close: () => void;
}

/** Listens on the public address; throws `Deno.errors.AddrInUse` when it is taken. */
export function listenFront(options: FrontOptions): Front {
  const connectionsMax = options.connectionsMax ?? frontConnectionsMax();
  const perAddressMax = options.connectionsPerAddressMax ?? FRONT_CONNECTIONS_PER_ADDRESS_MAX;
  const firstByteMs = options.firstByteMs ?? FRONT_FIRST_BYTE_MS;
  const handshakeMs = options.handshakeMs ?? FRONT_HANDSHAKE_MS;
  const idleMs = options.idleMs ?? FRONT_IDLE_MS;
  const unansweredMs = options.unansweredMs ?? FRONT_UNANSWERED_MS;
  const streamsMax = options.streamsPerConnectionMax ?? FRONT_STREAMS_PER_CONNECTION_MAX;
  const streamsPerAddressMax = options.streamsPerAddressMax ?? FRONT_STREAMS_PER_ADDRESS_MAX;
  const tls = options.tls;
  // Plain TCP even for TLS: see the module's comment.
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const open = new Map<Deno.Conn, Entry>();
  const perAddress = new Map<string, number>();
  const streamsPerAddress = new Map<string, number>();
  let upstreams = 0;
  let refused = 0;
  let evicted = 0;
  let streamsRefused = 0;
  let unanswered = 0;
  let closed = false;
  let lastReport = 0;

  // One timer for every connection's deadlines.
  const watchdog = setInterval(() => {
    const now = Date.now();
    for (const entry of open.values()) {
      const quiet = now - entry.last;
      const stuck = entry.unanswered !== undefined && now - entry.unanswered >= unansweredMs;
      if (stuck) unanswered++;
      if (
        stuck || (!entry.sawBytes && quiet >= firstByteMs) || quiet >= idleMs ||
        (entry.handshaking && now - entry.opened >= handshakeMs)
      ) entry.close();
    }
  }, Math.max(10, Math.min(1_000, firstByteMs / 4, handshakeMs / 4, unansweredMs / 4)));
  Deno.unrefTimer(watchdog);

  const relay = async (client: Deno.Conn, entry: Entry, tlsSocket?: TLSSocket) => {
    const touch = () => (entry.last = Date.now());
    const h2 = new H2Streams(streamsMax, (delta) => {
      const n = (streamsPerAddress.get(entry.key) ?? 0) + delta;
      if (n <= 0) streamsPerAddress.delete(entry.key);
      else streamsPerAddress.set(entry.key, n);
      return n <= streamsPerAddressMax;
    });
    try {
      let from: Side;
      if (tlsSocket === undefined) {
        from = connSide(client, () => (touch(), entry.sawBytes = true));
      } else {
        await new Promise<void>((resolve, reject) => {
          tlsSocket.once("secure", resolve);
          tlsSocket.once("error", reject);
          tlsSocket.once("close", () => reject(new Error("closed in the handshake")));
        });
        entry.handshaking = false;
        from = tlsSide(tlsSocket);
      }
      const first = await from.read();
      if (first === null) return;
      const asked = () => {
        if (h2.awaitsAnswer) entry.unanswered ??= Date.now();
      };
      const within = h2.client(first);
      asked();
      if (!within) {
        streamsRefused++;
        return;
      }
      // Only now the connection to Deno.serve (two more file descriptors).
      const upstream = await Deno.connect({ transport: "unix", path: options.upstream });
      upstreams++;
      entry.upstream = upstream;
      if (open.get(client) !== entry) return; // closed meanwhile (finally closes upstream)
      const to = connSide(upstream, touch);
      await to.write(first);
      const up = (async () => {
        for (;;) {
          const bytes = await from.read();
          if (bytes === null) return true;
          const within = h2.client(bytes);
          asked();
          if (!within) {
            streamsRefused++;
            return false;
          }
          await to.write(bytes);
        }
      })();
      const down = (async () => {
        for (;;) {
          const bytes = await to.read();
          if (bytes === null) break;
          const out = h2.server(bytes);
          if (out.length === 0) continue;
          entry.unanswered = undefined;
          await from.write(out);
        }
      })();
      // The client's end of input is passed on (the answer still comes back); the server's end,
      // a failure either way, or a refused stream ends the connection.
      await Promise.race([
        up.then(async (eof) => {
          if (!eof) return;
          await upstream.closeWrite().catch(() => {});
          await down;
        }),
        down,
      ]);
    } catch {
      /* either side went away, or the handshake failed */
    } finally {
      entry.close();
      if (entry.upstream !== undefined) {
        closeQuietly(entry.upstream);
        upstreams--;
      }
      if (h2.open.size > 0) {
        const n = (streamsPerAddress.get(entry.key) ?? 0) - h2.open.size;
        if (n <= 0) streamsPerAddress.delete(entry.key);
        else streamsPerAddress.set(entry.key, n);
      }
    }
  };

  const admit = (conn: Deno.Conn) => {
    const key = addressKey((conn.remoteAddr as Deno.NetAddr).hostname ?? "");
    const fromAddress = perAddress.get(key) ?? 0;
    if (fromAddress >= perAddressMax) {
      refused++;
      closeQuietly(conn);
      return;
    }
    if (open.size >= connectionsMax) {
      // All taken: the connection silent for longest goes (slowloris holds connections with a
      // byte now and then; a client that talks is never the quietest for long).
      let quietest: Entry | undefined;
      for (const e of open.values()) {
        if (quietest === undefined || e.last < quietest.last) quietest = e;
      }
      quietest?.close();
      evicted++;
    }
    let tlsSocket: TLSSocket | undefined;
    const now = Date.now();
    const entry: Entry = {
      key,
      opened: now,
      last: now,
      sawBytes: false,
      unanswered: undefined,
      handshaking: tls !== undefined,
      upstream: undefined,
      close: () => {
        if (open.get(conn) !== entry) return;
        open.delete(conn);
        const n = (perAddress.get(key) ?? 1) - 1;
        if (n <= 0) perAddress.delete(key);
        else perAddress.set(key, n);
        tlsSocket?.destroy();
        closeQuietly(conn);
        if (entry.upstream !== undefined) closeQuietly(entry.upstream);
      },
    };
    open.set(conn, entry);
    perAddress.set(key, fromAddress + 1);
    if (tls !== undefined) {
      const raw = rawDuplex(conn, () => (entry.last = Date.now(), entry.sawBytes = true));
      tlsSocket = new TLSSocket(raw, {
        isServer: true,
        cert: tls.cert,
        key: tls.key,
        ALPNProtocols: ["h2", "http/1.1"],
      });
      tlsSocket.on("error", () => entry.close());
      raw.on("error", () => entry.close());
    }
    relay(conn, entry, tlsSocket);
  };

  (async () => {
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closed || error instanceof Deno.errors.BadResource) return;
        // Out of file descriptors, say: keep serving the connections we have, try again.
        if (Date.now() - lastReport > 1_000) {
          lastReport = Date.now();
          options.onError?.("KV Connect cannot accept a connection", error);
        }
        await new Promise((r) => setTimeout(r, FRONT_ACCEPT_RETRY_MS));
        continue;
      }
      admit(conn);
    }
  })();

  return {
    port: (listener.addr as Deno.NetAddr).port,
    connectionsMax,
    get connections() {
      return open.size;
    },
    get upstreams() {
      return upstreams;
    },
    get refused() {
      return refused;
    },
    get evicted() {
      return evicted;
    },
    get streamsRefused() {
      return streamsRefused;
    },
    get unansweredClosed() {
      return unanswered;
    },
    stopAccepting() {
      closed = true;
      try {
        listener.close();
      } catch { /* closed already */ }
    },
    close() {
      this.stopAccepting();
      clearInterval(watchdog);
      for (const entry of [...open.values()]) entry.close();
    },
  };
}

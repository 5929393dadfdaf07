/**
 * The KV Connect listener's front door: `Deno.serve` in Deno 2.9.6 has no bound on connections,
 * no deadline for a first request, and its accept loop dies for good (an uncaught error that
 * takes the process with it) when the process runs out of file descriptors. So the public
 * address is a TCP (or TLS, with ALPN `h2`) listener of koi's own, which
 *
 * - bounds open connections in all ({@linkcode FRONT_CONNECTIONS_MAX}) and per remote address
 *   ({@linkcode FRONT_CONNECTIONS_PER_ADDRESS_MAX}): one more is closed at once;
 * - closes a connection that sends nothing for {@linkcode FRONT_FIRST_BYTE_MS} after it opened,
 *   or that is silent both ways for {@linkcode FRONT_IDLE_MS};
 * - keeps accepting after an accept error (out of file descriptors: it waits and tries again);
 *
 * and relays each connection's bytes to `Deno.serve` on a Unix socket in a private directory,
 * which detects HTTP/2 with prior knowledge or HTTP/1.1 itself.
 *
 * @module
 */

/** Open connections, at most; one more is closed at once. */
export const FRONT_CONNECTIONS_MAX = 1024;
/** Open connections from one remote address, at most (Deno's client uses one). */
export const FRONT_CONNECTIONS_PER_ADDRESS_MAX = 64;
/** A new connection must send its first bytes within this many ms. */
export const FRONT_FIRST_BYTE_MS = 10_000;
/** A connection silent both ways this long is closed (a watch sends a keep-alive every 5 s). */
export const FRONT_IDLE_MS = 120_000;
/** How long the accept loop waits after an accept error before it accepts again. */
export const FRONT_ACCEPT_RETRY_MS = 200;
/** Bytes read at once from either side. */
const RELAY_CHUNK_BYTES = 64 * 1024;

/** Options of {@linkcode listenFront}. */
export interface FrontOptions {
  readonly hostname: string;
  readonly port: number;
  /** Terminate TLS here (with ALPN h2 and http/1.1). */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** The Unix socket `Deno.serve` listens on. */
  readonly upstream: string;
  readonly connectionsMax?: number;
  readonly connectionsPerAddressMax?: number;
  readonly firstByteMs?: number;
  readonly idleMs?: number;
  /** Told of accept errors (at most one report per second). */
  readonly onError?: (message: string, error: unknown) => void;
}

/** A running front. */
export interface Front {
  /** The bound port. */
  readonly port: number;
  /** Connections open now. */
  readonly connections: number;
  /** Connections closed at once because of a bound. */
  readonly refused: number;
  /** Stops accepting new connections; open ones go on. */
  stopAccepting(): void;
  /** Stops accepting and closes every connection. */
  close(): void;
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* closed already */ }
}

async function writeAll(to: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await to.write(bytes.subarray(at));
}

/** Listens on the public address; throws `Deno.errors.AddrInUse` when it is taken. */
export function listenFront(options: FrontOptions): Front {
  const connectionsMax = options.connectionsMax ?? FRONT_CONNECTIONS_MAX;
  const perAddressMax = options.connectionsPerAddressMax ?? FRONT_CONNECTIONS_PER_ADDRESS_MAX;
  const firstByteMs = options.firstByteMs ?? FRONT_FIRST_BYTE_MS;
  const idleMs = options.idleMs ?? FRONT_IDLE_MS;
  const listener: Deno.Listener = options.tls === undefined
    ? Deno.listen({ hostname: options.hostname, port: options.port })
    : Deno.listenTls({
      hostname: options.hostname,
      port: options.port,
      cert: options.tls.cert,
      key: options.tls.key,
      alpnProtocols: ["h2", "http/1.1"],
    });
  const open = new Set<Deno.Conn>();
  const perAddress = new Map<string, number>();
  let refused = 0;
  let closed = false;
  let lastReport = 0;

  const relay = async (client: Deno.Conn, address: string) => {
    let upstream: Deno.Conn | undefined;
    let last = Date.now();
    let sawBytes = false;
    const watchdog = setInterval(() => {
      const quiet = Date.now() - last;
      if ((!sawBytes && quiet >= firstByteMs) || quiet >= idleMs) {
        closeQuietly(client);
        if (upstream !== undefined) closeQuietly(upstream);
      }
    }, Math.max(10, Math.min(1_000, firstByteMs / 4)));
    const pump = async (from: Deno.Conn, to: Deno.Conn, fromClient: boolean) => {
      const buf = new Uint8Array(RELAY_CHUNK_BYTES);
      try {
        for (;;) {
          const n = await from.read(buf);
          if (n === null) break;
          last = Date.now();
          if (fromClient) sawBytes = true;
          await writeAll(to, buf.subarray(0, n));
        }
      } catch { /* either side went away */ }
      closeQuietly(from);
      closeQuietly(to);
    };
    try {
      upstream = await Deno.connect({ transport: "unix", path: options.upstream });
      await Promise.all([pump(client, upstream, true), pump(upstream, client, false)]);
    } catch {
      closeQuietly(client);
    } finally {
      clearInterval(watchdog);
      open.delete(client);
      const n = (perAddress.get(address) ?? 1) - 1;
      if (n <= 0) perAddress.delete(address);
      else perAddress.set(address, n);
    }
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
      const address = (conn.remoteAddr as Deno.NetAddr).hostname ?? "";
      const fromAddress = perAddress.get(address) ?? 0;
      if (open.size >= connectionsMax || fromAddress >= perAddressMax) {
        refused++;
        closeQuietly(conn);
        continue;
      }
      open.add(conn);
      perAddress.set(address, fromAddress + 1);
      relay(conn, address);
    }
  })();

  return {
    port: (listener.addr as Deno.NetAddr).port,
    get connections() {
      return open.size;
    },
    get refused() {
      return refused;
    },
    stopAccepting() {
      closed = true;
      try {
        listener.close();
      } catch { /* closed already */ }
    },
    close() {
      this.stopAccepting();
      for (const c of open) closeQuietly(c);
    },
  };
}

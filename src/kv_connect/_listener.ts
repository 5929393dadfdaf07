/**
 * The KV Connect listener: `Deno.serve` (HTTP/2 with prior knowledge, which Deno's client
 * speaks over `http://`, and HTTP/1.1; over TLS, h2 by ALPN) on an address of its own, with
 * explicit bounds: requests at once, a deadline per request (bodies that do not arrive in
 * time get `408`, work that does not finish `503`), the body limit of the handler, and a
 * shutdown that ends the watch streams first and waits a bounded time for the rest.
 *
 * @module
 */

import { type Front, listenFront } from "./_front.ts";

/** Requests handled at once, at most (a watch counts until its stream starts). Beyond: 503. */
export const KV_CONNECT_REQUESTS_MAX = 1024;
/**
 * A request's deadline, in milliseconds: its body must arrive and its answer start within it
 * (above the gateway's own call budget, so the gateway answers first). Beyond: 503.
 */
export const KV_CONNECT_REQUEST_MS = 15_000;
/** How long a stopping listener waits for requests in flight, in milliseconds. */
export const KV_CONNECT_DRAIN_MS = 2_000;

/** Options of {@linkcode listenKvConnect}. */
export interface KvConnectListenOptions {
  readonly hostname: string;
  readonly port: number;
  /** Serve HTTPS with this certificate chain and key (PEM). */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** The handler; undefined answers 404. `signal` is the request's deadline. */
  readonly handler: (req: Request, signal: AbortSignal) => Promise<Response | undefined>;
  /** Default {@linkcode KV_CONNECT_REQUESTS_MAX}. */
  readonly requestsMax?: number;
  /** Default {@linkcode KV_CONNECT_REQUEST_MS}. */
  readonly requestMs?: number;
  /** Called before the server stops (ends the watch streams, which never end by themselves). */
  readonly beforeClose?: () => void | Promise<void>;
  /** Told of a failure of the server. */
  readonly onError?: (message: string, error: unknown) => void;
}

/** A running listener. */
export interface KvConnectListener {
  /** The bound port. */
  readonly port: number;
  /** Requests in flight now. */
  readonly inFlight: number;
  /** Ends the watches, waits up to `drainMs` for requests in flight, and stops listening. */
  close(drainMs?: number): Promise<void>;
}

function text(status: number, message: string): Response {
  return new Response(message, { status, headers: { "content-type": "text/plain" } });
}

/** Listens on `options.hostname:port`; throws `Deno.errors.AddrInUse` when it is taken. */
export function listenKvConnect(options: KvConnectListenOptions): KvConnectListener {
  const requestsMax = options.requestsMax ?? KV_CONNECT_REQUESTS_MAX;
  const requestMs = options.requestMs ?? KV_CONNECT_REQUEST_MS;
  let inFlight = 0;
  const serve = async (req: Request): Promise<Response> => {
    if (inFlight >= requestsMax) {
      await req.body?.cancel().catch(() => {});
      return text(503, `Busy: ${requestsMax} KV Connect requests in flight`);
    }
    inFlight++;
    const deadline = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<Response>((resolve) => {
      timer = setTimeout(() => {
        deadline.abort();
        resolve(text(503, `The request did not finish within ${requestMs} ms`));
      }, requestMs);
    });
    try {
      const work = options.handler(req, deadline.signal).then(
        (response) => response ?? text(404, "Not found: KV Connect is served under /kv"),
        (error) => {
          options.onError?.("KV Connect request failed", error);
          return text(500, "KV Connect request failed");
        },
      );
      return await Promise.race([work, late]);
    } finally {
      clearTimeout(timer);
      inFlight--;
    }
  };
  // Deno.serve behind koi's own front door (_front.ts: connection bounds and deadlines, an
  // accept loop that survives running out of file descriptors), on a Unix socket in a
  // directory only this user can enter.
  const dir = Deno.makeTempDirSync({ prefix: "koi-kv-connect-" });
  Deno.chmodSync(dir, 0o700);
  const upstream = `${dir}/serve.sock`;
  const server = Deno.serve({
    path: upstream,
    onListen: () => {},
    onError: (error) => {
      options.onError?.("KV Connect server error", error);
      return text(500, "KV Connect server error");
    },
  }, serve);
  let front: Front;
  try {
    front = listenFront({
      hostname: options.hostname,
      port: options.port,
      upstream,
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    });
  } catch (error) {
    server.shutdown().finally(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
    throw error;
  }
  let closing: Promise<void> | undefined;
  return {
    port: front.port,
    get inFlight() {
      return inFlight;
    },
    close: (drainMs = KV_CONNECT_DRAIN_MS) =>
      closing ??= (async () => {
        front.stopAccepting();
        await options.beforeClose?.();
        const until = Date.now() + drainMs;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const drained = new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs)));
        await Promise.race([server.shutdown(), drained]);
        clearTimeout(timer);
        // The last bytes of answers still flow through the front: let them, within the bound.
        while (front.connections > 0 && Date.now() < until) {
          await new Promise((r) => setTimeout(r, 10));
        }
        front.close();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      })(),
  };
}

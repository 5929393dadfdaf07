/**
 * The KV Connect listener: `Deno.serve` (HTTP/2 with prior knowledge, which Deno's client
 * speaks over `http://`, and HTTP/1.1; over TLS, h2 by ALPN) behind koi's own front door
 * (`_front.ts`), with explicit bounds: requests at once (a request counts until its answer has
 * been sent or cancelled), bytes of answers not yet sent, a deadline for a request's body
 * (`408`) and one for its answer to start (`503`), the body limit of the handler, a server that
 * is started again when its accept loop dies (out of file descriptors), and a shutdown that ends
 * the watch streams first and waits a bounded time for the rest.
 *
 * @module
 */

import { type Front, listenFront } from "./_front.ts";

/**
 * Requests handled at once, at most; a request counts until its answer has been sent, failed or
 * been cancelled (a watch while it streams). Beyond: 503.
 */
export const KV_CONNECT_REQUESTS_MAX = 1024;
/**
 * A request's deadline, in milliseconds: its answer must start within it (above the gateway's
 * own call budget, so the gateway answers first). Beyond: 503.
 */
export const KV_CONNECT_REQUEST_MS = 15_000;
/** A request's body must have arrived in full within this many milliseconds. Beyond: 408. */
export const KV_CONNECT_BODY_MS = 5_000;
/**
 * Bytes of answers read from the handler and not yet taken by the server to send, in all, at
 * most (a client that does not read its answers holds them here). Beyond: new requests get 503.
 */
export const KV_CONNECT_UNSENT_BYTES_MAX = 256 * 1024 * 1024;
/**
 * An answer's client has this long to take all of it, in milliseconds, plus the time its size
 * takes at {@linkcode KV_CONNECT_ANSWER_SEND_BYTES_PER_S}; then the answer is cut (its stream
 * errors: the server resets it) and its bytes given back. Found by the attack: 17 reads of
 * 20 MiB whose client never read them held the bound above full, and every client's requests
 * got 503 for as long as it kept its connections (48 s; the front's idle cut is 120 s).
 */
export const KV_CONNECT_ANSWER_SEND_MS = 10_000;
/** The slowest rate a client may take a large answer at, in bytes per second (see above). */
export const KV_CONNECT_ANSWER_SEND_BYTES_PER_S = 4 * 1024 * 1024;
/** Answers are handed to the server in pieces of at most this many bytes (see above). */
export const KV_CONNECT_ANSWER_CHUNK_BYTES = 64 * 1024;
/** How long after `Deno.serve` stopped on an error it is started again, in milliseconds. */
export const KV_CONNECT_SERVE_RESTART_MS = 200;
/** File descriptors that must be free before `Deno.serve` is started again. */
export const KV_CONNECT_SERVE_RESTART_FDS_FREE = 16;
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
  /** Default {@linkcode KV_CONNECT_BODY_MS}. */
  readonly bodyMs?: number;
  /** Default {@linkcode KV_CONNECT_UNSENT_BYTES_MAX}. */
  readonly unsentBytesMax?: number;
  /** Default {@linkcode KV_CONNECT_ANSWER_SEND_MS}. */
  readonly answerSendMs?: number;
  /** Default {@linkcode KV_CONNECT_ANSWER_SEND_BYTES_PER_S}. */
  readonly answerSendBytesPerS?: number;
  /** Bounds of the front door (`_front.ts`); each defaults to its constant there. */
  readonly front?: {
    readonly connectionsMax?: number;
    readonly connectionsPerAddressMax?: number;
    readonly firstByteMs?: number;
    readonly handshakeMs?: number;
    readonly streamsPerConnectionMax?: number;
    readonly streamsPerAddressMax?: number;
  };
  /** Called before the server stops (ends the watch streams, which never end by themselves). */
  readonly beforeClose?: () => void | Promise<void>;
  /** Told of a failure of the server. */
  readonly onError?: (message: string, error: unknown) => void;
}

/** A running listener. */
export interface KvConnectListener {
  /** The bound port. */
  readonly port: number;
  /** The bound on open connections in force (from the soft limit of file descriptors). */
  readonly connectionsMax: number;
  /** Requests in flight now (answers being sent included). */
  readonly inFlight: number;
  /** Bytes of answers not yet taken by the server to send, now. */
  readonly unsentBytes: number;
  /** Answers cut because their client did not take them in time. */
  readonly answersCut: number;
  /** Times `Deno.serve` was started again after it stopped on an error. */
  readonly serverRestarts: number;
  /** The front door, for its counters. */
  readonly front: Front;
  /** Ends the watches, waits up to `drainMs` for requests in flight, and stops listening. */
  close(drainMs?: number): Promise<void>;
}

/** Whether `n` more files can be opened now (true when the probe is not permitted at all). */
function fdsFree(n: number): boolean {
  const opened: Deno.FsFile[] = [];
  try {
    for (let i = 0; i < n; i++) opened.push(Deno.openSync("/dev/null"));
    return true;
  } catch (error) {
    return !/os error 24|too many open files/i.test(String(error));
  } finally {
    for (const f of opened) f.close();
  }
}

function text(status: number, message: string): Response {
  return new Response(message, { status, headers: { "content-type": "text/plain" } });
}

/** Listens on `options.hostname:port`; throws `Deno.errors.AddrInUse` when it is taken. */
export function listenKvConnect(options: KvConnectListenOptions): KvConnectListener {
  const requestsMax = options.requestsMax ?? KV_CONNECT_REQUESTS_MAX;
  const requestMs = options.requestMs ?? KV_CONNECT_REQUEST_MS;
  const bodyMs = options.bodyMs ?? KV_CONNECT_BODY_MS;
  const unsentMax = options.unsentBytesMax ?? KV_CONNECT_UNSENT_BYTES_MAX;
  const sendMs = options.answerSendMs ?? KV_CONNECT_ANSWER_SEND_MS;
  const sendRate = options.answerSendBytesPerS ?? KV_CONNECT_ANSWER_SEND_BYTES_PER_S;
  let inFlight = 0;
  let unsent = 0;
  let answersCut = 0;
  let stopping = false;

  /**
   * The answer, handed to the server piece by piece as it sends (a pull stream with no buffer
   * of its own), so that what a client does not read stays counted in `unsent`; `settle` runs
   * once, when the body has been taken in full, failed or been cancelled.
   */
  const counted = (response: Response, settle: () => void): Response => {
    if (response.body === null) {
      settle();
      return response;
    }
    const reader = response.body.getReader();
    let held: Uint8Array | undefined;
    let settled = false;
    let cutTimer: ReturnType<typeof setTimeout> | undefined;
    const release = () => {
      if (settled) return;
      settled = true;
      clearTimeout(cutTimer);
      unsent -= held?.length ?? 0;
      held = undefined;
      settle();
    };
    // The answer's deadline grows with what it read from the handler (see the constants).
    const started = performance.now();
    let total = 0;
    let stream: ReadableStreamDefaultController<Uint8Array> | undefined;
    const cut = () => {
      if (settled) return;
      answersCut++;
      release();
      reader.cancel().catch(() => {});
      stream?.error(new Error("The answer was not taken in time"));
    };
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        stream = controller;
      },
      async pull(controller) {
        try {
          while (held === undefined || held.length === 0) {
            const next = await reader.read();
            if (settled) return; // cut meanwhile
            if (next.done) {
              release();
              controller.close();
              return;
            }
            held = next.value;
            unsent += held.length;
            total += held.length;
            clearTimeout(cutTimer);
            const due = started + sendMs + (total * 1000) / sendRate;
            cutTimer = setTimeout(cut, Math.max(0, due - performance.now()));
          }
          const piece = held.subarray(0, KV_CONNECT_ANSWER_CHUNK_BYTES);
          held = held.subarray(piece.length);
          unsent -= piece.length;
          controller.enqueue(piece);
        } catch (error) {
          release();
          controller.error(error);
        }
      },
      cancel(reason) {
        release();
        return reader.cancel(reason).catch(() => {});
      },
    }, { highWaterMark: 0 });
    return new Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };

  const serve = async (req: Request): Promise<Response> => {
    // Answers not yet sent hold back only reads (the large answers): a write's answer or the
    // metadata is a few bytes, and refusing them would let readers that do not read stop
    // every client.
    const busy = inFlight >= requestsMax
      ? `Busy: ${requestsMax} KV Connect requests in flight`
      : unsent >= unsentMax && new URL(req.url).pathname.endsWith("/snapshot_read")
      ? `Busy: ${unsent} bytes of KV Connect answers not yet sent (at most ${unsentMax})`
      : undefined;
    if (busy !== undefined) {
      await req.body?.cancel().catch(() => {});
      return text(503, busy);
    }
    inFlight++;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      inFlight--;
    };
    const deadline = new AbortController();
    let bodyDone = req.body === null;
    let request = req;
    if (req.body !== null) {
      // The same request with its body passed through, to see when the body has arrived.
      const source = req.body.getReader();
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const next = await source.read();
          if (next.done) {
            bodyDone = true;
            controller.close();
          } else controller.enqueue(next.value);
        },
        cancel: (reason) => source.cancel(reason),
      }, { highWaterMark: 0 });
      request = new Request(req.url, { method: req.method, headers: req.headers, body });
    }
    const timers: ReturnType<typeof setTimeout>[] = [];
    const late = new Promise<Response>((resolve) => {
      timers.push(setTimeout(() => {
        deadline.abort();
        resolve(text(503, `The request did not finish within ${requestMs} ms`));
      }, requestMs));
      if (!bodyDone) {
        timers.push(setTimeout(() => {
          if (bodyDone) return;
          deadline.abort();
          resolve(text(408, `The request body did not arrive within ${bodyMs} ms`));
        }, bodyMs));
      }
    });
    let answered = false;
    try {
      const work = options.handler(request, deadline.signal).then(
        (response) => response ?? text(404, "Not found: KV Connect is served under /kv"),
        (error) => {
          options.onError?.("KV Connect request failed", error);
          return text(500, "KV Connect request failed");
        },
      );
      // An answer that comes after the deadline's is dropped: its body is released.
      work.then((response) => {
        if (answered) response.body?.cancel().catch(() => {});
      });
      const response = await Promise.race([work, late]);
      answered = true;
      return counted(response, settle);
    } catch (error) {
      settle();
      throw error;
    } finally {
      answered = true;
      for (const t of timers) clearTimeout(t);
    }
  };
  // Deno.serve behind koi's own front door (_front.ts: connection bounds and deadlines, an
  // accept loop that survives running out of file descriptors), on a Unix socket in a
  // directory only this user can enter.
  const dir = Deno.makeTempDirSync({ prefix: "koi-kv-connect-" });
  Deno.chmodSync(dir, 0o700);
  const upstream = `${dir}/serve.sock`;
  const onError = (error: unknown) => {
    options.onError?.("KV Connect server error", error);
    return text(500, "KV Connect server error");
  };
  let restarts = 0;
  let restartTimer: ReturnType<typeof setTimeout> | undefined;
  const startServer = (): Deno.HttpServer<Deno.UnixAddr> => {
    const started = Deno.serve({ path: upstream, onListen: () => {}, onError }, serve);
    // Deno.serve's accept loop ends for good on an accept error (out of file descriptors),
    // and its `finished` rejects: unhandled, that rejection would end the whole process.
    started.finished.catch((error) => {
      if (stopping) return;
      options.onError?.("KV Connect server stopped; starting it again", error);
      restartLater();
    });
    return started;
  };
  const restartLater = () => {
    restartTimer = setTimeout(() => {
      if (stopping) return;
      // Deno 2.9.6 panics (no exception: the process ends) when Deno.serve starts while no file
      // descriptor is free: start it only once a few are.
      if (!fdsFree(KV_CONNECT_SERVE_RESTART_FDS_FREE)) return restartLater();
      try {
        Deno.removeSync(upstream); // a socket file left behind would make it AddrInUse
      } catch { /* gone already */ }
      try {
        server = startServer();
        restarts++;
      } catch (error) {
        options.onError?.("KV Connect server cannot start again yet", error);
        restartLater();
      }
    }, KV_CONNECT_SERVE_RESTART_MS);
  };
  let server = startServer();
  let front: Front;
  try {
    front = listenFront({
      hostname: options.hostname,
      port: options.port,
      upstream,
      ...options.front,
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    });
  } catch (error) {
    stopping = true;
    server.shutdown().finally(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
    throw error;
  }
  let closing: Promise<void> | undefined;
  return {
    port: front.port,
    connectionsMax: front.connectionsMax,
    get inFlight() {
      return inFlight;
    },
    get unsentBytes() {
      return unsent;
    },
    get answersCut() {
      return answersCut;
    },
    get serverRestarts() {
      return restarts;
    },
    front,
    close: (drainMs = KV_CONNECT_DRAIN_MS) =>
      closing ??= (async () => {
        front.stopAccepting();
        await options.beforeClose?.();
        stopping = true;
        clearTimeout(restartTimer);
        const until = Date.now() + drainMs;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const drained = new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs)));
        await Promise.race([server.shutdown().catch(() => {}), drained]);
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

/** Test support for the HTTP server: one server on 127.0.0.1 for the length of a test. */
import { HttpServer, type HttpServerLimits, type HttpServerOptions } from "./server.ts";

/** Runs `fn` against a server with `limits` answering with `fetch`; closes it afterwards. */
export async function withServer(
  limits: Partial<HttpServerLimits>,
  fetch: (request: Request) => Response | Promise<Response>,
  fn: (server: HttpServer) => Promise<void>,
  options: Pick<HttpServerOptions, "bodyBytesMaxOf"> = {},
): Promise<void> {
  const server = await HttpServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    fetch,
    limits,
    ...options,
  });
  try {
    await fn(server);
  } finally {
    await server.close(100);
  }
}

/** Waits until `ok()` holds, failing after `ms`. */
export async function waitFor(ok: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

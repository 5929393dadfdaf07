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

/**
 * The admin's HTTP API (docs/api.md, "Admin HTTP API"): the routing table, the state of
 * every node, a health check and the status page. Read-only: the admin is a supervisor, not
 * a data path.
 *
 * @module
 */
import { Hono } from "hono";
import { secureHeaders } from "hono/secure-headers";
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_SCRIPT } from "./_dashboard.ts";
import { carpView, clustersView, dashboardView, type DeploymentSource } from "./_views.ts";
import { ConfigError } from "../config/mod.ts";
import { RESHARD_CONFIG_BYTES_MAX, ReshardBusyError } from "./_reshard_runner.ts";
import type { ReshardProgress } from "./_reshard.ts";

/**
 * The status page may load only its own script and stylesheet and fetch only from the admin:
 * should anything a node reports ever reach the page as markup, it could not run.
 */
const pageHeaders = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'none'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    connectSrc: ["'self'"],
    imgSrc: ["'self'"],
    baseUri: ["'none'"],
    formAction: ["'none'"],
    frameAncestors: ["'none'"],
  },
});

/** What `POST /v1/reshard` needs: who may call it, and what starts a move. */
export interface ReshardControl {
  /** Whether `token` (a bearer token) is a secret of the deployment. */
  authorized(token: string): boolean;
  /**
   * Starts a move to the config `text` read from `path` (its folder resolves relative data
   * directories); throws ConfigError or ReshardBusyError.
   */
  start(text: string, path: string): Promise<ReshardProgress>;
}

/**
 * The admin's routes; `ready()` tells whether every cluster has had a leader once. With
 * `reshard`, `POST /v1/reshard` starts a move (docs/resharding.md).
 */
export function adminApp(
  source: DeploymentSource,
  ready: () => boolean,
  reshard?: ReshardControl,
): Hono {
  const app = new Hono();
  const error = (status: number, code: string, message: string, headers = {}) =>
    new Response(JSON.stringify({ error: { code, message } }), {
      status,
      headers: { "content-type": "application/json", ...headers },
    });
  const starting = () => {
    const missing = source.config.clusters.filter((c) => source.poller.leaderOf(c.id) === "")
      .map((c) => c.id);
    return error(
      503,
      "starting",
      `The deployment is starting: no leader yet in cluster${missing.length === 1 ? "" : "s"} ${
        missing.join(", ")
      }`,
      { "retry-after": "1" },
    );
  };
  app.get("/v1/carp", (c) => ready() ? c.json(carpView(source)) : starting());
  app.get("/v1/clusters", (c) => c.json(clustersView(source)));
  app.get("/healthz", (c) => {
    const leaders = Object.fromEntries(
      source.config.clusters.map((cl) => [cl.id, source.poller.leaderOf(cl.id)]),
    );
    const missing = Object.entries(leaders).filter(([, l]) => l === "").map(([id]) => id);
    if (missing.length === 0) return c.json({ ok: true, leaders });
    return error(503, "no_leader", `No leader in cluster ${missing.join(", ")}`, {
      "retry-after": "1",
    });
  });
  app.get("/v1/dashboard", (c) => c.json(dashboardView(source, Date.now())));
  app.get("/v1/reshard", (c) => {
    const progress = source.reshard?.();
    return progress === undefined
      ? error(404, "not_found", "No reshard has run since the admin started")
      : c.json(progress);
  });
  app.post("/v1/reshard", async (c) => {
    if (reshard === undefined) return error(404, "not_found", "This admin does not reshard");
    const auth = c.req.header("authorization") ?? "";
    const token = auth.startsWith("Bearer ") ? auth.slice(7) : "";
    if (!reshard.authorized(token)) {
      return error(
        401,
        "unauthorized",
        "A reshard needs the deployment's secret as a bearer token",
        {
          "www-authenticate": 'Bearer realm="koi"',
        },
      );
    }
    const declared = Number(c.req.header("content-length") ?? 0);
    const raw = declared > RESHARD_CONFIG_BYTES_MAX ? "" : await c.req.text();
    if (declared > RESHARD_CONFIG_BYTES_MAX || raw.length >= RESHARD_CONFIG_BYTES_MAX) {
      return error(413, "too_large", `The body is over ${RESHARD_CONFIG_BYTES_MAX} bytes`);
    }
    let body: { path?: unknown; config?: unknown };
    try {
      body = JSON.parse(raw);
    } catch {
      body = {};
    }
    if (
      typeof body.path !== "string" || !body.path.startsWith("/") || typeof body.config !== "string"
    ) {
      return error(
        400,
        "bad_request",
        'The body is {"path": the new config file\'s absolute path, "config": its text}',
      );
    }
    try {
      return c.json(await reshard.start(body.config, body.path), 202);
    } catch (e) {
      if (e instanceof ReshardBusyError) return error(409, "busy", e.message);
      if (e instanceof ConfigError) return error(400, "bad_config", e.message);
      throw e;
    }
  });
  app.get("/", pageHeaders, (c) => c.html(DASHBOARD_HTML));
  // Browsers ask for it with every page: an empty answer, not an error in the console.
  app.get("/favicon.ico", () => new Response(null, { status: 204 }));
  app.get(
    "/dashboard.js",
    pageHeaders,
    (c) => c.body(DASHBOARD_SCRIPT, 200, { "content-type": "text/javascript; charset=utf-8" }),
  );
  app.get(
    "/dashboard.css",
    pageHeaders,
    (c) => c.body(DASHBOARD_CSS, 200, { "content-type": "text/css; charset=utf-8" }),
  );
  const routes = new Set([
    "/",
    "/dashboard.js",
    "/dashboard.css",
    "/favicon.ico",
    "/healthz",
    "/v1/carp",
    "/v1/clusters",
    "/v1/dashboard",
    "/v1/reshard",
  ]);
  app.all("*", (c) => {
    const path = new URL(c.req.url).pathname;
    if (routes.has(path)) {
      return error(405, "method_not_allowed", `${c.req.method} ${path} is not allowed`, {
        allow: path === "/v1/reshard" ? "GET, HEAD, POST" : "GET, HEAD",
      });
    }
    return error(404, "not_found", `No such route: ${path}`);
  });
  app.onError((err) => error(500, "internal", `Internal error: ${err.message}`));
  return app;
}

/**
 * The admin's HTTP API (docs/api.md, "Admin HTTP API"): the routing table, the state of
 * every node, a health check and the status page. Read-only: the admin is a supervisor, not
 * a data path.
 *
 * @module
 */
import { Hono } from "hono";
import { dashboardPage } from "./_dashboard.ts";
import { carpView, clustersView, type DeploymentSource } from "./_views.ts";

/** The admin's routes; `ready()` tells whether every cluster has had a leader once. */
export function adminApp(source: DeploymentSource, ready: () => boolean): Hono {
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
  app.get("/", (c) => c.html(dashboardPage(clustersView(source), new Date())));
  const routes = new Set(["/", "/healthz", "/v1/carp", "/v1/clusters"]);
  app.all("*", (c) => {
    const path = new URL(c.req.url).pathname;
    if (routes.has(path)) {
      return error(405, "method_not_allowed", `${c.req.method} ${path} is not allowed`, {
        allow: "GET, HEAD",
      });
    }
    return error(404, "not_found", `No such route: ${path}`);
  });
  app.onError((err) => error(500, "internal", `Internal error: ${err.message}`));
  return app;
}

/**
 * The status page (`GET /`): one table per cluster with every node's role, term, leader,
 * commit and applied indexes and key count, rendered on the server with hono's `html`
 * template (which escapes every value) and refreshed by the browser every 2 seconds.
 *
 * @module
 */
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { ClustersView, NodeStateView } from "./_views.ts";

/** Seconds between the page's reloads. */
export const DASHBOARD_REFRESH_S = 2;

function nodeRow(node: NodeStateView, leader: string) {
  const s = node.status;
  const role = s?.role ?? "unreachable";
  return html`
    <tr class="${node.id === leader ? "leader" : s === null ? "down" : ""}">
      <td>${node.id}</td>
      <td>${role}</td>
      <td>${s?.term ?? "–"}</td>
      <td>${s?.leader || "–"}</td>
      <td class="n">${s?.commit ?? "–"}</td>
      <td class="n">${s?.applied ?? "–"}</td>
      <td class="n">${s?.keys ?? "–"}</td>
      <td>${node.http}</td>
      <td>${node.pid ?? "–"}</td>
      <td class="n">${node.restarts}</td>
      <td>${node.error}</td>
    </tr>
  `;
}

/** The whole page for `view`; `now` is shown as the time of the data. */
export function dashboardPage(
  view: ClustersView,
  now: Date,
): HtmlEscapedString | Promise<HtmlEscapedString> {
  const leaders = view.clusters.filter((c) => c.leader !== "").length;
  return html`
    <!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8">
        <meta http-equiv="refresh" content="${DASHBOARD_REFRESH_S}">
        <title>koi — ${leaders}/${view.clusters.length} clusters led</title>
        <style>
    body{font:14px system-ui,sans-serif;margin:2em;color:#222}
    table{border-collapse:collapse;margin-bottom:1.5em}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left}
    td.n{text-align:right;font-variant-numeric:tabular-nums}tr.leader{background:#eef8ee}tr.down{background:#fbeaea}
    .bad{color:#b00}.ok{color:#070}
    </style>
      </head>
      <body>
    <h1>koi</h1>
    <p>Routing: scheme <b>${view.scheme}</b>, epoch <b>${view.epoch}</b>, ${view.clusters.length}
    clusters — <span class="${view.healthy ? "ok" : "bad"}">${view.healthy
      ? "every cluster has a leader"
      : "some cluster has no leader"}</span>. As of ${now
      .toISOString()}; <a href="/v1/carp">routing table</a>,
    <a href="/v1/clusters">JSON</a>.</p>
    ${view.clusters.map((c) =>
      html`
        <h2>Cluster ${c.id} <small>(load factor ${c.loadFactor}, leader ${c.leader ||
          "none"})</small></h2>
        <table>
          <thead>
            <tr>
              <th>node</th>
              <th>role</th>
              <th>term</th>
              <th>leader</th>
              <th>commit</th>
              <th>applied</th>
              <th>keys</th>
              <th>http</th>
              <th>pid</th>
              <th>restarts</th>
              <th>error</th>
            </tr>
          </thead>
          <tbody>${c.nodes.map((n) => nodeRow(n, c.leader))}</tbody>
        </table>
      `
    )}
      </body>
    </html>
  `;
}

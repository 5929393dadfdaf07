/**
 * The status page (`GET /`): a static shell, its stylesheet and its script. The script asks
 * `GET /v1/dashboard` once a second and redraws the page from the answer, without reloading:
 * every cluster and node (role, term, commit and applied indexes, health), keys and bytes per
 * cluster against the load factors, read and write rates, the recent leader changes. No build
 * step: the three texts are served as they are written here. The script builds the page with
 * DOM calls and `textContent` only, so nothing a node reports can become markup; the page is
 * served with a Content-Security-Policy that allows only these files.
 *
 * @module
 */
import { DASHBOARD_SCRIPT } from "./_dashboard_script.ts";

/** Milliseconds between the page's requests for fresh data. */
export const DASHBOARD_POLL_MS = 1_000;

/** The page's HTML. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>koi</title>
<link rel="stylesheet" href="/dashboard.css">
<script src="/dashboard.js" defer></script>
</head>
<body data-poll-ms="${DASHBOARD_POLL_MS}">
<header>
<h1>koi</h1>
<p id="summary">Loading…</p>
<p id="freshness" class="muted"></p>
</header>
<noscript><p class="bad">This page needs JavaScript; the same data is at
<a href="/v1/dashboard">/v1/dashboard</a> and <a href="/v1/clusters">/v1/clusters</a>.</p></noscript>
<main>
<section><h2>Clusters</h2><div id="clusters"></div></section>
<section><h2>Keys and bytes against load factors</h2><div id="balance"></div></section>
<section><h2>Requests</h2><div id="rates"></div></section>
<section><h2>Resharding</h2><div id="reshard"></div></section>
<section><h2>Recent leader changes</h2><div id="leaders"></div></section>
</main>
<footer class="muted"><a href="/v1/carp">routing table</a> ·
<a href="/v1/clusters">node states (JSON)</a> · <a href="/v1/dashboard">this page's data</a></footer>
</body>
</html>
`;

/** The page's stylesheet. */
export const DASHBOARD_CSS = `
body{font:14px system-ui,sans-serif;margin:1.5em 2em;color:#222;max-width:80em}
h1{margin:0 0 .2em}h2{font-size:1.15em;margin:1.4em 0 .5em;border-bottom:1px solid #ccc}
h3{font-size:1em;margin:.8em 0 .3em}
table{border-collapse:collapse;margin-bottom:.8em}
td,th{padding:.2em .65em;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.leader{background:#eaf6ea}tr.down{background:#fbeaea}
.bad{color:#b00}.ok{color:#070}.muted{color:#777}
.bars{display:grid;grid-template-columns:6em 1fr 16em;gap:.25em .8em;align-items:center}
.track{position:relative;height:1.5em;background:#f2f2f2}
.bar{position:absolute;left:0;height:.5em}
.bar.keys{top:0;background:#3b7dd8}.bar.bytes{top:.5em;background:#8e5cc4}
.bar.ideal{top:1em;background:#999}
.legend span{margin-right:1.2em}.legend i{display:inline-block;width:.8em;height:.8em;margin-right:.3em}
i.keys{background:#3b7dd8}i.bytes{background:#8e5cc4}i.ideal{background:#999}
svg.spark{width:12em;height:2em;vertical-align:middle}
svg.spark polyline{fill:none;stroke-width:1.5}
svg.spark .reads{stroke:#3b7dd8}svg.spark .writes{stroke:#d8743b}
progress{width:24em;height:1.1em;vertical-align:middle}
`;

export { DASHBOARD_SCRIPT };

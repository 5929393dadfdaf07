/**
 * The status page's script, served as `/dashboard.js`. Plain browser JavaScript, kept here as
 * text (no build step): it polls `GET /v1/dashboard` and redraws the page. Written without
 * template literals so that it can live inside this module's own.
 *
 * The page marks what a test (or a curious operator) can query: `[data-cluster]` per cluster
 * with `data-leader`, `[data-node]` per node with `data-role` and `data-health`, and
 * `body[data-updated]` with the time of the data drawn last.
 *
 * @module
 */

/** The script's text. */
export const DASHBOARD_SCRIPT = String.raw`"use strict";
(function () {
  var POLL_MS = Number(document.body.dataset.pollMs) || 1000;
  var HISTORY = 60;
  var history = {};

  function el(tag, attrs) {
    var e = document.createElement(tag);
    var a = attrs || {};
    Object.keys(a).forEach(function (k) {
      if (k === "class") e.className = a[k];
      else e.setAttribute(k, String(a[k]));
    });
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  function num(n) {
    return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
  }
  function rate(n) {
    return n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString("en-US");
  }
  function bytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var u = 0;
    while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
    return (u === 0 ? String(n) : n.toFixed(1)) + " " + units[u];
  }
  function pct(part, whole) {
    return whole > 0 ? (100 * part / whole) : 0;
  }
  function time(ms) {
    return new Date(ms).toLocaleTimeString("en-GB", { hour12: false });
  }

  function summary(d) {
    var led = d.clusters.filter(function (c) { return c.leader !== ""; }).length;
    document.title = "koi — " + led + "/" + d.clusters.length + " clusters led";
    var nodes = d.clusters.reduce(function (n, c) { return n + c.nodes.length; }, 0);
    var health = el("span", { class: d.healthy ? "ok" : "bad" },
      d.healthy ? "every cluster has a leader" : "some cluster has no leader");
    document.getElementById("summary").replaceChildren(
      "Routing epoch ", el("b", { id: "epoch" }, d.epoch), ", scheme ", el("b", {}, d.scheme),
      ", " + d.clusters.length + " clusters of " + nodes + " nodes — ", health, ".");
  }

  function nodeRow(n, leader) {
    var cls = n.id === leader ? "leader" : n.health !== "ok" ? "down" : "";
    return el("tr", { class: cls, "data-node": n.id, "data-role": n.role, "data-health": n.health },
      el("td", {}, n.id), el("td", { class: "role" }, n.role), el("td", {}, n.health),
      el("td", { class: "n" }, num(n.term)), el("td", { class: "n" }, num(n.commit)),
      el("td", { class: "n" }, num(n.applied)), el("td", { class: "n" }, num(n.keys)),
      el("td", {}, n.http), el("td", { class: "n" }, n.pid === null ? "–" : n.pid),
      el("td", { class: "n" }, n.restarts), el("td", { class: "bad" }, n.error));
  }

  function clusters(d) {
    var heads = ["node", "role", "health", "term", "commit", "applied", "keys", "http", "pid",
      "restarts", "error"];
    var numeric = { term: 1, commit: 1, applied: 1, keys: 1, pid: 1, restarts: 1 };
    document.getElementById("clusters").replaceChildren.apply(
      document.getElementById("clusters"),
      d.clusters.map(function (c) {
        var head = el("tr", {});
        heads.forEach(function (h) { head.append(el("th", { class: numeric[h] ? "n" : "" }, h)); });
        var body = el("tbody", {});
        c.nodes.forEach(function (n) { body.append(nodeRow(n, c.leader)); });
        return el("div", { class: "cluster", "data-cluster": c.id, "data-leader": c.leader },
          el("h3", {}, "Cluster " + c.id + " — leader ",
            el("span", { class: c.leader === "" ? "bad leader-id" : "leader-id" },
              c.leader === "" ? "none" : c.leader)),
          el("table", {}, el("thead", {}, head), body));
      }));
  }

  function bar(kind, share) {
    var b = el("div", { class: "bar " + kind });
    b.style.width = Math.min(100, share).toFixed(2) + "%";
    return b;
  }

  function balance(d) {
    var keys = 0, size = 0, weight = 0;
    d.clusters.forEach(function (c) { keys += c.keys; size += c.bytes; weight += c.loadFactor; });
    var grid = el("div", { class: "bars" });
    d.clusters.forEach(function (c) {
      var k = pct(c.keys, keys), b = pct(c.bytes, size), w = pct(c.loadFactor, weight);
      grid.append(
        el("div", {}, "Cluster " + c.id),
        el("div", { class: "track", "data-balance": c.id }, bar("keys", k), bar("bytes", b),
          bar("ideal", w)),
        el("div", { class: "muted" }, num(c.keys) + " keys (" + k.toFixed(1) + "%), " +
          bytes(c.bytes) + " (" + b.toFixed(1) + "%); load factor " + c.loadFactor + " (" +
          w.toFixed(1) + "%)"));
    });
    var legend = el("p", { class: "legend muted" },
      el("span", {}, el("i", { class: "keys" }), "share of keys"),
      el("span", {}, el("i", { class: "bytes" }), "share of bytes"),
      el("span", {}, el("i", { class: "ideal" }), "share of the load factors (the ideal)"));
    document.getElementById("balance").replaceChildren(grid, legend);
  }

  function spark(points) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 " + (HISTORY - 1) + " 20");
    svg.setAttribute("preserveAspectRatio", "none");
    var top = 1;
    points.forEach(function (p) { top = Math.max(top, p.r, p.w); });
    ["reads", "writes"].forEach(function (kind) {
      var line = document.createElementNS(ns, "polyline");
      line.setAttribute("class", kind);
      var off = HISTORY - points.length;
      line.setAttribute("points", points.map(function (p, i) {
        var v = kind === "reads" ? p.r : p.w;
        return (off + i) + "," + (20 - 19 * v / top).toFixed(2);
      }).join(" "));
      svg.append(line);
    });
    return svg;
  }

  function rates(d) {
    var head = el("tr", {}, el("th", {}, "cluster"), el("th", { class: "n" }, "reads/s"),
      el("th", { class: "n" }, "writes/s"), el("th", {}, "last minute (reads, writes)"));
    var body = el("tbody", {});
    var tr = 0, tw = 0;
    d.clusters.forEach(function (c) {
      var h = history[c.id] || (history[c.id] = []);
      h.push({ r: c.readsPerSecond, w: c.writesPerSecond });
      if (h.length > HISTORY) h.shift();
      tr += c.readsPerSecond;
      tw += c.writesPerSecond;
      body.append(el("tr", { "data-rates": c.id }, el("td", {}, c.id),
        el("td", { class: "n" }, rate(c.readsPerSecond)),
        el("td", { class: "n" }, rate(c.writesPerSecond)), el("td", {}, spark(h))));
    });
    body.append(el("tr", {}, el("th", {}, "all"), el("th", { class: "n" }, rate(tr)),
      el("th", { class: "n" }, rate(tw)), el("td", {})));
    document.getElementById("rates").replaceChildren(
      el("table", {}, el("thead", {}, head), body),
      el("p", { class: "muted" }, "Averaged over the last 5 s, from every node's counters."));
  }

  function leaders(d) {
    var root = document.getElementById("leaders");
    if (d.leaderChanges.length === 0) {
      root.replaceChildren(el("p", { class: "muted" }, "None since the admin started."));
      return;
    }
    var body = el("tbody", {});
    d.leaderChanges.forEach(function (ch) {
      body.append(el("tr", { "data-change": ch.cluster }, el("td", {}, time(ch.at)),
        el("td", {}, ch.cluster), el("td", {}, ch.from === "" ? "none" : ch.from),
        el("td", {}, ch.to === "" ? "none" : ch.to), el("td", { class: "n" }, ch.term || "–")));
    });
    var head = el("tr", {}, el("th", {}, "time"), el("th", {}, "cluster"), el("th", {}, "from"),
      el("th", {}, "to"), el("th", { class: "n" }, "term"));
    root.replaceChildren(el("table", {}, el("thead", {}, head), body));
  }

  function reshard(d) {
    var root = document.getElementById("reshard");
    var r = d.reshard;
    if (!r) {
      root.replaceChildren(el("p", { class: "muted" }, "No reshard since the admin started " +
        "(koi admin reshard --config new.toml moves a running deployment)."));
      return;
    }
    var expected = Math.max(1, Math.round(r.idealFraction * r.keysAtStart));
    var bar = el("progress", { max: expected, value: Math.min(r.keysMoved, expected) });
    var end = r.endedAt || d.at;
    var seconds = ((end - r.startedAt) / 1000).toFixed(1);
    var share = r.keysAtStart > 0 ? (100 * r.keysMoved / r.keysAtStart).toFixed(1) : "0.0";
    root.replaceChildren(
      el("p", { "data-reshard": r.state },
        "Epoch " + r.fromEpoch + " → " + r.toEpoch + ": ",
        el("b", { class: r.state === "failed" ? "bad" : r.state === "done" ? "ok" : "" }, r.state),
        r.added.length ? "; adding " + r.added.join(", ") : "",
        r.drained.length ? "; draining " + r.drained.join(", ") : "", "."),
      el("p", {}, bar, " " + num(r.keysMoved) + " keys moved (" + share + "% of " +
        num(r.keysAtStart) + "; ideal " + (100 * r.idealFraction).toFixed(1) + "%) in " +
        r.batches + " batches, " + seconds + " s."),
      el("p", { class: "muted" }, "Sources: " + r.sources.map(function (s) {
        return s.id + " " + num(s.moved) + (s.done ? " (done)" : "");
      }).join(", ")),
      r.error ? el("p", { class: "bad" }, "Retrying after: " + r.error) : "");
  }

  function draw(d) {
    summary(d);
    clusters(d);
    balance(d);
    rates(d);
    reshard(d);
    leaders(d);
    document.body.dataset.updated = String(d.at);
    var f = document.getElementById("freshness");
    f.className = "muted";
    f.textContent = "Updated " + time(d.at) + "; refreshes every " + (POLL_MS / 1000) + " s.";
  }

  function poll() {
    fetch("/v1/dashboard", { cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(draw).catch(function (e) {
      var f = document.getElementById("freshness");
      f.className = "bad";
      f.textContent = "Cannot reach the admin (" + e.message + "); retrying. The data below " +
        "may be old.";
    }).finally(function () {
      setTimeout(poll, POLL_MS);
    });
  }
  poll();
})();
`;

import assert from "node:assert/strict";
import { parseConfig } from "../config/mod.ts";
import { adminApp } from "./_http.ts";
import { StatusPoller } from "./_poller.ts";
import { DeploymentActivity } from "./_activity.ts";
import { clustersView } from "./_views.ts";
import type { ReshardPlan } from "./_reshard_plan.ts";

const CONFIG = parseConfig(
  `[admin]\nhttp = "127.0.0.1:7000"\n[[clusters]]\nid = "a"\n` +
    `[[clusters.nodes]]\nid = "a1"\nraft = "127.0.0.1:7101"\nhttp = "127.0.0.1:7151"\ndata = "d1"\n` +
    `[[clusters]]\nid = "b"\nload_factor = 2\n` +
    `[[clusters.nodes]]\nid = "b1"\nraft = "127.0.0.1:7201"\nhttp = "127.0.0.1:7251"\ndata = "d2"\n`,
  { baseDir: "/tmp" },
);

/** A poller whose nodes answer from `answers` (by port); a missing one refuses. */
function poller(answers: Map<string, Record<string, unknown> | string>): StatusPoller {
  const fake = (input: string | URL | Request): Promise<Response> => {
    const url = new URL(String(input));
    const answer = answers.get(url.port);
    if (answer === undefined) {
      return Promise.reject(new TypeError("Connection refused (os error 111)"));
    }
    if (typeof answer === "string") return Promise.reject(new TypeError(answer));
    return Promise.resolve(new Response(JSON.stringify(answer), { status: 200 }));
  };
  return new StatusPoller(CONFIG, { fetch: fake as typeof fetch });
}

const status = (node: string, cluster: string, role: string) => ({
  node,
  cluster,
  role,
  term: 3,
  leader: role === "leader" ? node : "",
  commit: 9,
  applied: 9,
  snapshot: 0,
  epoch: 1,
  keys: 4,
  bytes: 40,
  members: [{ id: node, voter: true, match: 9 }],
});

Deno.test("admin http: /v1/carp waits for every leader, then gives the table", async () => {
  const answers = new Map<string, Record<string, unknown> | string>([
    ["7151", status("a1", "a", "leader")],
  ]);
  const p = poller(answers);
  let ready = false;
  const app = adminApp({ config: CONFIG, poller: p, processes: new Map() }, () => ready);
  await p.pollOnce();
  const starting = await app.request("/v1/carp");
  assert.equal(starting.status, 503);
  assert.equal(starting.headers.get("retry-after"), "1");
  const body = await starting.json();
  assert.equal(body.error.code, "starting");
  assert.match(body.error.message, /no leader yet in cluster b$/);
  const health = await app.request("/healthz");
  assert.equal(health.status, 503);
  assert.equal((await health.json()).error.code, "no_leader");

  answers.set("7251", status("b1", "b", "leader"));
  await p.pollOnce();
  ready = true;
  const table = await (await app.request("/v1/carp")).json();
  assert.deepEqual(table, {
    epoch: 1,
    scheme: "carp64",
    clusters: [
      {
        id: "a",
        loadFactor: 1,
        leader: "a1",
        nodes: [{ id: "a1", http: "127.0.0.1:7151", url: "http://127.0.0.1:7151" }],
      },
      {
        id: "b",
        loadFactor: 2,
        leader: "b1",
        nodes: [{ id: "b1", http: "127.0.0.1:7251", url: "http://127.0.0.1:7251" }],
      },
    ],
  });
  assert.deepEqual(await (await app.request("/healthz")).json(), {
    ok: true,
    leaders: { a: "a1", b: "b1" },
  });
});

Deno.test("admin http: /v1/clusters marks unreachable nodes with the reason", async () => {
  const answers = new Map<string, Record<string, unknown> | string>([
    ["7151", status("a1", "a", "leader")],
  ]);
  const p = poller(answers);
  await p.pollOnce();
  const app = adminApp({ config: CONFIG, poller: p, processes: new Map() }, () => true);
  const body = await (await app.request("/v1/clusters")).json();
  assert.equal(body.healthy, false);
  const [a1] = body.clusters[0].nodes;
  const [b1] = body.clusters[1].nodes;
  assert.equal(a1.reachable, true);
  assert.equal(a1.status.keys, 4);
  assert.equal(b1.reachable, false);
  assert.equal(b1.status, null);
  assert.equal(b1.error, "connection refused");
  assert.equal(b1.pid, null);
});

Deno.test("admin http: the status page is a static shell under a strict CSP; node data only as JSON", async () => {
  const answers = new Map<string, Record<string, unknown> | string>([
    ["7151", "<script>alert(1)</script>"],
    ["7251", "<img src=x onerror=alert(1)>"],
  ]);
  const p = poller(answers);
  await p.pollOnce();
  const app = adminApp({ config: CONFIG, poller: p, processes: new Map() }, () => true);
  const pageAnswer = await app.request("/");
  assert.equal(pageAnswer.status, 200);
  const csp = pageAnswer.headers.get("content-security-policy") ?? "";
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  const page = await pageAnswer.text();
  // What nodes report never enters the HTML: the script draws it with textContent.
  assert.doesNotMatch(page, /alert\(1\)/);
  assert.match(page, /<script src="\/dashboard.js" defer><\/script>/);
  const script = await app.request("/dashboard.js");
  assert.equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");
  const text = await script.text();
  assert.doesNotMatch(text, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  new Function(text); // it parses
  assert.equal(
    (await app.request("/dashboard.css")).headers.get("content-type"),
    "text/css; charset=utf-8",
  );
  const data = await (await app.request("/v1/dashboard")).json();
  assert.deepEqual(data.clusters.map((c: { id: string }) => c.id), ["a", "b"]);
  assert.equal(data.clusters[0].nodes[0].role, "unreachable");
  assert.equal(data.clusters[0].nodes[0].error, "<script>alert(1)</script>");
  const missing = await app.request("/v1/nope");
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "not_found");
  const post = await app.request("/v1/carp", { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
});

Deno.test("admin http: /v1/dashboard gives per cluster keys, bytes, rates and the leader changes", async () => {
  const answers = new Map<string, Record<string, unknown> | string>([
    ["7151", { ...status("a1", "a", "leader"), reads: 100, writes: 10 }],
    ["7251", {
      ...status("b1", "b", "follower"),
      keys: 7,
      bytes: 70,
      disk: { state: "failed", error: "ENOSPC", persistFailures: 3, recoveries: 0 },
    }],
  ]);
  const p = poller(answers);
  const activity = new DeploymentActivity();
  const source = { config: CONFIG, poller: p, processes: new Map(), activity };
  const app = adminApp(source, () => true);
  await p.pollOnce();
  activity.observe(clustersView(source), 1_000);
  answers.set("7151", { ...status("a1", "a", "leader"), reads: 300, writes: 30 });
  await p.pollOnce();
  activity.observe(clustersView(source), 3_000);
  const data = await (await app.request("/v1/dashboard")).json();
  const [a, b] = data.clusters;
  assert.equal(a.leader, "a1");
  assert.equal(a.keys, 4);
  assert.equal(a.readsPerSecond, 100);
  assert.equal(a.writesPerSecond, 10);
  assert.equal(b.leader, "");
  assert.equal(b.keys, 7, "without a leader, the most advanced node's count");
  assert.equal(b.nodes[0].health, "disk_failed");
  assert.match(b.nodes[0].error, /ENOSPC/);
  assert.deepEqual(data.leaderChanges, [{ at: 1_000, cluster: "a", from: "", to: "a1", term: 3 }]);
});

Deno.test("admin poller: an answer that is not the polled node's status is not believed", async () => {
  const answers = new Map<string, Record<string, unknown> | string>([
    // Another process on a1's address claims to lead, in a huge term, under another name.
    ["7151", { ...status("<script>", "a", "leader"), term: 1e15 }],
    ["7251", { ...status("b1", "b", "leader"), commit: -1 }],
  ]);
  const p = poller(answers);
  await p.pollOnce();
  assert.equal(p.leaderOf("a"), "");
  assert.equal(p.view("a1").status, null);
  assert.match(
    p.view("a1").error,
    /another process answers on 127.0.0.1:7151: it says it is node "<script>" of cluster "a"/,
  );
  assert.equal(p.view("b1").error, "malformed status answer (commit)");
  assert.equal(p.allLeaders(), false);
  answers.set("7151", { ...status("a1", "a", "leader"), role: "king" });
  await p.pollOnce();
  assert.equal(p.view("a1").error, "malformed status answer (role)");
});

Deno.test("admin poller: a node whose process does not run is not asked (nor given the secret)", async () => {
  const asked: string[] = [];
  const fake = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    asked.push(`${new URL(String(input)).port} ${new Headers(init?.headers).get("authorization")}`);
    // Whatever squats on the port answers as a plausible leader.
    return Promise.resolve(new Response(JSON.stringify(status("a1", "a", "leader"))));
  };
  let running = false;
  const p = new StatusPoller(CONFIG, { fetch: fake as typeof fetch, isRunning: () => running });
  await p.pollOnce();
  assert.deepEqual(asked, []);
  assert.equal(p.view("a1").error, "not running");
  assert.equal(p.leaderOf("a"), "");
  running = true;
  await p.pollOnce();
  assert.equal(asked.length, 2);
  assert.equal(p.leaderOf("a"), "a1");
});

Deno.test("admin http: with [tls] the poller asks https:// and the table gives https:// URLs", async () => {
  const config = parseConfig(
    `[tls]\nca = "ca.pem"\ncert = "n.pem"\nkey = "n.key"\n` +
      `[admin]\nhttp = "127.0.0.1:7000"\n[[clusters]]\nid = "a"\n` +
      `[[clusters.nodes]]\nid = "a1"\nraft = "127.0.0.1:7101"\nhttp = "127.0.0.1:7151"\n` +
      `data = "d1"\n`,
    { baseDir: "/tmp" },
  );
  const asked: string[] = [];
  const fake = (input: string | URL | Request): Promise<Response> => {
    asked.push(String(input));
    return Promise.resolve(
      new Response(JSON.stringify(status("a1", "a", "leader")), { status: 200 }),
    );
  };
  const p = new StatusPoller(config, { fetch: fake as typeof fetch });
  const app = adminApp({ config, poller: p, processes: new Map() }, () => true);
  await p.pollOnce();
  assert.deepEqual(asked, ["https://127.0.0.1:7151/v1/status"]);
  const table = await (await app.request("/v1/carp")).json();
  assert.deepEqual(table.clusters[0].nodes, [
    { id: "a1", http: "127.0.0.1:7151", url: "https://127.0.0.1:7151" },
  ]);
});

Deno.test("admin http: a reshard's progress is in /v1/reshard and /v1/dashboard; starting one needs a secret", async () => {
  const p = poller(new Map());
  const progress = {
    state: "running" as const,
    fromEpoch: 1,
    toEpoch: 2,
    added: ["c"],
    drained: [],
    sources: [{ id: "a", moved: 3, done: true }, { id: "b", moved: 0, done: false }],
    keysMoved: 3,
    bytesMoved: 30,
    batches: 1,
    keysAtStart: 12,
    idealFraction: 1 / 3,
    startedAt: 1,
    endedAt: 0,
    error: "",
  };
  const started: string[] = [];
  const source = { config: CONFIG, poller: p, processes: new Map(), reshard: () => progress };
  const app = adminApp(source, () => true, {
    authorized: (token) => token === "the-secret",
    start: (text, path) => {
      started.push(`${path}: ${text}`);
      return Promise.resolve(progress);
    },
  });
  assert.deepEqual(await (await app.request("/v1/reshard")).json(), progress);
  assert.deepEqual((await (await app.request("/v1/dashboard")).json()).reshard, progress);
  const body = JSON.stringify({ path: "/etc/koi/new.toml", config: "x = 1" });
  const anonymous = await app.request("/v1/reshard", { method: "POST", body });
  assert.equal(anonymous.status, 401);
  const wrong = await app.request("/v1/reshard", {
    method: "POST",
    body,
    headers: { authorization: "Bearer nope" },
  });
  assert.equal(wrong.status, 401);
  const bad = await app.request("/v1/reshard", {
    method: "POST",
    body: "not json",
    headers: { authorization: "Bearer the-secret" },
  });
  assert.equal(bad.status, 400);
  const huge = await app.request("/v1/reshard", {
    method: "POST",
    body: JSON.stringify({ path: "/x.toml", config: "#".repeat(300 * 1024) }),
    headers: { authorization: "Bearer the-secret" },
  });
  assert.equal(huge.status, 413);
  assert.equal((await huge.json()).error.code, "too_large");
  const ok = await app.request("/v1/reshard", {
    method: "POST",
    body,
    headers: { authorization: "Bearer the-secret" },
  });
  assert.equal(ok.status, 202);
  assert.deepEqual(started, ["/etc/koi/new.toml: x = 1"]);
  const none = adminApp({ config: CONFIG, poller: p, processes: new Map() }, () => true);
  assert.equal((await none.request("/v1/reshard")).status, 404);
});

Deno.test("admin http: before a move began everywhere, /v1/carp serves the old table, without the added clusters", async () => {
  const p = poller(
    new Map([["7151", status("a1", "a", "leader")], ["7251", status("b1", "b", "leader")]]),
  );
  await p.pollOnce();
  const from = { scheme: "carp64" as const, epoch: 1, members: [{ id: "a", loadFactor: 1 }] };
  const pending = { from } as unknown as ReshardPlan;
  // The admin polls a and b (b is added by the move), at the next epoch already.
  const during = { ...CONFIG, routing: { ...CONFIG.routing, epoch: 2 } };
  const app = adminApp(
    { config: during, poller: p, processes: new Map(), pendingMove: () => pending },
    () => true,
  );
  const table = await (await app.request("/v1/carp")).json();
  assert.equal(table.epoch, 1);
  assert.equal(table.moving, undefined);
  assert.deepEqual(table.clusters.map((c: { id: string }) => c.id), ["a"]);
});

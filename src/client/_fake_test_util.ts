/**
 * Test support: a fake koi deployment on 127.0.0.1. Each fake node is a real HTTP server
 * (`Deno.serve` on a port the OS picked) that speaks the node API's data plane as docs/api.md
 * describes it (`?key_b64=`, listings with `_b64` bounds, conditional writes, request-id
 * deduplication, `421 wrong_shard`, `x-koi-leader`, `/v1/status`); the fake admin serves
 * `/v1/carp`, `/v1/clusters` and `/healthz`. Hooks let a test answer a request itself
 * (a `503`, a hang) and every request is recorded.
 *
 * @module
 */

import { freePorts } from "../config/_free_ports.ts";
import { type CarpScheme, CarpTable } from "../carp/mod.ts";
import { compareBytes, decodeBase64Url, encodeBase64Url, utf8Lossy } from "./_bytes.ts";

/** One cluster of a {@linkcode FakeDeployment}. */
export interface FakeClusterSpec {
  readonly id: string;
  readonly loadFactor?: number;
  /** Node ids. */
  readonly nodes: readonly string[];
}

/** What a {@linkcode FakeDeployment} is built from. */
export interface FakeSpec {
  readonly clusters: readonly FakeClusterSpec[];
  readonly scheme?: CarpScheme;
  readonly epoch?: number;
}

/** A request a fake node received. */
export interface SeenRequest {
  readonly node: string;
  readonly cluster: string;
  readonly method: string;
  /** The key of a key request (`key_b64`), undefined for listings and status. */
  readonly key: Uint8Array | undefined;
  readonly query: URLSearchParams;
  readonly requestId: string | null;
  readonly headers: Headers;
}

/** Answers a request instead of the fake node when it returns a Response. */
export type NodeHook = (
  request: Request,
  node: FakeNode,
  seen: SeenRequest,
) => Response | undefined | Promise<Response | undefined>;

/** The routing table shape of `GET /v1/carp`. */
export interface FakeTable {
  readonly epoch: number;
  readonly scheme: CarpScheme;
  readonly clusters: readonly { readonly id: string; readonly loadFactor: number }[];
}

interface Entry {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly rev: number;
}

/** One change of a fake cluster, as its nodes' `/v1/watch` streams send it. */
export interface FakeChange {
  readonly rev: number;
  readonly type: "put" | "delete";
  readonly key: Uint8Array;
  readonly value?: Uint8Array;
}

interface Remembered {
  readonly seq: number;
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, string>;
}

/** One fake cluster's replicated state (shared by its nodes: they agree instantly). */
export class FakeCluster {
  readonly id: string;
  readonly nodes: FakeNode[] = [];
  /** The leader's node id that nodes report in `x-koi-leader`; `""` for none. */
  leader: string;
  readonly data = new Map<string, Entry>();
  rev = 0;
  readonly sessions = new Map<string, Remembered>();
  /** Writes applied (not deduplicated, not refused). */
  applied = 0;
  /** Every change, in rev order (what `/v1/watch` streams). */
  readonly changes: FakeChange[] = [];
  /** Watches from a rev below this answer `410 compacted`. */
  floor = 0;
  readonly #listeners = new Set<(change: FakeChange) => void>();

  constructor(id: string, leader: string) {
    this.id = id;
    this.leader = leader;
  }

  /** Sets `key` directly (test setup); watchers see the change. */
  set(key: string | Uint8Array, value: string | Uint8Array = ""): number {
    const k = typeof key === "string" ? new TextEncoder().encode(key) : key;
    const v = typeof value === "string" ? new TextEncoder().encode(value) : value;
    this.rev += 1;
    this.data.set(encodeBase64Url(k), { key: k, value: v, rev: this.rev });
    this.changed({ rev: this.rev, type: "put", key: k, value: v });
    return this.rev;
  }

  /** Records a change and tells the open watch streams. */
  changed(change: FakeChange): void {
    this.changes.push(change);
    for (const listener of this.#listeners) listener(change);
  }

  /** Calls `listener` with every later change until the returned function is called. */
  listen(listener: (change: FakeChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The value of `key`, as text, or undefined. */
  text(key: string): string | undefined {
    const entry = this.data.get(encodeBase64Url(new TextEncoder().encode(key)));
    return entry === undefined ? undefined : utf8Lossy(entry.value);
  }
}

/** One fake node: an HTTP server of its cluster. */
export class FakeNode {
  readonly id: string;
  readonly cluster: FakeCluster;
  readonly deployment: FakeDeployment;
  readonly port: number;
  readonly requests: SeenRequest[] = [];
  hook: NodeHook | undefined;
  /** Watch streams open on this node right now. */
  watches = 0;
  #server: Deno.HttpServer | undefined;
  #closing = new AbortController();

  constructor(id: string, cluster: FakeCluster, deployment: FakeDeployment, port: number) {
    this.id = id;
    this.cluster = cluster;
    this.deployment = deployment;
    this.port = port;
  }

  /** `127.0.0.1:<port>`. */
  get http(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Whether the server runs. */
  get running(): boolean {
    return this.#server !== undefined;
  }

  /** Starts serving on this node's port. */
  start(): void {
    if (this.#server !== undefined) return;
    this.#closing = new AbortController();
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: this.port, onListen: () => {} },
      (request) => this.#handle(request),
    );
  }

  /** Stops the server (connections are then refused); in-flight hangs end. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    this.#closing.abort();
    await server.shutdown();
  }

  /** Never answers: resolves only when the node stops (for hang hooks). */
  hang(): Promise<Response> {
    const closing = this.#closing.signal;
    return new Promise((resolve) => {
      const done = () => resolve(new Response(null, { status: 503 }));
      if (closing.aborted) return done();
      closing.addEventListener("abort", done, { once: true });
    });
  }

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const b64 = url.searchParams.get("key_b64");
    const seen: SeenRequest = {
      node: this.id,
      cluster: this.cluster.id,
      method: request.method,
      key: b64 === null ? undefined : decodeBase64Url(b64),
      query: url.searchParams,
      requestId: request.headers.get("x-request-id"),
      headers: request.headers,
    };
    this.requests.push(seen);
    this.deployment.requests.push(seen);
    const hooked = await (this.hook ?? this.deployment.nodeHook)?.(request, this, seen);
    const response = hooked ?? await this.#serve(request, url, seen);
    if (this.cluster.leader !== "" && !response.headers.has("x-koi-leader")) {
      response.headers.set("x-koi-leader", this.cluster.leader);
    }
    return response;
  }

  async #serve(request: Request, url: URL, seen: SeenRequest): Promise<Response> {
    if (url.pathname === "/v1/status" && request.method === "GET") return json(200, this.status());
    if (url.pathname === "/v1/watch" && request.method === "GET") return this.#watch(url);
    if (url.pathname !== "/v1/kv") return error(404, "not_found", "No such route");
    if (request.method === "GET" && seen.key === undefined) return this.#list(url);
    const key = seen.key;
    if (key === undefined || key.length === 0) return error(400, "bad_request", "Missing key");
    const table = this.deployment.nodeTable;
    const owner = table.owner(key);
    if (owner !== this.cluster.id) {
      return error(421, "wrong_shard", `Wrong shard: it belongs to cluster ${owner}`, {
        "x-koi-epoch": String(table.epoch),
        "x-koi-owner": owner,
      });
    }
    const id = encodeBase64Url(key);
    const state = this.cluster;
    if (request.method === "GET") {
      const entry = state.data.get(id);
      if (entry === undefined) return error(404, "not_found", "Key not found");
      return new Response(entry.value as Uint8Array<ArrayBuffer>, {
        status: 200,
        headers: { "content-type": "application/octet-stream", etag: `"${entry.rev}"` },
      });
    }
    if (request.method !== "PUT" && request.method !== "DELETE") {
      return error(405, "method_not_allowed", "Method not allowed");
    }
    const body = new Uint8Array(await request.arrayBuffer());
    const requestId = seen.requestId;
    let client: string | undefined;
    let seq = 0;
    if (requestId !== null) {
      const at = requestId.lastIndexOf(":");
      client = requestId.slice(0, at);
      seq = Number(requestId.slice(at + 1));
      const known = state.sessions.get(client);
      if (known !== undefined && seq === known.seq) {
        return new Response(known.body, { status: known.status, headers: known.headers });
      }
      if (known !== undefined && seq < known.seq) {
        state.rev += 1;
        return error(409, "stale_request", `Stale request id: last applied seq ${known.seq}`);
      }
    }
    state.rev += 1;
    const rev = state.rev;
    const current = state.data.get(id);
    const ifMatch = request.headers.get("if-match");
    const ifNoneMatch = request.headers.get("if-none-match");
    let status = 200;
    let answer: unknown;
    let headers: Record<string, string> = { "content-type": "application/json" };
    if (
      (ifMatch !== null && (current === undefined || ifMatch !== `"${current.rev}"`)) ||
      (ifNoneMatch === "*" && current !== undefined)
    ) {
      status = 412;
      answer = { error: { code: "precondition_failed", message: "Precondition failed" } };
      if (current !== undefined) headers = { ...headers, etag: `"${current.rev}"` };
    } else if (request.method === "PUT") {
      state.data.set(id, { key, value: body, rev });
      state.applied += 1;
      state.changed({ rev, type: "put", key, value: body });
      answer = { rev };
    } else {
      state.data.delete(id);
      state.applied += 1;
      if (current !== undefined) state.changed({ rev, type: "delete", key });
      answer = { rev, deleted: current !== undefined };
    }
    const text = JSON.stringify(answer);
    if (client !== undefined) state.sessions.set(client, { seq, status, body: text, headers });
    return new Response(text, { status, headers });
  }

  /** `GET /v1/watch` as docs/api.md describes it (no history bound but `cluster.floor`). */
  #watch(url: URL): Response {
    const q = url.searchParams;
    const prefix = q.has("prefix_b64")
      ? decodeBase64Url(q.get("prefix_b64")!) ?? new Uint8Array(0)
      : new TextEncoder().encode(q.get("prefix") ?? "");
    const fromText = q.get("from_rev");
    if (fromText !== null && !/^[0-9]{1,15}$/.test(fromText)) {
      return error(400, "bad_request", `Invalid from_rev: ${fromText}`);
    }
    const cluster = this.cluster;
    const from = fromText === null ? cluster.rev : Number(fromText);
    if (from < cluster.floor) {
      return json(410, {
        error: { code: "compacted", message: "Compacted", rev: cluster.rev, oldest: cluster.floor },
      });
    }
    const matches = (key: Uint8Array) =>
      key.length >= prefix.length && compareBytes(key.subarray(0, prefix.length), prefix) === 0;
    const text = new TextEncoder();
    const message = (c: FakeChange) =>
      text.encode(
        `id: ${c.rev}\nevent: change\ndata: ${
          JSON.stringify({
            rev: c.rev,
            changes: [{
              type: c.type,
              key: utf8Lossy(c.key),
              key_b64: encodeBase64Url(c.key),
              ...(c.type === "put"
                ? { value_b64: encodeBase64Url(c.value!), size: c.value!.length }
                : {}),
            }],
          })
        }\n\n`,
      );
    const closing = this.#closing.signal;
    let stop = () => {};
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.watches++;
        const end = () => {
          stop();
          try {
            controller.close();
          } catch {
            // cancelled already
          }
        };
        controller.enqueue(
          text.encode(`id: ${from}\nevent: start\ndata: ${JSON.stringify({ rev: from })}\n\n`),
        );
        for (const c of cluster.changes) {
          if (c.rev > from && matches(c.key)) controller.enqueue(message(c));
        }
        const unlisten = cluster.listen((c) => {
          if (c.rev > from && matches(c.key)) controller.enqueue(message(c));
        });
        closing.addEventListener("abort", end, { once: true });
        let stopped = false;
        stop = () => {
          if (stopped) return;
          stopped = true;
          this.watches--;
          unlisten();
          closing.removeEventListener("abort", end);
        };
        if (closing.aborted) end();
      },
      cancel: () => stop(),
    });
    return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
  }

  #list(url: URL): Response {
    const q = url.searchParams;
    const bound = (name: string) => {
      const b64 = q.get(`${name}_b64`);
      if (b64 !== null) return decodeBase64Url(b64) ?? new Uint8Array(0);
      return new TextEncoder().encode(q.get(name) ?? "");
    };
    const prefix = bound("prefix");
    const after = bound("after");
    const limit = Number(q.get("limit") ?? 100);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) {
      return error(400, "bad_request", `Invalid limit ${q.get("limit")}`);
    }
    const binary = q.has("prefix_b64") || q.has("after_b64");
    const matching = [...this.cluster.data.values()]
      .filter((e) =>
        e.key.length >= prefix.length &&
        compareBytes(e.key.subarray(0, prefix.length), prefix) === 0
      )
      .filter((e) => after.length === 0 || compareBytes(e.key, after) > 0)
      .sort((a, b) => compareBytes(a.key, b.key));
    const items = matching.slice(0, limit).map((e) => ({
      key: utf8Lossy(e.key),
      rev: e.rev,
      ...(binary ? { key_b64: encodeBase64Url(e.key) } : {}),
    }));
    return json(200, { items, more: matching.length > limit });
  }

  /** This node's `/v1/status` answer. */
  status(): Record<string, unknown> {
    const leader = this.cluster.leader;
    return {
      node: this.id,
      cluster: this.cluster.id,
      role: leader === this.id ? "leader" : "follower",
      term: 2,
      leader,
      commit: this.cluster.rev,
      applied: this.cluster.rev,
      snapshot: 0,
      epoch: this.deployment.nodeTable.epoch,
      keys: this.cluster.data.size,
      bytes: 0,
      members: this.cluster.nodes.map((n) => ({ id: n.id, voter: true, match: 0 })),
    };
  }
}

/** A fake admin and fake nodes on 127.0.0.1. Close it in `finally`. */
export class FakeDeployment {
  readonly clusters = new Map<string, FakeCluster>();
  readonly nodes = new Map<string, FakeNode>();
  /** Every request any node received, in order. */
  readonly requests: SeenRequest[] = [];
  /** The paths the admin was asked for, in order. */
  readonly adminRequests: string[] = [];
  /** What the admin serves at `/v1/carp` (change it to move the table). */
  adminTable: FakeTable;
  /** The table the nodes check ownership with (421 for other keys). */
  nodeTable: CarpTable;
  /** Answers an admin request instead of the fake admin when it returns a Response. */
  adminHook:
    | ((request: Request, path: string) => Response | Promise<Response> | undefined)
    | undefined;
  /** Answers a node request when the node has no own hook. */
  nodeHook: NodeHook | undefined;
  #admin: Deno.HttpServer<Deno.NetAddr> | undefined;
  #adminPort = 0;

  private constructor(table: FakeTable) {
    this.adminTable = table;
    this.nodeTable = new CarpTable({
      scheme: table.scheme,
      epoch: table.epoch,
      members: table.clusters,
    });
  }

  /** Starts the admin and every node. */
  static start(spec: FakeSpec): FakeDeployment {
    const table: FakeTable = {
      epoch: spec.epoch ?? 1,
      scheme: spec.scheme ?? "carp64",
      clusters: spec.clusters.map((c) => ({ id: c.id, loadFactor: c.loadFactor ?? 1 })),
    };
    const d = new FakeDeployment(table);
    const ports = freePorts(spec.clusters.reduce((n, c) => n + c.nodes.length, 0));
    let i = 0;
    for (const c of spec.clusters) {
      const cluster = new FakeCluster(c.id, c.nodes[0]);
      d.clusters.set(c.id, cluster);
      for (const id of c.nodes) {
        const node = new FakeNode(id, cluster, d, ports[i++]);
        cluster.nodes.push(node);
        d.nodes.set(id, node);
        node.start();
      }
    }
    d.#admin = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => d.#handleAdmin(request),
    );
    d.#adminPort = (d.#admin.addr as Deno.NetAddr).port;
    return d;
  }

  /** The admin's URL. */
  get adminUrl(): string {
    return `http://127.0.0.1:${this.#adminPort}`;
  }

  /** Node `id`. */
  node(id: string): FakeNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no fake node ${id}`);
    return node;
  }

  /** Cluster `id`. */
  cluster(id: string): FakeCluster {
    const cluster = this.clusters.get(id);
    if (cluster === undefined) throw new Error(`no fake cluster ${id}`);
    return cluster;
  }

  /** Sets what the admin serves and what the nodes route by (both, unless told). */
  setTable(table: FakeTable, which: "admin" | "nodes" | "both" = "both"): void {
    if (which !== "nodes") this.adminTable = table;
    if (which !== "admin") {
      this.nodeTable = new CarpTable({
        scheme: table.scheme,
        epoch: table.epoch,
        members: table.clusters,
      });
    }
  }

  /** The `/v1/carp` answer. */
  carpJson(): Record<string, unknown> {
    const t = this.adminTable;
    return {
      epoch: t.epoch,
      scheme: t.scheme,
      clusters: t.clusters.map((c) => {
        const cluster = this.clusters.get(c.id);
        return {
          id: c.id,
          loadFactor: c.loadFactor,
          leader: cluster?.leader ?? "",
          nodes: (cluster?.nodes ?? []).map((n) => ({ id: n.id, http: n.http })),
        };
      }),
    };
  }

  /** The `/v1/clusters` answer: stopped nodes are unreachable. */
  clustersJson(): Record<string, unknown> {
    const t = this.adminTable;
    const clusters = t.clusters.map((c) => {
      const cluster = this.cluster(c.id);
      return {
        id: c.id,
        loadFactor: c.loadFactor,
        leader: cluster.leader,
        nodes: cluster.nodes.map((n, i) => ({
          id: n.id,
          http: n.http,
          raft: `127.0.0.1:${7100 + i}`,
          pid: n.running ? 1000 + i : null,
          restarts: n.running ? 0 : 3,
          reachable: n.running,
          error: n.running ? "" : "connection refused",
          status: n.running ? n.status() : null,
        })),
      };
    });
    return {
      epoch: t.epoch,
      scheme: t.scheme,
      healthy: clusters.every((c) => c.leader !== ""),
      clusters,
    };
  }

  #handleAdmin(request: Request): Response | Promise<Response> {
    const path = new URL(request.url).pathname;
    this.adminRequests.push(path);
    const hooked = this.adminHook?.(request, path);
    if (hooked !== undefined) return hooked;
    if (path === "/v1/carp") return json(200, this.carpJson());
    if (path === "/v1/clusters") return json(200, this.clustersJson());
    if (path === "/healthz") return json(200, { ok: true });
    return error(404, "not_found", "No such route");
  }

  /** Stops every server. */
  async close(): Promise<void> {
    for (const node of this.nodes.values()) await node.stop();
    await this.#admin?.shutdown();
    this.#admin = undefined;
  }

  /** `await using` support. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A JSON answer. */
export function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** koi's error answer. */
export function error(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return json(status, { error: { code, message } }, headers);
}

/** Waits until `cond()` is true, polling every 5 ms; throws naming `what` after `ms`. */
export async function waitFor(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Finds a key (`<prefix><n>`) that `table` routes to `cluster`. */
export function keyOwnedBy(table: CarpTable, cluster: string, prefix = "k"): string {
  for (let i = 0; i < 100_000; i++) {
    if (table.owner(`${prefix}${i}`) === cluster) return `${prefix}${i}`;
  }
  throw new Error(`no key of cluster ${cluster}`);
}

/** Free ports below the ephemeral range (see scripts/free_ports_config.ts). */
export { freePorts };

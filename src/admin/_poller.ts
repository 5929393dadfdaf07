/**
 * The admin's view of the deployment: it asks every node for `GET /v1/status` twice a
 * second (with the cluster's bearer token) and keeps the latest answer or the reason there
 * was none. The routing table's leader hints, `/v1/clusters`, `/healthz` and the status page
 * all read from here.
 *
 * @module
 */
import { ID_PATTERN, type KoiConfig, type NodeConfig } from "../config/mod.ts";
import type { NodeStatus } from "../client/mod.ts";

/** A node's `GET /v1/status` answer (docs/api.md), as the client library reads it. */
export type PolledStatus = NodeStatus;

/** The latest poll of one node. */
export interface NodeView {
  /** Its answer, or null when it gave none. */
  readonly status: PolledStatus | null;
  /** Why there was no answer ("" when there was). */
  readonly error: string;
  /** When the poll finished (ms since the epoch; 0 before the first). */
  readonly at: number;
}

/** How often every node is asked, in milliseconds. */
export const POLL_INTERVAL_MS = 500;
/** How long one status request may take, in milliseconds. */
export const POLL_TIMEOUT_MS = 1_000;
/** Largest status answer read, in bytes (a status is under 1 KiB per member). */
export const STATUS_BYTES_MAX = 1 << 20;

/** Polls every node of a config. */
export class StatusPoller {
  #config: KoiConfig;
  readonly #views = new Map<string, NodeView>();
  readonly #fetch: typeof fetch;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  #round: Promise<void> = Promise.resolve();
  readonly #waiters = new Set<() => void>();
  readonly #abort = new AbortController();

  readonly #isRunning: ((id: string) => boolean) | undefined;

  /**
   * @param config the deployment, secrets resolved (generated ones included)
   * @param options `isRunning` tells whether the admin's process of a node runs: a node whose
   * process does not run is not asked (whatever answers on its port meanwhile is not the
   * node, and must neither get the secret nor be believed)
   */
  constructor(
    config: KoiConfig,
    options: { fetch?: typeof fetch; isRunning?: (id: string) => boolean } = {},
  ) {
    this.#config = config;
    this.#fetch = options.fetch ?? fetch;
    this.#isRunning = options.isRunning;
    for (const c of config.clusters) {
      for (const n of c.nodes) {
        this.#views.set(n.id, { status: null, error: "not polled yet", at: 0 });
      }
    }
  }

  /**
   * Polls the nodes of `config` from the next round on (a reshard adds and removes clusters):
   * new nodes start as not polled yet, gone ones are forgotten.
   */
  setConfig(config: KoiConfig): void {
    this.#config = config;
    const ids = new Set(config.clusters.flatMap((c) => c.nodes.map((n) => n.id)));
    for (const id of [...this.#views.keys()]) if (!ids.has(id)) this.#views.delete(id);
    for (const id of ids) {
      if (!this.#views.has(id)) {
        this.#views.set(id, { status: null, error: "not polled yet", at: 0 });
      }
    }
  }

  /** Starts polling (the first round at once). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const loop = async () => {
      this.#round = this.pollOnce();
      await this.#round;
      if (this.#running) this.#timer = setTimeout(loop, POLL_INTERVAL_MS);
    };
    loop();
  }

  /** Stops polling; resolves once the round in flight ended. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#abort.abort();
    await this.#round;
  }

  /** Polls every node once, in parallel. */
  async pollOnce(): Promise<void> {
    const nodes = this.#config.clusters.flatMap((c) => c.nodes);
    await Promise.all(nodes.map(async (node) => this.#views.set(node.id, await this.#poll(node))));
    for (const wake of [...this.#waiters]) wake();
  }

  async #poll(node: NodeConfig): Promise<NodeView> {
    if (this.#isRunning !== undefined && !this.#isRunning(node.id)) {
      return { status: null, error: "not running", at: Date.now() };
    }
    const headers: Record<string, string> = {};
    if (node.secret !== undefined) headers.authorization = `Bearer ${node.secret}`;
    try {
      const response = await this.#fetch(`${nodeBaseUrl(node)}/v1/status`, {
        headers,
        signal: AbortSignal.any([AbortSignal.timeout(POLL_TIMEOUT_MS), this.#abort.signal]),
      });
      const text = await readCapped(response, STATUS_BYTES_MAX);
      if (response.status !== 200) {
        const why = response.status === 401
          ? "401: the node refuses the admin's secret (does its data belong to another deployment?)"
          : `HTTP ${response.status}`;
        return { status: null, error: why, at: Date.now() };
      }
      const body: unknown = JSON.parse(text);
      const problem = statusProblem(body, node);
      if (problem !== undefined) return { status: null, error: problem, at: Date.now() };
      return { status: body as PolledStatus, error: "", at: Date.now() };
    } catch (error) {
      return { status: null, error: describeFetchError(error), at: Date.now() };
    }
  }

  /** The latest view of node `id`. */
  view(id: string): NodeView {
    return this.#views.get(id) ?? { status: null, error: "unknown node", at: 0 };
  }

  /**
   * The leader of cluster `clusterId` as its members see it: the node that reports itself
   * leader in the highest term, or "" when none does.
   */
  leaderOf(clusterId: string): string {
    const cluster = this.#config.clusters.find((c) => c.id === clusterId);
    // By the configured ids: a status is kept only when it names the node polled.
    let best: { id: string; term: number } | undefined;
    for (const node of cluster?.nodes ?? []) {
      const s = this.view(node.id).status;
      if (s?.role === "leader" && (best === undefined || s.term > best.term)) {
        best = { id: node.id, term: s.term };
      }
    }
    return best?.id ?? "";
  }

  /** Whether every cluster has a leader in the latest round. */
  allLeaders(): boolean {
    return this.#config.clusters.every((c) => this.leaderOf(c.id) !== "");
  }

  /** Resolves after the next completed round (or when `signal` aborts). */
  nextRound(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      this.#waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }
}

/** The base URL of a node's HTTP API: `https://` when it has TLS files, else `http://`. */
export function nodeBaseUrl(node: NodeConfig): string {
  return `${node.tls === undefined ? "http" : "https"}://${hostPort(node)}`;
}

/** `host:port` for a URL (IPv6 hosts in brackets). */
export function hostPort(node: { http: { host: string; port: number } }): string {
  const host = node.http.host.includes(":") ? `[${node.http.host}]` : node.http.host;
  return `${host}:${node.http.port}`;
}

async function readCapped(response: Response, max: number): Promise<string> {
  const reader = response.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) {
      await reader.cancel();
      throw new Error(`answer over ${max} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(all);
}

/** How deep {@linkcode describeFetchError} follows an error's `cause`. */
export const FETCH_ERROR_CAUSES_MAX = 8;

/**
 * The messages of `error` and its causes, outermost first. Deno 2.9.6's `fetch` throws
 * `TypeError: fetch failed` and puts the reason in `cause` ("tcp connect error: Connection
 * refused (os error 111)", "invalid peer certificate: UnknownIssuer", ...).
 */
function causeMessages(error: unknown): string[] {
  const messages: string[] = [];
  let at: unknown = error;
  for (let depth = 0; at !== undefined && at !== null && depth < FETCH_ERROR_CAUSES_MAX; depth++) {
    messages.push(String((at as Error).message ?? at));
    at = (at as Error).cause;
  }
  return messages;
}

/** A short reason for a failed status request, from the error and its causes. */
export function describeFetchError(error: unknown): string {
  if (error instanceof DOMException && error.name === "TimeoutError") return "timed out";
  if (error instanceof DOMException && error.name === "AbortError") return "stopped";
  const messages = causeMessages(error);
  const all = messages.join("\n");
  if (/connection refused/i.test(all)) return "connection refused";
  if (/connection reset/i.test(all)) return "connection reset";
  const certificate = /invalid peer certificate: (.*)/i.exec(all)?.[1];
  if (certificate !== undefined) {
    const hint = /UnknownIssuer/i.test(certificate)
      ? "is it signed by the CA of [tls] ca?"
      : /not valid for name/i.test(certificate)
      ? "does its subjectAltName name the node's http host?"
      : /expired|notvalidyet/i.test(certificate)
      ? "is it within its validity period?"
      : "is it a server certificate of the CA of [tls] ca?";
    return `TLS: the node's certificate is refused (${certificate.slice(0, 200)}); ${hint}`;
  }
  if (/certificate/i.test(all)) {
    return `TLS: ${messages[messages.length - 1].replace(/^.*: /, "").slice(0, 200)}`;
  }
  if (/corrupt message|InvalidContentType|wrong version number/i.test(all)) {
    return "TLS handshake failed: the node does not answer TLS (does it run without [tls]?)";
  }
  if (/connection closed|closed before/i.test(all)) {
    return "connection closed before an answer";
  }
  // The innermost message is the reason; the outer ones wrap it ("fetch failed").
  return messages[messages.length - 1].slice(0, 200);
}

const ROLES = new Set(["leader", "follower", "candidate", "preCandidate"]);
const COUNTERS = ["term", "commit", "applied", "snapshot", "epoch", "keys", "bytes"] as const;

/**
 * Why `body` is not the status of `node` (a malformed answer, or another process answering on
 * the node's address), or undefined when it is. Only a checked status feeds the leaders, the
 * health check and the routing table's hints.
 */
export function statusProblem(body: unknown, node: NodeConfig): string | undefined {
  const s = body as Record<string, unknown> | null;
  if (typeof s !== "object" || s === null) return "malformed status answer";
  if (s.node !== node.id || s.cluster !== node.clusterId) {
    const who = `${JSON.stringify(String(s.node).slice(0, 64))} of cluster ${
      JSON.stringify(String(s.cluster).slice(0, 64))
    }`;
    return `another process answers on ${node.http.text}: it says it is node ${who}`;
  }
  if (typeof s.role !== "string" || !ROLES.has(s.role)) return "malformed status answer (role)";
  if (typeof s.leader !== "string" || (s.leader !== "" && !ID_PATTERN.test(s.leader))) {
    return "malformed status answer (leader)";
  }
  for (const k of COUNTERS) {
    if (!Number.isSafeInteger(s[k]) || (s[k] as number) < 0) {
      return `malformed status answer (${k})`;
    }
  }
  if (!Array.isArray(s.members)) return "malformed status answer (members)";
  return undefined;
}

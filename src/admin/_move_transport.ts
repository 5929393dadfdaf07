/**
 * How the admin talks to each cluster's leader during a move: the node's routing endpoints
 * (docs/api.md "Resharding"). {@linkcode MoveTransport} is what the move needs; the HTTP
 * implementation finds the leader from the status poller, and retries `503`, a lost leader
 * and broken connections with backoff until the step's deadline.
 *
 * @module
 */
import { decode } from "@msgpack/msgpack";
import type { KoiConfig } from "../config/mod.ts";
import {
  encodeRouteCommand,
  type KvResult,
  type RouteCommand,
  stagedKeyFromWire,
} from "../storage/mod.ts";
import { nodeBaseUrl, type StatusPoller } from "./_poller.ts";
import { encodeBase64Url } from "../client/_bytes.ts";

/** A routing command's answer: applied (with the cluster's rev), or refused with a reason. */
export type RouteAnswer =
  | { readonly ok: true; readonly rev: number }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** One key as a source holds it. */
export interface MovingKey {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly rev: number;
}

/** A cluster's routing state as its status reports it; cursors as bytes, null = the end. */
export interface ClusterRouting {
  readonly epoch: number;
  readonly move?: {
    readonly epoch: number;
    readonly fenced: Uint8Array | null;
    readonly received: ReadonlyMap<string, Uint8Array | null>;
  };
}

/** What a move does to clusters. */
export interface MoveTransport {
  /** Proposes `command` at `cluster`'s leader. */
  route(cluster: string, command: RouteCommand): Promise<RouteAnswer>;
  /** The source's moving keys from `from` (below `upTo` when given); `next` where it stopped. */
  keys(
    cluster: string,
    from: Uint8Array,
    upTo: Uint8Array | null | undefined,
    limits: { count: number; bytes: number },
  ): Promise<{ items: MovingKey[]; next: Uint8Array | null; rev: number }>;
  /** Request-id records written after `after` (a stamp; -Infinity: all), oldest first. */
  sessions(cluster: string, after: number): Promise<{
    records: { client: string; seq: number; result: KvResult; stamp: number }[];
    more: boolean;
  }>;
  /** The cluster's replicated routing state (undefined before any move). */
  routing(cluster: string): Promise<ClusterRouting | undefined>;
}

/** A step could not reach a cluster's leader in time. */
export class MoveUnavailableError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "MoveUnavailableError";
  }
}

/** How long one step may retry a cluster, in milliseconds. */
export const MOVE_STEP_DEADLINE_MS = 60_000;
/** Longest single request of a move, in milliseconds. */
export const MOVE_REQUEST_TIMEOUT_MS = 15_000;

/** The HTTP {@linkcode MoveTransport} over the admin's config and status poller. */
export class HttpMoveTransport implements MoveTransport {
  readonly #config: () => KoiConfig;
  readonly #poller: StatusPoller;
  readonly #fetch: typeof fetch;
  readonly #signal: AbortSignal;

  /**
   * @param config the deployment during the move (secrets resolved)
   * @param poller tells the leaders
   * @param options `fetch` (the TLS client's), `signal` (the admin closing)
   */
  constructor(
    config: () => KoiConfig,
    poller: StatusPoller,
    options: { fetch?: typeof fetch; signal?: AbortSignal } = {},
  ) {
    this.#config = config;
    this.#poller = poller;
    this.#fetch = options.fetch ?? fetch;
    this.#signal = options.signal ?? new AbortController().signal;
  }

  /** One request to `cluster`'s leader, retried until it answers other than 503 or a deadline. */
  async #call(cluster: string, path: string, init: RequestInit = {}): Promise<Response> {
    const c = this.#config().clusters.find((x) => x.id === cluster);
    if (c === undefined) throw new Error(`No cluster ${cluster} in the deployment`);
    const deadline = Date.now() + MOVE_STEP_DEADLINE_MS;
    let attempt = 0;
    let last = "no leader known yet";
    for (;;) {
      this.#signal.throwIfAborted();
      const leader = this.#poller.leaderOf(cluster);
      const node = c.nodes.find((n) => n.id === leader) ?? c.nodes[attempt % c.nodes.length];
      try {
        const headers = new Headers(init.headers);
        if (node.secret !== undefined) headers.set("authorization", `Bearer ${node.secret}`);
        const response = await this.#fetch(`${nodeBaseUrl(node)}${path}`, {
          ...init,
          headers,
          signal: AbortSignal.any([AbortSignal.timeout(MOVE_REQUEST_TIMEOUT_MS), this.#signal]),
        });
        if (response.status !== 503) return response;
        last = `${node.id}: 503 ${(await response.text()).slice(0, 200)}`;
      } catch (error) {
        this.#signal.throwIfAborted();
        last = `${node.id}: ${String((error as Error)?.message ?? error).slice(0, 200)}`;
      }
      attempt++;
      if (Date.now() > deadline) {
        throw new MoveUnavailableError(
          `Cluster ${cluster} did not answer ${path} within ${MOVE_STEP_DEADLINE_MS / 1000} s ` +
            `(last: ${last})`,
        );
      }
      await new Promise((r) => setTimeout(r, Math.min(1_000, 50 * 2 ** Math.min(attempt, 5))));
    }
  }

  async #expect(response: Response, what: string): Promise<Uint8Array> {
    const body = new Uint8Array(await response.arrayBuffer());
    if (response.status !== 200) {
      throw new Error(
        `${what}: HTTP ${response.status} ${new TextDecoder().decode(body).slice(0, 300)}`,
      );
    }
    return body;
  }

  /**
   * POSTs a msgpack `body` to `path` at `cluster`'s leader (see `ClusterCalls`, for the
   * janitor of a drain); answers the body of a 200, throws on any other status.
   */
  async post(cluster: string, path: string, body: Uint8Array): Promise<Uint8Array> {
    const response = await this.#call(cluster, path, {
      method: "POST",
      headers: { "content-type": "application/msgpack" },
      body: body as BodyInit,
    });
    return await this.#expect(response, `${path} at cluster ${cluster}`);
  }

  /** See {@linkcode MoveTransport.route}. */
  async route(cluster: string, command: RouteCommand): Promise<RouteAnswer> {
    const response = await this.#call(cluster, "/v1/route", {
      method: "POST",
      headers: { "content-type": "application/msgpack" },
      body: encodeRouteCommand(command) as BodyInit,
    });
    const body = await response.json().catch(() => ({}));
    if (response.status === 200 && body.ok === true) return { ok: true, rev: body.rev };
    if (response.status === 409 || response.status === 507) {
      return { ok: false, code: body.error?.code ?? "refused", message: body.error?.message ?? "" };
    }
    throw new Error(
      `${command.type} at cluster ${cluster}: HTTP ${response.status} ${JSON.stringify(body)}`,
    );
  }

  /** See {@linkcode MoveTransport.keys}. */
  async keys(
    cluster: string,
    from: Uint8Array,
    upTo: Uint8Array | null | undefined,
    limits: { count: number; bytes: number },
  ): Promise<{ items: MovingKey[]; next: Uint8Array | null; rev: number }> {
    const query = new URLSearchParams({
      from_b64: encodeBase64Url(from),
      count: String(limits.count),
      bytes: String(limits.bytes),
    });
    if (upTo !== undefined && upTo !== null) query.set("upto_b64", encodeBase64Url(upTo));
    const body = await this.#expect(
      await this.#call(cluster, `/v1/route/keys?${query}`),
      `the moving keys of cluster ${cluster}`,
    );
    const page = decode(body) as {
      items: unknown[];
      next: Uint8Array | null;
      rev: number;
    };
    return {
      items: page.items.map((i) => {
        const item = stagedKeyFromWire(i);
        if (item === undefined) throw new Error(`Cluster ${cluster} sent a malformed moving key`);
        return item;
      }),
      next: page.next,
      rev: page.rev,
    };
  }

  /** See {@linkcode MoveTransport.sessions}. */
  async sessions(cluster: string, after: number): Promise<{
    records: { client: string; seq: number; result: KvResult; stamp: number }[];
    more: boolean;
  }> {
    const query = after === -Infinity ? "" : `?after=${after}`;
    const body = await this.#expect(
      await this.#call(cluster, `/v1/route/sessions${query}`),
      `the request-id records of cluster ${cluster}`,
    );
    const page = decode(body) as { records: [string, number, KvResult, number][]; more: boolean };
    return {
      records: page.records.map(([client, seq, result, stamp]) => ({ client, seq, result, stamp })),
      more: page.more,
    };
  }

  /** See {@linkcode MoveTransport.routing}. */
  async routing(cluster: string): Promise<ClusterRouting | undefined> {
    const body = await this.#expect(
      await this.#call(cluster, "/v1/route/state"),
      `the routing state of cluster ${cluster}`,
    );
    const state = decode(body) as {
      routing: null | {
        epoch: number;
        move: null | {
          epoch: number;
          fenced: Uint8Array | null;
          received: [string, Uint8Array | null][];
        };
      };
    };
    const r = state.routing;
    if (r === null) return undefined;
    return {
      epoch: r.epoch,
      ...(r.move === null ? {} : {
        move: { epoch: r.move.epoch, fenced: r.move.fenced, received: new Map(r.move.received) },
      }),
    };
  }
}

/**
 * The management endpoints an admin drives a move with (docs/resharding.md, docs/api.md
 * "Resharding"): propose a routing command, read the keys that move away from this cluster,
 * read the request-id records. Bodies and answers are msgpack (keys and values are bytes);
 * all three need the cluster's secret and the leader (a follower answers `503`).
 *
 * @module
 */
import type { Hono } from "hono";
import { encode } from "@msgpack/msgpack";
import { decodeRouteCommand, stagedKeyToWire } from "../storage/mod.ts";
import { BadRequestError } from "./errors.ts";
import type { NodeService } from "./service.ts";
import { errorResponse, jsonResponse } from "./_http_errors.ts";
import { readBody } from "./_http_request.ts";
import { decodeBase64Url } from "./_http_keys.ts";

/** Largest routing command body: a staged batch (1 MiB of keys and values, or one big key). */
export const ROUTE_BODY_BYTES_MAX: number = (2 << 20) + (64 << 10);
/** Most moving keys one `GET /v1/route/keys` answers. */
export const ROUTE_KEYS_COUNT_MAX = 1_000;
/** About the most key and value bytes one `GET /v1/route/keys` answers (at least one key). */
export const ROUTE_KEYS_BYTES_MAX = 1 << 20;
/** Keys one `GET /v1/route/keys` looks at, at most (moving or not): bounds its work. */
export const ROUTE_KEYS_SCAN_MAX = 20_000;
/** Most request-id records one `GET /v1/route/sessions` answers. */
export const ROUTE_SESSIONS_MAX = 4_096;

/** The management paths of this module (for the bearer check). */
export const ROUTE_PATHS: readonly string[] = ["/v1/route", "/v1/route/*"];

const MSGPACK = "application/msgpack";

function msgpack(body: unknown): Response {
  return new Response(encode(body), { status: 200, headers: { "content-type": MSGPACK } });
}

function intParam(url: URL, name: string, fallback: number, max: number): number {
  const text = url.searchParams.get(name);
  if (text === null) return fallback;
  if (!/^[0-9]{1,15}$/.test(text) || Number(text) < 1) {
    throw new BadRequestError(`Invalid ${name}: must be an integer from 1 to ${max}`);
  }
  return Math.min(Number(text), max);
}

/** Adds the routes to `app` (after the bearer check). */
export function routeResharding(app: Hono, service: NodeService): void {
  app.post("/v1/route", async (c) => {
    if (service.route === undefined) return errorResponse(404, "not_found", "No resharding here");
    const body = await readBody(c.req.raw, ROUTE_BODY_BYTES_MAX, "Routing command");
    try {
      decodeRouteCommand(body); // checked here: a malformed one never reaches the log
    } catch (error) {
      throw new BadRequestError(`Invalid routing command: ${(error as Error).message}`);
    }
    const result = await service.route(body);
    if (result.ok) return jsonResponse(200, { ok: true, rev: result.rev });
    if (result.code === "storage_full") {
      return errorResponse(
        507,
        "insufficient_storage",
        `The copies would exceed the store's limit of ${result.bytesMax} bytes`,
      );
    }
    if (result.code === "route_refused" || result.code === "stage_mismatch") {
      return errorResponse(409, result.code, result.reason);
    }
    return errorResponse(409, result.code, `The routing command was refused: ${result.code}`);
  });
  app.get("/v1/route/keys", async (c) => {
    if (service.readForMove === undefined) {
      return errorResponse(404, "not_found", "No resharding here");
    }
    const url = new URL(c.req.url);
    const fromText = url.searchParams.get("from_b64");
    const from = fromText === null ? new Uint8Array() : decodeBase64Url(fromText, "from_b64");
    const upToText = url.searchParams.get("upto_b64");
    const upTo = upToText === null ? null : decodeBase64Url(upToText, "upto_b64");
    const count = intParam(url, "count", ROUTE_KEYS_COUNT_MAX, ROUTE_KEYS_COUNT_MAX);
    const bytes = intParam(url, "bytes", ROUTE_KEYS_BYTES_MAX, ROUTE_KEYS_BYTES_MAX);
    const page = await service.readForMove((sm) => ({
      rev: sm.rev,
      moving: sm.routing?.move !== undefined,
      ...sm.movingKeys(from, { count, bytes, scan: ROUTE_KEYS_SCAN_MAX, upTo }),
    }));
    if (!page.moving) return errorResponse(409, "route_refused", "No move runs in this cluster");
    return msgpack({
      rev: page.rev,
      items: page.items.map(stagedKeyToWire),
      next: page.next,
    });
  });
  app.get("/v1/route/state", async () => {
    if (service.readForMove === undefined) {
      return errorResponse(404, "not_found", "No resharding here");
    }
    // After a read barrier: a new leader answers with every routing command committed.
    const state = await service.readForMove((sm) => {
      const r = sm.routing;
      const cursor = (c: string | null) =>
        c === null ? null : Uint8Array.from(c, (ch) => ch.charCodeAt(0));
      return {
        rev: sm.rev,
        routing: r === undefined ? null : {
          epoch: r.table.epoch,
          move: r.move === undefined ? null : {
            epoch: r.move.table.epoch,
            fenced: cursor(r.move.fenced),
            received: [...r.move.received].map(([id, c]) => [id, cursor(c)]),
          },
        },
      };
    });
    return msgpack(state);
  });
  app.get("/v1/route/sessions", async (c) => {
    if (service.readForMove === undefined) {
      return errorResponse(404, "not_found", "No resharding here");
    }
    const url = new URL(c.req.url);
    const afterText = url.searchParams.get("after");
    if (afterText !== null && !/^-?[0-9]{1,17}$/.test(afterText)) {
      throw new BadRequestError("Invalid after: must be an integer (a stamp)");
    }
    const after = afterText === null ? -Infinity : Number(afterText);
    const limit = intParam(url, "limit", ROUTE_SESSIONS_MAX, ROUTE_SESSIONS_MAX);
    const page = await service.readForMove((sm) => sm.sessionsAfter(after, limit));
    return msgpack({
      records: page.records.map((r) => [r.client, r.seq, r.result, r.stamp]),
      more: page.more,
    });
  });
}

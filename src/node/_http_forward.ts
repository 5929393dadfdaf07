/** Follower forwarding: a request that needs the leader is relayed to it, once. */

import type { NotLeaderError } from "../raft/mod.ts";
import type { AnswerBytes } from "../http/server.ts";
import { NoLeaderError, OverloadedError } from "./errors.ts";
import { noRoomError } from "./_answer_room.ts";
import { bodyOf, readMessageBody } from "./_http_request.ts";
import type { NodeService } from "./service.ts";

/** The header a forwarded request carries: the id of the node that forwarded it. */
export const FORWARDED_HEADER = "x-koi-forwarded";

/** How to reach the leader. */
export interface ForwardOptions {
  /** This node. */
  readonly service: NodeService;
  /** Sends a request (`fetch` in production). */
  readonly forward: (url: string, init: RequestInit) => Promise<Response>;
  /** Time for the leader to answer, body included. */
  readonly timeoutMs: number;
  /** The largest answer relayed (bounds what a misbehaving peer makes this node buffer). */
  readonly answerBytesMax: number;
  /**
   * The server's count of answers its clients have not taken: a relayed answer that would
   * not fit is refused (`503 overloaded`) before its body is read.
   */
  readonly answers?: AnswerBytes | undefined;
}

// Hop-by-hop headers (RFC 9110 section 7.6.1) and those the transport recomputes.
const NOT_RELAYED = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
  // fetch has already decoded the body: relaying the encoding would mislabel it
  "content-encoding",
]);
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

function relayedHeaders(headers: Headers): Headers {
  const out = new Headers();
  for (const [name, value] of headers) {
    if (!NOT_RELAYED.has(name)) out.append(name, value);
  }
  return out;
}

/**
 * A `forward` for nodes that serve HTTPS: {@linkcode forwardToLeader} names the leader by
 * `http://host:port`, and this sends it as `https://` on a client that verifies the leader's
 * certificate against the deployment's CA (`ca`, PEM). `close` releases its connections.
 */
export function httpsForwarder(ca: string): {
  forward: (url: string, init: RequestInit) => Promise<Response>;
  close: () => void;
} {
  const client = Deno.createHttpClient({ caCerts: [ca] });
  return {
    forward: (url, init) => fetch(url.replace(/^http:\/\//, "https://"), { ...init, client }),
    close: () => client.close(),
  };
}

/**
 * Forwards the original request (method, path, query, headers, `body`) to the leader and
 * answers what it answered. Throws `NoLeaderError` (503) when the request was forwarded
 * already (no loops), no leader is known, or the leader does not answer in time.
 */
export async function forwardToLeader(
  request: Request,
  notLeader: NotLeaderError,
  body: Uint8Array | undefined,
  options: ForwardOptions,
): Promise<Response> {
  const { service } = options;
  const url = new URL(request.url);
  const what = `${request.method} ${url.pathname}`;
  const from = request.headers.get(FORWARDED_HEADER);
  if (from !== null) {
    throw new NoLeaderError(
      `Cannot serve ${what}: node ${service.nodeId} is not the leader and the request was ` +
        `forwarded already (by ${from}); the leader it knows is ${notLeader.leader || "none"}`,
    );
  }
  const address = notLeader.leader === "" ? undefined : service.leaderHttp();
  if (address === undefined) {
    throw new NoLeaderError(
      `Cannot serve ${what}: node ${service.nodeId} is not the leader and knows no leader`,
    );
  }
  const headers = relayedHeaders(request.headers);
  headers.set(FORWARDED_HEADER, service.nodeId);
  const target = `http://${address}${url.pathname}${url.search}`;
  const failure = (reason: string) =>
    new NoLeaderError(
      `Cannot forward ${what} to leader ${notLeader.leader} at ${address}: ${reason}`,
    );
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = failure(`no answer within ${options.timeoutMs} ms`);
      reject(error); // first, so that the race reports the timeout, not the abort it causes
      controller.abort(error);
    }, options.timeoutMs);
  });
  try {
    const init: RequestInit = {
      method: request.method,
      headers,
      redirect: "manual",
      // Aborted too when this request's client goes: the leader then stops working for it.
      signal: AbortSignal.any([controller.signal, request.signal]),
      ...(body === undefined ? {} : { body: bodyOf(body) }),
    };
    const answer = await Promise.race([options.forward(target, init), timeout]);
    const tooLarge = () => failure(`the answer exceeds ${options.answerBytesMax} bytes`);
    const noBody = NULL_BODY_STATUSES.has(answer.status) || request.method === "HEAD";
    const declared = Number(answer.headers.get("content-length") ?? 0);
    const answers = options.answers;
    // Counted from before its body is read: concurrent relays see each other's bytes.
    const give = noBody || answers === undefined || !(declared > 0)
      ? () => {}
      : answers.take(declared);
    if (give === undefined) {
      await answer.body?.cancel().catch(() => {});
      throw noRoomError(answers!, declared, `The leader's answer to ${what}`);
    }
    let bytes: Uint8Array | null;
    try {
      bytes = noBody ? null : await Promise.race([
        readMessageBody(answer, options.answerBytesMax, tooLarge),
        timeout,
      ]);
    } finally {
      give();
    }
    const relayed = new Response(bytes === null ? null : bodyOf(bytes), {
      status: answer.status,
      headers: relayedHeaders(answer.headers),
    });
    return bytes === null || answers === undefined ? relayed : answers.mark(relayed, bytes.length);
  } catch (error) {
    if (error instanceof NoLeaderError || error instanceof OverloadedError) throw error;
    throw failure(error instanceof Error ? error.message : String(error));
  } finally {
    clearTimeout(timer);
  }
}

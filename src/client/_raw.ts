/**
 * Raw POSTs to the deployment's clusters, for callers that speak a node endpoint of their own
 * (the KV Connect gateway): a body of bytes to the cluster that owns a key, or to a named
 * cluster, with the client's routing, retries, leader hints and deadlines. Writes carry a
 * request-id session, so the client's own retries apply them at most once.
 *
 * @module
 */

import { type ClientCore, newCall } from "./_call.ts";
import type { Answer, AnswerRoom } from "./_http.ts";
import type { Sender } from "./_retry.ts";
import type { Routes } from "./_route.ts";
import type { RoutingTable } from "./_table.ts";
import type { CallOptions } from "./_types.ts";

/** An answer of a raw POST: its status (2xx), headers and body. */
export type RawAnswer = Answer;

/** One raw POST. Give `key` (routed by CARP, re-routed after `421`) or `cluster`. */
export interface RawPost {
  /** The node path with its query, e.g. `/v1/kvc/snapshot_read`. */
  readonly path: string;
  /** The request body. */
  readonly body: Uint8Array;
  /** The key whose owning cluster is asked; it follows `421 wrong_shard` to the owner. */
  readonly key?: Uint8Array;
  /** The cluster asked, when no key decides it (a `421` is then an error). */
  readonly cluster?: string;
  /** Extra request headers (`content-type`, …). */
  readonly headers?: Readonly<Record<string, string>>;
  /** The most bytes of an answer read; a longer one fails the call with `bad_response`. */
  readonly answerBytesMax: number;
  /**
   * Room shared with other calls that the answer's bytes are taken from, by its declared
   * length before its body is read; an answer that does not fit fails the call `overloaded`.
   */
  readonly answerRoom?: AnswerRoom;
  /** What the call is, for messages: `snapshot_read of cluster b`. */
  readonly what: string;
}

/** The header a raw write's request id travels in (`<client id>:<seq>`). */
export const RAW_REQUEST_ID_HEADER = "x-koi-request-id";

/** Raw POSTs on one client's routes, sender and sessions. */
export class RawCalls {
  readonly #core: ClientCore;
  readonly #routes: Routes;
  readonly #sender: Sender;

  /** Raw calls of the client whose parts these are. */
  constructor(core: ClientCore, routes: Routes, sender: Sender) {
    this.#core = core;
    this.#routes = routes;
    this.#sender = sender;
  }

  /** The routing table in use. */
  get table(): RoutingTable {
    return this.#routes.table;
  }

  /**
   * A POST that changes nothing: sent to the members as the client's `readFrom` says, retried
   * on `503`, timeouts and broken connections (and, with `key`, `421`) until `options`'
   * deadline. Resolves with a 2xx answer; throws the client's errors otherwise.
   */
  async read(post: RawPost, options: CallOptions = {}): Promise<RawAnswer> {
    return await this.#sender.run(this.#request(post, false), newCall(options, this.#core));
  }

  /**
   * A POST that writes: sent to the leader, with a request id in
   * {@linkcode RAW_REQUEST_ID_HEADER} that every attempt repeats, so that retries apply it
   * at most once; an error whose outcome is unknown has `outcomeUnknown` set.
   */
  async write(post: RawPost, options: CallOptions = {}): Promise<RawAnswer> {
    return await this.#sender.write(this.#request(post, true), newCall(options, this.#core));
  }

  /** Fetches the routing table again (see `KoiClient.refresh`). */
  async refresh(options: CallOptions = {}): Promise<RoutingTable> {
    return await this.#routes.refresh(newCall(options, this.#core));
  }

  #request(post: RawPost, write: boolean) {
    if (post.key === undefined && post.cluster === undefined) {
      throw new TypeError(`${post.what}: a raw POST needs a key or a cluster`);
    }
    return {
      method: "POST" as const,
      path: post.path,
      query: "",
      write,
      requestIdHeader: RAW_REQUEST_ID_HEADER,
      body: post.body,
      headers: { ...post.headers },
      answerBytesMax: post.answerBytesMax,
      ...(post.answerRoom === undefined ? {} : { answerRoom: post.answerRoom }),
      what: post.what,
      ...(post.key === undefined ? {} : { key: post.key }),
      ...(post.cluster === undefined ? {} : { cluster: post.cluster }),
    };
  }
}

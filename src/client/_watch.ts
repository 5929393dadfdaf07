/**
 * `KoiClient.watch`: one change stream (`GET /v1/watch`, docs/api.md "Watch") per cluster
 * of the routing table, merged into one async iterator. Each cluster's changes come in rev
 * order; clusters interleave as their changes arrive. A broken stream is resumed from the
 * last rev delivered for its cluster, on the leader first, then the other nodes, with a
 * bounded backoff between rounds; `410 compacted` from every node of a cluster ends the
 * watch with {@linkcode WatchCompactedError}. The iterator holds a bounded number of changes
 * for its caller: while it is full the streams are not read (a node then cuts a stream that
 * fell too far behind, and the client resumes it).
 *
 * @module
 */
import { decodeBase64Url, encodeBase64Url, toBytes, utf8Lossy } from "./_bytes.ts";
import type { ClientCore } from "./_call.ts";
import { errorOf, sleep } from "./_http.ts";
import {
  WATCH_BUFFER_BYTES_MAX,
  WATCH_BUFFER_CHANGES_MAX,
  WATCH_IDLE_MS,
  WATCH_MESSAGE_CHARS_MAX,
  WATCH_RETRY_BASE_MS,
  WATCH_RETRY_MAX_MS,
} from "./_limits.ts";
import type { ClusterState, Routes } from "./_route.ts";
import { type SseMessage, SseParser } from "./_sse.ts";
import { isObject, type NodeInfo } from "./_table.ts";
import type { WatchEvent } from "./_types.ts";
import { KoiError, KoiHttpError, WatchCompactedError } from "./errors.ts";

/** What the watch of every cluster shares: where to deliver, when to stop. */
interface Sink {
  /** Hands one change to the caller; resolves once there is room for more. */
  deliver(event: WatchEvent): Promise<void>;
  readonly signal: AbortSignal;
}

/**
 * The merged iterator: a bounded buffer between the clusters' streams and the caller.
 * `return()` (a `break` out of `for await`) and the abort signal close every stream.
 */
export class WatchIterator implements AsyncIterableIterator<WatchEvent>, Sink {
  readonly #controller = new AbortController();
  readonly #buffer: WatchEvent[] = [];
  #bytes = 0;
  #failure: unknown;
  #finished = false;
  #consumer: (() => void) | undefined;
  #producers: (() => void)[] = [];

  /** A watch that ends when `signal` aborts, throwing what `reason()` makes of it. */
  constructor(signal: AbortSignal, reason: () => unknown) {
    const onAbort = () => this.fail(reason());
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    this.#controller.signal.addEventListener(
      "abort",
      () => signal.removeEventListener("abort", onAbort),
      { once: true },
    );
  }

  /** Aborted once the watch ends, however it ends: the streams stop. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** See {@linkcode Sink.deliver}. */
  async deliver(event: WatchEvent): Promise<void> {
    if (this.#controller.signal.aborted) return;
    this.#buffer.push(event);
    this.#bytes += event.key.length + (event.value?.length ?? 0);
    this.#wakeConsumer();
    while (this.#full() && !this.#controller.signal.aborted) {
      await new Promise<void>((resolve) => this.#producers.push(resolve));
    }
  }

  /** Ends the watch with `error` once the changes already buffered were taken. */
  fail(error: unknown): void {
    if (this.#controller.signal.aborted) return;
    this.#failure = error;
    this.#stop();
  }

  /** The next change; throws the watch's failure after the buffered changes. */
  async next(): Promise<IteratorResult<WatchEvent>> {
    for (;;) {
      const event = this.#buffer.shift();
      if (event !== undefined) {
        this.#bytes -= event.key.length + (event.value?.length ?? 0);
        if (!this.#full()) { for (const wake of this.#producers.splice(0)) wake(); }
        return { done: false, value: event };
      }
      if (this.#controller.signal.aborted) {
        if (this.#failure === undefined || this.#finished) {
          return { done: true, value: undefined };
        }
        this.#finished = true;
        throw this.#failure;
      }
      await new Promise<void>((resolve) => this.#consumer = resolve);
    }
  }

  /** Closes every stream; later `next()` calls are done. */
  return(): Promise<IteratorResult<WatchEvent>> {
    this.#finished = true;
    this.#buffer.length = 0;
    this.#stop();
    return Promise.resolve({ done: true, value: undefined });
  }

  /** This iterator. */
  [Symbol.asyncIterator](): AsyncIterableIterator<WatchEvent> {
    return this;
  }

  #full(): boolean {
    return this.#buffer.length >= WATCH_BUFFER_CHANGES_MAX ||
      this.#bytes >= WATCH_BUFFER_BYTES_MAX;
  }

  #stop(): void {
    if (!this.#controller.signal.aborted) this.#controller.abort();
    this.#wakeConsumer();
    for (const wake of this.#producers.splice(0)) wake();
  }

  #wakeConsumer(): void {
    const wake = this.#consumer;
    this.#consumer = undefined;
    wake?.();
  }
}

/** How one stream of a cluster ended. */
type StreamEnd =
  /** It broke or ended (or the node refused for now); `progress`: it delivered changes. */
  | { readonly kind: "retry"; readonly progress: boolean; readonly why: string }
  /** The node does not hold the changes after the rev asked for. */
  | { readonly kind: "compacted"; readonly rev: number; readonly oldest: number };

/** What watching one cluster needs. */
export interface ClusterWatchOptions {
  readonly core: ClientCore;
  readonly routes: Routes;
  readonly state: ClusterState;
  readonly prefix: Uint8Array;
  /** The rev to start after; undefined: the node's current rev when the first stream opens. */
  readonly from: number | undefined;
  readonly sink: Sink;
}

/**
 * Watches one cluster until the sink's signal aborts: streams from its nodes (leader first)
 * and resumes from the last rev delivered. Throws {@linkcode WatchCompactedError} when every
 * node answered compacted, a {@linkcode KoiHttpError} for an answer no retry changes (400,
 * 401, 404), and `bad_response` for a stream that breaks the contract.
 */
export async function watchCluster(options: ClusterWatchOptions): Promise<void> {
  const { routes, state, sink } = options;
  const cluster = state.info.id;
  const position = { from: options.from };
  const compacted = new Map<string, { rev: number; oldest: number }>();
  const tried = new Set<string>();
  let round = 0;
  while (!sink.signal.aborted) {
    const node = routes.pick(state, tried);
    if (node === undefined) {
      // Every node was tried since the last progress: wait, then go round again.
      tried.clear();
      const cap = Math.min(WATCH_RETRY_MAX_MS, WATCH_RETRY_BASE_MS * 2 ** round);
      round = Math.min(round + 1, 30);
      await sleep(Math.random() * cap, sink.signal);
      continue;
    }
    tried.add(node.id);
    const end = await streamFrom(options, node, position);
    if (end.kind === "compacted") {
      compacted.set(node.id, { rev: end.rev, oldest: end.oldest });
      if (state.info.nodes.every((n) => compacted.has(n.id))) {
        const known = [...compacted.values()];
        const rev = Math.max(...known.map((k) => k.rev));
        const oldest = Math.max(...known.map((k) => k.oldest));
        throw new WatchCompactedError(
          `Cannot watch cluster ${cluster} from rev ${position.from}: every node answered ` +
            `410 compacted (the oldest rev they hold is ${oldest}); read the keys again ` +
            `(list them) and watch from rev ${rev} (fromRevs: {${JSON.stringify(cluster)}: ` +
            `${rev}})`,
          { cluster, node: node.id, rev, oldest },
        );
      }
      continue;
    }
    if (end.progress) {
      round = 0;
      tried.clear();
      compacted.clear();
    }
  }
}

const utf8 = new TextEncoder();

/** One stream from `node`, from `position.from` on, until it ends; advances the position. */
async function streamFrom(
  options: ClusterWatchOptions,
  node: NodeInfo,
  position: { from: number | undefined },
): Promise<StreamEnd> {
  const { core, routes, state, sink } = options;
  const controller = new AbortController();
  const stop = () => controller.abort();
  sink.signal.addEventListener("abort", stop, { once: true });
  // The connection is dropped when the node says nothing for too long (it sends keep-alives);
  // the time spent handing changes to a slow caller does not count.
  let idle: ReturnType<typeof setTimeout> | undefined;
  const arm = (ms: number) => {
    clearTimeout(idle);
    idle = setTimeout(stop, ms);
  };
  const disarm = () => clearTimeout(idle);
  let progress = false;
  try {
    const query = `prefix_b64=${encodeBase64Url(options.prefix)}` +
      (position.from === undefined ? "" : `&from_rev=${position.from}`);
    arm(core.settings.attemptTimeoutMs);
    let response: Response;
    try {
      response = await core.fetcher.fetch(new URL(`/v1/watch?${query}`, node.url), {
        method: "GET",
        headers: { accept: "text/event-stream" },
        signal: controller.signal,
      });
    } catch (error) {
      routes.nodeFailed(state, node);
      return { kind: "retry", progress, why: error instanceof Error ? error.message : "failed" };
    }
    disarm();
    routes.nodeAnswered(state, node, response.headers);
    if (response.status !== 200) return await refusal(response, state.info.id, node);
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser(WATCH_MESSAGE_CHARS_MAX);
    for (;;) {
      arm(WATCH_IDLE_MS);
      let chunk: ReadableStreamReadResult<string>;
      try {
        chunk = await reader.read();
      } catch {
        return { kind: "retry", progress, why: "the stream broke" };
      }
      disarm();
      if (chunk.done) return { kind: "retry", progress, why: "the stream ended" };
      let messages: SseMessage[];
      try {
        messages = parser.push(chunk.value);
      } catch (error) {
        throw badStream(state.info.id, node, String(error));
      }
      for (const message of messages) {
        const end = await take(message, options, node, position);
        if (end === "delivered") progress = true;
        else if (end !== undefined) return end.kind === "retry" ? { ...end, progress } : end;
      }
    }
  } finally {
    clearTimeout(idle);
    sink.signal.removeEventListener("abort", stop);
    controller.abort(); // closes the connection when the stream is left early
  }
}

/** Handles one message of a stream: a change delivered, the start, a final error. */
async function take(
  message: SseMessage,
  options: ClusterWatchOptions,
  node: NodeInfo,
  position: { from: number | undefined },
): Promise<"delivered" | StreamEnd | undefined> {
  const cluster = options.state.info.id;
  if (message.event === "start") {
    const data = parseJson(message.data);
    if (!isObject(data) || !isRev(data.rev)) throw badStream(cluster, node, "a bad start event");
    position.from ??= data.rev;
    return undefined;
  }
  if (message.event === "error") {
    const data = parseJson(message.data);
    const code = isObject(data) && typeof data.code === "string" ? data.code : "unknown";
    if (code === "compacted" && isObject(data) && isRev(data.rev) && isRev(data.oldest)) {
      return { kind: "compacted", rev: data.rev, oldest: data.oldest };
    }
    return { kind: "retry", progress: false, why: `the node ended the stream: ${code}` };
  }
  if (message.event !== "change") return undefined; // a later node's new events: skipped
  const data = parseJson(message.data);
  if (!isObject(data) || !isRev(data.rev) || !Array.isArray(data.changes)) {
    throw badStream(cluster, node, "a change event without rev or changes");
  }
  const rev = data.rev;
  // A rev delivered already is never delivered again (resuming never repeats a change).
  if (position.from !== undefined && rev <= position.from) return undefined;
  const events = data.changes.map((c) => parseChange(c, cluster, rev, node));
  for (const event of events) await options.sink.deliver(event);
  position.from = rev;
  return "delivered";
}

function parseChange(change: unknown, cluster: string, rev: number, node: NodeInfo): WatchEvent {
  const bad = (what: string) => badStream(cluster, node, `a change with ${what}`);
  if (!isObject(change)) throw bad("no fields");
  const { type, key, key_b64: keyB64, value_b64: valueB64, size } = change;
  if (type !== "put" && type !== "delete") throw bad(`type ${JSON.stringify(type)}`);
  if (typeof key !== "string") throw bad("no key");
  let bytes: Uint8Array = toBytes(key);
  if (keyB64 !== undefined) {
    const decoded = typeof keyB64 === "string" ? decodeBase64Url(keyB64) : undefined;
    if (decoded === undefined) throw bad("a bad key_b64");
    bytes = decoded;
  }
  if (type === "delete") {
    return { cluster, rev, type, key: bytes, keyText: utf8Lossy(bytes), size: 0 };
  }
  if (!isRev(size)) throw bad("no size");
  let value: Uint8Array | undefined;
  if (valueB64 !== undefined) {
    value = typeof valueB64 === "string" ? decodeBase64Url(valueB64) : undefined;
    if (value === undefined || value.length !== size) throw bad("a bad value_b64");
  }
  return {
    cluster,
    rev,
    type,
    key: bytes,
    keyText: utf8Lossy(bytes),
    ...(value === undefined ? {} : { value }),
    size,
  };
}

/** What a refusing answer means: compacted, retry later, or an error no retry changes. */
async function refusal(response: Response, cluster: string, node: NodeInfo): Promise<StreamEnd> {
  const text = await readSmall(response);
  const answer = { status: response.status, headers: response.headers, body: utf8.encode(text) };
  const { code, message } = errorOf(answer);
  if (response.status === 410) {
    const json = parseJson(text);
    const error = isObject(json) && isObject(json.error) ? json.error : {};
    if (isRev(error.rev) && isRev(error.oldest)) {
      return { kind: "compacted", rev: error.rev, oldest: error.oldest };
    }
    throw badStream(cluster, node, "a 410 without rev and oldest");
  }
  if (response.status >= 500 || response.status === 408 || response.status === 429) {
    return { kind: "retry", progress: false, why: `${response.status} ${code}: ${message}` };
  }
  throw new KoiHttpError(
    code,
    `watch: node ${node.id} answered ${response.status} ${code}: ${message}`,
    { status: response.status, cluster, node: node.id },
  );
}

/** An error answer's text, at most 64 KiB of it. */
async function readSmall(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.length;
      if (total > 64 * 1024) break;
    }
  } catch {
    // what came is what there is
  } finally {
    reader.cancel().catch(() => {});
  }
  const bytes = await new Blob(chunks as Uint8Array<ArrayBuffer>[]).arrayBuffer();
  return new TextDecoder().decode(bytes);
}

function badStream(cluster: string, node: NodeInfo, what: string): KoiError {
  return new KoiError(
    "bad_response",
    `watch: node ${node.id} of cluster ${cluster} sent ${what}`,
    { cluster, node: node.id },
  );
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRev(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

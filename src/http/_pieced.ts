/**
 * Answers made of pieces: a large read's answer as the small encoded parts around each value
 * and the stored values themselves (views, not copies), written to the connection piece by
 * piece as it takes them. Found by the attack: a leader that encoded a 40 MiB read answer into
 * one buffer (and the server copied it twice more on its way out) spent 300 to 600 ms of its
 * event loop on it — on this machine mostly faulting in fresh pages — and its followers,
 * hearing no heartbeat, elected another leader; a flood of such reads did that again and
 * again in every cluster. Written in pieces, no step holds the loop for more than one value.
 *
 * @module
 */

import { concat } from "./_bytes.ts";

/** Small pieces are joined into writes of about this many bytes (fewer, larger writes). */
export const PIECED_WRITE_BYTES = 64 * 1024;

const pieced = new WeakMap<Response, readonly Uint8Array[]>();

/**
 * An answer of `pieces` (its body is their concatenation, `content-length` their total). The
 * {@linkcode HttpServer} writes the pieces themselves; anything else reads the body stream,
 * which yields them one at a time.
 */
export function piecedResponse(
  pieces: readonly Uint8Array[],
  headers: Record<string, string>,
): Response {
  let length = 0;
  for (const p of pieces) length += p.length;
  let next = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (next === pieces.length) controller.close();
      else controller.enqueue(pieces[next++]);
    },
  }, { highWaterMark: 0 });
  const response = new Response(body, {
    headers: { ...headers, "content-length": String(length) },
  });
  pieced.set(response, pieces);
  return response;
}

/** The pieces of a {@linkcode piecedResponse}, or undefined for any other answer. */
export function piecesOf(response: Response): readonly Uint8Array[] | undefined {
  return pieced.get(response);
}

/**
 * `pieces` as writes: runs of small pieces joined up to {@linkcode PIECED_WRITE_BYTES}, a
 * large piece alone (never copied).
 */
export function* writesOf(pieces: readonly Uint8Array[]): Generator<Uint8Array> {
  let run: Uint8Array[] = [];
  let runBytes = 0;
  const flush = function* () {
    if (run.length > 0) yield concat(run, runBytes);
    run = [];
    runBytes = 0;
  };
  for (const piece of pieces) {
    if (piece.length === 0) continue;
    if (piece.length >= PIECED_WRITE_BYTES) {
      yield* flush();
      yield piece;
      continue;
    }
    if (runBytes + piece.length > PIECED_WRITE_BYTES) yield* flush();
    run.push(piece);
    runBytes += piece.length;
  }
  yield* flush();
}

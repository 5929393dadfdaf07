/**
 * Byte helpers of the HTTP server: one place that joins chunks (a request body, a run of small
 * answer pieces).
 *
 * @module
 */

/** `chunks` joined, `total` their length (the one chunk itself when there is one). */
export function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

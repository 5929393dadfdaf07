/** Bytes helpers of the client: UTF-8, base64url, byte order. */

const encoder = new TextEncoder();
const lossy = new TextDecoder();
const strict = new TextDecoder("utf-8", { fatal: true });

/** `value` as bytes: a string is encoded as UTF-8 (a lone surrogate as U+FFFD). */
export function toBytes(value: string | Uint8Array): Uint8Array {
  return typeof value === "string" ? encoder.encode(value) : value;
}

/** `bytes` decoded as UTF-8; invalid sequences become U+FFFD (as `Response.text()` does). */
export function utf8Lossy(bytes: Uint8Array): string {
  return lossy.decode(bytes);
}

/** `bytes` decoded as UTF-8, or undefined when they are not valid UTF-8. */
export function utf8Exact(bytes: Uint8Array): string | undefined {
  try {
    return strict.decode(bytes);
  } catch {
    return undefined;
  }
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const VALUE = new Map([...ALPHABET].map((char, i) => [char, i]));

/** `bytes` as base64url without padding (RFC 4648 §5). */
export function encodeBase64Url(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let j = 0; j < chars; j++) out += ALPHABET[(n >> (18 - 6 * j)) & 63];
  }
  return out;
}

/**
 * The bytes of base64url `text` (padding optional), or undefined when it is not strict
 * base64url (another character, an impossible length, non-zero trailing bits).
 */
export function decodeBase64Url(text: string): Uint8Array | undefined {
  const bare = text.replace(/={1,2}$/, "");
  if (bare.length % 4 === 1) return undefined;
  if (bare.length !== text.length && text.length % 4 !== 0) return undefined;
  const out = new Uint8Array(Math.floor((bare.length * 6) / 8));
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const char of bare) {
    const v = VALUE.get(char);
    if (v === undefined) return undefined;
    value = ((value << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (value >> bits) & 0xff;
    }
  }
  if ((value & ((1 << bits) - 1)) !== 0) return undefined;
  return out;
}

/** Compares two byte strings in unsigned byte order (a prefix sorts first). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

/** Whether two byte strings are equal. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && compareBytes(a, b) === 0;
}

/**
 * Characters that must not reach a terminal as they are: C0 and C1 controls (escape
 * sequences, line breaks), DEL, the marks and separators that reorder or break lines, and
 * the invisible ones (zero-width spaces and joiners, the byte order mark).
 */
export const UNPRINTABLE: RegExp =
  // deno-lint-ignore no-control-regex
  /[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/;

/** The key as text when it is UTF-8 without {@linkcode UNPRINTABLE} characters, else undefined. */
export function printableText(bytes: Uint8Array): string | undefined {
  const text = utf8Exact(bytes);
  return text === undefined || UNPRINTABLE.test(text) ? undefined : text;
}

/** A key for messages: its quoted text when it is printable UTF-8, else `base64url:<b64>`. */
export function showKey(bytes: Uint8Array): string {
  const text = printableText(bytes);
  return text === undefined ? `base64url:${encodeBase64Url(bytes)}` : JSON.stringify(text);
}

/**
 * Reads `stream` to its end, or until it held over `max` bytes: then cancels it and returns
 * undefined.
 */
export async function readAtMost(
  stream: ReadableStream<Uint8Array>,
  max: number,
): Promise<Uint8Array | undefined> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) {
        reader.cancel().catch(() => {}); // not awaited: an endless sender may never settle it
        return undefined;
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  return new Uint8Array(await new Blob(chunks as Uint8Array<ArrayBuffer>[]).arrayBuffer());
}

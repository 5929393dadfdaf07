/**
 * How a key enters through HTTP: URL-encoded UTF-8 in the path (`/v1/kv/{key}`), or any byte
 * string as base64url in a query parameter (`/v1/kv?key_b64=…`), and which request targets
 * are refused because URL normalization would change the key they name.
 */

import { BadRequestError } from "./errors.ts";
import { keyBytes, show } from "./_http_request.ts";

/** Keys starting with this byte are koi's own records (valid UTF-8 never contains it). */
export const SYSTEM_KEY_BYTE = 0xff;

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const BASE64URL_VALUE = new Map([...BASE64URL].map((char, i) => [char, i]));

/** `bytes` as unpadded base64url (RFC 4648 section 5). */
export function encodeBase64Url(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let j = 0; j < chars; j++) out += BASE64URL[(n >> (18 - 6 * j)) & 63];
  }
  return out;
}

/**
 * The bytes of base64url `text` (padding optional); a bad request about `what` for any other
 * character, a length no encoding produces, or non-zero trailing bits (so each byte string
 * has exactly one accepted spelling, apart from padding).
 */
export function decodeBase64Url(text: string, what: string): Uint8Array {
  const bare = text.replace(/={1,2}$/, "");
  const bad = (reason: string) =>
    new BadRequestError(`Invalid ${what}: ${reason}; expected base64url (RFC 4648 §5)`);
  if (bare.length % 4 === 1) throw bad(`impossible length ${bare.length}`);
  if (bare.length !== text.length && (text.length % 4 !== 0)) throw bad("wrong padding");
  const out = new Uint8Array(Math.floor((bare.length * 6) / 8));
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const char of bare) {
    const v = BASE64URL_VALUE.get(char);
    if (v === undefined) throw bad(`character ${show(char)} is not base64url`);
    value = (value << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (value >> bits) & 0xff;
    }
  }
  if ((value & ((1 << bits) - 1)) !== 0) throw bad("non-zero trailing bits");
  return out;
}

/**
 * Why a request target is refused (400), or undefined: a `.` or `..` path segment (also
 * percent-encoded), a backslash, a `#`, a space or a control character. URL parsing would silently drop or rewrite those, so
 * `PUT /v1/kv/zz/%2e%2e/t5` would write `t5`; such keys are addressed with `?key_b64=`.
 */
export function refusedTarget(target: string): string | undefined {
  const query = target.indexOf("?");
  const path = query < 0 ? target : target.slice(0, query);
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x20\x7f]/.test(target)) {
    return "Invalid request target: spaces and control characters must be percent-encoded";
  }
  if (target.includes("#")) {
    return 'Invalid request target: "#" must be percent-encoded as %23';
  }
  if (path.includes("\\")) {
    return "Invalid request target: a backslash in the path must be percent-encoded as %5C";
  }
  const segments = path.split("/");
  // Route names are matched decoded but keys are cut from the raw path: `/v1/%6bv/k2` would
  // route as `/v1/kv/` and write the key `v/k2`. Only the key (or member id) part may be
  // percent-encoded.
  if (segments.slice(1, 3).some((segment) => segment.includes("%"))) {
    return "Invalid request target: route names such as /v1/kv/ must not be percent-encoded";
  }
  for (const segment of segments) {
    const dots = segment.replace(/%2e/gi, ".");
    if (dots === "." || dots === "..") {
      return `Invalid request target: the path segment ${show(segment)} is not allowed, ` +
        "because URL normalization would remove it and change the key; address such keys " +
        "with ?key_b64=<base64url of the key> (see docs/api.md)";
    }
  }
  return undefined;
}

/** Refuses keys (and prefixes) in koi's reserved range: first byte 0xFF. */
export function checkNotSystem(bytes: Uint8Array, what: string): void {
  if (bytes.length > 0 && bytes[0] === SYSTEM_KEY_BYTE) {
    throw new BadRequestError(
      `Invalid ${what}: keys starting with byte 0xFF are reserved for koi's system records`,
    );
  }
}

/**
 * The query bound `name` (`prefix` or `after` of a listing or a watch) as UTF-8 text, or
 * `<name>_b64` as base64url bytes; a `prefix_b64` in koi's reserved range is refused.
 */
export function queryBound(query: Map<string, string>, name: string, bytesMax: number): Uint8Array {
  const text = query.get(name);
  const b64 = query.get(`${name}_b64`);
  if (b64 === undefined) return keyBytes(text ?? "", name, { bytesMax, emptyOk: true });
  if (text !== undefined) {
    throw new BadRequestError(`Invalid query: give ${name} or ${name}_b64, not both`);
  }
  const bytes = decodeBase64Url(b64, `${name}_b64`);
  if (bytes.length > bytesMax) {
    throw new BadRequestError(
      `Invalid ${name}_b64: must be 0 to ${bytesMax} bytes, got ${bytes.length}`,
    );
  }
  if (name === "prefix") checkNotSystem(bytes, "prefix_b64");
  return bytes;
}

/** Bearer-token check of management calls. */

import type { MiddlewareHandler } from "hono";
import { UnauthorizedError } from "./errors.ts";

const BEARER_PATTERN = /^Bearer[ \t]+([^ \t]+)[ \t]*$/i;
const utf8Encoder = new TextEncoder();

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", utf8Encoder.encode(text)));
}

/** Compares two equal-length digests in time independent of where they differ. */
function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  let difference = a.length ^ b.length;
  for (let i = 0; i < a.length && i < b.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

/**
 * Requires `authorization: Bearer <secret>`. Both sides are hashed first, so the comparison
 * takes the same time whatever the token's length or content.
 */
export function bearerAuth(secret: string): MiddlewareHandler {
  const expected = sha256(secret);
  return async function checkBearer(c, next) {
    const header = c.req.header("authorization");
    if (header === undefined) {
      throw new UnauthorizedError(
        "Missing authorization: management calls need the header authorization: Bearer <secret>",
      );
    }
    const match = BEARER_PATTERN.exec(header);
    const given = await sha256(match === null ? "" : match[1]);
    if (match === null || !digestsEqual(given, await expected)) {
      throw new UnauthorizedError("Invalid authorization: the bearer token does not match");
    }
    await next();
  };
}

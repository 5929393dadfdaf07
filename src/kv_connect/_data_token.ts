/**
 * Data-path tokens: what the metadata exchange hands out and every data-path request
 * presents. A token is `<expiry ms>.<fingerprint>.<mac>`: the fingerprint names the access
 * token it was issued for (the first 8 bytes of its SHA-256, hex), the mac is an HMAC-SHA256
 * keyed with that access token over the database id and the expiry. Nothing is kept per
 * token, so tokens stay valid across restarts of the endpoint, and a token whose access token
 * is no longer configured stops working at once.
 *
 * @module
 */

const text = new TextEncoder();

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function base64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

function fromBase64Url(s: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(s)) return undefined;
  try {
    return Uint8Array.from(
      atob(s.replaceAll("-", "+").replaceAll("_", "/")),
      (c) => c.charCodeAt(0),
    );
  } catch {
    return undefined;
  }
}

/** Issues and checks data-path tokens for a set of access tokens and one database id. */
export class DataTokens {
  readonly #databaseId: string;
  readonly #keys: Map<string, CryptoKey>;

  private constructor(databaseId: string, keys: Map<string, CryptoKey>) {
    this.#databaseId = databaseId;
    this.#keys = keys;
  }

  /** Prepares the HMAC keys of `accessTokens`. */
  static async create(accessTokens: readonly string[], databaseId: string): Promise<DataTokens> {
    const keys = new Map<string, CryptoKey>();
    for (const token of accessTokens) {
      const fingerprint = hex(
        new Uint8Array(await crypto.subtle.digest("SHA-256", text.encode(token))).subarray(0, 8),
      );
      const key = await crypto.subtle.importKey(
        "raw",
        text.encode(token),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign", "verify"],
      );
      keys.set(fingerprint, key);
    }
    return new DataTokens(databaseId, keys);
  }

  /** A token for `accessToken` (one of this endpoint's), valid until `expiresAtMs`. */
  async issue(accessToken: string, expiresAtMs: number): Promise<string> {
    const fingerprint = hex(
      new Uint8Array(await crypto.subtle.digest("SHA-256", text.encode(accessToken))).subarray(
        0,
        8,
      ),
    );
    const key = this.#keys.get(fingerprint);
    if (key === undefined) throw new RangeError("Not an access token of this endpoint");
    const expiry = String(Math.floor(expiresAtMs));
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, this.#message(expiry)));
    return `${expiry}.${fingerprint}.${base64Url(mac)}`;
  }

  /** Whether `token` was issued by this endpoint for a configured access token and is valid at `nowMs`. */
  async verify(token: string, nowMs: number): Promise<boolean> {
    const parts = token.split(".");
    if (parts.length !== 3 || !/^\d{1,16}$/.test(parts[0])) return false;
    const [expiry, fingerprint, macText] = parts;
    if (Number(expiry) <= nowMs) return false;
    const key = this.#keys.get(fingerprint);
    const mac = fromBase64Url(macText);
    if (key === undefined || mac === undefined) return false;
    return await crypto.subtle.verify(
      "HMAC",
      key,
      mac as Uint8Array<ArrayBuffer>,
      this.#message(expiry),
    );
  }

  #message(expiry: string): Uint8Array<ArrayBuffer> {
    return text.encode(`koi kv connect data token\0${this.#databaseId}\0${expiry}`);
  }
}

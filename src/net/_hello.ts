/**
 * The handshake that opens every peer connection.
 *
 * Without a cluster secret the dialer sends `{v: 3, cluster, from, to, incarnation, formed}`
 * as the first frame. With a secret the listener first sends a challenge `{nonce}` (16 random
 * bytes) and the dialer answers with the hello plus `nonce` (echoed) and
 * `mac = HMAC-SHA256(secret, "koi-hello-v3|cluster|from|to|incarnation|formed|hex(nonce)")`
 * (`formed` as `1` or `0`). The listener checks cluster, receiver, sender and MAC (constant
 * time, crypto.subtle.verify), then asks whether the sender's incarnation (the id of its data
 * directory) is the one the cluster knows, and answers with a welcome
 * `{v: 3, incarnation, formed}` (with a secret also
 * `mac = HMAC-SHA256(secret, "koi-welcome-v3|cluster|listener|dialer|incarnation|formed|hex(nonce)")`)
 * or a refusal `{v: 3, refused: REFUSAL_REASON}` (with a secret also
 * `mac = HMAC-SHA256(secret, "koi-refusal-v3|cluster|listener|dialer|hex(nonce)")`). The
 * refusal's text on the wire is always the fixed {@linkcode REFUSAL_REASON}: why exactly is
 * in the refusing node's log, never sent to a peer. The dialer checks the welcome the same
 * way, so each side learns the other's incarnation and either can refuse a node whose disk
 * was wiped.
 *
 * `formed` says whether the sender's data directory already holds a cluster (any log entry
 * or snapshot); a refusal implies it. A founding node whose data directory is empty uses it
 * to tell "the cluster does not exist yet" from "it exists and I lost my disk".
 */

/** The version of the hello this code speaks (3: incarnations, the welcome and `formed`). */
export const HELLO_VERSION = 3;

/** Longest incarnation id accepted in a hello or welcome. */
export const INCARNATION_CHARS_MAX = 128;

/** Longest refusal text a dialer accepts from a listener (which sends {@linkcode REFUSAL_REASON}). */
export const REFUSAL_CHARS_MAX = 256;

/**
 * The one refusal text a listener puts on the wire. The detailed reason (which may name the
 * incarnation the cluster recorded) stays in the listener's log.
 */
export const REFUSAL_REASON =
  "this node's data directory is not the one the cluster knows for it; the refusing peer's " +
  "log says why (see docs/operations.md)";

/** Default time allowed for dialing plus the handshake, in milliseconds. */
export const HANDSHAKE_TIMEOUT_MS = 5_000;

/** Length of the listener's challenge nonce in bytes. */
export const NONCE_BYTES = 16;

/** Length of an HMAC-SHA256 in bytes. */
export const MAC_BYTES = 32;

/** Longest cluster or node id accepted in a hello (ids in config.toml are far shorter). */
export const HELLO_ID_CHARS_MAX = 256;

const MAC_CONTEXT = "koi-hello-v3";
const WELCOME_MAC_CONTEXT = "koi-welcome-v3";
const REFUSAL_MAC_CONTEXT = "koi-refusal-v3";
const TEXT = new TextEncoder();

/** The first frame a dialer sends. */
export interface Hello {
  /** Protocol version: {@linkcode HELLO_VERSION}. */
  readonly v: typeof HELLO_VERSION;
  /** The cluster the dialer belongs to. */
  readonly cluster: string;
  /** The dialer's node id. */
  readonly from: string;
  /** The node id the dialer believes it reached. */
  readonly to: string;
  /** The id of the dialer's data directory (see `KvLogStorage.incarnation`). */
  readonly incarnation: string;
  /** Whether the dialer's data directory already holds a cluster (a log entry or snapshot). */
  readonly formed: boolean;
  /** The listener's challenge, echoed (only with a secret). */
  readonly nonce?: Uint8Array;
  /** HMAC-SHA256 proving knowledge of the secret (only with a secret). */
  readonly mac?: Uint8Array;
}

/** The handshake failed: a malformed hello or challenge, or a refused peer. */
export class HandshakeError extends Error {
  /** Creates the error with the reason. */
  constructor(reason: string, options?: ErrorOptions) {
    super(`Handshake failed: ${reason}`, options);
    this.name = "HandshakeError";
  }
}

/** What the listener expects of a hello. */
export interface HelloExpectation {
  /** This node's cluster. */
  readonly clusterId: string;
  /** This node's id: the hello's `to`. */
  readonly nodeId: string;
  /** Whether `id` is a current peer (may send to this node). */
  isPeer(id: string): boolean;
  /** The secret's key, when one is configured. */
  readonly key?: CryptoKey;
  /** The nonce of the challenge sent, when a secret is configured. */
  readonly nonce?: Uint8Array;
}

/** Imports the cluster secret as an HMAC-SHA256 key for signing and verifying hellos. */
export function importHelloKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    TEXT.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/** A fresh random challenge nonce. */
export function newNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
}

/** What a MAC covers: the names, the sender's incarnation and state, the listener's challenge. */
export interface MacFields {
  /** The cluster. */
  readonly cluster: string;
  /** The sender (the dialer for a hello, the listener for a welcome). */
  readonly from: string;
  /** The receiver. */
  readonly to: string;
  /** The sender's incarnation. */
  readonly incarnation: string;
  /** Whether the sender's data directory holds a cluster. */
  readonly formed: boolean;
  /** The listener's challenge. */
  readonly nonce: Uint8Array;
}

/** What a refusal's MAC covers: the names and the listener's challenge. */
export type RefusalMacFields = Omit<MacFields, "incarnation" | "formed">;

/**
 * The bytes the hello's MAC covers:
 * `koi-hello-v3|cluster|from|to|incarnation|formed|hex(nonce)`, formed as `1` or `0`.
 */
export function helloMacInput(fields: MacFields): Uint8Array {
  return macInput(MAC_CONTEXT, fields);
}

/** The bytes the welcome's MAC covers: the same with `koi-welcome-v3` (from = listener). */
export function welcomeMacInput(fields: MacFields): Uint8Array {
  return macInput(WELCOME_MAC_CONTEXT, fields);
}

/** The bytes a refusal's MAC covers: `koi-refusal-v3|cluster|from|to|hex(nonce)` (from = listener). */
export function refusalMacInput(fields: RefusalMacFields): Uint8Array {
  return TEXT.encode(
    `${REFUSAL_MAC_CONTEXT}|${fields.cluster}|${fields.from}|${fields.to}|${hex(fields.nonce)}`,
  );
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function macInput(context: string, fields: MacFields): Uint8Array {
  const formed = fields.formed ? "1" : "0";
  return TEXT.encode(
    `${context}|${fields.cluster}|${fields.from}|${fields.to}|${fields.incarnation}|${formed}|${
      hex(fields.nonce)
    }`,
  );
}

/** The hello's MAC: HMAC-SHA256 with the secret's `key` over {@linkcode helloMacInput}. */
export function signHello(key: CryptoKey, fields: MacFields): Promise<Uint8Array> {
  return sign(key, helloMacInput(fields));
}

/** The welcome's MAC: HMAC-SHA256 with the secret's `key` over {@linkcode welcomeMacInput}. */
export function signWelcome(key: CryptoKey, fields: MacFields): Promise<Uint8Array> {
  return sign(key, welcomeMacInput(fields));
}

/** A refusal's MAC: HMAC-SHA256 with the secret's `key` over {@linkcode refusalMacInput}. */
export function signRefusal(key: CryptoKey, fields: RefusalMacFields): Promise<Uint8Array> {
  return sign(key, refusalMacInput(fields));
}

async function sign(key: CryptoKey, input: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.sign("HMAC", key, input as Uint8Array<ArrayBuffer>),
  );
}

function verify(key: CryptoKey, mac: Uint8Array, input: Uint8Array): Promise<boolean> {
  return crypto.subtle.verify(
    "HMAC",
    key,
    mac as Uint8Array<ArrayBuffer>,
    input as Uint8Array<ArrayBuffer>,
  );
}

/** The msgpack-ready form of a hello (absent optional fields are left out). */
export function encodeHello(hello: Hello): Record<string, unknown> {
  const wire: Record<string, unknown> = {
    v: hello.v,
    cluster: hello.cluster,
    from: hello.from,
    to: hello.to,
    incarnation: hello.incarnation,
    formed: hello.formed,
  };
  if (hello.nonce !== undefined) wire.nonce = hello.nonce;
  if (hello.mac !== undefined) wire.mac = hello.mac;
  return wire;
}

/** Validates a decoded hello frame; throws {@linkcode HandshakeError}. Unknown keys are ignored. */
export function parseHello(body: unknown): Hello {
  if (!isRecord(body)) throw new HandshakeError("the first frame is not a hello map");
  if (body.v !== HELLO_VERSION) {
    throw new HandshakeError(`unsupported hello version ${String(body.v)}`);
  }
  const hello: { -readonly [K in keyof Hello]: Hello[K] } = {
    v: HELLO_VERSION,
    cluster: helloId(body.cluster, "cluster"),
    from: helloId(body.from, "from"),
    to: helloId(body.to, "to"),
    incarnation: incarnationOf(body.incarnation),
    formed: formedOf(body.formed),
  };
  if (body.nonce !== undefined) hello.nonce = helloBytes(body.nonce, "nonce", NONCE_BYTES);
  if (body.mac !== undefined) hello.mac = helloBytes(body.mac, "mac", MAC_BYTES);
  return hello;
}

/** The msgpack-ready form of the listener's challenge. */
export function encodeChallenge(nonce: Uint8Array): Record<string, unknown> {
  return { nonce };
}

/** The nonce of a decoded challenge frame; throws {@linkcode HandshakeError}. */
export function parseChallenge(body: unknown): Uint8Array {
  if (!isRecord(body)) throw new HandshakeError("the first frame is not a challenge map");
  return helloBytes(body.nonce, "nonce", NONCE_BYTES);
}

/**
 * The kinds of refused hellos: a fixed set, so that logs can be rate-limited per kind
 * whatever a hostile peer puts in its hello.
 */
export type HelloRefusalKind =
  | "wrong cluster"
  | "wrong receiver"
  | "unknown sender"
  | "no MAC"
  | "nonce mismatch"
  | "wrong MAC";

/** Why a listener refuses a hello: its kind and the text for the log. */
export interface HelloRefusal {
  /** The kind (fixed set). */
  readonly kind: HelloRefusalKind;
  /** The detailed reason. */
  readonly reason: string;
}

/** Why the listener refuses `hello`, or undefined when it is accepted. */
export async function checkHello(
  hello: Hello,
  expect: HelloExpectation,
): Promise<HelloRefusal | undefined> {
  if (hello.cluster !== expect.clusterId) {
    return {
      kind: "wrong cluster",
      reason: `wrong cluster ${JSON.stringify(hello.cluster)}, this is ${
        JSON.stringify(expect.clusterId)
      }`,
    };
  }
  if (hello.to !== expect.nodeId) {
    return {
      kind: "wrong receiver",
      reason: `hello names receiver ${JSON.stringify(hello.to)}, this is ${
        JSON.stringify(expect.nodeId)
      }`,
    };
  }
  if (hello.from === expect.nodeId || !expect.isPeer(hello.from)) {
    return { kind: "unknown sender", reason: `unknown sender ${JSON.stringify(hello.from)}` };
  }
  if (expect.key === undefined) return undefined;
  if (expect.nonce === undefined) throw new Error("checkHello: a key needs the challenge nonce");
  if (hello.mac === undefined) {
    return { kind: "no MAC", reason: "no MAC, but a cluster secret is configured" };
  }
  if (hello.nonce === undefined || !equalBytes(hello.nonce, expect.nonce)) {
    return { kind: "nonce mismatch", reason: "the nonce does not match the challenge" };
  }
  const ok = await verify(expect.key, hello.mac, helloMacInput({ ...hello, nonce: expect.nonce }));
  return ok
    ? undefined
    : { kind: "wrong MAC", reason: "wrong MAC: the peer does not know the cluster secret" };
}

/** The listener's answer to an accepted hello, or its refusal, as received. */
export type Welcome =
  | {
    /** The listener's incarnation. */
    readonly incarnation: string;
    /** Whether the listener's data directory holds a cluster. */
    readonly formed: boolean;
    /** HMAC-SHA256 over {@linkcode welcomeMacInput} (only with a secret). */
    readonly mac?: Uint8Array;
  }
  | {
    /** The text the listener gave (it closes the connection after this frame). */
    readonly refused: string;
    /** HMAC-SHA256 over {@linkcode refusalMacInput} (only with a secret). */
    readonly mac?: Uint8Array;
  };

/** What a listener sends: a welcome, or a refusal, whose text is always {@linkcode REFUSAL_REASON}. */
export type WelcomeAnswer =
  | Exclude<Welcome, { readonly refused: string }>
  | { readonly refused: true; readonly mac?: Uint8Array };

/** The msgpack-ready form of a welcome or refusal. */
export function encodeWelcome(welcome: WelcomeAnswer): Record<string, unknown> {
  const wire: Record<string, unknown> = "refused" in welcome
    ? { v: HELLO_VERSION, refused: REFUSAL_REASON }
    : { v: HELLO_VERSION, incarnation: welcome.incarnation, formed: welcome.formed };
  if (welcome.mac !== undefined) wire.mac = welcome.mac;
  return wire;
}

/** Validates a decoded welcome frame; throws {@linkcode HandshakeError}. */
export function parseWelcome(body: unknown): Welcome {
  if (!isRecord(body)) throw new HandshakeError("the answer to the hello is not a welcome map");
  if (body.v !== HELLO_VERSION) {
    throw new HandshakeError(`unsupported welcome version ${String(body.v)}`);
  }
  const mac = body.mac === undefined ? undefined : helloBytes(body.mac, "mac", MAC_BYTES);
  if (body.refused !== undefined) {
    if (typeof body.refused !== "string" || body.refused.length > REFUSAL_CHARS_MAX) {
      throw new HandshakeError(`welcome field refused must be a string of 0..${REFUSAL_CHARS_MAX}`);
    }
    return mac === undefined ? { refused: body.refused } : { refused: body.refused, mac };
  }
  const incarnation = incarnationOf(body.incarnation);
  const formed = formedOf(body.formed);
  return mac === undefined ? { incarnation, formed } : { incarnation, formed, mac };
}

/** Why the dialer refuses a welcome's (or refusal's) MAC, or undefined when it is good (or not needed). */
export async function checkWelcome(
  welcome: Welcome,
  expect: { readonly key?: CryptoKey; readonly fields: RefusalMacFields },
): Promise<string | undefined> {
  if (expect.key === undefined) return undefined;
  const what = "refused" in welcome ? "refusal" : "welcome";
  if (welcome.mac === undefined) return `the ${what} has no MAC, but a cluster secret is set`;
  const input = "refused" in welcome ? refusalMacInput(expect.fields) : welcomeMacInput({
    ...expect.fields,
    incarnation: welcome.incarnation,
    formed: welcome.formed,
  });
  const ok = await verify(expect.key, welcome.mac, input);
  return ok ? undefined : `wrong ${what} MAC: the peer does not know the cluster secret`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}

function helloId(value: unknown, field: string): string {
  if (typeof value !== "string" || value === "" || value.length > HELLO_ID_CHARS_MAX) {
    throw new HandshakeError(`hello field ${field} must be a string of 1..${HELLO_ID_CHARS_MAX}`);
  }
  return value;
}

function incarnationOf(value: unknown): string {
  if (typeof value !== "string" || value === "" || value.length > INCARNATION_CHARS_MAX) {
    throw new HandshakeError(
      `field incarnation must be a string of 1..${INCARNATION_CHARS_MAX}`,
    );
  }
  return value;
}

function formedOf(value: unknown): boolean {
  if (typeof value !== "boolean") throw new HandshakeError("field formed must be a boolean");
  return value;
}

function helloBytes(value: unknown, field: string, length: number): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new HandshakeError(`field ${field} must be ${length} bytes`);
  }
  return value;
}

/** Compares public values (the nonce is not secret); the MAC goes through crypto.subtle.verify. */
function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

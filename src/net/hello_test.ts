import assert from "node:assert/strict";
import {
  checkHello,
  checkWelcome,
  encodeChallenge,
  encodeHello,
  encodeWelcome,
  HandshakeError,
  type Hello,
  helloMacInput,
  importHelloKey,
  MAC_BYTES,
  newNonce,
  NONCE_BYTES,
  parseChallenge,
  parseHello,
  parseWelcome,
  REFUSAL_CHARS_MAX,
  signHello,
  signWelcome,
  welcomeMacInput,
} from "./_hello.ts";
import { decodeFrameBody, encodeFrame, FRAME_HEADER_BYTES } from "./_frame.ts";

const SECRET = "correct horse battery staple";
const PEERS = new Set(["a2", "a3"]);

function expectation(key?: CryptoKey, nonce?: Uint8Array) {
  return { clusterId: "a", nodeId: "a1", isPeer: (id: string) => PEERS.has(id), key, nonce };
}

/** Through a frame and back, as the listener sees it. */
function wire(value: unknown): unknown {
  return decodeFrameBody(encodeFrame(value).subarray(FRAME_HEADER_BYTES));
}

async function signedHello(secret: string, nonce: Uint8Array, fields: Partial<Hello> = {}) {
  const base = { v: 2 as const, cluster: "a", from: "a2", to: "a1", incarnation: "i2", ...fields };
  const mac = await signHello(await importHelloKey(secret), { ...base, nonce });
  return parseHello(wire(encodeHello({ ...base, nonce, mac })));
}

Deno.test("hello MAC input is the documented string", () => {
  const nonce = Uint8Array.from({ length: NONCE_BYTES }, (_, i) => i);
  const text = new TextDecoder().decode(
    helloMacInput({ cluster: "a", from: "a2", to: "a1", incarnation: "i2", nonce }),
  );
  assert.equal(text, "koi-hello-v2|a|a2|a1|i2|000102030405060708090a0b0c0d0e0f");
});

Deno.test("checkHello accepts a hello signed with the secret over the challenge", async () => {
  const nonce = parseChallenge(wire(encodeChallenge(newNonce())));
  const hello = await signedHello(SECRET, nonce);
  assert.equal(hello.mac?.length, MAC_BYTES);
  const key = await importHelloKey(SECRET);
  assert.equal(await checkHello(hello, expectation(key, nonce)), undefined);
});

Deno.test("checkHello refuses a wrong secret, a missing MAC and a replayed nonce", async () => {
  const key = await importHelloKey(SECRET);
  const nonce = newNonce();
  const wrong = await signedHello("not the secret at all", nonce);
  assert.match((await checkHello(wrong, expectation(key, nonce)))!, /wrong MAC/);
  const bare = parseHello(
    wire(encodeHello({ v: 2, cluster: "a", from: "a2", to: "a1", incarnation: "i2" })),
  );
  assert.match((await checkHello(bare, expectation(key, nonce)))!, /no MAC/);
  const replayed = await signedHello(SECRET, newNonce()); // signed for another challenge
  assert.match((await checkHello(replayed, expectation(key, nonce)))!, /nonce does not match/);
  const lying = { ...replayed, nonce }; // echoes the right nonce with the old MAC
  assert.match((await checkHello(lying, expectation(key, nonce)))!, /wrong MAC/);
});

Deno.test("checkHello refuses a wrong cluster, receiver or sender, with or without a secret", async () => {
  const cases: [Partial<Hello>, RegExp][] = [
    [{ cluster: "b" }, /wrong cluster "b", this is "a"/],
    [{ to: "a2" }, /names receiver "a2", this is "a1"/],
    [{ from: "zz" }, /unknown sender "zz"/],
    [{ from: "a1" }, /unknown sender "a1"/], // this node itself
  ];
  const key = await importHelloKey(SECRET);
  for (const [fields, reason] of cases) {
    const nonce = newNonce();
    const signed = await signedHello(SECRET, nonce, fields);
    assert.match((await checkHello(signed, expectation(key, nonce)))!, reason);
    const plain = parseHello(
      wire(encodeHello({ v: 2, cluster: "a", from: "a2", to: "a1", incarnation: "i2", ...fields })),
    );
    assert.match((await checkHello(plain, expectation()))!, reason);
  }
  const plain = parseHello(
    wire(encodeHello({ v: 2, cluster: "a", from: "a3", to: "a1", incarnation: "i3" })),
  );
  assert.equal(await checkHello(plain, expectation()), undefined);
});

Deno.test("parseHello and parseChallenge refuse malformed frames", () => {
  const good = { v: 2, cluster: "a", from: "a2", to: "a1", incarnation: "i2" };
  const bad: unknown[] = [
    null,
    7,
    [1, "a", "a2", "a1"],
    new Uint8Array(4),
    { ...good, v: 1 },
    { ...good, incarnation: undefined },
    { ...good, incarnation: "" },
    { ...good, incarnation: "x".repeat(129) },
    { ...good, cluster: 5 },
    { ...good, from: "" },
    { ...good, to: "x".repeat(257) },
    { ...good, nonce: new Uint8Array(15) },
    { ...good, mac: "not bytes" },
  ];
  for (const body of bad) {
    assert.throws(() => parseHello(body), HandshakeError, JSON.stringify(body));
  }
  assert.deepEqual(parseHello({ ...good, extra: true }), good); // unknown keys are ignored
  assert.throws(() => parseChallenge({ nonce: new Uint8Array(8) }), HandshakeError);
  assert.throws(() => parseChallenge(good), HandshakeError);
});

Deno.test("the welcome MAC covers the listener's incarnation; a refusal carries its reason", async () => {
  const key = await importHelloKey(SECRET);
  const nonce = newNonce();
  const fields = { cluster: "a", from: "a1", to: "a2", nonce };
  assert.equal(
    new TextDecoder().decode(
      welcomeMacInput({ ...fields, incarnation: "i1", nonce: new Uint8Array(1) }),
    ),
    "koi-welcome-v2|a|a1|a2|i1|00",
  );
  const mac = await signWelcome(key, { ...fields, incarnation: "i1" });
  const good = parseWelcome(wire(encodeWelcome({ incarnation: "i1", mac })));
  assert.deepEqual(good, { incarnation: "i1", mac });
  assert.equal(await checkWelcome(good as { incarnation: string }, { key, fields }), undefined);
  const swapped = { incarnation: "i9", mac }; // a replayed MAC with another incarnation
  assert.match((await checkWelcome(swapped, { key, fields }))!, /wrong welcome MAC/);
  assert.match((await checkWelcome({ incarnation: "i1" }, { key, fields }))!, /no MAC/);
  assert.equal(await checkWelcome({ incarnation: "i1" }, { fields }), undefined); // no secret
  const refused = parseWelcome(wire(encodeWelcome({ refused: "x".repeat(600) })));
  assert.deepEqual(refused, { refused: "x".repeat(REFUSAL_CHARS_MAX) });
  for (const bad of [null, { v: 1, incarnation: "i1" }, { v: 2 }, { v: 2, refused: 7 }]) {
    assert.throws(() => parseWelcome(bad), HandshakeError, JSON.stringify(bad));
  }
});

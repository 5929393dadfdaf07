import assert from "node:assert/strict";
import {
  checkHello,
  encodeChallenge,
  encodeHello,
  HandshakeError,
  type Hello,
  helloMacInput,
  importHelloKey,
  MAC_BYTES,
  newNonce,
  NONCE_BYTES,
  parseChallenge,
  parseHello,
  signHello,
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
  const base = { v: 1 as const, cluster: "a", from: "a2", to: "a1", ...fields };
  const mac = await signHello(await importHelloKey(secret), { ...base, nonce });
  return parseHello(wire(encodeHello({ ...base, nonce, mac })));
}

Deno.test("hello MAC input is the documented string", () => {
  const nonce = Uint8Array.from({ length: NONCE_BYTES }, (_, i) => i);
  const text = new TextDecoder().decode(
    helloMacInput({ cluster: "a", from: "a2", to: "a1", nonce }),
  );
  assert.equal(text, "koi-hello-v1|a|a2|a1|000102030405060708090a0b0c0d0e0f");
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
  const bare = parseHello(wire(encodeHello({ v: 1, cluster: "a", from: "a2", to: "a1" })));
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
      wire(encodeHello({ v: 1, cluster: "a", from: "a2", to: "a1", ...fields })),
    );
    assert.match((await checkHello(plain, expectation()))!, reason);
  }
  const plain = parseHello(wire(encodeHello({ v: 1, cluster: "a", from: "a3", to: "a1" })));
  assert.equal(await checkHello(plain, expectation()), undefined);
});

Deno.test("parseHello and parseChallenge refuse malformed frames", () => {
  const good = { v: 1, cluster: "a", from: "a2", to: "a1" };
  const bad: unknown[] = [
    null,
    7,
    [1, "a", "a2", "a1"],
    new Uint8Array(4),
    { ...good, v: 2 },
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

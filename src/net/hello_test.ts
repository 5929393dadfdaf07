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
  REFUSAL_REASON,
  refusalMacInput,
  signHello,
  signRefusal,
  signWelcome,
  welcomeMacInput,
} from "./_hello.ts";
import { decodeFrameBody, encodeFrame, FRAME_HEADER_BYTES } from "./_frame.ts";

const SECRET = "correct horse battery staple";
const PEERS = new Set(["a2", "a3"]);
const PLAIN = {
  v: 3 as const,
  cluster: "a",
  from: "a2",
  to: "a1",
  incarnation: "i2",
  formed: true,
};

function expectation(key?: CryptoKey, nonce?: Uint8Array) {
  return { clusterId: "a", nodeId: "a1", isPeer: (id: string) => PEERS.has(id), key, nonce };
}

/** Through a frame and back, as the listener sees it. */
function wire(value: unknown): unknown {
  return decodeFrameBody(encodeFrame(value).subarray(FRAME_HEADER_BYTES));
}

async function signedHello(secret: string, nonce: Uint8Array, fields: Partial<Hello> = {}) {
  const base = {
    v: 3 as const,
    cluster: "a",
    from: "a2",
    to: "a1",
    incarnation: "i2",
    formed: false,
    ...fields,
  };
  const mac = await signHello(await importHelloKey(secret), { ...base, nonce });
  return parseHello(wire(encodeHello({ ...base, nonce, mac })));
}

Deno.test("hello MAC input is the documented string", () => {
  const nonce = Uint8Array.from({ length: NONCE_BYTES }, (_, i) => i);
  const text = new TextDecoder().decode(
    helloMacInput({ cluster: "a", from: "a2", to: "a1", incarnation: "i2", formed: true, nonce }),
  );
  assert.equal(text, "koi-hello-v3|a|a2|a1|i2|1|000102030405060708090a0b0c0d0e0f");
});

Deno.test("the hello MAC covers formed: a hello whose formed was flipped is refused", async () => {
  const key = await importHelloKey(SECRET);
  const nonce = newNonce();
  const hello = await signedHello(SECRET, nonce, { formed: false });
  assert.equal(hello.formed, false);
  assert.equal(await checkHello(hello, expectation(key, nonce)), undefined);
  const flipped = { ...hello, formed: true };
  assert.equal((await checkHello(flipped, expectation(key, nonce)))?.kind, "wrong MAC");
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
  assert.match((await checkHello(wrong, expectation(key, nonce)))!.reason, /wrong MAC/);
  const bare = parseHello(
    wire(
      encodeHello({ v: 3, cluster: "a", from: "a2", to: "a1", incarnation: "i2", formed: true }),
    ),
  );
  assert.match((await checkHello(bare, expectation(key, nonce)))!.reason, /no MAC/);
  const replayed = await signedHello(SECRET, newNonce()); // signed for another challenge
  assert.match(
    (await checkHello(replayed, expectation(key, nonce)))!.reason,
    /nonce does not match/,
  );
  const lying = { ...replayed, nonce }; // echoes the right nonce with the old MAC
  assert.match((await checkHello(lying, expectation(key, nonce)))!.reason, /wrong MAC/);
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
    assert.match((await checkHello(signed, expectation(key, nonce)))!.reason, reason);
    const plain = parseHello(
      wire(encodeHello({ ...PLAIN, ...fields })),
    );
    assert.match((await checkHello(plain, expectation()))!.reason, reason);
  }
  const plain = parseHello(
    wire(encodeHello({ ...PLAIN, from: "a3", incarnation: "i3" })),
  );
  assert.equal(await checkHello(plain, expectation()), undefined);
});

Deno.test("parseHello and parseChallenge refuse malformed frames", () => {
  const good = { ...PLAIN };
  const bad: unknown[] = [
    null,
    7,
    [1, "a", "a2", "a1"],
    new Uint8Array(4),
    { ...good, v: 2 },
    { ...good, formed: undefined },
    { ...good, formed: 1 },
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

Deno.test("the welcome MAC covers the listener's incarnation and formed", async () => {
  const key = await importHelloKey(SECRET);
  const nonce = newNonce();
  const fields = { cluster: "a", from: "a1", to: "a2", nonce };
  assert.equal(
    new TextDecoder().decode(
      welcomeMacInput({ ...fields, incarnation: "i1", formed: false, nonce: new Uint8Array(1) }),
    ),
    "koi-welcome-v3|a|a1|a2|i1|0|00",
  );
  const mac = await signWelcome(key, { ...fields, incarnation: "i1", formed: true });
  const good = parseWelcome(wire(encodeWelcome({ incarnation: "i1", formed: true, mac })));
  assert.deepEqual(good, { incarnation: "i1", formed: true, mac });
  assert.equal(await checkWelcome(good, { key, fields }), undefined);
  const swapped = { incarnation: "i9", formed: true, mac }; // a replayed MAC, another incarnation
  assert.match((await checkWelcome(swapped, { key, fields }))!, /wrong welcome MAC/);
  const flipped = { incarnation: "i1", formed: false, mac };
  assert.match((await checkWelcome(flipped, { key, fields }))!, /wrong welcome MAC/);
  const bare = { incarnation: "i1", formed: true };
  assert.match((await checkWelcome(bare, { key, fields }))!, /no MAC/);
  assert.equal(await checkWelcome(bare, { fields }), undefined); // no secret
  for (
    const bad of [null, { v: 2, incarnation: "i1", formed: true }, { v: 3 }, { v: 3, refused: 7 }, {
      v: 3,
      incarnation: "i1",
    }]
  ) {
    assert.throws(() => parseWelcome(bad), HandshakeError, JSON.stringify(bad));
  }
});

Deno.test("a refusal carries only the fixed reason on the wire, signed with a secret", async () => {
  const key = await importHelloKey(SECRET);
  const nonce = newNonce();
  const fields = { cluster: "a", from: "a1", to: "a2", nonce };
  assert.equal(
    new TextDecoder().decode(refusalMacInput({ ...fields, nonce: new Uint8Array(2) })),
    "koi-refusal-v3|a|a1|a2|0000",
  );
  const mac = await signRefusal(key, fields);
  const wireForm = encodeWelcome({ refused: true, mac });
  assert.deepEqual(Object.keys(wireForm).sort(), ["mac", "refused", "v"]);
  assert.equal(wireForm.refused, REFUSAL_REASON);
  assert.ok(REFUSAL_REASON.length <= REFUSAL_CHARS_MAX);
  const refused = parseWelcome(wire(wireForm));
  assert.deepEqual(refused, { refused: REFUSAL_REASON, mac });
  assert.equal(await checkWelcome(refused, { key, fields }), undefined);
  const forged = parseWelcome(wire(encodeWelcome({ refused: true })));
  assert.match((await checkWelcome(forged, { key, fields }))!, /refusal has no MAC/);
  const other = { ...fields, to: "a3" }; // replayed to another dialer
  assert.match((await checkWelcome(refused, { key, fields: other }))!, /wrong refusal MAC/);
  assert.throws(
    () => parseWelcome({ v: 3, refused: "x".repeat(REFUSAL_CHARS_MAX + 1) }),
    HandshakeError,
  );
});

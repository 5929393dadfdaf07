/** `[kv_connect]`: its fields, their limits, and the errors that name them. */
import assert from "node:assert/strict";
import { assertConfigError, configError, MINIMAL, parse } from "./_test_util.ts";
import {
  KV_CONNECT_TOKEN_CHARS_MAX,
  KV_CONNECT_TOKEN_CHARS_MIN,
  KV_CONNECT_TOKENS_MAX,
} from "./_schema.ts";

const section = (body: string) => `${MINIMAL}\n[kv_connect]\n${body}\n`;
const tokens = (...t: string[]) =>
  section(`listen = "127.0.0.1:7001"\ntokens = ${JSON.stringify(t)}`);
const ok = "k".repeat(KV_CONNECT_TOKEN_CHARS_MIN);

Deno.test("kv_connect: no section is KV Connect off", () => {
  assert.equal(parse(MINIMAL).kvConnect, undefined);
});

Deno.test("kv_connect: listen alone, or with tokens at the limits", () => {
  const plain = parse(section(`listen = "127.0.0.1:7001"`)).kvConnect;
  assert.deepEqual(plain, { listen: { host: "127.0.0.1", port: 7001, text: "127.0.0.1:7001" } });
  const many = Array.from({ length: KV_CONNECT_TOKENS_MAX }, (_, i) => `${ok}-${i}`);
  assert.deepEqual(parse(tokens(...many)).kvConnect?.tokens, many);
  const longest = "x".repeat(KV_CONNECT_TOKEN_CHARS_MAX);
  assert.deepEqual(parse(tokens(ok, longest)).kvConnect?.tokens, [ok, longest]);
  assert.equal(parse(section(`listen = "[::1]:7001"`)).kvConnect?.listen.host, "::1");
});

Deno.test("kv_connect: listen is required in the section and is an address like the others", () => {
  assertConfigError(section(""), "kv_connect.listen", "missing");
  assertConfigError(section(`listen = 7001`), "kv_connect.listen", '"host:port"');
  assertConfigError(section(`listen = "127.0.0.1"`), "kv_connect.listen", '"host:port"');
  assertConfigError(section(`listen = "127.0.0.1:0"`), "kv_connect.listen", "port");
  // The admin's address, or a node's: all addresses of the file are distinct.
  assertConfigError(section(`listen = "127.0.0.1:7000"`), "kv_connect.listen", "admin.http");
  assertConfigError(
    section(`listen = "127.0.0.1:7201"`),
    "clusters[0].nodes[0].http",
    "kv_connect.listen",
  );
});

Deno.test("kv_connect: tokens are 1..64 strings of 16..1024 characters, never echoed", () => {
  assertConfigError(
    section(`listen = "127.0.0.1:7001"\ntokens = "${ok}"`),
    "kv_connect.tokens",
    "array",
  );
  assertConfigError(tokens(), "kv_connect.tokens", "1 to 64", "got 0");
  const tooMany = Array.from({ length: KV_CONNECT_TOKENS_MAX + 1 }, (_, i) => `${ok}-${i}`);
  assertConfigError(tokens(...tooMany), "kv_connect.tokens", "got 65");
  const short = "k".repeat(KV_CONNECT_TOKEN_CHARS_MIN - 1);
  assertConfigError(tokens(ok, short), "kv_connect.tokens[1]", "16 to 1024", "got 15");
  assertConfigError(tokens("x".repeat(KV_CONNECT_TOKEN_CHARS_MAX + 1)), "kv_connect.tokens[0]");
  assertConfigError(tokens(`${ok} ${ok}`), "kv_connect.tokens[0]", "whitespace");
  assertConfigError(tokens(`${ok}\t`), "kv_connect.tokens[0]", "whitespace");
  assertConfigError(tokens(ok, ok), "kv_connect.tokens[1]", "duplicate", "kv_connect.tokens[0]");
  assertConfigError(
    section(`listen = "127.0.0.1:7001"\ntokens = [42]`),
    "kv_connect.tokens[0]",
    "string",
  );
  for (const bad of [short, `${ok} ${ok}`]) {
    assert.ok(!configError(tokens(bad)).message.includes(bad), "a token is never echoed");
  }
  // One token given as a string instead of an array: not echoed either (found by the attack).
  const single = configError(section(`listen = "127.0.0.1:7001"
tokens = "${ok}"`));
  assert.ok(!single.message.includes(ok), single.message);
});

Deno.test("kv_connect: unknown fields and every problem at once", () => {
  assertConfigError(
    section(`listen = "127.0.0.1:7001"\nport = 1`),
    "kv_connect.port",
    "listen, tokens",
  );
  const all = configError(section(`listen = "nope"\ntokens = ["short"]`));
  assert.deepEqual(all.problems.map((p) => p.field).sort(), [
    "kv_connect.listen",
    "kv_connect.tokens[0]",
  ]);
  assertConfigError(`kv_connect = 1\n${MINIMAL}`, "kv_connect", "table");
});

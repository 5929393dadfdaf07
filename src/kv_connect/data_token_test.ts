/** Data-path tokens: issued per access token, checked without state, never forgeable. */
import assert from "node:assert/strict";
import { DataTokens } from "./_data_token.ts";

const A = "access-token-a-0123456789";
const B = "access-token-b-0123456789";
const DB = "6f1c2f6e-4c1b-4a51-9d8e-3f1a2b3c4d5e";

Deno.test("data tokens: valid until their expiry, for the database they were made for", async () => {
  const tokens = await DataTokens.create([A, B], DB);
  const t = await tokens.issue(A, 2_000);
  assert.match(t, /^2000\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
  assert.ok(await tokens.verify(t, 1_999));
  assert.ok(!(await tokens.verify(t, 2_000)), "expired");
  const otherDb = await DataTokens.create([A, B], "00000000-0000-4000-8000-000000000000");
  assert.ok(!(await otherDb.verify(t, 0)), "another database's");
  assert.ok(await (await DataTokens.create([A], DB)).verify(t, 0), "B's removal keeps A's");
  assert.ok(!(await (await DataTokens.create([B], DB)).verify(t, 0)), "A's removal ends them");
  await assert.rejects(tokens.issue("not-one-of-them-0123456789", 1), RangeError);
});

Deno.test("data tokens: a changed expiry, fingerprint or mac, or garbage, is refused", async () => {
  const tokens = await DataTokens.create([A, B], DB);
  const t = await tokens.issue(A, 5_000);
  const [expiry, fingerprint, mac] = t.split(".");
  const forged = [
    `9${expiry}.${fingerprint}.${mac}`,
    `${expiry}.${(await tokens.issue(B, 5_000)).split(".")[1]}.${mac}`,
    `${expiry}.${fingerprint}.${mac.slice(0, -1)}${mac.endsWith("A") ? "B" : "A"}`,
    `${expiry}.${fingerprint}.`,
    `${expiry}.${fingerprint}`,
    `${expiry}.${fingerprint}.${mac}.x`,
    "",
    "Bearer",
    `-1.${fingerprint}.${mac}`,
    `${expiry}.${fingerprint}.${"A".repeat(200)}`,
  ];
  for (const f of forged) assert.ok(!(await tokens.verify(f, 0)), f);
});

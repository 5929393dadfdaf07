import assert from "node:assert/strict";
import { loadOrCreateSecret } from "./_secret_store.ts";
import { SECRET_CHARS_MIN } from "../config/mod.ts";

Deno.test("secret store: created once with mode 0600, then read back unchanged", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = await loadOrCreateSecret(dir);
    assert.equal(first.created, true);
    assert.ok(first.secret.length >= SECRET_CHARS_MIN);
    assert.match(first.secret, /^[A-Za-z0-9_-]+$/);
    assert.equal((await Deno.stat(first.path)).mode! & 0o777, 0o600);
    const again = await loadOrCreateSecret(dir);
    assert.equal(again.created, false);
    assert.equal(again.secret, first.secret);
    const other = await loadOrCreateSecret(await Deno.makeTempDir({ dir }));
    assert.notEqual(other.secret, first.secret, "random per deployment");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("secret store: a secret file others can read is set back to 0600 and reported", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { path } = await loadOrCreateSecret(dir);
    await Deno.chmod(path, 0o644);
    const read = await loadOrCreateSecret(dir);
    assert.equal(read.modeFixed, 0o644);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("secret store: a broken secret file is an error naming the file, not replaced", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/secret`, "short\n", { mode: 0o600 });
    await assert.rejects(
      loadOrCreateSecret(dir),
      /Invalid admin secret file: .*secret: a secret has at least 16 characters\. Repair it, or delete it/,
    );
    assert.equal(await Deno.readTextFile(`${dir}/secret`), "short\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The generated KV Connect token: made once (0600), reused, and never read through a trap. */
import assert from "node:assert/strict";
import { KV_CONNECT_TOKEN_FILE, loadOrCreateKvConnectToken } from "./_kv_connect_token.ts";

async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("kv connect token: created once with mode 0600, then read back unchanged", async () => {
  await inTempDir(async (dir) => {
    const first = await loadOrCreateKvConnectToken(dir);
    assert.equal(first.created, true);
    assert.equal(first.path, `${dir}/${KV_CONNECT_TOKEN_FILE}`);
    assert.match(first.token, /^[A-Za-z0-9_-]{43}$/, "32 random bytes, base64url");
    assert.equal((await Deno.stat(first.path)).mode! & 0o777, 0o600);
    assert.equal(await Deno.readTextFile(first.path), `${first.token}\n`);
    const again = await loadOrCreateKvConnectToken(dir);
    assert.deepEqual(again, { path: first.path, token: first.token, created: false });
    const other = await loadOrCreateKvConnectToken(await Deno.makeTempDir({ dir }));
    assert.notEqual(other.token, first.token, "random per deployment");
  });
});

Deno.test("kv connect token: a file others can read is set back to 0600 and reported", async () => {
  await inTempDir(async (dir) => {
    const { path } = await loadOrCreateKvConnectToken(dir);
    await Deno.chmod(path, 0o644);
    const read = await loadOrCreateKvConnectToken(dir);
    assert.equal(read.modeFixed, 0o644);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  });
});

Deno.test("kv connect token: a symlink, a FIFO or a directory is refused, never opened", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/${KV_CONNECT_TOKEN_FILE}`;
    await Deno.writeTextFile(`${dir}/elsewhere`, "a-token-somewhere-else-0123\n");
    await Deno.symlink(`${dir}/elsewhere`, path);
    await assert.rejects(loadOrCreateKvConnectToken(dir), /is a symbolic link, not a regular file/);
    await Deno.remove(path);
    await Deno.mkdir(path);
    await assert.rejects(loadOrCreateKvConnectToken(dir), /is a directory/);
    await Deno.remove(path);
    const made = await new Deno.Command("mkfifo", { args: [path] }).output().catch(() => undefined);
    if (made?.success) {
      // Opening a FIFO would block until a writer comes: the refusal must come first.
      await assert.rejects(loadOrCreateKvConnectToken(dir), /is a FIFO \(named pipe\)/);
    } else console.warn("SKIPPED the FIFO case: mkfifo is missing");
  });
});

Deno.test("kv connect token: a damaged file is an error naming it, not replaced", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/${KV_CONNECT_TOKEN_FILE}`;
    await Deno.writeTextFile(path, "short\n", { mode: 0o600 });
    await assert.rejects(
      loadOrCreateKvConnectToken(dir),
      /Invalid kv_connect token file: .*kv_connect_token: a secret has at least 16 characters.*delete it/,
    );
    assert.equal(await Deno.readTextFile(path), "short\n");
  });
});

Deno.test("kv connect token: a planted link at the temporary name is not written through", async () => {
  await inTempDir(async (dir) => {
    const victim = `${dir}/victim`;
    await Deno.writeTextFile(victim, "untouched");
    await Deno.symlink(victim, `${dir}/${KV_CONNECT_TOKEN_FILE}.tmp`);
    const made = await loadOrCreateKvConnectToken(dir);
    assert.equal(made.created, true);
    assert.equal(await Deno.readTextFile(victim), "untouched");
    assert.ok((await Deno.lstat(made.path)).isFile);
  });
});

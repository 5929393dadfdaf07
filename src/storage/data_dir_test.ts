import assert from "node:assert/strict";
import {
  DataDirLockedError,
  DataDirUnwritableError,
  LOCK_FILE,
  lockDataDir,
  PROBE_FILE,
} from "./data_dir.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "koi-datadir-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Starts a process that holds the lock of `dir`; resolves once it holds it. */
async function spawnHolder(scriptDir: string, dir: string): Promise<Deno.ChildProcess> {
  const script = `${scriptDir}/holder.ts`;
  await Deno.writeTextFile(
    script,
    `import { lockDataDir } from ${JSON.stringify(import.meta.resolve("./data_dir.ts"))};
await lockDataDir(Deno.args[0]);
console.log("locked");
setInterval(() => {}, 60_000);
`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--no-config", "-A", script, dir],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("locked")) {
    const { value, done } = await reader.read();
    if (done) {
      throw new Error(`Cannot start the lock holder: it exited after ${JSON.stringify(out)}`);
    }
    out += value;
  }
  reader.releaseLock();
  return child;
}

Deno.test("lockDataDir: creates the directory, locks it and releases it", async () => {
  await withTempDir(async (tmp) => {
    const dir = `${tmp}/data/a1`;
    const lock = await lockDataDir(dir);
    assert.ok((await Deno.stat(`${dir}/${LOCK_FILE}`)).isFile);
    const record = JSON.parse(await Deno.readTextFile(`${dir}/${LOCK_FILE}`));
    assert.equal(record.pid, Deno.pid);
    await assert.rejects(lockDataDir(dir), DataDirLockedError, "held, even by this process");
    lock.release();
    lock.release(); // idempotent
    (await lockDataDir(dir)).release();
    await assert.rejects(Deno.stat(`${dir}/${PROBE_FILE}`), Deno.errors.NotFound, "probe removed");
  });
});

Deno.test("lockDataDir: a second process is refused at once, and the lock frees on kill -9", async () => {
  await withTempDir(async (tmp) => {
    const dir = `${tmp}/a1`;
    const child = await spawnHolder(tmp, dir);
    let exited = false;
    try {
      const started = performance.now();
      const err = await lockDataDir(dir).then(
        () => assert.fail("the lock was taken twice"),
        (e) => e,
      );
      assert.ok(performance.now() - started < 2_000, "refused without waiting for the holder");
      assert.ok(err instanceof DataDirLockedError);
      assert.equal(err.holderPid, child.pid);
      assert.match(
        err.message,
        new RegExp(
          `^Cannot use data directory ${dir}: it is locked by process ${child.pid} .*another koi node is running with this directory`,
        ),
      );
      Deno.kill(child.pid, "SIGKILL");
      await child.status;
      exited = true;
      const lock = await lockDataDir(dir); // the kernel released the dead holder's lock
      lock.release();
    } finally {
      if (!exited) {
        Deno.kill(child.pid, "SIGKILL");
        await child.status;
      }
      await child.stdout.cancel().catch(() => {});
    }
  });
});

Deno.test("lockDataDir: a directory under a regular file is unwritable, with the OS error", async () => {
  await withTempDir(async (tmp) => {
    await Deno.writeTextFile(`${tmp}/file`, "x");
    const dir = `${tmp}/file/data`;
    const err = await lockDataDir(dir).then(() => assert.fail("locked"), (e) => e);
    assert.ok(err instanceof DataDirUnwritableError);
    assert.equal(err.path, dir);
    assert.match(
      err.message,
      new RegExp(`^Cannot use data directory ${dir}: it is not writable: .*Not a directory`),
    );
  });
});

Deno.test("lockDataDir: a failing write probe is reported with its path, and the lock is let go", async () => {
  await withTempDir(async (tmp) => {
    await Deno.mkdir(`${tmp}/${PROBE_FILE}`); // the probe cannot be opened as a file (root too)
    const err = await lockDataDir(tmp).then(() => assert.fail("locked"), (e) => e);
    assert.ok(err instanceof DataDirUnwritableError);
    assert.equal(err.path, `${tmp}/${PROBE_FILE}`);
    assert.match(err.message, /it is not writable: /);
    await Deno.remove(`${tmp}/${PROBE_FILE}`);
    (await lockDataDir(tmp)).release(); // the failed attempt did not keep the lock
  });
});

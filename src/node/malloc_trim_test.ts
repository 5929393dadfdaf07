import assert from "node:assert/strict";
import { openMallocTrimmer, startMallocTrims } from "./_malloc_trim.ts";

const GLIBC = Deno.build.os === "linux" && Deno.build.env === "gnu";

Deno.test({
  name: "malloc trim: on glibc a trimmer opens and trims, counted",
  ignore: !GLIBC,
  async fn() {
    const trimmer = openMallocTrimmer();
    assert.ok(trimmer !== undefined, "glibc is there and the test may use FFI");
    try {
      // Garbage for the allocator to give back.
      let junk: Uint8Array[] = Array.from({ length: 2000 }, () => new Uint8Array(4096));
      junk = [];
      assert.equal(typeof await trimmer.trim(), "boolean");
      assert.equal(trimmer.trims, 1);
      assert.equal(junk.length, 0);
    } finally {
      trimmer.close();
    }
  },
});

Deno.test({
  name: "malloc trim: periodic trims run until stopped",
  ignore: !GLIBC,
  async fn() {
    const trims = startMallocTrims(5);
    const deadline = Date.now() + 10_000;
    while (trims.trims < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await trims.stop();
    const stopped = trims.trims;
    assert.ok(stopped >= 3, `${stopped} trims`);
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(trims.trims, stopped, "none after stop");
  },
});

Deno.test("malloc trim: without FFI permission there is no trimmer, and nothing fails", async () => {
  const dir = await Deno.makeTempDir({ prefix: "koi-trim-" });
  try {
    const script = `${dir}/probe.ts`;
    const module = new URL("./_malloc_trim.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { openMallocTrimmer, startMallocTrims } from "${module}";\n` +
        `const t = startMallocTrims(1); await t.stop();\n` +
        `console.log(String(openMallocTrimmer()), t.trims);\n`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--no-config", `--allow-read=${dir}`, script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "undefined 0");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

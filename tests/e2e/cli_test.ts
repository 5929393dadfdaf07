/** The command line's own flags: version, help, log levels. */
import assert from "node:assert/strict";
import { KOI_VERSION } from "../../cli.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function koi(...args: string[]): Promise<{ code: number; out: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}cli.ts`, ...args],
    stdin: "null",
  }).output();
  return {
    code: o.code,
    out: new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr),
  };
}

Deno.test("koi --version prints the version of deno.json", async () => {
  const manifest = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  assert.equal(KOI_VERSION, manifest.version);
  const { code, out } = await koi("--version");
  assert.equal(code, 0);
  assert.match(out, new RegExp(`^koi ${KOI_VERSION.replaceAll(".", "\\.")} \\(deno `));
});

Deno.test("log levels are case-insensitive; an unknown one is a usage error naming it", async () => {
  // The config does not exist: the run gets past the log level and fails on the config (2).
  for (const level of ["INFO", "Warning", "warn"]) {
    const { code, out } = await koi(
      "node",
      "--log-level",
      level,
      "-c",
      "/nonexistent.toml",
      "--id",
      "a1",
    );
    assert.equal(code, 2, out);
    assert.doesNotMatch(out, /log-level/, level);
  }
  const { code, out } = await koi(
    "node",
    "--log-level",
    "loud",
    "-c",
    "/nonexistent.toml",
    "--id",
    "a1",
  );
  assert.equal(code, 2);
  assert.match(out, /Invalid --log-level: loud/);
});

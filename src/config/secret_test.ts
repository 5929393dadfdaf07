import assert from "node:assert/strict";
import {
  ADMIN_DATA_DEFAULT,
  ConfigError,
  needsGeneratedSecret,
  parseConfig,
  readSecretFile,
  SECRET_FILE_BYTES_MAX,
  withDefaultSecret,
} from "./mod.ts";

const TWO = `[admin]\nhttp = "127.0.0.1:7000"\n` +
  `[[clusters]]\nid = "a"\nsecret = "cluster-a-own-secret"\n` +
  `[[clusters.nodes]]\nid = "a1"\nraft = "127.0.0.1:7101"\nhttp = "127.0.0.1:7151"\ndata = "d1"\n` +
  `[[clusters]]\nid = "b"\n` +
  `[[clusters.nodes]]\nid = "b1"\nraft = "127.0.0.1:7201"\nhttp = "127.0.0.1:7251"\ndata = "d2"\n`;

Deno.test("withDefaultSecret gives the secret only to clusters without their own", () => {
  const config = parseConfig(TWO, { baseDir: "/srv" });
  assert.equal(needsGeneratedSecret(config), true);
  const withSecret = withDefaultSecret(config, "generated-secret-0123456789");
  assert.equal(withSecret.clusters[0].nodes[0].secret, "cluster-a-own-secret");
  assert.equal(withSecret.clusters[1].nodes[0].secret, "generated-secret-0123456789");
  assert.equal(needsGeneratedSecret(withSecret), false);
  assert.equal(config.clusters[1].nodes[0].secret, undefined, "the input is unchanged");
  assert.throws(() => withDefaultSecret(config, "short"), ConfigError);
});

Deno.test("admin.data defaults to data/admin next to the config and must not be a node's", () => {
  const config = parseConfig(TWO, { baseDir: "/srv" });
  assert.equal(config.admin.dataDir, `/srv/${ADMIN_DATA_DEFAULT}`);
  const custom = parseConfig(
    TWO.replace('http = "127.0.0.1:7000"', 'http = "127.0.0.1:7000"\ndata = "state"'),
    {
      baseDir: "/srv",
    },
  );
  assert.equal(custom.admin.dataDir, "/srv/state");
  assert.throws(
    () =>
      parseConfig(TWO.replace('http = "127.0.0.1:7000"', 'http = "127.0.0.1:7000"\ndata = "d1"'), {
        baseDir: "/srv",
      }),
    /clusters\[0\]\.nodes\[0\]\.data: duplicate data directory "\/srv\/d1", already used by admin\.data/,
  );
});

Deno.test("readSecretFile: one trailing newline is dropped; every bad file is named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = `${dir}/good`;
    await Deno.writeTextFile(good, "abcdefghijklmnopqrstuvwxyz\n");
    assert.equal(await readSecretFile(good), "abcdefghijklmnopqrstuvwxyz");
    const cases: [string, string | Uint8Array, RegExp][] = [
      ["short", "abc\n", /short: a secret has at least 16 characters/],
      ["spaces", "abcdefgh ijklmnopqrst", /spaces: a secret has no whitespace/],
      ["twolines", "abcdefghijklmnopq\n\n", /no whitespace/],
      ["binary", new Uint8Array([0xff, 0xfe, 0x41]), /binary is not UTF-8 text/],
      [
        "huge",
        "x".repeat(SECRET_FILE_BYTES_MAX + 1),
        /holds 4097 bytes; a secret file holds at most 4096/,
      ],
    ];
    for (const [name, content, expected] of cases) {
      const path = `${dir}/${name}`;
      if (typeof content === "string") await Deno.writeTextFile(path, content);
      else await Deno.writeFile(path, content);
      await assert.rejects(readSecretFile(path), (error: unknown) => {
        assert.ok(error instanceof ConfigError, name);
        assert.equal(error.field, "--secret-file");
        assert.match(error.message, /^Invalid --secret-file: /);
        assert.match(error.message, expected, name);
        assert.doesNotMatch(error.message, /abcdefgh/, "the secret is never printed");
        return true;
      });
    }
    await assert.rejects(readSecretFile(`${dir}/missing`), /cannot read .*missing: no such file/);
    await assert.rejects(readSecretFile(dir), /is not a file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

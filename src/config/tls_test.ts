/** `[tls]`, `tls_cert` and `tls_key`: validation (pure) and the PEM checks at start-up. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "./_error.ts";
import { loadTlsFiles } from "./_tls.ts";
import { ADMIN, assertConfigError, clusterToml, MINIMAL, nodeToml, parse } from "./_test_util.ts";
import { makeTestPki, tlsTest } from "./_tls_test_util.ts";

const TLS = `[tls]\nca = "tls/ca.pem"\ncert = "tls/all.pem"\nkey = "tls/all.key"\n`;

Deno.test("tls: without [tls] nothing has TLS files", () => {
  const config = parse(MINIMAL);
  assert.equal(config.admin.tls, undefined);
  assert.equal(config.clusters[0].nodes[0].tls, undefined);
});

Deno.test("tls: [tls] gives every node and the admin its files, resolved like data dirs", () => {
  const text = TLS + ADMIN +
    clusterToml("a", [
      nodeToml("a1", 1),
      nodeToml("a2", 2, 'tls_cert = "/etc/koi/a2.pem"\ntls_key = "a2.key"'),
    ]);
  const config = parse(text);
  assert.deepEqual(config.admin.tls, {
    ca: "/srv/koi/tls/ca.pem",
    cert: "/srv/koi/tls/all.pem",
    key: "/srv/koi/tls/all.key",
    fields: { ca: "tls.ca", cert: "tls.cert", key: "tls.key" },
  });
  assert.equal(config.clusters[0].nodes[0].tls?.cert, "/srv/koi/tls/all.pem");
  assert.deepEqual(config.clusters[0].nodes[1].tls, {
    ca: "/srv/koi/tls/ca.pem",
    cert: "/etc/koi/a2.pem",
    key: "/srv/koi/a2.key",
    fields: {
      ca: "tls.ca",
      cert: "clusters[0].nodes[1].tls_cert",
      key: "clusters[0].nodes[1].tls_key",
    },
  });
});

Deno.test("tls: [tls] needs a ca; a certificate needs its key and the other way round", () => {
  assertConfigError(`[tls]\ncert = "c.pem"\nkey = "k.pem"\n` + MINIMAL, "tls.ca", "missing");
  assertConfigError(`[tls]\nca = "ca.pem"\ncert = "c.pem"\n` + MINIMAL, "tls.key", "missing");
  assertConfigError(`[tls]\nca = ""\n` + MINIMAL, "tls.ca", "non-empty path");
  assertConfigError(`[tls]\nca = 3\n` + MINIMAL, "tls.ca", "got 3");
  assertConfigError(`[tls]\nca = "ca.pem"\ncrt = "x"\n` + MINIMAL, "tls.crt", "unknown field");
  assertConfigError(`tls = "on"\n` + MINIMAL, "tls", "must be a table");
});

Deno.test("tls: every node needs a certificate once [tls] is there", () => {
  const text = `[tls]\nca = "ca.pem"\n` +
    `[admin]\nhttp = "127.0.0.1:7000"\ntls_cert = "admin.pem"\ntls_key = "admin.key"\n` +
    clusterToml("a", [
      nodeToml("a1", 1, 'tls_cert = "a1.pem"\ntls_key = "a1.key"'),
      nodeToml("a2", 2),
    ]);
  assertConfigError(text, "clusters[0].nodes[1].tls_cert", "missing", "cert and key in [tls]");
  assertConfigError(`[tls]\nca = "ca.pem"\n` + MINIMAL, "admin.tls_cert", "missing");
});

Deno.test("tls: a node's own files need [tls] (its CA) and come in pairs", () => {
  const own = ADMIN + clusterToml("a", [nodeToml("a1", 1, 'tls_cert = "a1.pem"\ntls_key = "k"')]);
  assertConfigError(own, "clusters[0].nodes[0].tls_cert", "[tls] table with ca");
  const half = TLS + ADMIN + clusterToml("a", [nodeToml("a1", 1, 'tls_key = "a1.key"')]);
  assertConfigError(half, "clusters[0].nodes[0].tls_cert", "missing");
  const bad = TLS + ADMIN + clusterToml("a", [nodeToml("a1", 1, 'tls_cert = 1\ntls_key = "k"')]);
  assertConfigError(bad, "clusters[0].nodes[0].tls_cert", "got 1");
});

Deno.test("tls: an invalid [tls] is the one error, not every node's too", () => {
  const text = `[tls]\nca = 5\n` + ADMIN +
    clusterToml("a", [nodeToml("a1", 1, 'tls_cert = "a1.pem"\ntls_key = "a1.key"')]);
  assertConfigError(text, "tls.ca");
  try {
    parse(text);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    assert.deepEqual(error.problems.map((p) => p.field), ["tls.ca"]);
  }
});

function files(dir: string, over: Partial<Record<"ca" | "cert" | "key", string>> = {}) {
  return {
    ca: over.ca ?? join(dir, "ca.pem"),
    cert: over.cert ?? join(dir, "n1.pem"),
    key: over.key ?? join(dir, "n1.key"),
    fields: {
      ca: "tls.ca",
      cert: "clusters[0].nodes[0].tls_cert",
      key: "clusters[0].nodes[0].tls_key",
    },
  };
}

async function loadError(f: ReturnType<typeof files>): Promise<ConfigError> {
  try {
    await loadTlsFiles(f);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  assert.fail("expected a ConfigError");
}

await tlsTest(
  "tls: the PEM files are read and checked, each problem naming its field",
  async () => {
    const pki = await makeTestPki(["n1", "n2"]);
    try {
      const { dir } = pki;
      const material = await loadTlsFiles(files(dir));
      assert.equal(material.ca, pki.ca);
      assert.equal(material.cert, pki.leaves.get("n1")!.cert);

      const missing = await loadError(files(dir, { cert: join(dir, "nope.pem") }));
      assert.equal(missing.field, "clusters[0].nodes[0].tls_cert");
      assert.match(missing.message, /cannot read .*nope\.pem: no such file/);

      const notCert = await loadError(files(dir, { cert: join(dir, "n1.key") }));
      assert.equal(notCert.field, "clusters[0].nodes[0].tls_cert");
      assert.match(notCert.message, /holds no PEM certificate/);

      const notCa = await loadError(files(dir, { ca: join(dir, "n1.key") }));
      assert.equal(notCa.field, "tls.ca");

      const notKey = await loadError(files(dir, { key: join(dir, "n1.pem") }));
      assert.equal(notKey.field, "clusters[0].nodes[0].tls_key");
      assert.match(notKey.message, /not a PEM private key/);

      const otherKey = await loadError(files(dir, { key: join(dir, "n2.key") }));
      assert.equal(otherKey.field, "clusters[0].nodes[0].tls_key");
      assert.match(otherKey.message, /is not the private key of the certificate/);

      const later = Date.now() + 10 * 24 * 3600 * 1000; // the test certificates last 2 days
      try {
        await loadTlsFiles(files(dir), { nowMs: later });
        assert.fail("an expired certificate loaded");
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.field, "clusters[0].nodes[0].tls_cert");
        assert.match(error.message, /expired on/);
      }
    } finally {
      await Deno.remove(pki.dir, { recursive: true });
    }
  },
);

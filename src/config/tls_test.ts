/** `[tls]`, `tls_cert` and `tls_key`: validation (pure) and the PEM checks at start-up. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "./_error.ts";
import { loadTlsFiles } from "./_tls.ts";
import { ADMIN, assertConfigError, clusterToml, MINIMAL, nodeToml, parse } from "./_test_util.ts";
import { makeTestLeaf, makeTestPki, tlsTest } from "./_tls_test_util.ts";

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

async function loadError(
  f: ReturnType<typeof files>,
  options: Parameters<typeof loadTlsFiles>[1] = {},
): Promise<ConfigError> {
  try {
    await loadTlsFiles(f, options);
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

/** Runs `mkfifo path`; false when the command is missing. */
async function mkfifo(path: string): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("mkfifo", { args: [path] }).output();
    return success;
  } catch {
    return false;
  }
}

await tlsTest("tls: a FIFO, a directory or a device is refused before it is opened", async () => {
  const pki = await makeTestPki(["n1"]);
  const fifo = join(pki.dir, "key.fifo");
  try {
    if (!(await mkfifo(fifo))) {
      console.warn("SKIPPED the FIFO case: mkfifo is missing");
    } else {
      // Without the check, opening the FIFO blocks until a writer comes: the test opens one
      // itself after 3 s, so that it fails instead of hanging.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const hung = new Promise<"hung">((resolve) => {
        timer = setTimeout(async () => {
          (await Deno.open(fifo, { write: true })).close();
          resolve("hung");
        }, 3_000);
      });
      const outcome = await Promise.race([loadError(files(pki.dir, { key: fifo })), hung]);
      clearTimeout(timer);
      assert.notEqual(outcome, "hung", "loading a FIFO key blocked");
      const error = outcome as ConfigError;
      assert.equal(error.field, "clusters[0].nodes[0].tls_key");
      assert.match(error.message, /key\.fifo is a FIFO \(named pipe\), not a regular PEM file/);
    }
    const dir = await loadError(files(pki.dir, { ca: pki.dir }));
    assert.equal(dir.field, "tls.ca");
    assert.match(dir.message, /is a directory, not a regular PEM file/);
    const device = await loadError(files(pki.dir, { cert: "/dev/zero" }));
    assert.equal(device.field, "clusters[0].nodes[0].tls_cert");
    assert.match(device.message, /\/dev\/zero is a character device/);
  } finally {
    await Deno.remove(pki.dir, { recursive: true });
  }
});

const HOSTS = [
  { host: "127.0.0.1", field: "clusters[0].nodes[0].raft" },
  { host: "127.0.0.1", field: "clusters[0].nodes[0].http" },
];

await tlsTest("tls: a certificate another CA issued is refused, naming the field", async () => {
  const pki = await makeTestPki(["n1"]);
  const twin = await makeTestPki(["n1"]); // a CA of the same name ("CN=ca"), another key
  try {
    const rogue = await loadError(
      files(pki.dir, { cert: pki.rogue.certPath, key: pki.rogue.keyPath }),
    );
    assert.equal(rogue.field, "clusters[0].nodes[0].tls_cert");
    assert.match(
      rogue.message,
      /rogue\.pem is not issued by a certificate of tls\.ca .*names the issuer "CN=other-ca", and tls\.ca holds "CN=ca"/,
    );
    const forged = await loadError(
      files(pki.dir, {
        cert: twin.leaves.get("n1")!.certPath,
        key: twin.leaves.get("n1")!.keyPath,
      }),
    );
    assert.equal(forged.field, "clusters[0].nodes[0].tls_cert");
    assert.match(forged.message, /the CA certificate of that name did not sign it \(another key\)/);
    // A CA file may hold several certificates: any of them may have issued the leaf.
    const both = join(pki.dir, "both.pem");
    await Deno.writeTextFile(both, pki.otherCa + pki.ca);
    await loadTlsFiles(files(pki.dir, { ca: both }), { hosts: HOSTS });
    await loadTlsFiles(
      files(pki.dir, { ca: both, cert: pki.rogue.certPath, key: pki.rogue.keyPath }),
      { hosts: HOSTS },
    );
    // The admin's own certificate: reported, not refused.
    const warnings: string[] = [];
    await loadTlsFiles(files(pki.dir, { cert: pki.rogue.certPath, key: pki.rogue.keyPath }), {
      warn: (message) => warnings.push(message),
    });
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0],
      /^Invalid config field clusters\[0\]\.nodes\[0\]\.tls_cert: .*not issued/,
    );
  } finally {
    await Deno.remove(pki.dir, { recursive: true });
    await Deno.remove(twin.dir, { recursive: true });
  }
});

await tlsTest(
  "tls: a leaf through an intermediate of its file is the CA's; without it, not",
  async () => {
    const pki = await makeTestPki([]);
    try {
      const mid = await makeTestLeaf(pki.dir, "mid", { intermediate: true });
      const leaf = await makeTestLeaf(pki.dir, "leaf", { ca: "mid" });
      const chain = join(pki.dir, "chain.pem");
      await Deno.writeTextFile(chain, leaf.cert + mid.cert);
      await loadTlsFiles(files(pki.dir, { cert: chain, key: leaf.keyPath }), { hosts: HOSTS });
      const alone = await loadError(files(pki.dir, { cert: leaf.certPath, key: leaf.keyPath }));
      assert.match(alone.message, /names the issuer "CN=mid"/);
    } finally {
      await Deno.remove(pki.dir, { recursive: true });
    }
  },
);

await tlsTest("tls: an expired CA certificate is refused, naming tls.ca", async () => {
  const pki = await makeTestPki([]); // its CA is valid for 2 days
  try {
    const leaf = await makeTestLeaf(pki.dir, "long", { days: 5 });
    const f = files(pki.dir, { cert: leaf.certPath, key: leaf.keyPath });
    await loadTlsFiles(f);
    const in3Days = Date.now() + 3 * 24 * 3600 * 1000; // the leaf is valid, its CA is not
    const error = await loadError(f, { nowMs: in3Days });
    assert.equal(error.field, "tls.ca");
    assert.match(
      error.message,
      /the CA certificate "CN=ca" in .*ca\.pem that issued .* expired on/,
    );
  } finally {
    await Deno.remove(pki.dir, { recursive: true });
  }
});

await tlsTest("tls: the certificate must name the hosts of the node's addresses", async () => {
  const pki = await makeTestPki(["n1"]);
  try {
    const dns = await makeTestLeaf(pki.dir, "dns", {
      san: "DNS:Node-A1.Example,DNS:*.koi.test,IP:::1",
    });
    const dnsFiles = files(pki.dir, { cert: dns.certPath, key: dns.keyPath });
    const wrong = await loadError(dnsFiles, { hosts: HOSTS });
    assert.equal(wrong.field, "clusters[0].nodes[0].tls_cert");
    assert.match(
      wrong.message,
      /dns\.pem does not name 127\.0\.0\.1, the host of clusters\[0\]\.nodes\[0\]\.raft: its subjectAltName is DNS:Node-A1\.Example, .*; it needs IP:127\.0\.0\.1/,
    );
    const at = (host: string) => [{ host, field: "clusters[0].nodes[0].http" }];
    // Names without case, a wildcard for exactly one label, IPv6 in any spelling.
    for (const host of ["node-a1.example", "NODE-A1.EXAMPLE.", "a.koi.test", "0:0::1", "::"]) {
      await loadTlsFiles(dnsFiles, { hosts: at(host) });
    }
    for (const host of ["a.b.koi.test", "koi.test", "other.example", "::2"]) {
      const error = await loadError(dnsFiles, { hosts: at(host) });
      assert.match(error.message, new RegExp(`does not name ${host.replaceAll(".", "\\.")},`));
    }
    // The IP:127.0.0.1 leaf: not for "localhost", nor another address; 0.0.0.0 is not checked.
    const n1 = files(pki.dir);
    await loadTlsFiles(n1, { hosts: [...HOSTS, ...at("0.0.0.0")] });
    assert.match((await loadError(n1, { hosts: at("localhost") })).message, /needs DNS:localhost/);
    assert.match((await loadError(n1, { hosts: at("10.0.0.1") })).message, /needs IP:10\.0\.0\.1/);
  } finally {
    await Deno.remove(pki.dir, { recursive: true });
  }
});

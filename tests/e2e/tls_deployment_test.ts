/**
 * A TLS deployment end to end: `koi admin` over a config.toml with `[tls]` (a CA, node and
 * admin certificates made here with openssl, paths relative to the config file), three
 * nodes. Writes and reads go through the client library and the CLI with the CA; followers
 * forward to the leader over HTTPS; plain HTTP, a client without the CA, and peers with a
 * wrong certificate or none are refused (the last cannot move a node's term); a node or an
 * admin whose certificate path is wrong, whose certificate its peers would refuse (another CA's,
 * not naming its address) or whose key is a FIFO stops at start with exit code 2 naming the
 * field.
 * Every process is stopped by PID in a `finally`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { connect, UnavailableError } from "../../mod.ts";
import { encodeFrame, encodeMessage } from "../../src/net/mod.ts";
import {
  makeTestLeaf,
  makeTestPki,
  type TestPki,
  tlsTest,
} from "../../src/config/_tls_test_util.ts";
import { AdminProcess } from "./_admin.ts";
import { freePorts, waitFor } from "./_cluster.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

const TOML = `[admin]
http = "127.0.0.1:1"
tls_cert = "tls/admin.pem"
tls_key = "tls/admin.key"

[tls]
ca = "tls/ca.pem"

[cluster_defaults]
election_timeout_ms = [300, 600]
heartbeat_ms = 75

[[clusters]]
id = "a"
${
  ["a1", "a2", "a3"].map((id) =>
    `[[clusters.nodes]]\nid = "${id}"\nraft = "127.0.0.1:1"\nhttp = "127.0.0.1:1"\n` +
    `data = "data/${id}"\ntls_cert = "tls/${id}.pem"\ntls_key = "tls/${id}.key"\n`
  ).join("\n")
}`;

/** Runs the CLI from source; killed by its PID after `killAfterMs` should it not exit. */
async function koi(args: string[], killAfterMs = 60_000): Promise<{ code: number; out: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}cli.ts`, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, killAfterMs);
  try {
    const o = await child.output();
    const text = new TextDecoder();
    return { code: o.code, out: text.decode(o.stdout) + text.decode(o.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

interface NodeView {
  id: string;
  http: string;
  raft: string;
  pid: number | null;
  status: { role: string; term: number } | null;
}

/** `/v1/clusters` over HTTPS, remembering the node PIDs for the cleanup. */
async function clusters(admin: AdminProcess, client: Deno.HttpClient): Promise<NodeView[]> {
  const r = await fetch(`${https(admin)}/v1/clusters`, { client });
  const body = await r.json() as { clusters: { nodes: NodeView[] }[] };
  const nodes = body.clusters.flatMap((c) => c.nodes);
  for (const n of nodes) if (n.pid !== null) admin.nodePids.add(n.pid);
  return nodes;
}

function https(admin: AdminProcess): string {
  return admin.url.replace(/^http:/, "https:");
}

/** Dials a raft port over TLS as a rogue peer; resolves once the node has closed on it. */
function roguePeer(port: number, options: { ca: string; cert?: string; key?: string }) {
  const vote = encodeFrame(encodeMessage({
    type: "vote",
    from: "a2",
    to: "a1",
    term: 10_000,
    index: 1_000_000,
    logTerm: 10_000,
    transfer: false,
  }));
  return new Promise<boolean>((resolve) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, ...options });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 10_000);
    socket.on("secureConnect", () => socket.write(vote));
    socket.on("data", () => {});
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

await tlsTest("tls deployment: HTTPS and mutual TLS end to end, and what is refused", async () => {
  const admin = await AdminProcess.create(TOML);
  let pki: TestPki | undefined;
  let ca: Deno.HttpClient | undefined;
  try {
    await Deno.mkdir(join(admin.dir, "tls"));
    pki = await makeTestPki(["admin", "a1", "a2", "a3"], join(admin.dir, "tls"));
    ca = Deno.createHttpClient({ caCerts: [pki.ca] });
    const trusted = ca;
    admin.start();
    await waitFor(
      async () => {
        await clusters(admin, trusted);
        const r = await fetch(`${https(admin)}/healthz`, { client: trusted });
        await r.body?.cancel();
        return r.status === 200;
      },
      "a healthy TLS deployment",
      60_000,
    );
    const nodes = await clusters(admin, trusted);
    assert.equal(nodes.length, 3);

    // The routing table sends clients to https:// nodes.
    const table = await (await fetch(`${https(admin)}/v1/carp`, { client: trusted })).json();
    for (const n of table.clusters[0].nodes) assert.match(n.url, /^https:\/\/127\.0\.0\.1:\d+$/);

    // The client library with the CA.
    {
      using koi = await connect(https(admin), { caCerts: [pki.ca] });
      for (let i = 0; i < 20; i++) await koi.put(`k${i}`, `v${i}`);
      for (let i = 0; i < 20; i++) assert.equal((await koi.getText(`k${i}`))?.value, `v${i}`);
    }
    // A follower forwards a write to the leader over HTTPS.
    const follower = (await clusters(admin, trusted)).find((n) => n.status?.role === "follower")!;
    const forwarded = await fetch(`https://${follower.http}/v1/kv/via-follower`, {
      method: "PUT",
      body: "forwarded",
      client: trusted,
    });
    assert.equal(forwarded.status, 200, await forwarded.clone().text());
    await forwarded.body?.cancel();

    // The CLI with --ca, and without.
    const put = await koi([
      "client",
      "put",
      "cli-key",
      "cli-value",
      "--admin",
      https(admin),
      "--ca",
      pki.caPath,
    ]);
    assert.equal(put.code, 0, put.out);
    const get = await koi([
      "client",
      "get",
      "via-follower",
      "--admin",
      https(admin),
      "--ca",
      pki.caPath,
    ]);
    assert.equal(get.code, 0, get.out);
    assert.match(get.out, /forwarded/);
    const noCa = await koi([
      "client",
      "get",
      "cli-key",
      "--admin",
      https(admin),
      "--timeout",
      "5000",
    ]);
    assert.equal(noCa.code, 1, noCa.out);
    assert.match(noCa.out, /does not trust .*UnknownIssuer.*--ca FILE/s);
    assert.doesNotMatch(noCa.out, /\n\s+at /, "no stack trace");

    // The library without the CA fails at once, saying why; plain http:// says to use https.
    const started = performance.now();
    await assert.rejects(
      () => connect(https(admin), { connectTimeoutMs: 8_000 }),
      (e: unknown) => e instanceof UnavailableError && /does not trust/.test(e.message),
    );
    assert.ok(performance.now() - started < 5_000, "no retries on a certificate error");
    await assert.rejects(
      () => connect(admin.url, { connectTimeoutMs: 8_000 }),
      (e: unknown) => e instanceof UnavailableError && /use an https:\/\/ URL/.test(e.message),
    );
    await assert.rejects(() => fetch(`http://${nodes[0].http}/v1/kv/k1`));

    // Rogue peers on a1's raft port: another CA's certificate, and none. Neither gets a vote in.
    let a1 = nodes.find((n) => n.id === "a1")!;
    const raftPort = Number(a1.raft.split(":").at(-1));
    // The admin's last poll of a1 may have timed out under load (status null): poll again.
    await waitFor(
      async () => {
        a1 = (await clusters(admin, trusted)).find((n) => n.id === "a1")!;
        return a1.status !== null;
      },
      "a1's status at the admin",
      10_000,
    );
    const termBefore = a1.status!.term;
    assert.ok(
      await roguePeer(raftPort, { ca: pki.ca, cert: pki.rogue.cert, key: pki.rogue.key }),
      "the node closed the connection of a peer with another CA's certificate",
    );
    assert.ok(await roguePeer(raftPort, { ca: pki.ca }), "and of a peer without a certificate");
    await waitFor(
      () => /TLS handshake failed/.test(admin.output),
      "a1's warning about the refused handshake",
      10_000,
    );
    const after = (await clusters(admin, trusted)).find((n) => n.id === "a1")!;
    assert.ok(after.status !== null && after.status.term >= termBefore);
    assert.ok(
      after.status.term < 10_000,
      `the rogue's term did not reach a1: ${after.status.term}`,
    );
    // And the cluster still works.
    using again = await connect(https(admin), { caCerts: [pki.ca] });
    assert.equal((await again.getText("cli-key"))?.value, "cli-value");
  } finally {
    ca?.close();
    await admin.close(); // kills the admin and every node PID it reported, removes the files
  }
});

await tlsTest(
  "tls deployment: a wrong certificate path stops a node and the admin at start (exit 2)",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "koi-tls-bad-" });
    try {
      await Deno.mkdir(join(dir, "tls"));
      await makeTestPki(["admin", "a1", "a2", "a3"], join(dir, "tls"));
      const bad = TOML.replace('tls_cert = "tls/a1.pem"', 'tls_cert = "tls/missing.pem"')
        .replaceAll("127.0.0.1:1", "127.0.0.1:0");
      // Free ports, though none is bound: the certificate is checked first.
      const ports = freePorts(7);
      await Deno.writeTextFile(
        join(dir, "config.toml"),
        bad.replace(/127\.0\.0\.1:0/g, () => `127.0.0.1:${ports.pop()}`),
      );
      const node = await koi(["node", "--config", join(dir, "config.toml"), "--id", "a1"]);
      assert.equal(node.code, 2, node.out);
      assert.match(
        node.out,
        /clusters\[0\]\.nodes\[0\]\.tls_cert: cannot read .*missing\.pem: no such file/,
      );
      const adminRun = await koi(["admin", "--config", join(dir, "config.toml")]);
      assert.equal(adminRun.code, 2, adminRun.out);
      assert.match(adminRun.out, /clusters\[0\]\.nodes\[0\]\.tls_cert/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

await tlsTest(
  "tls deployment: a certificate peers would refuse, or a FIFO key, stops a node and the admin at start (exit 2)",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "koi-tls-refused-" });
    try {
      const tls = join(dir, "tls");
      await Deno.mkdir(tls);
      await makeTestPki(["admin", "a1", "a2", "a3"], tls);
      await makeTestLeaf(tls, "example", { san: "DNS:example.com" });
      const config = join(dir, "config.toml");
      const write = async (text: string) => {
        const ports = freePorts(7); // none is bound: the certificates are checked first
        await Deno.writeTextFile(
          config,
          text.replace(/127\.0\.0\.1:1/g, () => `127.0.0.1:${ports.pop()}`),
        );
      };
      // Each would hang (a FIFO) or run without ever getting a leader: 20 s is a failure.
      const run = (args: string[]) => koi([...args, "--config", config], 20_000);

      // a1's certificate is another CA's: the node itself refuses to start.
      await write(
        TOML.replace(
          'tls_cert = "tls/a1.pem"\ntls_key = "tls/a1.key"',
          'tls_cert = "tls/rogue.pem"\ntls_key = "tls/rogue.key"',
        ),
      );
      const node = await run(["node", "--id", "a1"]);
      assert.equal(node.code, 2, node.out);
      assert.match(
        node.out,
        /clusters\[0\]\.nodes\[0\]\.tls_cert: .*not issued by a certificate of tls\.ca/,
      );

      // a2's certificate names example.com, not 127.0.0.1: the admin starts no node.
      await write(
        TOML.replace(
          'tls_cert = "tls/a2.pem"\ntls_key = "tls/a2.key"',
          'tls_cert = "tls/example.pem"\ntls_key = "tls/example.key"',
        ),
      );
      const admin = await run(["admin"]);
      assert.equal(admin.code, 2, admin.out);
      assert.match(admin.out, /clusters\[0\]\.nodes\[1\]\.tls_cert: .*does not name 127\.0\.0\.1/);
      assert.doesNotMatch(admin.out, /starting/);

      // The admin's key is a FIFO: refused at once instead of blocking in open.
      const mkfifo = await new Deno.Command("mkfifo", { args: [join(tls, "admin.fifo")] }).output();
      assert.ok(mkfifo.success);
      await write(TOML.replace('tls_key = "tls/admin.key"', 'tls_key = "tls/admin.fifo"'));
      const fifo = await run(["admin"]);
      assert.equal(fifo.code, 2, fifo.out);
      assert.match(fifo.out, /admin\.tls_key: .*admin\.fifo is a FIFO/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

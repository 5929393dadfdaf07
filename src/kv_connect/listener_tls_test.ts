/**
 * KV Connect over TLS: a `Deno.openKv("https://…")` in another Deno process (it trusts the
 * deployment's CA through `DENO_CERT`, read at start, hence the process) against the
 * listener serving HTTPS with a certificate of that CA. Skipped, saying so, without openssl.
 */
import assert from "node:assert/strict";
import { connect } from "../client/mod.ts";
import { makeTestPki, tlsTest } from "../config/_tls_test_util.ts";
import { FakeKvcDeployment } from "./_fake_kvc_test_util.ts";
import { KvConnectGateway } from "./_gateway.ts";
import { TEST_DATABASE_ID, TEST_TOKEN } from "./_gateway_test_util.ts";
import { kvConnectHandler } from "./_handler.ts";
import { listenKvConnect } from "./_listener.ts";

await tlsTest(
  "kv connect over TLS: Deno.openKv(https://…) with DENO_CERT reads and writes",
  async () => {
    const pki = await makeTestPki(["kvc"]);
    const fake = FakeKvcDeployment.start({
      clusters: [{ id: "a", nodes: ["a1"] }, { id: "b", nodes: ["b1"] }],
    });
    const gateway = new KvConnectGateway({
      connect: (signal) => connect(fake.deployment.adminUrl, { signal }),
    });
    const leaf = pki.leaves.get("kvc")!;
    const listener = listenKvConnect({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: leaf.cert, key: leaf.key },
      handler: kvConnectHandler(gateway, {
        accessTokens: [TEST_TOKEN],
        databaseId: TEST_DATABASE_ID,
        basePath: "/kv",
      }),
      beforeClose: () => gateway.close(),
    });
    const script = `const kv = await Deno.openKv(${
      JSON.stringify(`https://127.0.0.1:${listener.port}/kv`)
    });
await kv.set(["tls"], "over https");
console.log((await kv.get(["tls"])).value);
kv.close();`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--unstable-kv", script],
      env: { DENO_CERT: pki.caPath, DENO_KV_ACCESS_TOKEN: TEST_TOKEN, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const deadline = setTimeout(() => child.kill("SIGKILL"), 20_000);
    try {
      const out = await child.output();
      const text = new TextDecoder().decode(out.stdout).trim();
      assert.equal(text, "over https", new TextDecoder().decode(out.stderr));
      assert.equal(out.code, 0);
    } finally {
      clearTimeout(deadline);
      try {
        child.kill("SIGKILL"); // by its PID; it has exited unless the deadline came
      } catch { /* exited */ }
      await listener.close();
      await fake.close();
      await Deno.remove(pki.dir, { recursive: true });
    }
  },
);

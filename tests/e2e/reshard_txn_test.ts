/**
 * Cross-cluster transactions across online reshards, end to end (found by an attack): a
 * cluster added by `koi admin reshard` takes part in KV Connect's cross-cluster atomics at
 * once (the gateway knows its secret), and a drained cluster that is the primary of a
 * committed transaction whose coordinator died stays up until the transaction is applied
 * everywhere (nothing half-applied, nothing locked forever).
 */
import assert from "node:assert/strict";
import { connect } from "../../mod.ts";
import { AdminProcess, oneNodeClusterToml } from "./_admin.ts";
import { encodeTxnEntry, type KvMutation } from "../../src/storage/mod.ts";
import type { TxnCommand } from "../../src/txn/mod.ts";
import { decodeTxnAnswer } from "../../src/client/_txn_wire.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SECRET = "reshard-txn-e2e-secret-0123456789";
const TOKEN = "reshard-txn-e2e-token-0123456789";
const enc = (s: string) => new TextEncoder().encode(s);

async function reshard(admin: AdminProcess, path: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}cli.ts`, "admin", "reshard"]
      .concat(["--config", path]),
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `${text}\n--- admin ---\n${admin.output.slice(-3000)}`);
  return text;
}

/** A transaction command at a node, with the cluster secret. */
async function command(http: string, cmd: TxnCommand<KvMutation>) {
  const r = await fetch(`http://${http}/v1/txn/command`, {
    method: "POST",
    headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/msgpack" },
    body: encodeTxnEntry({ at: 0, cmd }) as BodyInit,
  });
  const body = new Uint8Array(await r.arrayBuffer());
  assert.equal(r.status, 200, new TextDecoder().decode(body));
  return decodeTxnAnswer(body);
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms (last: ${last})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

Deno.test({
  name: "e2e: an added cluster joins cross-cluster atomics at once; a drained primary stays up " +
    "until its transaction is applied everywhere",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const admin = await AdminProcess.create(
      `[admin]\nhttp = "127.0.0.1:1"\n[routing]\nepoch = 1\n` +
        `[cluster_defaults]\nsecret = "${SECRET}"\n` +
        `[kv_connect]\nlisten = "127.0.0.1:1"\ntokens = ["${TOKEN}"]\n` +
        ["a", "b"].map((id) => oneNodeClusterToml(id)).join(""),
    );
    const two = await Deno.readTextFile(admin.configPath);
    const withEpoch = (text: string, epoch: number) =>
      text.replace(/^epoch = 1$/m, `epoch = ${epoch}`);
    const three = admin.dir + "/three.toml";
    await Deno.writeTextFile(three, withEpoch(two, 2) + "\n" + oneNodeClusterToml("c", two));
    const back = admin.dir + "/back.toml";
    await Deno.writeTextFile(back, withEpoch(two, 3));
    const listen = /listen = "([^"]+)"/.exec(two)![1];
    let kv: Deno.Kv | undefined;
    try {
      admin.start();
      await admin.healthy();
      await reshard(admin, three);
      const httpOf = (id: string) =>
        new RegExp(`id = "${id}1"\\nraft = "[^"]+"\\nhttp = "([^"]+)"`).exec(
          Deno.readTextFileSync(three),
        )![1];
      // 1. Cross-cluster atomics over keys of all three clusters (one of three keys is c's).
      Deno.env.set("DENO_KV_ACCESS_TOKEN", TOKEN);
      kv = await Deno.openKv(`http://${listen}/kv`);
      for (let i = 0; i < 20; i++) {
        const r = await kv.atomic().set(["x", i], i).set(["y", i], i).set(["z", i], i).commit();
        assert.ok(r.ok, `atomic ${i}`);
      }
      const read = await kv.getMany([["x", 7], ["y", 7], ["z", 7]]);
      assert.deepEqual(read.map((e) => e.value), [7, 7, 7]);
      // 2. A coordinator that died after deciding at primary c: a holds the intent.
      const koi = await connect(admin.url);
      try {
        const keyOf = (cluster: string) => {
          for (let i = 0;; i++) {
            const key = `half/${cluster}/${i}`;
            if (koi.where(key).cluster === cluster) return key;
          }
        };
        const [x, y] = [keyOf("a"), keyOf("c")];
        const deadline = Date.now() + 3_000;
        const prepare = (key: string, value: string): TxnCommand<KvMutation> => ({
          type: "prepare",
          txn: "half-1",
          primary: "c",
          participants: ["c", "a"],
          checks: [],
          mutations: [{ type: "set", key: enc(key), value: enc(value) }],
          deadline,
        });
        const atC = await command(httpOf("c"), prepare(y, "Y"));
        const atA = await command(httpOf("a"), prepare(x, "X"));
        assert.ok("vote" in atC && atC.vote === "yes" && "vote" in atA && atA.vote === "yes");
        const decided = await command(httpOf("c"), {
          type: "commit",
          txn: "half-1",
          after: Math.max(atC.vs, atA.vs),
        });
        assert.ok("state" in decided && decided.state === "committed");
        // 3. Drain c at once (before any janitor ran): it must not stop before a applied it.
        await reshard(admin, back);
        const table = await admin.json<{ clusters: { id: string }[] }>("/v1/carp");
        assert.deepEqual(table.clusters.map((c) => c.id), ["a", "b"]);
        const fresh = await connect(admin.url);
        try {
          assert.equal(
            await until(`${x} readable`, async () => (await fresh.getText(x))?.value),
            "X",
          );
          assert.equal((await fresh.getText(y))?.value, "Y");
        } finally {
          fresh.close();
        }
      } finally {
        koi.close();
      }
    } finally {
      kv?.close();
      await admin.close();
    }
  },
});

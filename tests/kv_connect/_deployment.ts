/**
 * A koi deployment with KV Connect for the conformance and counter tests: `koi admin` run from
 * source (tests/e2e/_admin.ts) over a generated config on free loopback ports with a
 * `[kv_connect] listen` of its own, the access token read from the admin's
 * `DENO_KV_ACCESS_TOKEN=<token>` line, the routing table from the admin through the koi client,
 * and cleanup that stops the admin and every node by PID, also when the test fails.
 *
 * @module
 */
import { type CarpTableOptions, ConfigError, connect, parseConfig } from "../../mod.ts";
import { parse } from "smol-toml";
import { freePorts, withFreePorts } from "../../scripts/free_ports_config.ts";
import { AdminProcess } from "../e2e/_admin.ts";
import { waitFor } from "../e2e/_cluster.ts";

/** A running deployment and how Deno's client reaches it. */
export interface KvConnectDeployment {
  readonly admin: AdminProcess;
  /** The KV Connect URL for `Deno.openKv`. */
  readonly url: string;
  /** The access token the admin printed (`DENO_KV_ACCESS_TOKEN`). */
  readonly token: string;
  /** The routing table the admin serves. */
  readonly table: CarpTableOptions;
}

/** A deployment file: `clusters` (ids) of `nodes` nodes each, ports filled in later. */
export function deploymentToml(clusters: readonly string[], nodes: number): string {
  const [listen] = freePorts(1);
  const parts = [
    `[admin]\nhttp = "127.0.0.1:1"\n`,
    `[kv_connect]\nlisten = "127.0.0.1:${listen}"\n`,
    `[cluster_defaults]\nelection_timeout_ms = [300, 600]\nheartbeat_ms = 75\n`,
  ];
  for (const id of clusters) {
    parts.push(`[[clusters]]\nid = "${id}"\nload_factor = 1.0\n`);
    for (let i = 1; i <= nodes; i++) {
      parts.push(
        `[[clusters.nodes]]\nid = "${id}${i}"\nraft = "127.0.0.1:1"\nhttp = "127.0.0.1:1"\n` +
          `data = "data/${id}${i}"\n`,
      );
    }
  }
  return parts.join("\n");
}

/**
 * Why KV Connect cannot be tested against koi in this tree, or undefined when it can: until
 * the gateway exists, config.toml refuses a `[kv_connect]` section.
 */
export function kvConnectMissing(): string | undefined {
  if (Deno.env.get("KOI_KVC_REQUIRE") === "1") return undefined;
  try {
    parseConfig(withFreePorts(deploymentToml(["a"], 1)), { baseDir: "/tmp" });
    return undefined;
  } catch (error) {
    const fields = error instanceof ConfigError
      ? [error.field, ...error.problems.map((p) => p.field)]
      : [];
    if (fields.includes("kv_connect")) {
      return `koi does not serve KV Connect yet (${(error as Error).message}); ` +
        "KOI_KVC_REQUIRE=1 runs it anyway";
    }
    throw error;
  }
}

const TOKEN_LINE = /^(?:\[admin\] )?DENO_KV_ACCESS_TOKEN=(\S+)\s*$/m;
const URL_LINE = /KV Connect: (https?:\/\/\S+)/;

/**
 * Runs `fn` with a started, healthy deployment of `toml` (see {@linkcode deploymentToml}) whose
 * KV Connect token has been printed; stops everything by PID afterwards, also on failure.
 */
export async function withKvConnect(
  toml: string,
  fn: (deployment: KvConnectDeployment) => Promise<void>,
): Promise<void> {
  const admin = await AdminProcess.create(toml);
  try {
    const child = admin.start();
    // An admin that exits (a config it refuses, a port taken) fails the test at once.
    const exited = child.status.then((s) => {
      throw new Error(`koi admin exited (code ${s.code}) before it was ready:\n${admin.output}`);
    });
    exited.catch(() => {});
    await Promise.race([admin.healthy(60_000), exited]);
    await waitFor(
      () => TOKEN_LINE.test(admin.output),
      "the admin's DENO_KV_ACCESS_TOKEN= line",
      30_000,
    ).catch((error) => {
      throw new Error(`${error.message}; the admin printed:\n${admin.output.slice(-4000)}`);
    });
    const token = TOKEN_LINE.exec(admin.output)![1];
    const config = parse(await Deno.readTextFile(admin.configPath)) as {
      kv_connect: { listen: string };
    };
    const listen = config.kv_connect.listen;
    const url = URL_LINE.exec(admin.output)?.[1] ?? `http://${listen}/kv`;
    const client = await connect(admin.url);
    let table: CarpTableOptions;
    try {
      table = client.table.carp.toJSON();
    } finally {
      client.close();
    }
    await fn({ admin, url, token, table });
  } finally {
    await admin.close();
  }
}

/**
 * `koi admin`: spawns and supervises every node of config.toml, serves the routing table,
 * the state of every node and a status page, and stops every node on SIGINT/SIGTERM.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { loadConfigSource } from "../config/mod.ts";
import { runAdmin } from "../admin/run_admin.ts";
import { kvConnectLines } from "../admin/_kv_connect.ts";
import type { SpawnSpec } from "../admin/_node_process.ts";
import { LineOutput, writeAll } from "../admin/_output.ts";
import { parseLogLevel, SECOND_SIGNAL_AFTER_MS } from "./_common.ts";
import { adminReshardCommand } from "./admin_reshard_cmd.ts";

/** The usage of `koi admin`. */
export const ADMIN_USAGE = `Usage: koi admin [--config <config.toml>] [options]
       koi admin reshard --config <new.toml>   (see koi admin reshard --help)

Runs a whole deployment: spawns every node of config.toml as a child process (this same
executable in node mode, or "deno run … cli.ts node" from source), prints each node's output
prefixed with its id, and serves on admin.http (GET /v1/carp answers 503 until every cluster
has a leader):

  GET /            the status page (clusters, nodes, roles, leaders, indexes, keys)
  GET /v1/carp     the routing table clients fetch (koi client, connect() in mod.ts)
  GET /v1/clusters every node's status; unreachable ones marked
  GET /healthz     200 while every cluster has a leader
  GET /v1/reshard  the progress of a move (POST: koi admin reshard)

With a [kv_connect] table, it also serves KV Connect on kv_connect.listen, so that any Deno
program can use the deployment with Deno.openKv("http://<listen>/kv"); it prints the URL
and, unless config.toml lists tokens, the generated DENO_KV_ACCESS_TOKEN (kept in
<admin.data>/kv_connect_token). See docs/kv_connect.md.

A node that dies unexpectedly is restarted with backoff (0.5 s doubling to 30 s). When the
config sets no secret, the admin generates one on first start, keeps it in
<admin.data>/secret (mode 0600) and gives it to its nodes, so peers and management are
authenticated. A second admin of the same deployment refuses to start; addresses already
in use are named by their config field. SIGINT, SIGTERM or SIGHUP stop every node by its
PID and then the admin (a second signal kills the nodes at once and exits 1). See docs/operations.md.

Options:
  -c, --config <path>      the deployment file (default: config.toml)
      --log-level <level>  the nodes' log level: trace, debug, info, warning, error or
                           fatal (default: warning)
      --accept-routing-change
                           start although config.toml changes the clusters, load
                           factors or scheme the deployment last ran with (with a new
                           epoch); keys whose owner changes are NOT moved and are lost
                           to readers
      --no-spawn           start no node: they run elsewhere (koi node --config
                           <this file> --id <id> on each host); the admin only
                           polls them and serves /v1/carp and the status page, and
                           generates no secret (config.toml's own is used)
  -h, --help               show this help

Exit codes: 0 stopped by a signal, 1 runtime failure (another admin runs the deployment,
an address is in use, ...), 2 usage or configuration error.`;

/** Every node start: the same binary when compiled, else `deno run … cli.ts` from source. */
export function nodeSpawnSpec(args: readonly string[]): SpawnSpec {
  if (Deno.build.standalone) return { command: Deno.execPath(), args };
  const root = new URL("../../", import.meta.url);
  return {
    command: Deno.execPath(),
    args: [
      "run",
      "-A",
      "--config",
      fileURLToPath(new URL("deno.json", root)),
      fileURLToPath(new URL("cli.ts", root)),
      ...args,
    ],
  };
}

/** Runs `koi admin <args>`; returns the exit code. */
export async function adminCommand(args: string[]): Promise<number> {
  if (args[0] === "reshard") return await adminReshardCommand(args.slice(1));
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string", short: "c" },
      "log-level": { type: "string" },
      "accept-routing-change": { type: "boolean" },
      "no-spawn": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(ADMIN_USAGE);
    return 0;
  }
  const level = values["log-level"] === undefined ? undefined : parseLogLevel(values["log-level"]);
  const { config, text } = await loadConfigSource(values.config ?? "config.toml");
  // Through a bounded queue, as the nodes' lines: a stalled terminal never stalls the admin.
  const stderr = new LineOutput((bytes) => writeAll(Deno.stderr, bytes));
  const log = (line: string) => stderr.line(`[admin] ${line}`);
  const admin = await runAdmin({
    config,
    configText: text,
    ...(values["accept-routing-change"] ? { acceptRoutingChange: true } : {}),
    ...(values["no-spawn"] ? { noSpawn: true } : {}),
    nodeCommand: nodeSpawnSpec,
    log,
    ...(level === undefined ? {} : { nodeLogLevel: level }),
  }).catch(async (error) => {
    await stderr.flush(); // its lines before the error message
    throw error;
  });
  let signalled = 0;
  let signalledAt = 0;
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const onSignal = () => {
    if (signalled > 0 && Date.now() - signalledAt < SECOND_SIGNAL_AFTER_MS) return; // the same one
    signalled++;
    if (signalled === 1) {
      signalledAt = Date.now();
      log("stopping every node (Ctrl-C again to kill them at once)");
      stop();
    } else {
      log("second signal: killing every node");
      void admin.kill();
    }
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGHUP", onSignal); // the terminal went away: stop as on Ctrl-C
  const slow = setTimeout(() => {
    log(
      "still waiting for a leader in every cluster; see the nodes' lines above and " +
        `${admin.url}/v1/clusters`,
    );
  }, 30_000);
  admin.ready.then(() => {
    clearTimeout(slow);
    if (signalled > 0) return;
    const leaders = Object.entries(admin.leaders()).map(([c, l]) => `${c}: ${l}`).join(", ");
    log(
      `every cluster has a leader (${leaders})` +
        (admin.processes.size > 0 ? `; ${admin.processes.size} nodes running` : ""),
    );
    log(`status page:   ${admin.url}/`);
    log(`routing table: ${admin.url}/v1/carp`);
    if (admin.kvConnect !== undefined) {
      for (const line of kvConnectLines(admin.kvConnect, config.path)) {
        if (line.bare) stderr.line(line.text);
        else log(line.text);
      }
    }
    const koi = Deno.build.standalone ? "koi" : "deno task koi";
    const ca = config.admin.tls === undefined ? "" : ` --ca ${config.admin.tls.ca}`;
    log(`try:           ${koi} client put hello world --admin ${admin.url}${ca}`);
  });
  await stopped;
  clearTimeout(slow);
  await admin.close();
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  Deno.removeSignalListener("SIGHUP", onSignal);
  log(signalled > 1 ? "stopped (nodes killed)" : "stopped");
  await stderr.flush();
  return signalled > 1 ? 1 : 0;
}

/**
 * `koi node`: runs one Raft member of config.toml until SIGINT or SIGTERM.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { getLogger } from "@logtape/logtape";
import { dirname, resolve } from "node:path";
import {
  type KoiConfig,
  loadConfig,
  parseConfig,
  readSecretFile,
  readSupervisedStart,
  withDefaultSecret,
} from "../config/mod.ts";
import { runNode, SHUTDOWN_DRAIN_MS, SHUTDOWN_HANDOFF_MS } from "../node/run_node.ts";
import { configureLogging, parseLogLevel, SECOND_SIGNAL_AFTER_MS, UsageError } from "./_common.ts";

/**
 * A node that has not stopped this long after SIGINT/SIGTERM exits anyway (code 1): the
 * shutdown steps have their own deadlines, this is the backstop under 10 s.
 */
const SHUTDOWN_HARD_MS = Math.max(9_000, SHUTDOWN_HANDOFF_MS + SHUTDOWN_DRAIN_MS + 2_000);

/** The usage of `koi node`. */
export const NODE_USAGE = `Usage: koi node --config <config.toml> --id <node id> [options]

Runs one Raft member of the deployment described by config.toml: its Raft peer port, its
HTTP API and its Deno.Kv file under the node's data directory. On the very first start a
founding member bootstraps the cluster with the other founding members of its cluster, once a
majority of them are up with empty data directories too; if a peer already holds the cluster
(this node started late, or lost its disk), it starts empty instead and waits for the leader.
A node with join = true starts empty and waits until a member adds it (POST /v1/members).
SIGINT or SIGTERM stop it cleanly: a leader first hands leadership to another member, then
Raft stops, in-flight HTTP requests drain, and the files close (at most 10 s; a second
signal exits at once). At the default log level a healthy node prints one line when it is
ready and one when it stops. See docs/operations.md.

Options:
  -c, --config <path>     the deployment file (required)
      --id <node id>      which node of the file to run (required)
      --join              start empty and wait to be added (POST /v1/members), whatever
                          the config's join says: how a node whose disk was lost rejoins
      --secret-file <path>
                          the cluster secret for a cluster whose config sets none (the
                          admin generates one and passes it this way); the file holds
                          the secret alone, at least 16 characters
      --supervised        started by koi admin: the config text and the generated secret
                          come as one JSON line on stdin (the admin's checked copy; the
                          file at --config only names where it lives), and the node stops
                          cleanly when stdin ends (the admin died, whatever killed it)
      --log-level <level> trace, debug, info, warning, error or fatal (default: warning)
  -h, --help              show this help

Exit codes: 0 stopped by a signal, 1 runtime failure (data directory locked or unwritable,
address in use, ...), 2 usage or configuration error.`;

/** Runs `koi node <args>`; returns the exit code. */
export async function nodeCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string", short: "c" },
      id: { type: "string" },
      join: { type: "boolean" },
      "secret-file": { type: "string" },
      supervised: { type: "boolean" },
      "log-level": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(NODE_USAGE);
    return 0;
  }
  if (values.config === undefined) throw new UsageError("Missing flag --config <config.toml>");
  if (values.id === undefined) throw new UsageError("Missing flag --id <node id>");
  const level = parseLogLevel(values["log-level"]);
  let config: KoiConfig;
  let adminGone: Promise<void> | undefined;
  if (values.supervised) {
    // The admin's own copy of the config and its secret, never the files as they are now.
    const { start, ended } = await readSupervisedStart(Deno.stdin.readable);
    const path = resolve(values.config);
    config = parseConfig(start.config, { baseDir: dirname(path), path });
    if (start.secret !== undefined) {
      config = withDefaultSecret(config, start.secret, "--supervised");
    }
    adminGone = ended;
  } else {
    config = await loadConfig(values.config);
  }
  if (values["secret-file"] !== undefined) {
    config = withDefaultSecret(config, await readSecretFile(values["secret-file"]));
  }
  await configureLogging(level);
  const cluster = config.clusters.find((c) => c.nodes.some((n) => n.id === values.id))?.id;
  const logger = getLogger(["koi", "node"]).with({ node: values.id, cluster });
  const lifecycle = getLogger(["koi", "lifecycle"]);
  let fatal: unknown;
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  let started = false;
  let signalled = false;
  let signalledAt = 0;
  const onSignal = () => {
    if (!started) {
      // Still starting (e.g. a founder waiting for the other founders): nothing to hand off
      // or drain, and whatever was written is crash-safe, so stop at once.
      lifecycle.info("node stopped", { node: values.id, cluster, beforeReady: true });
      Deno.exit(0);
    }
    if (signalled && Date.now() - signalledAt < SECOND_SIGNAL_AFTER_MS) return; // the same one
    if (signalled) {
      console.error(`koi node ${values.id}: second signal: exiting without a clean stop`);
      Deno.exit(1);
    }
    signalled = true;
    signalledAt = Date.now();
    stop();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  // The admin holds the other end of stdin: when it dies, even by SIGKILL, this node stops
  // cleanly instead of living on as an orphan holding its ports and data directory.
  adminGone?.then(() => {
    if (signalled) return; // already stopping: not a second signal
    logger.warning("stdin closed (the admin is gone): stopping");
    onSignal();
  });
  const running = await runNode({
    config,
    nodeId: values.id,
    ...(values.join ? { join: true } : {}),
    log: (lvl, message, fields) => logger[lvl](message, fields ?? {}),
    lifecycle: (message, fields) => lifecycle.info(message, fields),
    onFatal: (error) => {
      fatal = error;
      stop();
    },
  });
  started = true;
  await stopped;
  const backstop = setTimeout(() => {
    console.error(`koi node ${values.id}: did not stop within ${SHUTDOWN_HARD_MS} ms; exiting`);
    Deno.exit(1);
  }, SHUTDOWN_HARD_MS);
  await running.close();
  clearTimeout(backstop);
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  if (fatal !== undefined) {
    console.error(`koi node ${values.id}: stopped after a fatal error: ${fatal}`);
    return 1;
  }
  return 0;
}

/**
 * The koi command line: one executable, several modes (see README.md). Exit codes: 0 success,
 * 1 runtime failure, 2 usage or configuration error (naming the bad flag or field).
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  configure,
  getConsoleSink,
  getLogger,
  jsonLinesFormatter,
  type LogLevel,
} from "@logtape/logtape";
import { ConfigError, loadConfig } from "./src/config/mod.ts";
import { runNode, SHUTDOWN_DRAIN_MS, SHUTDOWN_HANDOFF_MS } from "./src/node/run_node.ts";

/**
 * A node that has not stopped this long after SIGINT/SIGTERM exits anyway (code 1): the
 * shutdown steps have their own deadlines, this is the backstop under 10 s.
 */
const SHUTDOWN_HARD_MS = Math.max(9_000, SHUTDOWN_HANDOFF_MS + SHUTDOWN_DRAIN_MS + 2_000);

const USAGE = `koi — a sharded, Raft-replicated key-value store

Usage: koi <mode> [options]

Modes:
  node     run one Raft member of config.toml          (koi node --help)
  admin    spawn and supervise every node (coming with the admin issue)
  client   get / put / del / list / status (coming with the client issue)
  bench    load and distribution benchmarks (coming with the client issue)

Options:
  -h, --help   show this help
`;

const NODE_USAGE = `Usage: koi node --config <config.toml> --id <node id> [options]

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
      --log-level <level> trace, debug, info, warning, error or fatal (default: warning)
  -h, --help              show this help

Exit codes: 0 stopped by a signal, 1 runtime failure (data directory locked or unwritable,
address in use, ...), 2 usage or configuration error.`;

const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;

/** A usage error: the message names the bad flag; exit code 2. */
class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

async function nodeMode(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string", short: "c" },
      id: { type: "string" },
      join: { type: "boolean" },
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
  const level = values["log-level"] ?? "warning";
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`Invalid --log-level: ${level}; expected one of ${LOG_LEVELS.join(", ")}`);
  }
  const config = await loadConfig(values.config);
  await configure({
    sinks: { console: getConsoleSink({ formatter: jsonLinesFormatter }) },
    loggers: [
      { category: ["koi"], lowestLevel: level as LogLevel, sinks: ["console"] },
      // The ready and stopped lines print at the default level too (not at error or fatal).
      {
        category: ["koi", "lifecycle"],
        lowestLevel: level === "error" || level === "fatal" ? level : "info",
        sinks: ["console"],
        parentSinks: "override",
      },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });
  const cluster = config.clusters.find((c) => c.nodes.some((n) => n.id === values.id))?.id;
  const logger = getLogger(["koi", "node"]).with({ node: values.id, cluster });
  const lifecycle = getLogger(["koi", "lifecycle"]);
  let fatal: unknown;
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  let started = false;
  let signalled = false;
  const onSignal = () => {
    if (!started) {
      // Still starting (e.g. a founder waiting for the other founders): nothing to hand off
      // or drain, and whatever was written is crash-safe, so stop at once.
      lifecycle.info("node stopped", { node: values.id, cluster, beforeReady: true });
      Deno.exit(0);
    }
    if (signalled) {
      console.error(`koi node ${values.id}: second signal: exiting without a clean stop`);
      Deno.exit(1);
    }
    signalled = true;
    stop();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
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

async function main(args: string[]): Promise<number> {
  const [mode, ...rest] = args;
  try {
    switch (mode) {
      case undefined:
      case "-h":
      case "--help":
      case "help":
        console.log(USAGE);
        return 0;
      case "node":
        return await nodeMode(rest);
      default:
        throw new UsageError(`Unknown mode: ${mode}`);
    }
  } catch (error) {
    if (error instanceof UsageError || isParseArgsError(error)) {
      console.error(`koi: ${(error as Error).message}\n\n${mode === "node" ? NODE_USAGE : USAGE}`);
      return 2;
    }
    if (error instanceof ConfigError) {
      console.error(`koi: ${error.message}`);
      return 2;
    }
    console.error(`koi: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof TypeError && typeof code === "string" &&
    code.startsWith("ERR_PARSE_ARGS");
}

if (import.meta.main) Deno.exit(await main(Deno.args));

/**
 * `koi admin`: locks the deployment's state directory, checks that every address of
 * config.toml is free, loads or generates the deployment's secret, serves the admin HTTP API,
 * spawns and supervises every node, and reports once every cluster has a leader.
 *
 * @module
 */
import {
  type KoiConfig,
  needsGeneratedSecret,
  type NodeConfig,
  withDefaultSecret,
} from "../config/mod.ts";
import { type DataDirLock, DataDirLockedError, lockDataDir } from "../storage/data_dir.ts";
import { adminApp } from "./_http.ts";
import { NodeProcess, type RestartPolicy, type SpawnSpec } from "./_node_process.ts";
import { checkAddressesFree, configAddresses } from "./_ports.ts";
import { StatusPoller } from "./_poller.ts";
import { LineOutput } from "./_output.ts";
import { loadOrCreateSecret, type StoredSecret } from "./_secret_store.ts";

/** Options of {@linkcode runAdmin}. */
export interface RunAdminOptions {
  /** The deployment (as loaded; a generated secret is added here). */
  readonly config: KoiConfig;
  /** How to run `koi node` with `args` (the same executable, or `deno run … cli.ts`). */
  readonly nodeCommand: (args: readonly string[]) => SpawnSpec;
  /**
   * Every line a node prints, prefixed with `[node id] ` (default: stdout, through a bounded
   * queue that drops lines rather than block when stdout is slow).
   */
  readonly output?: (line: string) => void;
  /** The admin's own lines (default: stderr). */
  readonly log?: (line: string) => void;
  /** The nodes' `--log-level` (default: theirs). */
  readonly nodeLogLevel?: string;
  /** Restart backoff for dead nodes. */
  readonly restart?: RestartPolicy;
  /** SIGKILL a stopping node after this long, in milliseconds. */
  readonly killAfterMs?: number;
}

/** A running admin. */
export interface RunningAdmin {
  /** The bound admin HTTP port. */
  readonly port: number;
  /** The admin's base URL. */
  readonly url: string;
  /** The generated secret, when config.toml lacks one for some cluster. */
  readonly secret: StoredSecret | undefined;
  /** The supervised processes by node id. */
  readonly processes: ReadonlyMap<string, NodeProcess>;
  /** Resolves once every cluster has had a leader (or the admin is closed first). */
  readonly ready: Promise<void>;
  /** The leader of every cluster in the latest status poll ("" when none). */
  leaders(): Record<string, string>;
  /** Stops every node by its PID (SIGTERM, SIGKILL after the deadline), then the server. */
  close(): Promise<void>;
  /** SIGKILLs every node at once, then closes (a second Ctrl-C). */
  kill(): Promise<void>;
}

/** Another admin runs this deployment: its state directory is locked. */
export class AdminLockedError extends Error {
  /** Creates the error naming the directory and the other admin's PID. */
  constructor(dir: string, pid: number | undefined) {
    super(
      `Another koi admin${pid === undefined ? "" : ` (pid ${pid})`} already runs this ` +
        `deployment: its state directory ${dir} (admin.data) is locked. Stop that admin ` +
        `first, or give this config another admin.data.`,
    );
    this.name = "AdminLockedError";
  }
}

/** Starts the admin; see the module comment for the order of the steps. */
export async function runAdmin(options: RunAdminOptions): Promise<RunningAdmin> {
  const log = options.log ?? ((line: string) => console.error(`[admin] ${line}`));
  const relay = options.output === undefined ? new LineOutput() : undefined;
  const output = options.output ?? ((line: string) => relay!.line(line));
  let config = options.config;
  let lock: DataDirLock;
  try {
    lock = await lockDataDir(config.admin.dataDir);
  } catch (error) {
    if (error instanceof DataDirLockedError) {
      throw new AdminLockedError(error.dir, error.holderPid);
    }
    throw error;
  }
  const cleanup: (() => Promise<void> | void)[] = [() => lock.release(), () => relay?.flush()];
  const undo = async () => {
    for (const step of cleanup.reverse()) await step();
  };
  try {
    checkAddressesFree(configAddresses(config));
    let secret: StoredSecret | undefined;
    if (needsGeneratedSecret(config)) {
      secret = await loadOrCreateSecret(config.admin.dataDir);
      if (secret.created) log(`generated the deployment's secret in ${secret.path} (mode 0600)`);
      if (secret.modeFixed !== undefined) {
        log(
          `${secret.path} was readable by others (mode ${
            secret.modeFixed.toString(8)
          }); set it back to 0600`,
        );
      }
      config = withDefaultSecret(config, secret.secret);
    }
    const poller = new StatusPoller(config);
    const processes = new Map<string, NodeProcess>();
    let isReady = false;
    const app = adminApp({ config, poller, processes }, () => isReady);
    const server = Deno.serve({
      hostname: config.admin.http.host,
      port: config.admin.http.port,
      onListen: () => {},
    }, app.fetch);
    cleanup.push(() => server.shutdown());
    const port = server.addr.port;
    const host = config.admin.http.host.includes(":")
      ? `[${config.admin.http.host}]`
      : config.admin.http.host;
    const url = `http://${host}:${port}`;
    for (const node of config.clusters.flatMap((c) => c.nodes)) {
      const proc = new NodeProcess({
        id: node.id,
        spawn: options.nodeCommand(nodeArgs(config, node, secret, options.nodeLogLevel)),
        output,
        log,
        ...(options.restart ? { restart: options.restart } : {}),
        ...(options.killAfterMs ? { killAfterMs: options.killAfterMs } : {}),
      });
      processes.set(node.id, proc);
    }
    const stopProcesses = async (how: "stop" | "kill") => {
      await Promise.all([...processes.values()].map((p) => p[how]()));
    };
    cleanup.push(() => stopProcesses("stop"));
    for (const proc of processes.values()) proc.start();
    poller.start();
    cleanup.push(() => poller.stop());
    const closing = new AbortController();
    const ready = (async () => {
      while (!closing.signal.aborted && !poller.allLeaders()) {
        await poller.nextRound(closing.signal);
      }
      if (closing.signal.aborted) return;
      isReady = true;
    })();
    let closed: Promise<void> | undefined;
    const close = (how: "stop" | "kill") => {
      closing.abort();
      if (how === "kill") {
        return closed = (async () => {
          await stopProcesses("kill");
          await undo();
        })();
      }
      return closed ??= undo();
    };
    return {
      port,
      url,
      secret,
      processes,
      ready,
      leaders: () => Object.fromEntries(config.clusters.map((c) => [c.id, poller.leaderOf(c.id)])),
      close: () => close("stop"),
      kill: () => close("kill"),
    };
  } catch (error) {
    await undo();
    throw error;
  }
}

function nodeArgs(
  config: KoiConfig,
  node: NodeConfig,
  secret: StoredSecret | undefined,
  logLevel: string | undefined,
): string[] {
  return [
    "node",
    "--config",
    config.path,
    "--id",
    node.id,
    "--exit-on-stdin-close",
    ...(secret === undefined ? [] : ["--secret-file", secret.path]),
    ...(logLevel === undefined ? [] : ["--log-level", logLevel]),
  ];
}

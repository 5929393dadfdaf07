/**
 * `koi admin`: locks the deployment's state directory, checks that every address of
 * config.toml is free, loads or generates the deployment's secret, serves the admin HTTP API,
 * spawns and supervises every node, and reports once every cluster has a leader.
 *
 * @module
 */
import {
  encodeSupervisedStart,
  type KoiConfig,
  loadTlsFiles,
  needsGeneratedSecret,
  type NodeConfig,
  secretsEqual,
  tlsHostsOf,
  withDefaultSecret,
} from "../config/mod.ts";
import {
  type DataDirLock,
  DataDirLockedError,
  DataDirUnwritableError,
  lockDataDir,
} from "../storage/data_dir.ts";
import { HttpServer } from "../http/server.ts";
import { adminApp } from "./_http.ts";
import { NodeProcess, type RestartPolicy, type SpawnSpec } from "./_node_process.ts";
import { adminAddresses, checkAddressesFree, configAddresses } from "./_ports.ts";
import { checkRouting } from "./_routing_record.ts";
import { StatusPoller } from "./_poller.ts";
import { DeploymentActivity } from "./_activity.ts";
import { clustersView } from "./_views.ts";
import { LineOutput } from "./_output.ts";
import { RESHARD_CONFIG_BYTES_MAX, ReshardRunner } from "./_reshard_runner.ts";
import { settleDrainedTransactions } from "./_drain_txns.ts";
import { HttpMoveTransport } from "./_move_transport.ts";
import { recordRouting } from "./_routing_record.ts";
import { checkReshardRecord } from "./_reshard_runner.ts";
import { ReshardPlanError } from "./_reshard_plan.ts";
import { loadOrCreateSecret, type StoredSecret } from "./_secret_store.ts";
import { type KvConnectInfo, startKvConnect } from "./_kv_connect.ts";

/**
 * Open connections to the admin's HTTP API, at most (beyond: 503 and close). Well below a
 * default limit of 1024 open files, which the admin shares with its nodes' pipes.
 */
export const ADMIN_CONNECTIONS_MAX = 256;
/**
 * Open connections to the admin's HTTP API from one remote address (an IPv6 client by its
 * /64), at most (beyond: 503 and close). A quarter of {@linkcode ADMIN_CONNECTIONS_MAX}: one
 * client that keeps connections busy cannot lock out clients from other addresses (it would
 * need four addresses), while the admin's own clients need few (a routing client fetches
 * `/v1/carp` now and then, a status page polls on one or two kept-alive connections). Clients
 * on the admin's host all share one address (loopback), and with it these 64.
 */
export const ADMIN_CONNECTIONS_PER_ADDRESS_MAX = 64;
/** Request body bytes the admin reads (only `POST /v1/reshard` takes one: a config file). */
export const ADMIN_BODY_BYTES_MAX = RESHARD_CONFIG_BYTES_MAX;
/** How long in-flight admin requests may finish when the admin stops, in milliseconds. */
export const ADMIN_DRAIN_MS = 1_000;

/** Options of {@linkcode runAdmin}. */
export interface RunAdminOptions {
  /** The deployment (as loaded; a generated secret is added here). */
  readonly config: KoiConfig;
  /** The TOML text `config` was parsed from: every node start gets this very text. */
  readonly configText: string;
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
  /**
   * Start although config.toml changes the clusters, load factors or scheme that the
   * deployment last ran with (keys whose owner changes are not moved).
   */
  readonly acceptRoutingChange?: boolean;
  /** SIGKILL a stopping node after this long, in milliseconds. */
  readonly killAfterMs?: number;
  /**
   * Start no node: they run elsewhere (`koi node --config <the same file> --id <id>` on each
   * host, under systemd say), and the admin only polls them and serves the routing table and
   * the status page. No secret is generated (nodes started elsewhere could not know it):
   * config.toml's own, if any, is used.
   */
  readonly noSpawn?: boolean;
}

/** A running admin. */
export interface RunningAdmin {
  /** The bound admin HTTP port. */
  readonly port: number;
  /** The admin's base URL. */
  readonly url: string;
  /** The generated secret, when config.toml lacks one for some cluster. */
  readonly secret: StoredSecret | undefined;
  /** With `[kv_connect]`: where KV Connect is served and with which token. */
  readonly kvConnect: KvConnectInfo | undefined;
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
  // Certificate files are checked before anything starts: a bad one is a configuration error
  // naming its field, not a node that fails and is restarted over and over, or nodes that run
  // but whose peers refuse their certificates (not the CA's, not naming their address), which
  // would leave the admin waiting for a leader forever. The admin's own certificate is only
  // warned about: its clients may reach it by another name and trust it through another CA.
  // The KV Connect listener serves HTTPS with the admin's certificate.
  const tls = config.admin.tls === undefined ? undefined : await loadTlsFiles(config.admin.tls, {
    hosts: [
      { host: config.admin.http.host, field: "admin.http" },
      ...(config.kvConnect === undefined
        ? []
        : [{ host: config.kvConnect.listen.host, field: "kv_connect.listen" }]),
    ],
    warn: (message) => log(`warning: ${message}`),
  });
  if (!options.noSpawn) {
    await Promise.all(
      config.clusters.flatMap((cluster, i) =>
        cluster.nodes.map((node, j) =>
          node.tls === undefined
            ? undefined
            : loadTlsFiles(node.tls, { hosts: tlsHostsOf(node, `clusters[${i}].nodes[${j}]`) })
        )
      ),
    );
  }
  let lock: DataDirLock;
  try {
    lock = await lockDataDir(config.admin.dataDir);
  } catch (error) {
    if (error instanceof DataDirLockedError) {
      throw new AdminLockedError(error.dir, error.holderPid);
    }
    if (error instanceof DataDirUnwritableError) {
      throw new Error(
        `Cannot use the admin's state directory ${config.admin.dataDir} (admin.data): ` +
          `${(error.cause as Error | undefined)?.message ?? error.message}`,
        { cause: error },
      );
    }
    throw error;
  }
  const cleanup: (() => Promise<void> | void)[] = [() => lock.release(), () => relay?.flush()];
  let undone: Promise<void> | undefined;
  // Once, last step first; a second call (kill after close) waits for the same run.
  // Every step runs, also after one failed (the data directory's lock is released last, so a
  // failing step would keep the next admin out); the first failure is thrown at the end.
  const undo = () =>
    undone ??= (async () => {
      let failure: { error: unknown } | undefined;
      for (const step of [...cleanup].reverse()) {
        try {
          await step();
        } catch (error) {
          failure ??= { error };
        }
      }
      if (failure !== undefined) throw failure.error;
    })();
  try {
    await checkReshardRecord(config.admin.dataDir, config);
    const changes = await checkRouting(
      config.admin.dataDir,
      config,
      options.acceptRoutingChange ?? false,
    );
    if (changes.length > 0) {
      log(`routing changed as asked (${changes.join("; ")}); keys that moved are not migrated`);
    }
    const noSpawn = options.noSpawn ?? false;
    // Nodes that run elsewhere hold their own addresses: only the admin's must be free.
    checkAddressesFree(noSpawn ? adminAddresses(config) : configAddresses(config));
    const nodeCount = config.clusters.reduce((n, c) => n + c.nodes.length, 0);
    const counted = `${nodeCount} node${nodeCount === 1 ? "" : "s"} in ${config.clusters.length} ` +
      `cluster${config.clusters.length === 1 ? "" : "s"} (${config.path})`;
    log(noSpawn ? `watching ${counted}, started elsewhere (--no-spawn)` : `starting ${counted}`);
    let secret: StoredSecret | undefined;
    if (!noSpawn && needsGeneratedSecret(config)) {
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
    const processes = new Map<string, NodeProcess>();
    // With TLS the nodes serve HTTPS: the poller verifies them against the deployment's CA.
    const client = tls === undefined ? undefined : Deno.createHttpClient({ caCerts: [tls.ca] });
    if (client !== undefined) cleanup.push(() => client.close());
    const poller = new StatusPoller(config, {
      ...(noSpawn ? {} : { isRunning: (id: string) => processes.get(id)?.state === "running" }),
      ...(client === undefined ? {} : {
        fetch: ((input: string | URL | Request, init?: RequestInit) =>
          fetch(input, { ...init, client })) as typeof fetch,
      }),
    });
    let isReady = false;
    // Ready (and then for good) as soon as the poller has seen every leader, which may be in
    // the middle of a round: /healthz says so at once, and /v1/carp must not lag behind it.
    const activity = new DeploymentActivity();
    const closing = new AbortController();
    const adminFetch = client === undefined ? undefined : ((
      input: string | URL | Request,
      init?: RequestInit,
    ) => fetch(input, { ...init, client })) as typeof fetch;
    // The deployment may change shape while it runs (a reshard adds and drains clusters).
    let current = config;
    const spawnNode = (node: NodeConfig, from: KoiConfig, text: string) => {
      const proc = new NodeProcess({
        id: node.id,
        spawn: {
          ...options.nodeCommand(nodeArgs(from, node, options.nodeLogLevel)),
          stdin: encodeSupervisedStart({
            config: text,
            ...(secret === undefined ? {} : { secret: secret.secret }),
          }),
        },
        output,
        log,
        ...(options.restart ? { restart: options.restart } : {}),
        ...(options.killAfterMs ? { killAfterMs: options.killAfterMs } : {}),
      });
      processes.set(node.id, proc);
      return proc;
    };
    const moves = new HttpMoveTransport(() => current, poller, {
      ...(adminFetch === undefined ? {} : { fetch: adminFetch }),
      signal: closing.signal,
    });
    const runner = new ReshardRunner({
      dataDir: config.admin.dataDir,
      transport: moves,
      settleDrained: (drained, signal) =>
        settleDrainedTransactions({
          clusters: current.clusters.map((c) => c.id),
          drained,
          calls: moves,
          signal,
          log,
        }),
      config: () => current,
      withSecret: (c) => secret === undefined ? c : withDefaultSecret(c, secret.secret),
      reshape: async (next, changes) => {
        const added = next.clusters.filter((c) => changes.added?.ids.includes(c.id));
        const fresh = added.flatMap((c) => c.nodes).filter((n) => !processes.has(n.id));
        if (!noSpawn && fresh.length > 0) {
          const ids = new Set(fresh.map((n) => n.id));
          checkAddressesFree(
            configAddresses(next).filter((a) => {
              const m = /^clusters\[(\d+)\]\.nodes\[(\d+)\]/.exec(a.field);
              return m !== null && ids.has(next.clusters[Number(m[1])].nodes[Number(m[2])].id);
            }),
          );
        }
        const before = current; // the drained clusters are in it (maybe added by this admin)
        current = next;
        poller.setConfig(next);
        if (!noSpawn && changes.added !== undefined) {
          const from = { ...next, path: changes.added.path };
          for (const node of fresh) spawnNode(node, from, changes.added.text).start();
        }
        for (const id of changes.removed ?? []) {
          const c = before.clusters.find((x) => x.id === id);
          await Promise.all((c?.nodes ?? []).map(async (n) => {
            await processes.get(n.id)?.stop();
            processes.delete(n.id);
          }));
        }
      },
      checkAdded: async (plan) => {
        if (noSpawn) return; // their nodes run elsewhere
        const added = new Set(plan.added);
        const inAdded = (field: string) => {
          const m = /^clusters\[(\d+)\]/.exec(field);
          return m !== null && added.has(plan.after.clusters[Number(m[1])].id);
        };
        try {
          checkAddressesFree(configAddresses(plan.after).filter((a) => inAdded(a.field)));
        } catch (error) {
          throw new ReshardPlanError(`the new config: ${(error as Error).message}`);
        }
        for (const c of plan.after.clusters.filter((c) => added.has(c.id))) {
          for (const n of c.nodes) {
            let used = false;
            try {
              for await (const _ of Deno.readDir(n.dataDir)) {
                used = true;
                break;
              }
            } catch { /* absent: a fresh one */ }
            if (used) {
              throw new ReshardPlanError(
                `the data directory ${n.dataDir} of node ${n.id} of the added cluster ${c.id} ` +
                  `is not empty (an earlier deployment's, or a drained cluster's): move it ` +
                  `away or give the node another one; a cluster is added empty`,
              );
            }
          }
        }
      },
      leaders: async (signal) => {
        while (!signal.aborted && !poller.allLeaders()) await poller.nextRound(signal);
      },
      keys: async (signal) => {
        // A round that starts now: what the clients wrote just before the move counts.
        await poller.nextRound(signal);
        await poller.nextRound(signal);
        return current.clusters.reduce((n, c) => {
          const leader = poller.leaderOf(c.id);
          return n + (leader === "" ? 0 : poller.view(leader).status?.keys ?? 0);
        }, 0);
      },
      recordRouting: (c) => recordRouting(config.admin.dataDir, c),
      log,
      rates: () =>
        current.clusters.reduce((sum, c) => {
          const r = activity.rates(c.id);
          return {
            readsPerSecond: sum.readsPerSecond + r.readsPerSecond,
            writesPerSecond: sum.writesPerSecond + r.writesPerSecond,
          };
        }, { readsPerSecond: 0, writesPerSecond: 0 }),
    }, options.configText);
    const source = {
      get config() {
        return current;
      },
      poller,
      processes,
      activity,
      move: () => runner.published(),
      pendingMove: () => runner.pending(),
      reshard: () => runner.progress(),
    };
    const secrets = new Set(config.clusters.flatMap((c) => c.nodes.map((n) => n.secret ?? "")));
    secrets.delete("");
    const app = adminApp(source, () => (isReady ||= poller.allLeaders()), {
      authorized: (token) => token !== "" && [...secrets].some((s) => secretsEqual(s, token)),
      start: (text, path) => runner.start(text, path),
    });
    // The node's hardened server: a deadline for each request, an idle timeout, bounds on
    // connections in all and per address (beyond them 503 and close), so that a flood or a slow
    // client cannot take the admin down, and with it every node.
    const server = await HttpServer.listen({
      hostname: config.admin.http.host,
      port: config.admin.http.port,
      fetch: app.fetch,
      limits: {
        connectionsMax: ADMIN_CONNECTIONS_MAX,
        connectionsPerAddressMax: ADMIN_CONNECTIONS_PER_ADDRESS_MAX,
        bodyBytesMax: ADMIN_BODY_BYTES_MAX,
      },
      ...(tls === undefined ? {} : { tls: { cert: tls.cert, key: tls.key } }),
      onError: (message, error) => log(`http: ${message}: ${error}`),
    });
    cleanup.push(() => server.close(ADMIN_DRAIN_MS));
    const port = server.port;
    const host = config.admin.http.host.includes(":")
      ? `[${config.admin.http.host}]`
      : config.admin.http.host;
    const url = `${tls === undefined ? "http" : "https"}://${host}:${port}`;
    for (const node of noSpawn ? [] : config.clusters.flatMap((c) => c.nodes)) {
      spawnNode(node, config, options.configText);
    }
    const stopProcesses = async (how: "stop" | "kill") => {
      await Promise.all([...processes.values()].map((p) => p[how]()));
    };
    cleanup.push(() => stopProcesses("stop"));
    for (const proc of processes.values()) proc.start();
    // KV Connect stops before the nodes do (cleanup runs last step first).
    const kvConnect = config.kvConnect === undefined ? undefined : await startKvConnect({
      config: config.kvConnect,
      dataDir: config.admin.dataDir,
      adminFetch: (request) => app.fetch(request),
      ...(tls === undefined ? {} : { tls: { ...tls, caPath: config.admin.tls!.ca } }),
      log,
      // Read when called, from the deployment as it is now: a reshard adds clusters (found by
      // the attack: read from the starting config, an added cluster's secret was unknown, and
      // every cross-cluster write touching it failed 401).
      secretOf: (cluster) => current.clusters.find((c) => c.id === cluster)?.nodes[0]?.secret,
    });
    if (kvConnect !== undefined) cleanup.push(() => kvConnect.close());
    poller.start();
    cleanup.push(() => poller.stop());
    // The status page's rates and leader changes: one observation per poll round.
    (async () => {
      while (!closing.signal.aborted) {
        await poller.nextRound(closing.signal);
        if (!closing.signal.aborted) activity.observe(clustersView(source), Date.now());
      }
    })();
    const ready = (async () => {
      while (!closing.signal.aborted && !poller.allLeaders()) {
        await poller.nextRound(closing.signal);
      }
      if (closing.signal.aborted) return;
      isReady = true;
    })();
    // A move an earlier admin left running goes on (in the background).
    runner.resume().catch((error) => log(`cannot resume the reshard: ${error}`));
    cleanup.push(() => runner.close());
    const close = async (how: "stop" | "kill") => {
      closing.abort();
      // A kill SIGKILLs every node, which also ends a stop that waits for them.
      if (how === "kill") await stopProcesses("kill");
      await undo();
    };
    return {
      port,
      url,
      secret,
      kvConnect: kvConnect?.info,
      processes,
      ready,
      leaders: () => Object.fromEntries(current.clusters.map((c) => [c.id, poller.leaderOf(c.id)])),
      close: () => close("stop"),
      kill: () => close("kill"),
    };
  } catch (error) {
    await undo();
    throw error;
  }
}

function nodeArgs(config: KoiConfig, node: NodeConfig, logLevel: string | undefined): string[] {
  return [
    "node",
    "--config",
    config.path,
    "--id",
    node.id,
    "--supervised",
    ...(logLevel === undefined ? [] : ["--log-level", logLevel]),
  ];
}

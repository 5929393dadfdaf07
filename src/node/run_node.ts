import { CarpTable } from "../carp/mod.ts";
import {
  findNode,
  type HostPort,
  type KoiConfig,
  type NodeConfig,
  parseHostPort,
} from "../config/mod.ts";
import { PeerTransport } from "../net/mod.ts";
import type { Message, NodeId } from "../raft/mod.ts";
import { type DataDirLock, KvLogStorage, lockDataDir, type MemberAddress } from "../storage/mod.ts";
import { type DriverLimits, type NodeLog, RaftNode, type TickSource } from "./driver.ts";
import { AddressInUseError } from "./errors.ts";
import { createNodeApp } from "./http.ts";
import { HttpServer, type HttpServerLimits } from "./_http_server.ts";

/** The name of a node's Deno.Kv file inside its data directory. */
export const KV_FILE = "koi.kv";

/** Shutdown step one: how long a leader waits for another node to take over. */
export const SHUTDOWN_HANDOFF_MS = 3_000;

/** Shutdown step three: how long in-flight HTTP requests may take before they are cut off. */
export const SHUTDOWN_DRAIN_MS = 2_000;

/** Options of {@linkcode runNode}. */
export interface RunNodeOptions {
  /** The deployment. */
  readonly config: KoiConfig;
  /** Which node of it to run. */
  readonly nodeId: NodeId;
  /** Overrides the config's `join` for this start (`koi node --join`). */
  readonly join?: boolean;
  /** Structured logging. */
  readonly log?: NodeLog;
  /**
   * The two lines a healthy node prints at the default log level: `"node ready"` (id,
   * cluster, addresses, data dir) and `"node stopped"`.
   */
  readonly lifecycle?: (message: string, fields: Record<string, unknown>) => void;
  /** Injected clock (tests). */
  readonly ticks?: TickSource;
  /** Driver limits. */
  readonly limits?: Partial<DriverLimits>;
  /** HTTP server limits. */
  readonly httpLimits?: Partial<HttpServerLimits>;
  /** Called when the node cannot go on; the process should exit non-zero. */
  readonly onFatal?: (error: unknown) => void;
}

/** A running node. */
export interface RunningNode {
  /** The Raft driver (the HTTP layer's service). */
  readonly node: RaftNode;
  /** The bound HTTP port. */
  readonly httpPort: number;
  /** The bound Raft port. */
  readonly raftPort: number;
  /**
   * Stops in the order that keeps the cluster writable: hands leadership off (up to
   * {@linkcode SHUTDOWN_HANDOFF_MS}), stops Raft and the transport, drains HTTP (up to
   * {@linkcode SHUTDOWN_DRAIN_MS}), closes the Deno.Kv file and releases the data dir lock.
   */
  close(): Promise<void>;
}

/** Tick length and the Raft timing of a node in ticks. */
export function raftTiming(node: NodeConfig): {
  tickMs: number;
  heartbeatTicks: number;
  electionTicks: [number, number];
} {
  // Ticks of at most 10 ms keep the configured times accurate to 10 ms.
  const tickMs = Math.min(10, node.heartbeatMs);
  const heartbeatTicks = Math.max(1, Math.round(node.heartbeatMs / tickMs));
  const lo = Math.max(heartbeatTicks + 1, Math.round(node.electionTimeoutMs[0] / tickMs));
  const hi = Math.max(lo + 2, Math.round(node.electionTimeoutMs[1] / tickMs));
  return { tickMs, heartbeatTicks, electionTicks: [lo, hi] };
}

function addressOf(node: NodeConfig): MemberAddress {
  return { raft: node.raft.text, http: node.http.text };
}

/** The TOML path of a node, as config errors name it: `clusters[0].nodes[1]`. */
export function nodeField(config: KoiConfig, nodeId: NodeId): string {
  for (const [i, cluster] of config.clusters.entries()) {
    const j = cluster.nodes.findIndex((n) => n.id === nodeId);
    if (j >= 0) return `clusters[${i}].nodes[${j}]`;
  }
  return `node ${nodeId}`;
}

function isAddressInUse(error: unknown): boolean {
  return error instanceof Deno.errors.AddrInUse ||
    (error as { code?: unknown } | null)?.code === "EADDRINUSE";
}

/** Runs `listen`; an address in use becomes an {@linkcode AddressInUseError} naming `field`. */
async function bind<T>(field: string, address: HostPort, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (error) {
    if (isAddressInUse(error)) throw new AddressInUseError(field, address.text, { cause: error });
    throw error;
  }
}

/**
 * Runs one node of `config`: locks its data directory (before anything else touches it),
 * opens (or creates) its Deno.Kv file, bootstraps the cluster on the very first start of a
 * founding member, listens for Raft peers and serves the node HTTP API.
 */
export async function runNode(options: RunNodeOptions): Promise<RunningNode> {
  const { config, nodeId } = options;
  const { node: self, cluster } = findNode(config, nodeId);
  const field = nodeField(config, nodeId);
  const log: NodeLog = options.log ?? (() => {});
  const table = new CarpTable({
    scheme: config.routing.scheme,
    epoch: config.routing.epoch,
    members: config.clusters.map((c) => ({ id: c.id, loadFactor: c.loadFactor })),
  });
  // A second process on the same directory stops here, before it opens or writes anything.
  const lock: DataDirLock = await lockDataDir(self.dataDir);
  const cleanups: (() => Promise<void> | void)[] = [() => lock.release()];
  const cleanup = async () => {
    for (const f of cleanups.splice(0).reverse()) await f();
  };
  try {
    const kv = await Deno.openKv(`${self.dataDir}/${KV_FILE}`);
    cleanups.push(() => kv.close());
    const storage = await KvLogStorage.open(kv);
    const ref: { node?: RaftNode } = {};
    const transport = new PeerTransport({
      clusterId: cluster.id,
      nodeId,
      listen: self.raft,
      ...(self.secret === undefined ? {} : { secret: self.secret }),
      peers: new Map(),
      onMessage: (m: Message) => ref.node?.step(m),
      log: (level, message, fields) => log(level === "warn" ? "warning" : level, message, fields),
      incarnation: storage.incarnation,
      // Before the driver exists nothing is delivered anyway: accept, the driver decides later.
      verifyPeer: (peer, incarnation) => ref.node?.verifyPeer(peer, incarnation),
      notePeer: (peer, incarnation) => ref.node?.notePeer(peer, incarnation),
    });
    cleanups.push(() => transport.close());
    const knownAddresses = new Map(cluster.nodes.map((n) => [n.id, addressOf(n)]));
    const join = options.join ?? self.join;
    const node = await RaftNode.start({
      nodeId,
      clusterId: cluster.id,
      storage,
      founders: new Map(cluster.nodes.filter((n) => !n.join).map((n) => [n.id, addressOf(n)])),
      join,
      knownAddresses,
      ...raftTiming(self),
      transport: {
        send: (messages) => transport.send(messages),
        setPeers: (peers) => {
          const parsed = new Map<string, HostPort>();
          for (const [id, addr] of peers) parsed.set(id, parseHostPort(addr, `peer ${id}`));
          transport.setPeers(parsed);
        },
        stats: () => transport.stats(),
      },
      owns: (key) => table.owner(key) === cluster.id,
      epoch: config.routing.epoch,
      ...(options.ticks === undefined ? {} : { ticks: options.ticks }),
      ...(options.limits === undefined ? {} : { limits: options.limits }),
      log,
      onFatal: options.onFatal ?? (() => {}),
    });
    ref.node = node;
    cleanups.push(() => node.close());
    const { port: raftPort } = await bind(`${field}.raft`, self.raft, () => transport.start());
    const app = createNodeApp({
      service: node,
      ...(self.secret === undefined ? {} : { secret: self.secret }),
      members: knownAddresses,
      log: (message: string, error: unknown) => log("error", message, { error: String(error) }),
    });
    const server = await bind(`${field}.http`, self.http, () =>
      HttpServer.listen({
        hostname: self.http.host,
        port: self.http.port,
        fetch: app.fetch,
        ...(options.httpLimits === undefined ? {} : { limits: options.httpLimits }),
        onError: (message, error) => log("error", message, { error: String(error) }),
      }));
    cleanups.push(() => server.close(SHUTDOWN_DRAIN_MS));
    const started = performance.now();
    options.lifecycle?.("node ready", {
      node: nodeId,
      cluster: cluster.id,
      raft: `${self.raft.host}:${raftPort}`,
      http: `${self.http.host}:${server.port}`,
      data: self.dataDir,
      join,
    });
    const close = async () => {
      cleanups.splice(0); // this close runs the steps in its own order
      const stopping = performance.now();
      // 1. Another node leads before this one stops: writes elsewhere keep succeeding.
      const handedOff = await node.handOffLeadership(SHUTDOWN_HANDOFF_MS).catch(() => false);
      // 2. Raft stops: waiting requests fail fast (503) and new ones are forwarded.
      await node.close();
      await transport.close();
      // 3. HTTP drains what is in flight, then cuts off what remains.
      await server.close(SHUTDOWN_DRAIN_MS);
      // 4. The files.
      kv.close();
      await lock.release();
      options.lifecycle?.("node stopped", {
        node: nodeId,
        cluster: cluster.id,
        handedOff,
        stopMs: Math.round(performance.now() - stopping),
        upMs: Math.round(stopping - started),
      });
    };
    let closing: Promise<void> | undefined;
    return {
      node,
      httpPort: server.port,
      raftPort,
      close: () => (closing ??= close()),
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

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
import { KvLogStorage, type MemberAddress } from "../storage/mod.ts";
import { type DriverLimits, type NodeLog, RaftNode, type TickSource } from "./driver.ts";
import { createNodeApp } from "./http.ts";

/** The name of a node's Deno.Kv file inside its data directory. */
export const KV_FILE = "koi.kv";

/** Options of {@linkcode runNode}. */
export interface RunNodeOptions {
  /** The deployment. */
  readonly config: KoiConfig;
  /** Which node of it to run. */
  readonly nodeId: NodeId;
  /** Structured logging. */
  readonly log?: NodeLog;
  /** Injected clock (tests). */
  readonly ticks?: TickSource;
  /** Driver limits. */
  readonly limits?: Partial<DriverLimits>;
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
  /** Stops serving, stops Raft, closes connections and the Deno.Kv file. */
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
  const hi = Math.max(lo + 1, Math.round(node.electionTimeoutMs[1] / tickMs));
  return { tickMs, heartbeatTicks, electionTicks: [lo, hi] };
}

function addressOf(node: NodeConfig): MemberAddress {
  return { raft: node.raft.text, http: node.http.text };
}

/**
 * Runs one node of `config`: opens (or creates) its Deno.Kv file, bootstraps the cluster on
 * the very first start of a founding member, listens for Raft peers and serves the node HTTP
 * API.
 */
export async function runNode(options: RunNodeOptions): Promise<RunningNode> {
  const { config, nodeId } = options;
  const { node: self, cluster } = findNode(config, nodeId);
  const log: NodeLog = options.log ?? (() => {});
  const table = new CarpTable({
    scheme: config.routing.scheme,
    epoch: config.routing.epoch,
    members: config.clusters.map((c) => ({ id: c.id, loadFactor: c.loadFactor })),
  });
  await Deno.mkdir(self.dataDir, { recursive: true });
  const kv = await Deno.openKv(`${self.dataDir}/${KV_FILE}`);
  const cleanups: (() => Promise<void> | void)[] = [() => kv.close()];
  const cleanup = async () => {
    for (const f of cleanups.splice(0).reverse()) await f();
  };
  try {
    const storage = await KvLogStorage.open(kv);
    // The transport starts first (the node needs it), so messages may arrive before the node.
    const ref: { node?: RaftNode } = {};
    const transport = new PeerTransport({
      clusterId: cluster.id,
      nodeId,
      listen: self.raft,
      ...(self.secret === undefined ? {} : { secret: self.secret }),
      peers: new Map(),
      onMessage: (m: Message) => ref.node?.step(m),
      log: (level, message, fields) => log(level === "warn" ? "warning" : level, message, fields),
    });
    const { port: raftPort } = await transport.start();
    cleanups.push(() => transport.close());
    const timing = raftTiming(self);
    const node = await RaftNode.start({
      nodeId,
      clusterId: cluster.id,
      storage,
      founders: new Map(cluster.nodes.filter((n) => !n.join).map((n) => [n.id, addressOf(n)])),
      join: self.join,
      knownAddresses: new Map(cluster.nodes.map((n) => [n.id, addressOf(n)])),
      ...timing,
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
    const app = createNodeApp({
      service: node,
      ...(self.secret === undefined ? {} : { secret: self.secret }),
      log: (message: string, error: unknown) => log("error", message, { error: String(error) }),
    });
    const server = Deno.serve({
      hostname: self.http.host,
      port: self.http.port,
      onListen: () => {},
    }, app.fetch);
    cleanups.push(() => server.shutdown());
    log("info", "node started", {
      raft: `${self.raft.host}:${raftPort}`,
      http: `${self.http.host}:${server.addr.port}`,
      join: self.join,
    });
    return { node, httpPort: server.addr.port, raftPort, close: cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

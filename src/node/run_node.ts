import { CarpTable } from "../carp/mod.ts";
import {
  findNode,
  type HostPort,
  type KoiConfig,
  loadTlsFiles,
  type NodeConfig,
  parseHostPort,
  tlsHostsOf,
} from "../config/mod.ts";
import { type PeerState, PeerTransport } from "../net/mod.ts";
import type { Message, NodeId } from "../raft/mod.ts";
import { type DataDirLock, KvLogStorage, lockDataDir, type MemberAddress } from "../storage/mod.ts";
import { type DriverLimits, type NodeLog, RaftNode, type TickSource } from "./driver.ts";
import { AddressInUseError } from "./errors.ts";
import { createNodeApp, createNodeDirect, nodeBodyBytesMaxOf } from "./http.ts";
import { ROUTE_BODY_BYTES_MAX } from "./_http_route.ts";
import { AnswerBytes, HttpServer, type HttpServerLimits } from "../http/server.ts";
import { refusedTarget } from "./_http_keys.ts";
import { startMallocTrims } from "./_malloc_trim.ts";
import { LOOP_STALL_MS, LoopLag } from "./_loop_lag.ts";
import { httpsForwarder } from "./_http_forward.ts";
import { WatchHub, type WatchLimits } from "./_watch_hub.ts";

/** The name of a node's Deno.Kv file inside its data directory. */
export const KV_FILE = "koi.kv";

/** Shutdown step one: how long a leader waits for another node to take over. */
export const SHUTDOWN_HANDOFF_MS = 3_000;

/** Shutdown step three: how long in-flight HTTP requests may take before they are cut off. */
export const SHUTDOWN_DRAIN_MS = 2_000;

/** A founding node still waiting this long to learn whether its cluster exists warns, once. */
export const FOUNDING_WAIT_WARN_MS = 10_000;

/** What a founding node with an empty data directory knows about one peer. */
export interface PeerKnowledge {
  /** Whether the peer's data directory holds a cluster, as its last handshake said. */
  readonly formed?: boolean;
  /** Why the last dial to it failed, while it has not answered since. */
  readonly unreachable?: string;
}

/** What a founding node with an empty data directory does next. */
export type FoundingDecision =
  /** A majority of the founders (itself included) are empty and none holds the cluster. */
  | { readonly action: "bootstrap" }
  /** `peer` holds the cluster: start empty, as a joining node, and wait for the leader. */
  | { readonly action: "join"; readonly peer: NodeId }
  /** Not known yet: `missing` founders have not said they are empty (unreachable, untried). */
  | { readonly action: "wait"; readonly missing: readonly NodeId[] };

/**
 * The rule of a founding node whose data directory is empty (issue 10, item 3): it must not
 * found a second cluster when its cluster already exists (its disk was lost, or it is merely
 * late). Any peer that holds the cluster (`formed`) makes it start empty, as a joiner would;
 * it bootstraps only once a majority of the founders, itself included, are known empty, none
 * is known formed, and every other founder was asked at least once (so a reachable member
 * that holds the cluster is heard before a quick "empty" answer from another wiped node).
 * Founders that bootstrap at about the same moment write identical bootstrap entries.
 */
export function foundingDecision(
  self: NodeId,
  founders: readonly NodeId[],
  peers: ReadonlyMap<NodeId, PeerKnowledge>,
): FoundingDecision {
  for (const [id, k] of peers) {
    if (id !== self && k.formed === true) return { action: "join", peer: id };
  }
  const others = founders.filter((id) => id !== self);
  const empty = 1 + others.filter((id) => peers.get(id)?.formed === false).length;
  const asked = others.every((id) => peers.has(id));
  const majority = Math.floor(Math.max(founders.length, 1) / 2) + 1;
  if (empty >= majority && asked) return { action: "bootstrap" };
  return { action: "wait", missing: others.filter((id) => peers.get(id)?.formed !== false) };
}

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
  /** Limits of the change streams (`GET /v1/watch`). */
  readonly watchLimits?: Partial<WatchLimits>;
  /** Called when the node cannot go on; the process should exit non-zero. */
  readonly onFatal?: (error: unknown) => void;
  /** See {@linkcode FOUNDING_WAIT_WARN_MS} (tests). */
  readonly foundingWaitWarnMs?: number;
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
  // Bad certificate files are a configuration error (exit 2), found before anything is touched;
  // so is a certificate its peers would refuse (not the CA's, not naming its addresses).
  const tls = self.tls === undefined
    ? undefined
    : await loadTlsFiles(self.tls, { hosts: tlsHostsOf(self, field) });
  // A second process on the same directory stops here, before it opens or writes anything.
  const lock: DataDirLock = await lockDataDir(self.dataDir);
  const cleanups: (() => Promise<void> | void)[] = [() => lock.release()];
  const cleanup = async () => {
    for (const f of cleanups.splice(0).reverse()) await f();
  };
  try {
    const trims = startMallocTrims();
    cleanups.push(() => trims.stop());
    const lag = new LoopLag((lagMs, stalls) =>
      log("warning", "event loop stalled", { lagMs, stalls, stallMs: LOOP_STALL_MS })
    );
    lag.start();
    cleanups.push(() => lag.stop());
    const kv = await Deno.openKv(`${self.dataDir}/${KV_FILE}`);
    cleanups.push(() => kv.close());
    const storage = await KvLogStorage.open(kv);
    const formed = () => storage.lastIndex() > 0 || storage.snapshot().meta.index > 0;
    const join = options.join ?? self.join;
    const founderIds = cluster.nodes.filter((n) => !n.join).map((n) => n.id);
    // A founding node whose data directory is empty first finds out whether the cluster
    // exists (foundingDecision); a single founder has nobody to ask.
    const waits = !join && !formed() && founderIds.filter((id) => id !== nodeId).length > 0;
    const ref: { node?: RaftNode } = {};
    const knowledge = new Map<NodeId, PeerKnowledge>();
    let learned: (() => void) | undefined;
    const onPeerState = (peer: string, state: PeerState) => {
      if (ref.node !== undefined) return;
      const known = knowledge.get(peer);
      if ("formed" in state) {
        knowledge.set(peer, { formed: known?.formed === true || state.formed });
      } else knowledge.set(peer, { ...known, unreachable: state.unreachable });
      learned?.();
    };
    // Hellos completed before the driver exists, for it to note (the leader records them).
    const earlyPeers = new Map<string, string>();
    const transport = new PeerTransport({
      clusterId: cluster.id,
      nodeId,
      listen: self.raft,
      ...(self.secret === undefined ? {} : { secret: self.secret }),
      ...(tls === undefined ? {} : { tls }),
      peers: new Map(),
      onMessage: (m: Message) => ref.node?.step(m), // dropped while the node waits
      log: (level, message, fields) => log(level === "warn" ? "warning" : level, message, fields),
      incarnation: storage.incarnation,
      // Before the driver exists (only while an empty founder waits) there are no records:
      // accept, as the empty driver would.
      verifyPeer: (peer, incarnation) => ref.node?.verifyPeer(peer, incarnation),
      notePeer: (peer, incarnation) => {
        if (ref.node === undefined) earlyPeers.set(peer, incarnation);
        else ref.node.notePeer(peer, incarnation);
      },
      formed,
      onPeerState,
    });
    cleanups.push(() => transport.close());
    const knownAddresses = new Map(cluster.nodes.map((n) => [n.id, addressOf(n)]));
    let raftPort: number | undefined;
    let startJoining = join;
    if (waits) {
      transport.setPeers(
        new Map(cluster.nodes.filter((n) => n.id !== nodeId).map((n) => [n.id, n.raft])),
      );
      ({ port: raftPort } = await bind(`${field}.raft`, self.raft, () => transport.start()));
      // The HTTP port is served only once the node runs; a taken one fails now, not later.
      await bind(`${field}.http`, self.http, () => {
        Deno.listen({ hostname: self.http.host, port: self.http.port }).close();
        return Promise.resolve();
      });
      transport.keepConnected(new Set(founderIds.filter((id) => id !== nodeId)));
      const decision = await waitForFounders({
        clusterId: cluster.id,
        nodeId,
        founders: founderIds,
        knowledge,
        log,
        warnMs: options.foundingWaitWarnMs ?? FOUNDING_WAIT_WARN_MS,
        onChange: (f) => learned = f,
      });
      learned = undefined;
      transport.keepConnected(new Set());
      if (decision.action === "join") {
        startJoining = true;
        // Info, not warning: a founder that merely started late lands here on every healthy
        // first start. A node that lost its disk is refused by its peers next, and that
        // refusal is the warning an operator sees.
        log(
          "info",
          `Cluster ${cluster.id} already exists (peer ${decision.peer} holds it) and this node's ` +
            `data directory is empty: starting empty and waiting for the leader; if this node ` +
            `was a member before, its disk was lost — see docs/operations.md`,
          { peer: decision.peer },
        );
      } else {
        log("info", `Bootstrapping cluster ${cluster.id}: a majority of its founders are empty`);
      }
    }
    // Made before the state loads: the entries replayed at start are recorded too.
    const watch = new WatchHub({
      node: nodeId,
      cluster: cluster.id,
      ...(options.watchLimits === undefined ? {} : { limits: options.watchLimits }),
      log: (message, error) => log("error", message, { error: String(error) }),
    });
    const node = await RaftNode.start({
      nodeId,
      clusterId: cluster.id,
      // Its position in the deployment: versionstamps unique across clusters.
      versionstampSlot: config.clusters.findIndex((c) => c.id === cluster.id),
      storage,
      founders: new Map(cluster.nodes.filter((n) => !n.join).map((n) => [n.id, addressOf(n)])),
      join: startJoining,
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
      owner: (key) => table.owner(key),
      epoch: config.routing.epoch,
      ...(options.ticks === undefined ? {} : { ticks: options.ticks }),
      ...(options.limits === undefined ? {} : { limits: options.limits }),
      stateMachine: { onApplied: (applied) => watch.applied(applied) },
      onStateLoaded: (rev) => watch.reset(rev),
      log,
      onFatal: options.onFatal ?? (() => {}),
    });
    ref.node = node;
    for (const [peer, incarnation] of earlyPeers) node.notePeer(peer, incarnation);
    earlyPeers.clear();
    cleanups.push(() => node.close());
    cleanups.push(() => watch.close());
    // A node that did not wait listens only now, once it can check its peers' incarnations.
    raftPort ??= (await bind(`${field}.raft`, self.raft, () => transport.start())).port;
    // With TLS the leader serves HTTPS too: forwarded requests verify its certificate.
    const forwarder = tls === undefined ? undefined : httpsForwarder(tls.ca);
    if (forwarder !== undefined) cleanups.push(() => forwarder.close());
    // The server is made from the app: its counters reach /metrics once it listens.
    const listening: { server?: HttpServer } = {};
    // One count of the answers not yet taken, for the server and the handlers that build or
    // relay large ones (src/http/_answer_bytes.ts).
    const answers = new AnswerBytes();
    const appOptions = {
      answers,
      service: node,
      httpStats: () => listening.server?.stats() ?? {},
      processStats: () => ({ ...lag.stats() }),
      ...(forwarder === undefined ? {} : { forward: forwarder.forward }),
      ...(self.secret === undefined ? {} : { secret: self.secret }),
      members: knownAddresses,
      watch,
      log: (message: string, error: unknown) => log("error", message, { error: String(error) }),
    };
    const app = createNodeApp(appOptions);
    const server = await bind(`${field}.http`, self.http, () =>
      HttpServer.listen({
        hostname: self.http.host,
        port: self.http.port,
        fetch: app.fetch,
        answers,
        direct: createNodeDirect(appOptions),
        refuseTarget: refusedTarget,
        bodyBytesMaxOf: nodeBodyBytesMaxOf(),
        ...(tls === undefined ? {} : { tls: { cert: tls.cert, key: tls.key } }),
        // Routing commands (an admin's staged batch) are the largest bodies a node takes.
        limits: { bodyBytesMax: ROUTE_BODY_BYTES_MAX, ...options.httpLimits },
        onError: (message, error) => log("error", message, { error: String(error) }),
      }));
    listening.server = server;
    cleanups.push(() => server.close(SHUTDOWN_DRAIN_MS));
    const started = performance.now();
    options.lifecycle?.("node ready", {
      node: nodeId,
      cluster: cluster.id,
      raft: `${self.raft.host}:${raftPort}`,
      http: `${self.http.host}:${server.port}`,
      data: self.dataDir,
      join: startJoining,
      tls: tls !== undefined,
    });
    const close = async () => {
      cleanups.splice(0); // this close runs the steps in its own order
      const stopping = performance.now();
      // 1. Another node leads before this one stops: writes elsewhere keep succeeding.
      const handedOff = await node.handOffLeadership(SHUTDOWN_HANDOFF_MS).catch(() => false);
      // 2. Raft stops: waiting requests fail fast (503) and new ones are forwarded.
      await node.close();
      await transport.close();
      watch.close(); // every watch stream ends: clients go on with another node
      // 3. HTTP drains what is in flight, then cuts off what remains.
      await server.close(SHUTDOWN_DRAIN_MS);
      forwarder?.close();
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

/**
 * Waits until {@linkcode foundingDecision} says bootstrap or join, re-deciding whenever the
 * transport learns something (`onChange`). Logs what it waits for (info), and once, after
 * `warnMs`, a warning naming the founders not heard from.
 */
async function waitForFounders(options: {
  clusterId: string;
  nodeId: NodeId;
  founders: readonly NodeId[];
  knowledge: ReadonlyMap<NodeId, PeerKnowledge>;
  log: NodeLog;
  warnMs: number;
  onChange(f: () => void): void;
}): Promise<Exclude<FoundingDecision, { action: "wait" }>> {
  const { clusterId, nodeId, founders, knowledge, log } = options;
  const decide = () => foundingDecision(nodeId, founders, knowledge);
  const first = decide();
  if (first.action !== "wait") return first;
  log(
    "info",
    `This founding node's data directory is empty: waiting until a majority of the founders of ` +
      `cluster ${clusterId} (${founders.join(", ")}) are known empty, or one holds the cluster`,
    { waitingFor: first.missing },
  );
  return await new Promise((resolve) => {
    const warn = setTimeout(() => {
      const d = decide();
      if (d.action !== "wait") return;
      log(
        "warning",
        `waiting for a majority of the founders of cluster ${clusterId} to start: ${
          d.missing.join(", ")
        } not reachable`,
        { waitingFor: d.missing },
      );
    }, options.warnMs);
    options.onChange(() => {
      const d = decide();
      if (d.action === "wait") return;
      clearTimeout(warn);
      resolve(d);
    });
  });
}

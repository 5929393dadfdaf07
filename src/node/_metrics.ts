import type { RaftStatus } from "../raft/mod.ts";
import type { KvLogStorageStats } from "../storage/mod.ts";

/** What {@linkcode renderMetrics} reports. */
export interface MetricsInput {
  readonly node: string;
  readonly cluster: string;
  readonly raft: RaftStatus;
  readonly storage: KvLogStorageStats;
  readonly transport: Readonly<Record<string, number>>;
  readonly counters: Readonly<Record<string, number>>;
  /** Per reason, the peer messages the core dropped as impossible or out of range. */
  readonly raftDropped?: Readonly<Record<string, number>>;
  /** The process's memory (`Deno.memoryUsage()`), when reported. */
  readonly memory?: Deno.MemoryUsage;
  /** Whether the data directory takes writes, when reported (docs/disk_failures.md). */
  readonly disk?: DiskMetrics;
}

/** The disk state in {@linkcode MetricsInput}. */
export interface DiskMetrics {
  /** Whether persists fail now. */
  readonly failed: boolean;
  /** Seconds the current failure lasts (0 when healthy). */
  readonly failedSeconds: number;
  /** Persists that failed with a disk error, since start. */
  readonly persistFailures: number;
  /** Recoveries from a failed disk, since start. */
  readonly recoveries: number;
  /** Background snapshots that failed with a disk error, since start. */
  readonly snapshotFailures: number;
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * Renders the HTTP server's counters and gauges (`koi_http_<name>`) for the same exposition,
 * to be appended to {@linkcode renderMetrics}' text.
 */
export function renderHttpMetrics(
  node: string,
  cluster: string,
  stats: Readonly<Record<string, number>>,
  subsystem = "http",
): string {
  const labels = `node="${node}",cluster="${cluster}"`;
  const what = subsystem === "http" ? "HTTP server" : subsystem;
  return Object.entries(stats).map(([k, v]) =>
    `# HELP koi_${subsystem}_${snake(k)} ${what} ${k}.\n` +
    `# TYPE koi_${subsystem}_${snake(k)} gauge\n` +
    `koi_${subsystem}_${snake(k)}{${labels}} ${v}\n`
  ).join("");
}

/** The watch hub's gauges and counters as `koi_watch_<name>` (docs/api.md "Watch"). */
export function renderWatchMetrics(
  node: string,
  cluster: string,
  stats: Readonly<Record<string, number>>,
): string {
  const labels = `node="${node}",cluster="${cluster}"`;
  return Object.entries(stats).map(([k, v]) => {
    const name = `koi_watch_${snake(k)}`;
    const type = k.endsWith("Total") ? "counter" : "gauge";
    return `# HELP ${name} Watch ${k}.\n# TYPE ${name} ${type}\n${name}{${labels}} ${v}\n`;
  }).join("");
}

/** Renders the Prometheus text exposition format (version 0.0.4). */
export function renderMetrics(m: MetricsInput): string {
  const labels = `node="${m.node}",cluster="${m.cluster}"`;
  const lines: string[] = [];
  const gauge = (name: string, help: string, value: number, type = "gauge") => {
    lines.push(
      `# HELP koi_${name} ${help}`,
      `# TYPE koi_${name} ${type}`,
      `koi_${name}{${labels}} ${value}`,
    );
  };
  gauge("raft_term", "Current Raft term.", m.raft.term);
  gauge("raft_is_leader", "1 when this node leads its cluster.", m.raft.role === "leader" ? 1 : 0);
  gauge("raft_commit_index", "Highest committed log index.", m.raft.commit);
  gauge("raft_applied_index", "Highest log index handed to the state machine.", m.raft.applied);
  gauge("raft_first_index", "First log index not compacted.", m.raft.firstIndex);
  gauge("raft_last_index", "Last log index.", m.raft.lastIndex);
  gauge("storage_persists_total", "Ready batches persisted.", m.storage.persists, "counter");
  gauge(
    "storage_persist_commits_total",
    "Deno.Kv commits (fsyncs) made to persist Ready batches.",
    m.storage.persistCommits,
    "counter",
  );
  gauge(
    "storage_snapshot_commits_total",
    "Deno.Kv commits made for snapshots.",
    m.storage.snapshotCommits,
    "counter",
  );
  const named = new Set(["persists", "persistCommits", "snapshotCommits"]);
  for (const [k, v] of Object.entries(m.storage)) {
    if (!named.has(k)) gauge(`storage_${snake(k)}`, `Storage counter ${k}.`, v);
  }
  if (m.disk !== undefined) {
    gauge("disk_failed", "1 while writes to the data directory fail.", m.disk.failed ? 1 : 0);
    gauge("disk_failed_seconds", "Seconds the current disk failure lasts.", m.disk.failedSeconds);
    gauge(
      "disk_persist_failures_total",
      "Persists (Ready batches) that failed with a disk error and were retried.",
      m.disk.persistFailures,
      "counter",
    );
    gauge(
      "disk_recoveries_total",
      "Times the data directory took writes again after failing.",
      m.disk.recoveries,
      "counter",
    );
    gauge(
      "snapshot_failures_total",
      "Background snapshots skipped on a disk error.",
      m.disk.snapshotFailures,
      "counter",
    );
  }
  const dropped = Object.entries(m.raftDropped ?? {});
  if (dropped.length > 0) {
    lines.push(
      "# HELP koi_raft_dropped_messages_total Peer messages the Raft core dropped, by reason.",
      "# TYPE koi_raft_dropped_messages_total counter",
    );
    for (const [reason, v] of dropped) {
      lines.push(`koi_raft_dropped_messages_total{${labels},reason="${snake(reason)}"} ${v}`);
    }
  }
  for (const [k, v] of Object.entries(m.counters)) gauge(snake(k), `Driver counter ${k}.`, v);
  if (m.memory !== undefined) {
    gauge("process_rss_bytes", "Resident set size of the node process.", m.memory.rss);
    gauge("process_heap_used_bytes", "V8 heap in use.", m.memory.heapUsed);
    gauge("process_heap_total_bytes", "V8 heap reserved.", m.memory.heapTotal);
    gauge(
      "process_external_bytes",
      "Memory outside the V8 heap held by JavaScript objects (ArrayBuffers).",
      m.memory.external,
    );
  }
  for (const [k, v] of Object.entries(m.transport)) {
    gauge(`transport_${snake(k)}`, `Transport counter ${k}.`, v);
  }
  return lines.join("\n") + "\n";
}

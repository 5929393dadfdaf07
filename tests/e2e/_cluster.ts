/**
 * End-to-end test support: real `koi node` processes from source on 127.0.0.1, on ports the
 * OS picked. Every process is stopped by its PID when the test ends, also when it fails.
 *
 * @module
 */

import { freePorts } from "../../scripts/free_ports_config.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Waits until `cond()` resolves true, polling; throws after `timeoutMs`. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await cond()) return;
    } catch {
      // not ready yet (connection refused, ...)
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One node of a {@linkcode ProcessCluster}. */
export interface ProcessNode {
  readonly id: string;
  readonly http: string;
  readonly raft: string;
  readonly join: boolean;
  /** The node's data directory. */
  readonly data: string;
  child?: Deno.ChildProcess;
  /** What the current (or last) process printed, stdout and stderr interleaved. */
  output: string;
}

/** A cluster of real node processes described by a generated config.toml. */
export class ProcessCluster {
  readonly dir: string;
  readonly configPath: string;
  readonly nodes: Map<string, ProcessNode>;
  readonly #logs: string[] = [];

  private constructor(dir: string, nodes: ProcessNode[]) {
    this.dir = dir;
    this.configPath = `${dir}/config.toml`;
    this.nodes = new Map(nodes.map((n) => [n.id, n]));
  }

  /** Writes a config with `founders` (and `joiners` with join = true) of cluster "a". */
  static async create(
    founders: string[],
    options: {
      joiners?: string[];
      snapshotEvery?: number;
      /** Wider than the default [300, 600] where a test asserts that no election happens. */
      electionTimeoutMs?: [number, number];
    } = {},
  ): Promise<ProcessCluster> {
    const dir = await Deno.makeTempDir({ prefix: "koi-e2e-" });
    const ids = [...founders, ...(options.joiners ?? [])];
    const ports = freePorts(ids.length * 2 + 1);
    const nodes: ProcessNode[] = ids.map((id, i) => ({
      id,
      raft: `127.0.0.1:${ports[2 * i]}`,
      http: `127.0.0.1:${ports[2 * i + 1]}`,
      join: i >= founders.length,
      data: `${dir}/data/${id}`,
      output: "",
    }));
    const toml = [
      `[admin]\nhttp = "127.0.0.1:${ports[ports.length - 1]}"\n`,
      `[cluster_defaults]\nelection_timeout_ms = [${options.electionTimeoutMs ?? [300, 600]}]\n` +
      `heartbeat_ms = 50\n`,
      `[[clusters]]\nid = "a"\n`,
      ...nodes.map((n) =>
        `[[clusters.nodes]]\nid = "${n.id}"\nraft = "${n.raft}"\nhttp = "${n.http}"\n` +
        `data = "data/${n.id}"\n${n.join ? "join = true\n" : ""}`
      ),
    ].join("\n");
    const c = new ProcessCluster(dir, nodes);
    await Deno.writeTextFile(c.configPath, toml);
    return c;
  }

  /** Starts node `id` (`deno run … cli.ts node`), with `args` added (e.g. `--join`). */
  start(id: string, args: string[] = []): Deno.ChildProcess {
    const n = this.node(id);
    if (n.child !== undefined) throw new Error(`${id} is running`);
    const child = this.spawn(id, args);
    n.child = child;
    n.output = "";
    this.#collect(n, child);
    return child;
  }

  /**
   * Runs a second process for node `id` next to whatever runs (it is not tracked as the
   * node's process); resolves with its exit code and output. Killed by PID after `timeoutMs`.
   */
  async runExtra(
    id: string,
    args: string[] = [],
    timeoutMs = 20_000,
  ): Promise<{ code: number; output: string }> {
    const child = this.spawn(id, args);
    const sink: ProcessNode = { ...this.node(id), output: "" };
    const collected = this.#collect(sink, child);
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
    }, timeoutMs);
    try {
      const status = await child.status;
      await collected;
      return { code: status.code, output: sink.output };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The `koi node` process of `id` (not tracked). */
  spawn(id: string, args: string[] = []): Deno.ChildProcess {
    return new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        `${ROOT}deno.json`,
        `${ROOT}cli.ts`,
        "node",
        "--config",
        this.configPath,
        "--id",
        id,
        ...args,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  }

  #collect(n: ProcessNode, child: Deno.ChildProcess): Promise<unknown> {
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        n.output += chunk;
        this.#logs.push(`[${n.id}] ${chunk}`);
        if (this.#logs.length > 500) this.#logs.shift();
      }
    };
    return Promise.all([collect(child.stdout), collect(child.stderr)]);
  }

  /** Starts every node that is not running. */
  startAll(): void {
    for (const n of this.nodes.values()) if (n.child === undefined) this.start(n.id);
  }

  /** Stops node `id` by PID: SIGKILL when `hard`, else SIGTERM; waits for it to exit. */
  async stop(id: string, hard = false): Promise<Deno.CommandStatus | undefined> {
    const n = this.node(id);
    const child = n.child;
    if (child === undefined) return undefined;
    n.child = undefined;
    try {
      child.kill(hard ? "SIGKILL" : "SIGTERM");
    } catch {
      // already exited
    }
    return await child.status;
  }

  /** Sends SIGTERM to node `id` by PID without waiting; the process is still tracked. */
  signal(id: string, signal: Deno.Signal = "SIGTERM"): Deno.ChildProcess {
    const child = this.node(id).child;
    if (child === undefined) throw new Error(`${id} is not running`);
    child.kill(signal);
    return child;
  }

  /** Stops every process by PID and removes the files. */
  async close(): Promise<void> {
    for (const id of this.nodes.keys()) await this.stop(id, true);
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** The last lines the processes printed (for failure messages). */
  logs(): string {
    return this.#logs.join("");
  }

  /** Node `id`. */
  node(id: string): ProcessNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** Fetches `path` on node `id`. */
  async fetch(id: string, path: string, init: RequestInit = {}): Promise<Response> {
    return await fetch(`http://${this.node(id).http}${path}`, {
      ...init,
      signal: AbortSignal.timeout(10_000),
    });
  }

  /** `GET /v1/status` of node `id`. */
  async status(id: string): Promise<NodeStatusJson> {
    const r = await this.fetch(id, "/v1/status");
    if (r.status !== 200) throw new Error(`status of ${id}: ${r.status} ${await r.text()}`);
    return await r.json();
  }

  /** Waits until a running node reports itself leader; returns its id. */
  async leader(timeoutMs = 20_000): Promise<string> {
    let found = "";
    await waitFor(
      async () => {
        for (const n of this.nodes.values()) {
          if (n.child === undefined) continue;
          const s = await this.status(n.id).catch(() => undefined);
          if (s?.role === "leader") {
            found = n.id;
            return true;
          }
        }
        return false;
      },
      "a leader",
      timeoutMs,
    );
    return found;
  }
}

/** The JSON of `GET /v1/status`. */
export interface NodeStatusJson {
  node: string;
  cluster: string;
  role: string;
  term: number;
  leader: string;
  commit: number;
  applied: number;
  snapshot: number;
  epoch: number;
  members: { id: string; voter: boolean; match: number }[];
}

/** Free ports below the ephemeral range (see scripts/free_ports_config.ts). */
export { freePorts };

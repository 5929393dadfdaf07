/**
 * End-to-end support for `koi admin`: a copy of the default config.toml on free loopback
 * ports in a temporary folder, the admin run from source, and cleanup that stops the admin
 * and every node it started by PID, also when a test fails.
 *
 * @module
 */
import { freePorts, portsIn, withFreePorts } from "../../scripts/free_ports_config.ts";
import { waitFor } from "./_cluster.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Whether process `pid` is alive (not gone, not a zombie). Linux: reads /proc. */
export function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/**
 * The TOML of a one-node cluster `id` (data in `data/<id>1`) on ports free now and named
 * nowhere in `config`: a deployment's own addresses are not bound until its admin starts.
 */
export function oneNodeClusterToml(id: string, config = ""): string {
  const [raft, http] = freePorts(2, portsIn(config));
  return `[[clusters]]\nid = "${id}"\n[[clusters.nodes]]\nid = "${id}1"\n` +
    `raft = "127.0.0.1:${raft}"\nhttp = "127.0.0.1:${http}"\ndata = "data/${id}1"\n`;
}

/** A `koi admin` process over a generated deployment. */
export class AdminProcess {
  readonly dir: string;
  readonly configPath: string;
  readonly url: string;
  child: Deno.ChildProcess | undefined;
  output = "";
  /** Every node PID seen in `/v1/clusters`, so cleanup can stop them all. */
  readonly nodePids = new Set<number>();

  private constructor(dir: string, configPath: string, url: string) {
    this.dir = dir;
    this.configPath = configPath;
    this.url = url;
  }

  /** Writes the config (the repository's config.toml on free ports, or `toml`). */
  static async create(toml?: string): Promise<AdminProcess> {
    const dir = await Deno.makeTempDir({ prefix: "koi-admin-e2e-" });
    const text = withFreePorts(toml ?? await Deno.readTextFile(`${ROOT}config.toml`));
    const configPath = `${dir}/config.toml`;
    await Deno.writeTextFile(configPath, text);
    const http = /\[admin\]\s*http = "([^"]+)"/.exec(text)![1];
    return new AdminProcess(dir, configPath, `http://${http}`);
  }

  /** Starts the admin (`deno run … cli.ts admin`). */
  start(args: string[] = []): Deno.ChildProcess {
    const child = this.spawn(args);
    this.child = child;
    this.output = "";
    this.#collect(child, (text) => (this.output += text));
    return child;
  }

  /** A second admin process over the same config (not tracked); its exit code and output. */
  async runExtra(
    args: string[] = [],
    timeoutMs = 30_000,
  ): Promise<{ code: number; output: string }> {
    const child = this.spawn(args);
    let output = "";
    const collected = this.#collect(child, (text) => (output += text));
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
    }, timeoutMs);
    try {
      const status = await child.status;
      await collected;
      return { code: status.code, output };
    } finally {
      clearTimeout(timer);
    }
  }

  spawn(args: string[]): Deno.ChildProcess {
    return new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        `${ROOT}deno.json`,
        `${ROOT}cli.ts`,
        "admin",
        "--config",
        this.configPath,
        ...args,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  }

  #collect(child: Deno.ChildProcess, sink: (text: string) => void): Promise<unknown> {
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) sink(chunk);
    };
    return Promise.all([collect(child.stdout), collect(child.stderr)]);
  }

  /** GET `path` of the admin as JSON (throws on a non-2xx answer). */
  async json<T = Record<string, unknown>>(path: string): Promise<T> {
    const response = await fetch(`${this.url}${path}`);
    const body = await response.json();
    if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(body)}`);
    return body as T;
  }

  /** `/v1/clusters`, remembering every node PID it names. */
  async clusters(): Promise<ClustersBody> {
    const body = await this.json<ClustersBody>("/v1/clusters");
    for (const c of body.clusters) {
      for (const n of c.nodes) if (n.pid !== null) this.nodePids.add(n.pid);
    }
    return body;
  }

  /** Waits until `/healthz` answers 200. */
  async healthy(timeoutMs = 60_000): Promise<void> {
    await waitFor(
      async () => {
        const r = await fetch(`${this.url}/healthz`);
        await r.body?.cancel();
        return r.status === 200;
      },
      "every cluster has a leader (admin /healthz 200)",
      timeoutMs,
    );
    await this.clusters();
  }

  /** Stops the admin by PID with `signal`; resolves with its status. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus | undefined> {
    const child = this.child;
    if (child === undefined) return undefined;
    this.child = undefined;
    try {
      child.kill(signal);
    } catch { /* exited */ }
    return await child.status;
  }

  /** Kills the admin and every node PID it ever reported; removes the files. */
  async close(): Promise<void> {
    await this.stop("SIGKILL");
    for (const pid of this.nodePids) {
      try {
        if (alive(pid)) Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    await waitFor(() => [...this.nodePids].every((p) => !alive(p)), "every node exits", 10_000)
      .catch(() => {});
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** The parts of `/v1/clusters` the tests read. */
export interface ClustersBody {
  epoch: number;
  scheme: string;
  healthy: boolean;
  clusters: {
    id: string;
    loadFactor: number;
    leader: string;
    nodes: {
      id: string;
      http: string;
      pid: number | null;
      restarts: number;
      process: string;
      reachable: boolean;
      error: string;
      status: { role: string; keys: number; leader: string; term: number } | null;
    }[];
  }[];
}

/**
 * Runs `fn` with a started, healthy admin over `toml` (default: the repository's config.toml
 * on free ports); stops the admin and every node it started by PID afterwards, also on failure.
 */
export async function withAdmin(
  toml: string | undefined,
  fn: (admin: AdminProcess) => Promise<void>,
): Promise<void> {
  const admin = await AdminProcess.create(toml);
  try {
    admin.start();
    await admin.healthy();
    await fn(admin);
  } finally {
    await admin.close();
  }
}

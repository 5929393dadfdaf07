/**
 * The chaos test's deployment: real `koi node` processes, optionally each in its own network
 * namespace, and a `koi admin --no-spawn` in the host namespace that serves the routing table
 * to the clients. The test owns every process: it kills, pauses and restarts them by PID.
 *
 * @module
 */
import { freePorts } from "../../scripts/free_ports_config.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/** Lines of a node's output kept for a failure report. */
const TAIL_LINES = 200;
/** A status request's deadline: a paused or cut-off node must not stall the nemesis. */
const STATUS_TIMEOUT_MS = 400;

/** Where each node runs: its listening host and how to start a command there. */
export interface Placement {
  /** The address node `id` listens on (its namespace's, or 127.0.0.1). */
  host(id: string): string;
  /** The argv that runs `argv` where node `id` lives. */
  wrap(id: string, argv: string[]): string[];
}

/** Every node on 127.0.0.1, in the host namespace. */
export const LOOPBACK: Placement = {
  host: () => "127.0.0.1",
  wrap: (_id, argv) => argv,
};

/** What `GET /v1/status` says, as far as the nemesis needs it. */
export interface NodeRole {
  readonly role: string;
  readonly term: number;
  readonly leader: string;
}

interface NodeProcess {
  readonly id: string;
  readonly cluster: string;
  readonly http: string;
  child: Deno.ChildProcess | undefined;
  paused: boolean;
  readonly tail: string[];
  starts: number;
}

/** Options of {@linkcode ChaosDeployment.create}. */
export interface ChaosDeploymentOptions {
  /** Node ids by cluster id, e.g. `{ a: ["a1", "a2", "a3"], b: [...] }`. */
  readonly clusters: Record<string, string[]>;
  readonly placement?: Placement;
  /** The nodes' log level (default `warning`). */
  readonly logLevel?: string;
}

/** A deployment of real processes, every one of which the test stops by PID. */
export class ChaosDeployment {
  readonly dir: string;
  readonly configPath: string;
  readonly adminUrl: string;
  readonly clusters: Record<string, string[]>;
  readonly #nodes = new Map<string, NodeProcess>();
  readonly #placement: Placement;
  readonly #logLevel: string;
  #admin: Deno.ChildProcess | undefined;
  readonly #adminTail: string[] = [];
  readonly #secret: string;

  /** The secret of every node (transaction commands need it). */
  get secret(): string {
    return this.#secret;
  }

  private constructor(
    dir: string,
    adminUrl: string,
    options: ChaosDeploymentOptions,
    https: Map<string, string>,
    secret: string,
  ) {
    this.dir = dir;
    this.#secret = secret;
    this.configPath = `${dir}/config.toml`;
    this.adminUrl = adminUrl;
    this.clusters = options.clusters;
    this.#placement = options.placement ?? LOOPBACK;
    this.#logLevel = options.logLevel ?? "warning";
    for (const [cluster, ids] of Object.entries(options.clusters)) {
      for (const id of ids) {
        this.#nodes.set(id, {
          id,
          cluster,
          http: https.get(id)!,
          child: undefined,
          paused: false,
          tail: [],
          starts: 0,
        });
      }
    }
  }

  /** Writes config.toml (with a secret) in a new temporary folder; starts nothing. */
  static async create(options: ChaosDeploymentOptions): Promise<ChaosDeployment> {
    const placement = options.placement ?? LOOPBACK;
    const dir = await Deno.makeTempDir({ prefix: "koi-chaos-" });
    const ids = Object.values(options.clusters).flat();
    const ports = freePorts(1 + 2 * ids.length);
    const secret = crypto.randomUUID().replaceAll("-", "");
    const https = new Map<string, string>();
    const lines = [
      `[admin]\nhttp = "127.0.0.1:${ports[0]}"\ndata = "data/admin"\n`,
      // Short timeouts: more elections per second of chaos, and faster recovery.
      `[cluster_defaults]\nelection_timeout_ms = [300, 600]\nheartbeat_ms = 50\n` +
      `secret = "${secret}"\n`,
    ];
    let i = 0;
    for (const [cluster, nodes] of Object.entries(options.clusters)) {
      lines.push(`[[clusters]]\nid = "${cluster}"\n`);
      for (const id of nodes) {
        const host = placement.host(id);
        const raft = `${host}:${ports[1 + 2 * i]}`;
        const http = `${host}:${ports[2 + 2 * i]}`;
        https.set(id, http);
        lines.push(
          `[[clusters.nodes]]\nid = "${id}"\nraft = "${raft}"\nhttp = "${http}"\n` +
            `data = "data/${id}"\n`,
        );
        i++;
      }
    }
    const d = new ChaosDeployment(dir, `http://127.0.0.1:${ports[0]}`, options, https, secret);
    await Deno.writeTextFile(d.configPath, lines.join("\n"));
    return d;
  }

  /** Every node id. */
  get nodeIds(): string[] {
    return [...this.#nodes.keys()];
  }

  /** The cluster of node `id`. */
  clusterOf(id: string): string {
    return this.#node(id).cluster;
  }

  /** Starts every node and the admin. */
  startAll(): void {
    for (const id of this.#nodes.keys()) this.start(id);
    this.startAdmin();
  }

  /** Starts node `id` from its data directory (it must not run). */
  start(id: string): void {
    const n = this.#node(id);
    if (n.child !== undefined) throw new Error(`${id} runs already`);
    const argv = this.#placement.wrap(id, [
      Deno.execPath(),
      ...["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}cli.ts`, "node"],
      ...["--config", this.configPath, "--id", id, "--log-level", this.#logLevel],
    ]);
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    n.child = child;
    n.paused = false;
    n.starts++;
    collect(child, n.tail, `${this.dir}/${id}.log`);
  }

  /** Starts `koi admin --no-spawn` in the host namespace. */
  startAdmin(): void {
    if (this.#admin !== undefined) return;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}cli.ts`, "admin"]
        .concat(["--config", this.configPath, "--no-spawn"]),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#admin = child;
    collect(child, this.#adminTail, `${this.dir}/admin.log`);
  }

  /** Whether node `id` has a process (running or paused). */
  running(id: string): boolean {
    return this.#node(id).child !== undefined;
  }

  /** Whether node `id` is paused (SIGSTOP). */
  paused(id: string): boolean {
    return this.#node(id).paused;
  }

  /** SIGKILLs node `id` by its PID and waits for it to be gone. */
  async kill(id: string): Promise<void> {
    const n = this.#node(id);
    const child = n.child;
    if (child === undefined) return;
    n.child = undefined;
    n.paused = false;
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
  }

  /**
   * A reshard: `koi admin reshard` to this config with the next epoch and the first
   * cluster's load factor toggled between 1 and 3 (so the same clusters, other owners for
   * about a quarter of the keys). Once done, the new file replaces config.toml: nodes and the
   * admin restart with it. Resolves with the CLI's exit code (0: done).
   */
  async reshard(timeoutMs = 60_000): Promise<number> {
    const text = await Deno.readTextFile(this.configPath);
    const epoch = Number(/^epoch = (\d+)$/m.exec(text)?.[1] ?? 1);
    const first = Object.keys(this.clusters)[0];
    const heavy = new RegExp(`(\\[\\[clusters\\]\\]\\nid = "${first}"\\n)load_factor = 3\\n`);
    let next = heavy.test(text) ? text.replace(heavy, "$1") : text.replace(
      `[[clusters]]\nid = "${first}"\n`,
      `[[clusters]]\nid = "${first}"\nload_factor = 3\n`,
    );
    next = /^\[routing\]$/m.test(next)
      ? next.replace(/^epoch = \d+$/m, `epoch = ${epoch + 1}`)
      : `[routing]\nepoch = ${epoch + 1}\n\n${next}`;
    const path = `${this.dir}/config-${epoch + 1}.toml`;
    await Deno.writeTextFile(path, next);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}cli.ts`, "admin", "reshard"]
        .concat(["--config", path]),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const tail: string[] = [];
    collect(child, tail, `${this.dir}/reshard-${epoch + 1}.log`);
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL"); // the move goes on in the admin; only the watcher stops
      } catch { /* exited */ }
    }, timeoutMs);
    const status = await child.status;
    clearTimeout(timer);
    if (status.code === 0) await Deno.rename(path, this.configPath);
    return status.code;
  }

  /** SIGSTOPs node `id`. */
  pause(id: string): void {
    const n = this.#node(id);
    if (n.child === undefined || n.paused) return;
    Deno.kill(n.child.pid, "SIGSTOP");
    n.paused = true;
  }

  /** SIGCONTs node `id`. */
  resume(id: string): void {
    const n = this.#node(id);
    if (n.child === undefined || !n.paused) return;
    Deno.kill(n.child.pid, "SIGCONT");
    n.paused = false;
  }

  /** Node `id`'s `/v1/status` (role, term, leader), or undefined when it does not answer. */
  async role(id: string): Promise<NodeRole | undefined> {
    const n = this.#node(id);
    if (n.child === undefined || n.paused) return undefined;
    try {
      const r = await fetch(`http://${n.http}/v1/status`, {
        headers: { authorization: `Bearer ${this.#secret}` },
        signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
      });
      if (!r.ok) {
        await r.body?.cancel();
        return undefined;
      }
      const s = await r.json();
      return { role: String(s.role), term: Number(s.term), leader: String(s.leader) };
    } catch {
      return undefined;
    }
  }

  /** The node of `cluster` that says it leads (the highest term wins), if any answers so. */
  async leaderOf(cluster: string): Promise<string | undefined> {
    const ids = this.clusters[cluster];
    const roles = await Promise.all(ids.map((id) => this.role(id)));
    let best: [string, number] | undefined;
    roles.forEach((r, i) => {
      if (r?.role === "leader" && (best === undefined || r.term > best[1])) best = [ids[i], r.term];
    });
    return best?.[0];
  }

  /** Waits until every cluster has a leader; throws after `timeoutMs`. */
  async waitForLeaders(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const leaders = await Promise.all(Object.keys(this.clusters).map((c) => this.leaderOf(c)));
      if (leaders.every((l) => l !== undefined)) return;
      if (Date.now() > deadline) {
        throw new Error(`No leader in every cluster after ${timeoutMs} ms:\n${this.tails()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Waits until the admin serves the routing table. */
  async waitForAdmin(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await fetch(`${this.adminUrl}/v1/carp`).catch(() => undefined);
      await r?.body?.cancel();
      if (r?.status === 200) return;
      if (Date.now() > deadline) {
        throw new Error(`The admin serves no table after ${timeoutMs} ms:\n${this.tails()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The last lines of every process, for a failure report. */
  tails(lines = 20): string {
    const out: string[] = [];
    for (const n of this.#nodes.values()) {
      if (n.tail.length > 0) out.push(`--- ${n.id}`, ...n.tail.slice(-lines));
    }
    if (this.#adminTail.length > 0) out.push("--- admin", ...this.#adminTail.slice(-lines));
    return out.join("\n");
  }

  /** Kills every node and the admin by PID (paused ones too); the data stays. */
  async stopAll(): Promise<void> {
    await Promise.all(this.nodeIds.map((id) => this.kill(id)));
    const admin = this.#admin;
    this.#admin = undefined;
    if (admin !== undefined) {
      try {
        admin.kill("SIGKILL");
      } catch { /* exited */ }
      await admin.status;
    }
  }

  /** Stops everything and removes the folder (unless `keep`: the data and logs stay). */
  async close(keep = false): Promise<void> {
    await this.stopAll();
    if (!keep) await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  #node(id: string): NodeProcess {
    const n = this.#nodes.get(id);
    if (n === undefined) throw new Error(`No node ${id}`);
    return n;
  }
}

/**
 * Keeps the last {@linkcode TAIL_LINES} lines of the child's stdout and stderr, and appends
 * all of them to `logPath` (each start of a node adds to its log).
 */
function collect(child: Deno.ChildProcess, tail: string[], logPath: string): void {
  const file = Deno.openSync(logPath, { append: true, create: true });
  let open = 2;
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let rest = "";
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        file.writeSync(new TextEncoder().encode(chunk));
        const lines = (rest + chunk).split("\n");
        rest = lines.pop()!;
        tail.push(...lines);
        if (tail.length > TAIL_LINES) tail.splice(0, tail.length - TAIL_LINES);
      }
    } catch { /* the process is gone */ }
    if (--open === 0) file.close();
  };
  void pump(child.stdout);
  void pump(child.stderr);
}

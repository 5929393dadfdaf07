/**
 * One node of the deployment as a supervised child process: started with `koi node`, its
 * output relayed line by line under its id, restarted with exponential backoff when it dies
 * unexpectedly, and stopped by its PID (SIGTERM, then SIGKILL after a deadline).
 *
 * The child's stdin is a pipe that carries the start line of `koi node --supervised` and then
 * stays open: if the admin dies, even by SIGKILL, the pipe closes and the node stops cleanly
 * instead of living on as an orphan that holds its ports and data directory.
 *
 * @module
 */

/** How to start one node: the program and its arguments. */
export interface SpawnSpec {
  /** The executable. */
  readonly command: string;
  /** Its arguments. */
  readonly args: readonly string[];
  /** Written to the process's stdin once it starts; the pipe then stays open. */
  readonly stdin?: Uint8Array;
}

/** Backoff between restarts of a node that keeps dying. */
export interface RestartPolicy {
  /** Delay before the first restart, in milliseconds. */
  readonly initialMs: number;
  /** Longest delay, in milliseconds. */
  readonly maxMs: number;
  /** A node that ran this long before dying restarts after `initialMs` again. */
  readonly stableMs: number;
}

/** The default restart backoff: 0.5 s doubling to 30 s; reset after 60 s of running. */
export const RESTART_POLICY_DEFAULT: RestartPolicy = Object.freeze({
  initialMs: 500,
  maxMs: 30_000,
  stableMs: 60_000,
});

/** How long a node may take to stop after SIGTERM before it gets SIGKILL, in milliseconds. */
export const STOP_KILL_AFTER_MS = 12_000;

/** How much of a node's last line {@linkcode NodeProcess.lastLine} keeps. */
const LAST_LINE_CHARS_MAX = 300;

/** What a supervised node is doing. */
export type NodeProcessState = "running" | "waiting" | "stopping" | "stopped";

/** How the last process of a node ended. */
export interface NodeExit {
  /** Exit code (128 + signal number when killed). */
  readonly code: number;
  /** The signal that killed it, if any. */
  readonly signal: string | null;
  /** When it ended (ms since the epoch). */
  readonly at: number;
  /** How long it had run, in milliseconds. */
  readonly ranMs: number;
}

/** Options of a {@linkcode NodeProcess}. */
export interface NodeProcessOptions {
  /** The node's id (the output prefix). */
  readonly id: string;
  /** How to start it. */
  readonly spawn: SpawnSpec;
  /** Receives every line the node prints, already prefixed with `[id] `. */
  readonly output: (line: string) => void;
  /** Receives the admin's own lines about this node (exits, restarts). */
  readonly log: (line: string) => void;
  /** Restart backoff (default {@linkcode RESTART_POLICY_DEFAULT}). */
  readonly restart?: RestartPolicy;
  /** SIGKILL after this long in {@linkcode NodeProcess.stop} (default {@linkcode STOP_KILL_AFTER_MS}). */
  readonly killAfterMs?: number;
}

/** A supervised `koi node` child process. */
export class NodeProcess {
  readonly #o: NodeProcessOptions;
  readonly #policy: RestartPolicy;
  #child: Deno.ChildProcess | undefined;
  #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #exited: Promise<void> = Promise.resolve();
  #state: NodeProcessState = "stopped";
  #restarts = 0;
  #failures = 0;
  #startedAt = 0;
  #lastExit: NodeExit | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #nextStartAt = 0;
  #spawnError: string | undefined;
  #lastLine = "";

  /** @param options what to run and where its output goes */
  constructor(options: NodeProcessOptions) {
    this.#o = options;
    this.#policy = options.restart ?? RESTART_POLICY_DEFAULT;
  }

  /** The node's id. */
  get id(): string {
    return this.#o.id;
  }

  /** The PID of the running process, or null. */
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /** Running, waiting to restart, stopping or stopped. */
  get state(): NodeProcessState {
    return this.#state;
  }

  /** How many times the admin restarted this node. */
  get restarts(): number {
    return this.#restarts;
  }

  /** How the last process ended, if one did. */
  get lastExit(): NodeExit | undefined {
    return this.#lastExit;
  }

  /** When a waiting node starts again (ms since the epoch), else 0. */
  get nextStartAt(): number {
    return this.#state === "waiting" ? this.#nextStartAt : 0;
  }

  /** Why the last start failed (the program could not be run at all), if it did. */
  get spawnError(): string | undefined {
    return this.#spawnError;
  }

  /** Starts the process (no-op unless stopped). */
  start(): void {
    if (this.#state !== "stopped") return;
    this.#launch();
  }

  #launch(): void {
    this.#timer = undefined;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(this.#o.spawn.command, {
        args: [...this.#o.spawn.args],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        // Its own process group: a Ctrl-C in the admin's terminal reaches the admin only,
        // which then stops each node once, in order (not twice, which means "kill").
        detached: true,
      }).spawn();
    } catch (error) {
      this.#spawnError = error instanceof Error ? error.message : String(error);
      this.#o.log(`cannot start node ${this.id}: ${this.#spawnError}`);
      this.#state = "running"; // so #scheduleRestart treats it as a failure
      this.#failures++;
      this.#scheduleRestart();
      return;
    }
    this.#spawnError = undefined;
    this.#child = child;
    // The writer is kept (and the pipe open) for the life of the process.
    this.#stdin = child.stdin.getWriter();
    if (this.#o.spawn.stdin !== undefined) this.#stdin.write(this.#o.spawn.stdin).catch(() => {});
    this.#state = "running";
    this.#startedAt = Date.now();
    const relayed = Promise.all([
      this.#relay(child.stdout),
      this.#relay(child.stderr),
    ]);
    this.#exited = child.status.then(async (status) => {
      await relayed.catch(() => {});
      this.#onExit(child, status);
    });
  }

  async #relay(stream: ReadableStream<Uint8Array>): Promise<void> {
    let rest = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + text).split("\n");
      rest = lines.pop()!;
      for (const line of lines) this.#output(line);
      // A line without its newline this long is printed as it is (bounded memory).
      if (rest.length > 65_536) {
        this.#output(rest);
        rest = "";
      }
    }
    if (rest !== "") this.#output(rest);
  }

  #output(line: string): void {
    if (line.trim() !== "") this.#lastLine = line.slice(0, LAST_LINE_CHARS_MAX);
    this.#o.output(`[${this.id}] ${line}`);
  }

  /** The last non-empty line the node printed (at most 300 characters), for the status view. */
  get lastLine(): string {
    return this.#lastLine;
  }

  #onExit(child: Deno.ChildProcess, status: Deno.CommandStatus): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    const ranMs = Date.now() - this.#startedAt;
    this.#lastExit = { code: status.code, signal: status.signal, at: Date.now(), ranMs };
    if (this.#state === "stopping" || this.#state === "stopped") {
      this.#state = "stopped";
      return;
    }
    if (ranMs >= this.#policy.stableMs) this.#failures = 0;
    this.#failures++;
    const how = status.signal === null ? `exit code ${status.code}` : `signal ${status.signal}`;
    this.#o.log(
      `node ${this.id} (pid ${child.pid}) died unexpectedly (${how}) after ` +
        `${(ranMs / 1000).toFixed(1)} s`,
    );
    this.#scheduleRestart();
  }

  #scheduleRestart(): void {
    const delay = Math.min(
      this.#policy.maxMs,
      this.#policy.initialMs * 2 ** Math.min(30, this.#failures - 1),
    );
    this.#state = "waiting";
    this.#nextStartAt = Date.now() + delay;
    this.#o.log(
      `restarting node ${this.id} in ${(delay / 1000).toFixed(1)} s (restart ${
        this.#restarts + 1
      })`,
    );
    this.#timer = setTimeout(() => {
      this.#restarts++;
      this.#launch();
    }, delay);
  }

  /**
   * Stops the node: cancels a pending restart, sends SIGTERM to the process by its PID and
   * waits; SIGKILL after `killAfterMs`. Resolves once the process has exited.
   */
  stop(): Promise<void> {
    return this.#end("SIGTERM");
  }

  /** SIGKILLs the process at once (a second Ctrl-C); resolves once it has exited. */
  kill(): Promise<void> {
    return this.#end("SIGKILL");
  }

  async #end(signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const child = this.#child;
    if (child === undefined) {
      this.#state = "stopped";
      return;
    }
    this.#state = "stopping";
    this.#signal(child, signal);
    const killer = signal === "SIGKILL" ? undefined : setTimeout(() => {
      this.#o.log(`node ${this.id} (pid ${child.pid}) did not stop in time: SIGKILL`);
      this.#signal(child, "SIGKILL");
    }, this.#o.killAfterMs ?? STOP_KILL_AFTER_MS);
    try {
      await this.#exited;
    } finally {
      clearTimeout(killer);
    }
  }

  #signal(child: Deno.ChildProcess, signal: Deno.Signal): void {
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
  }
}

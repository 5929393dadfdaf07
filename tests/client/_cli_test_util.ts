/** Running `koi client …` as a process in tests: its arguments, stdin, and the output. */

/** The repository root. */
export const ROOT: string = new URL("../../", import.meta.url).pathname;

/** A finished `koi client` process. */
export interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
  readonly stdout: Uint8Array;
}

/** The command line of `koi client <args>`: the deno executable and its arguments. */
export function koiCommand(args: readonly string[]): string[] {
  return [
    Deno.execPath(),
    "run",
    "-A",
    "--config",
    `${ROOT}deno.json`,
    `${ROOT}cli.ts`,
    "client",
    ...args,
  ];
}

/** Options of {@linkcode koi}. */
export interface KoiOptions {
  /** What stdin holds; without it, stdin is /dev/null. */
  readonly stdin?: Uint8Array | string;
  readonly env?: Record<string, string>;
  /**
   * A shell redirection applied to the process (`<&-` closes its stdin): it then runs as
   * `sh -c 'exec "$0" "$@" <redirect>'`.
   */
  readonly redirect?: string;
}

/** Starts `koi client <args>` with stdout and stderr piped (and stdin, when given). */
export function spawnKoi(args: string[], options: KoiOptions = {}): Deno.ChildProcess {
  const [exe, ...rest] = koiCommand(args);
  const redirected = options.redirect !== undefined;
  return new Deno.Command(redirected ? "sh" : exe, {
    args: redirected ? ["-c", `exec "$0" "$@" ${options.redirect}`, exe, ...rest] : rest,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
}

/** Runs `koi client <args>` to its end. */
export async function koi(args: string[], options: KoiOptions = {}): Promise<Run> {
  const child = spawnKoi(args, options);
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(
      typeof options.stdin === "string" ? new TextEncoder().encode(options.stdin) : options.stdin,
    );
    await writer.close();
  }
  const o = await child.output();
  return { code: o.code, out: decode(o.stdout), err: decode(o.stderr), stdout: o.stdout };
}

/** UTF-8 text of `bytes`. */
export function decode(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** Three clusters of three nodes. */
export const THREE = {
  clusters: [
    { id: "a", nodes: ["a1", "a2", "a3"] },
    { id: "b", nodes: ["b1", "b2", "b3"] },
    { id: "c", nodes: ["c1", "c2", "c3"] },
  ],
};

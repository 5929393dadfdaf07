/**
 * How `koi admin` talks to the nodes it starts (`koi node --supervised`): one JSON line on
 * the node's stdin, `{"config": "<the TOML text the admin loaded>", "secret"?: "<generated>"}`,
 * then nothing; the admin keeps the pipe open for as long as it runs. So every start and
 * restart of a node runs exactly the configuration and secret the admin checked (an edited
 * config.toml or secret file cannot split a cluster), the secret never shows in `ps`, and a
 * node whose admin died, however it died, sees its stdin end and stops.
 *
 * @module
 */
import { ConfigError } from "./_error.ts";

/** How long a supervised node waits for its start line, in milliseconds. */
export const SUPERVISED_START_TIMEOUT_MS = 10_000;

/** The largest first line read, in bytes: a config text with room to spare. */
export const SUPERVISED_LINE_BYTES_MAX = 4 << 20;

/** What the admin sends its node. */
export interface SupervisedStart {
  /** The config text, as the admin loaded it. */
  readonly config: string;
  /** The generated secret for clusters without their own, if any. */
  readonly secret?: string;
}

/** Encodes the line the admin writes to a node's stdin. */
export function encodeSupervisedStart(start: SupervisedStart): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(start) + "\n");
}

/**
 * Reads the first line of `stream` as a {@linkcode SupervisedStart}; returns it with
 * `ended`, which resolves when the stream ends (the admin is gone). Throws ConfigError
 * (field `--supervised`) when the line is missing, too long or malformed.
 */
export async function readSupervisedStart(
  stream: ReadableStream<Uint8Array>,
  timeoutMs: number = SUPERVISED_START_TIMEOUT_MS,
): Promise<{ start: SupervisedStart; ended: Promise<void> }> {
  const reader = stream.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(bad(`no start line on stdin within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([readStart(reader), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

async function readStart(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<{ start: SupervisedStart; ended: Promise<void> }> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let rest: Uint8Array | undefined;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) throw bad("stdin ended before the admin's start line");
    const newline = value.indexOf(0x0a);
    const take = newline < 0 ? value : value.subarray(0, newline);
    size += take.length;
    if (size > SUPERVISED_LINE_BYTES_MAX) {
      throw bad(`the start line is over ${SUPERVISED_LINE_BYTES_MAX} bytes`);
    }
    chunks.push(take);
    if (newline >= 0) {
      rest = value.subarray(newline + 1);
      break;
    }
  }
  void rest; // the admin sends nothing after its line
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw bad("the start line is not JSON");
  }
  const p = parsed as Record<string, unknown> | null;
  if (
    typeof p !== "object" || p === null || typeof p.config !== "string" ||
    (p.secret !== undefined && typeof p.secret !== "string") ||
    Object.keys(p).some((k) => k !== "config" && k !== "secret")
  ) {
    throw bad('the start line must be {"config": string, "secret"?: string}');
  }
  const ended = (async () => {
    try {
      while (!(await reader.read()).done) { /* the admin never writes more */ }
    } catch { /* a read error means the pipe is gone too */ }
  })();
  return {
    start: { config: p.config, ...(p.secret === undefined ? {} : { secret: p.secret }) },
    ended,
  };
}

function bad(why: string): ConfigError {
  return new ConfigError(
    "--supervised",
    `Invalid --supervised start: ${why} (this flag is for koi admin, which starts its nodes so)`,
  );
}

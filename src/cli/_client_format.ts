/**
 * The output of `koi client`: the status table, JSON lines, raw bytes on stdout, and keys
 * shown as text or base64url.
 *
 * @module
 */
import type { DeploymentStatus } from "../client/mod.ts";
import { encodeBase64Url, printableText, showKey, UNPRINTABLE } from "../client/_bytes.ts";

export { printableText };

const UNPRINTABLE_ALL = new RegExp(UNPRINTABLE.source, "g");

/**
 * `text` safe to print on a terminal: each control character (escape sequences, line
 * breaks, C1 controls) and each mark that reorders text shows as `\xNN` or `\u{NNNN}`.
 * For text a server supplied: node ids, roles, error messages.
 */
export function terminalSafe(text: string): string {
  return text.replace(UNPRINTABLE_ALL, (char) => {
    const code = char.codePointAt(0)!;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
  });
}

/** The `koi client status` table of a `/v1/clusters` answer. */
export function formatStatus(status: DeploymentStatus): string {
  const headers = [
    "CLUSTER",
    "NODE",
    "HTTP",
    "ROLE",
    "LEADER",
    "TERM",
    "COMMIT",
    "APPLIED",
    "KEYS",
    "PID",
    "RESTARTS",
  ];
  const numeric = new Set(["TERM", "COMMIT", "APPLIED", "KEYS", "PID", "RESTARTS"]);
  const anyError = status.clusters.some((c) => c.nodes.some((n) => !n.reachable || n.error));
  if (anyError) headers.push("ERROR");
  const rows: string[][] = [];
  for (const cluster of status.clusters) {
    for (const node of cluster.nodes) {
      const s = node.status;
      const cell = (v: unknown) =>
        v === undefined || v === null || v === "" ? "-" : terminalSafe(String(v));
      const row = [
        terminalSafe(cluster.id),
        terminalSafe(node.id),
        terminalSafe(node.http),
        s === null ? "unreachable" : terminalSafe(s.role),
        cell(s?.leader),
        cell(s?.term),
        cell(s?.commit),
        cell(s?.applied),
        cell(s?.keys),
        cell(node.pid),
        cell(node.restarts),
      ];
      if (anyError) row.push(terminalSafe(node.error || (node.reachable ? "" : "unreachable")));
      rows.push(row);
    }
  }
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = "+" + widths.map((w) => "-".repeat(w + 2)).join("+") + "+";
  const format = (cells: string[], header: boolean) =>
    "| " +
    cells.map((c, i) =>
      !header && numeric.has(headers[i]) ? c.padStart(widths[i]) : c.padEnd(widths[i])
    ).join(" | ") +
    " |";
  const leaderless = status.clusters.filter((c) => c.leader === "").map((c) => terminalSafe(c.id));
  const summary = `routing epoch ${status.epoch}, scheme ${terminalSafe(status.scheme)}, ` +
    (status.healthy
      ? "healthy"
      : `NOT healthy${leaderless.length ? `: no leader in ${leaderless.join(", ")}` : ""}`);
  return [
    summary,
    line,
    format(headers, true),
    line,
    ...rows.map((r) => format(r, false)),
    line,
  ].join("\n");
}

/**
 * Stdout was closed by its reader (`koi client get k | head -c 10`): the command stops
 * writing and ends quietly, as a Unix tool stopped by SIGPIPE does, but with exit 0 (the
 * reader chose to stop; that is no failure of the command).
 */
export class StdoutClosed extends Error {
  /** @param cause the `BrokenPipe` of the write */
  constructor(cause: unknown) {
    super("stdout is closed", { cause });
    this.name = "StdoutClosed";
  }
}

/** A line feed, to end a value printed on a terminal. */
export const NEWLINE = new Uint8Array([0x0a]);

/** Writes all of `bytes` to stdout; throws {@linkcode StdoutClosed} once nobody reads it. */
export async function writeAll(bytes: Uint8Array): Promise<void> {
  let written = 0;
  try {
    while (written < bytes.length) written += await Deno.stdout.write(bytes.subarray(written));
  } catch (error) {
    if (error instanceof Deno.errors.BrokenPipe) throw new StdoutClosed(error);
    throw error;
  }
}

const encoder = new TextEncoder();

/** Writes `lines` to stdout, each ending with a line feed (see {@linkcode writeAll}). */
export async function printLines(lines: readonly string[]): Promise<void> {
  if (lines.length > 0) await writeAll(encoder.encode(lines.join("\n") + "\n"));
}

/** Prints `value` as one line of JSON. */
export async function printJson(value: unknown): Promise<void> {
  await printLines([JSON.stringify(value)]);
}

/** A key for a message: quoted text when printable, else `base64url:<b64>`. */
export const printable: (key: Uint8Array) => string = showKey;

/** A key on a line of its own: the text when printable, else `base64url:<b64>`. */
export function lineKey(key: Uint8Array): string {
  return printableText(key) ?? `base64url:${encodeBase64Url(key)}`;
}

/** `text` as one shell word (quoted when it must be). */
export function shellQuote(text: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

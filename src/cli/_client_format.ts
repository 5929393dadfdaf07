/**
 * The output of `koi client`: the status table, JSON lines, raw bytes on stdout, and keys
 * shown as text or base64url.
 *
 * @module
 */
import type { DeploymentStatus } from "../client/mod.ts";
import { encodeBase64Url, utf8Exact } from "../client/_bytes.ts";

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
      const cell = (v: unknown) => (v === undefined || v === null || v === "" ? "-" : String(v));
      const row = [
        cluster.id,
        node.id,
        node.http,
        s === null ? "unreachable" : s.role,
        cell(s?.leader),
        cell(s?.term),
        cell(s?.commit),
        cell(s?.applied),
        cell(s?.keys),
        cell(node.pid),
        cell(node.restarts),
      ];
      if (anyError) row.push(node.error || (node.reachable ? "" : "unreachable"));
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
  const leaderless = status.clusters.filter((c) => c.leader === "").map((c) => c.id);
  const summary = `routing epoch ${status.epoch}, scheme ${status.scheme}, ` +
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

/** Prints `value` as one line of JSON. */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value));
}

/** A line feed, to end a value printed on a terminal. */
export const NEWLINE = new Uint8Array([0x0a]);

/** Writes all of `bytes` to stdout. */
export async function writeAll(bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await Deno.stdout.write(bytes.subarray(written));
}

/** The key as text when it is UTF-8 without control characters (one line), else undefined. */
export function printableText(key: Uint8Array): string | undefined {
  const text = utf8Exact(key);
  // deno-lint-ignore no-control-regex
  return text === undefined || /[\x00-\x1f\x7f]/.test(text) ? undefined : text;
}

/** A key for a message: quoted text when printable, else `base64url:<b64>`. */
export function printable(key: Uint8Array): string {
  const text = printableText(key);
  return text === undefined ? `base64url:${encodeBase64Url(key)}` : JSON.stringify(text);
}

/** A key on a line of its own: the text when printable, else `base64url:<b64>`. */
export function lineKey(key: Uint8Array): string {
  return printableText(key) ?? `base64url:${encodeBase64Url(key)}`;
}

/** `text` as one shell word (quoted when it must be). */
export function shellQuote(text: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

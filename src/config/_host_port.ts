/** Parsing of `"host:port"` addresses. */

import { ConfigError } from "./_error.ts";
import { HOSTNAME_CHARS_MAX, type HostPort, PORT_MAX, PORT_MIN } from "./_schema.ts";
import { show } from "./_show.ts";

const IPV4_PATTERN = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
// RFC 1123 labels; "_" is tolerated because container runtimes name services with it.
const HOSTNAME_LABEL_PATTERN = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
const PORT_PATTERN = /^[1-9][0-9]{0,4}$/;

/**
 * Parses `"host:port"`: host is an IPv4 address, a bracketed IPv6 address (`"[::1]:7000"`) or
 * a hostname; port is an integer in 1..65535. Throws {@link ConfigError} about `field`.
 */
export function parseHostPort(text: string, field: string): HostPort {
  const bad = (problem: string): never => {
    throw new ConfigError(field, `Invalid config field ${field}: ${problem}, got ${show(text)}`);
  };
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") bad(`must be "[ipv6]:port"`);
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (ipv6Canonical(host) === undefined) bad(`"${host}" is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) bad(`must be "host:port"`);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) bad(`an IPv6 host must be in brackets, as in "[::1]:7000"`);
    if (host === "") bad(`the host is missing`);
    const problem = hostProblem(host);
    if (problem !== undefined) bad(problem);
  }
  const port = Number(portText);
  if (!PORT_PATTERN.test(portText) || port < PORT_MIN || port > PORT_MAX) {
    bad(`the port must be an integer between ${PORT_MIN} and ${PORT_MAX}`);
  }
  return { host, port, text };
}

/**
 * The key two addresses are compared by: the lower-cased host (IPv6 in canonical form) and
 * the port. Names that resolve alike ("localhost" and "127.0.0.1") are not detected.
 */
export function addressKey(address: HostPort): string {
  const host = address.host.includes(":")
    ? ipv6Canonical(address.host)!
    : address.host.toLowerCase();
  return `${host}:${address.port}`;
}

/** Why `host` (not bracketed) is neither an IPv4 address nor a hostname, or undefined. */
function hostProblem(host: string): string | undefined {
  const labels = host.split(".");
  // A name whose last label is numeric is meant as an IPv4 address (RFC 1123 section 2.1).
  if (/^[0-9]+$/.test(labels[labels.length - 1])) {
    const match = IPV4_PATTERN.exec(host);
    const octets = match?.slice(1) ?? [];
    const ok = octets.length === 4 &&
      octets.every((octet) => Number(octet) <= 255 && (octet === "0" || !octet.startsWith("0")));
    return ok ? undefined : `"${host}" is not an IPv4 address`;
  }
  const ok = host.length <= HOSTNAME_CHARS_MAX &&
    labels.every((label) => HOSTNAME_LABEL_PATTERN.test(label));
  return ok ? undefined : `"${host}" is not a valid hostname`;
}

/** The canonical text of an IPv6 address, or undefined when `host` is not one. */
function ipv6Canonical(host: string): string | undefined {
  if (!/^[0-9A-Fa-f:.]+$/.test(host) || !host.includes(":")) return undefined;
  try {
    return new URL(`http://[${host}]/`).hostname; // the WHATWG parser validates IPv6 fully
  } catch {
    return undefined;
  }
}

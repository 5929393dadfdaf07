/**
 * The key the HTTP server counts a client's connections by, for its per-address bound.
 *
 * @module
 */

/** Hextets of an IPv6 address that name its network: one host usually holds a whole /64. */
export const IPV6_PREFIX_HEXTETS = 4;

/**
 * The key of a remote address: an IPv4 address as it is (also when IPv4-mapped, as a dual-stack
 * listener shows it), an IPv6 address by its /64 (`2001:db8:0:1::/64`: an attacker with one
 * host has 2^64 addresses to spread over, a bound per address would not hold him), "" when
 * unknown (a socket closed before it was looked at).
 */
export function remoteAddressKey(address: string | undefined): string {
  if (address === undefined) return "";
  if (!address.includes(":")) return address;
  let text = address.toLowerCase();
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  if (text.startsWith("::ffff:") && text.includes(".")) return text.slice("::ffff:".length);
  const gap = text.indexOf("::");
  const head = (gap < 0 ? text : text.slice(0, gap)).split(":").filter((h) => h !== "");
  const tail = gap < 0 ? [] : text.slice(gap + 2).split(":").filter((h) => h !== "");
  // An embedded IPv4 address (`64:ff9b::192.0.2.1`) is two hextets; only its length matters
  // here: a /64 never reaches it.
  const tailLength = tail.reduce((n, h) => n + (h.includes(".") ? 2 : 1), 0);
  const hextets = [...head, ...Array(Math.max(0, 8 - head.length - tailLength)).fill("0"), ...tail];
  const prefix = hextets.slice(0, IPV6_PREFIX_HEXTETS).map((h) => {
    const value = Number.parseInt(h, 16);
    return Number.isNaN(value) ? h : value.toString(16);
  });
  return `${prefix.join(":")}::/64`;
}

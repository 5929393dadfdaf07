/**
 * Free loopback ports for tests, demos and scripts that run a deployment next to anything
 * else on the machine (not part of the product: `koi` itself binds what config.toml says).
 *
 * @module
 */

/**
 * The lowest port of the OS's ephemeral range (the ports it hands to `listen(0)` and to the
 * local end of every outgoing connection): 32768 when Linux's setting cannot be read.
 */
function ephemeralLow(): number {
  try {
    const text = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range");
    const low = Number(text.trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > FREE_PORTS_LOW + 1_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** The lowest port {@linkcode freePorts} hands out (above the well-known and most services'). */
export const FREE_PORTS_LOW = 10_000;

/**
 * Ports at or above {@linkcode FREE_PORTS_LOW} that `fetch` refuses to connect to (the Fetch
 * standard's "bad ports"): a node there could not be reached by koi's client (seen in CI:
 * "Requests to port 10080 are blocked").
 */
export const FETCH_BLOCKED_PORTS: readonly number[] = [10_080];

/** How many ports {@linkcode freePorts} tries before it gives up. */
export const FREE_PORTS_TRIES = 20_000;

/**
 * Ports free right now (all bound at once, then released), none of them in `avoid`. They are
 * drawn at random below the OS's ephemeral range: a port of that range is also the local end
 * of any outgoing connection on the machine, so between this pick and the deployment's bind
 * one of the tests running next to it may take it (seen in CI: "already in use" for a node's
 * http). Ports a deployment has picked but not bound yet look free too, hence `avoid`.
 * `random` draws them (tests).
 */
export function freePorts(
  n: number,
  avoid: Iterable<number> = [],
  random: () => number = Math.random,
): number[] {
  const taken = new Set([...avoid, ...FETCH_BLOCKED_PORTS]);
  const high = ephemeralLow() - 1;
  const listeners: Deno.Listener[] = [];
  const ports: number[] = [];
  try {
    for (let tries = 0; ports.length < n; tries++) {
      if (tries >= FREE_PORTS_TRIES) {
        throw new Error(
          `freePorts: found ${ports.length} of ${n} free ports in ${FREE_PORTS_TRIES} tries ` +
            `between ${FREE_PORTS_LOW} and ${high}`,
        );
      }
      const port = FREE_PORTS_LOW + Math.floor(random() * (high - FREE_PORTS_LOW + 1));
      if (taken.has(port)) continue;
      let listener: Deno.Listener;
      try {
        listener = Deno.listen({ hostname: "127.0.0.1", port });
      } catch (error) {
        if (error instanceof Deno.errors.AddrInUse) continue;
        throw error;
      }
      listeners.push(listener); // held open until the end, so no port comes twice
      taken.add(port);
      ports.push(port);
    }
  } finally {
    for (const l of listeners) l.close();
  }
  return ports;
}

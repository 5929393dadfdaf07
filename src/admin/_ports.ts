/**
 * Before the admin spawns anything: every address of config.toml must be free, or the
 * operator hears which field names the taken one (and not, seconds later, that some node
 * died of an `AddrInUse`).
 *
 * @module
 */
import type { HostPort, KoiConfig } from "../config/mod.ts";

/** One address of the config with the TOML path of its field. */
export interface ConfigAddress {
  /** The TOML path, e.g. `clusters[1].nodes[0].raft`. */
  readonly field: string;
  /** The address. */
  readonly address: HostPort;
}

/**
 * Every address of `config` (the admin's own, `admin.http` and `kv_connect.listen`, then each
 * node's raft and http), with its field.
 */
export function configAddresses(config: KoiConfig): ConfigAddress[] {
  const out: ConfigAddress[] = [{ field: "admin.http", address: config.admin.http }];
  if (config.kvConnect !== undefined) {
    out.push({ field: "kv_connect.listen", address: config.kvConnect.listen });
  }
  config.clusters.forEach((cluster, c) =>
    cluster.nodes.forEach((node, n) => {
      out.push({ field: `clusters[${c}].nodes[${n}].raft`, address: node.raft });
      out.push({ field: `clusters[${c}].nodes[${n}].http`, address: node.http });
    })
  );
  return out;
}

/** The addresses the admin itself listens on (with `--no-spawn`, the only ones it checks). */
export function adminAddresses(config: KoiConfig): ConfigAddress[] {
  return configAddresses(config).filter((a) => !a.field.startsWith("clusters["));
}

/** Some addresses of config.toml are in use by another process. */
export class AddressesTakenError extends Error {
  /** The taken addresses, each with its field. */
  readonly taken: readonly ConfigAddress[];

  /** Creates the error naming every taken field. */
  constructor(taken: readonly ConfigAddress[]) {
    const list = taken.map((t) => `${t.field} (${t.address.text})`).join(", ");
    super(
      `${taken.length === 1 ? "An address" : `${taken.length} addresses`} of the config ` +
        `${taken.length === 1 ? "is" : "are"} already in use: ${list}. Stop what listens ` +
        `there (an earlier admin's nodes? see "ss -ltnp"), or change ` +
        `${taken.length === 1 ? "that field" : "those fields"}.`,
    );
    this.name = "AddressesTakenError";
    this.taken = taken;
  }
}

/**
 * Throws {@linkcode AddressesTakenError} listing every address of `addresses` that cannot be
 * bound right now. Binds each for an instant; a hostname that does not resolve counts as
 * taken, with the OS's reason.
 */
export function checkAddressesFree(addresses: readonly ConfigAddress[]): void {
  const taken: ConfigAddress[] = [];
  for (const entry of addresses) {
    try {
      const listener = Deno.listen({ hostname: entry.address.host, port: entry.address.port });
      listener.close();
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) taken.push(entry);
      else {
        throw new Error(
          `Cannot listen on ${entry.field} (${entry.address.text}): ${(error as Error).message}`,
        );
      }
    }
  }
  if (taken.length > 0) throw new AddressesTakenError(taken);
}

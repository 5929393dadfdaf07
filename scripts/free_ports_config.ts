/**
 * Writes a copy of a deployment file with every address moved to a free port on 127.0.0.1
 * and every data directory under a new folder, so that a test or a demo can run the default
 * deployment next to anything else on the machine.
 *
 * Usage: deno run -A scripts/free_ports_config.ts [--from config.toml] --dir <folder>
 * Prints the path of the written `<folder>/config.toml`. The data directories keep their
 * relative names (`data/a1`, ...), so they land in `<folder>/data/`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parse, stringify } from "smol-toml";
import { FREE_PORTS_LOW, FREE_PORTS_TRIES, freePorts } from "../src/config/_free_ports.ts";

export { FREE_PORTS_LOW, FREE_PORTS_TRIES, freePorts };

/** Every port written as `host:port` in `text` (a deployment file), for `freePorts`' avoid. */
export function portsIn(text: string): number[] {
  return [...text.matchAll(/:(\d{1,5})"/g)].map((m) => Number(m[1]));
}

/** The TOML text of `source` with fresh loopback ports for every address. */
export function withFreePorts(source: string): string {
  // deno-lint-ignore no-explicit-any
  const doc = parse(source) as any;
  const nodes = (doc.clusters ?? []).flatMap((c: { nodes?: unknown[] }) => c.nodes ?? []);
  const ports = freePorts(2 + 2 * nodes.length);
  doc.admin = { ...(doc.admin ?? {}), http: `127.0.0.1:${ports[0]}` };
  if (doc.kv_connect !== undefined) {
    doc.kv_connect = { ...doc.kv_connect, listen: `127.0.0.1:${ports[1 + 2 * nodes.length]}` };
  }
  nodes.forEach((node: Record<string, unknown>, i: number) => {
    node.raft = `127.0.0.1:${ports[1 + 2 * i]}`;
    node.http = `127.0.0.1:${ports[2 + 2 * i]}`;
  });
  return stringify(doc);
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { from: { type: "string" }, dir: { type: "string" } },
    strict: true,
  });
  if (values.dir === undefined) {
    console.error("Usage: free_ports_config.ts [--from config.toml] --dir <folder>");
    Deno.exit(2);
  }
  const from = values.from ?? new URL("../config.toml", import.meta.url).pathname;
  await Deno.mkdir(values.dir, { recursive: true });
  const out = `${values.dir}/config.toml`;
  await Deno.writeTextFile(out, withFreePorts(await Deno.readTextFile(from)));
  console.log(out);
}

/**
 * The resharding part of scripts/test-multiple-clusters.sh: grows the running deployment by a
 * cluster `d` of three nodes with `koi admin reshard` and shrinks it back, while clients
 * write; then reads back every acknowledged write. Prints the keys moved against the ideal
 * fraction for each move and the writes acknowledged meanwhile. Adds the PIDs of the nodes it
 * sees to `--pids` so that the script can stop them whatever happens. Exit 1 on a failed check.
 *
 * Usage: deno run -A scripts/reshard_check.ts --admin <url> --config <running config.toml>
 *        [--pids file] [--writers 8]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { parse, stringify } from "smol-toml";
import { connect, type KoiClient } from "../mod.ts";
import { freePorts } from "./free_ports_config.ts";

const ROOT = new URL("../", import.meta.url).pathname;

function fail(message: string): never {
  console.error(`check failed: ${message}`);
  Deno.exit(1);
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    admin: { type: "string" },
    config: { type: "string" },
    pids: { type: "string" },
    writers: { type: "string", default: "8" },
  },
});
if (values.admin === undefined || values.config === undefined) {
  fail("usage: --admin <url> --config <config.toml>");
}
const adminUrl = values.admin;
const configPath = values.config;
const dir = dirname(configPath);

// deno-lint-ignore no-explicit-any
const running = parse(await Deno.readTextFile(configPath)) as any;
const epoch = running.routing?.epoch ?? 1;
const ports = freePorts(6);
const grown = structuredClone(running);
grown.routing = { ...(running.routing ?? {}), epoch: epoch + 1 };
grown.clusters.push({
  id: "d",
  nodes: [0, 1, 2].map((i) => ({
    id: `d${i + 1}`,
    raft: `127.0.0.1:${ports[2 * i]}`,
    http: `127.0.0.1:${ports[2 * i + 1]}`,
    data: `data/d${i + 1}`,
  })),
});
const shrunk = structuredClone(running);
shrunk.routing = { ...(running.routing ?? {}), epoch: epoch + 2 };
const grownPath = join(dir, "grown.toml");
const shrunkPath = join(dir, "shrunk.toml");
await Deno.writeTextFile(grownPath, stringify(grown));
await Deno.writeTextFile(shrunkPath, stringify(shrunk));

async function notePids(): Promise<void> {
  if (values.pids === undefined) return;
  const body = await (await fetch(`${adminUrl}/v1/clusters`)).json();
  const pids = body.clusters.flatMap((c: { nodes: { pid: number | null }[] }) =>
    c.nodes.map((n) => n.pid).filter((p) => p !== null)
  );
  await Deno.writeTextFile(values.pids, pids.join("\n") + "\n", { append: true });
}

async function reshard(path: string): Promise<string> {
  const watcher = setInterval(() => notePids().catch(() => {}), 1_000);
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        `${ROOT}deno.json`,
        `${ROOT}cli.ts`,
        "admin",
        "reshard",
        "--config",
        path,
      ],
      stdin: "null",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    if (out.code !== 0) fail(`koi admin reshard --config ${path} exited ${out.code}:\n${text}`);
    return text;
  } finally {
    clearInterval(watcher);
  }
}

/** The last acknowledged value per key; a key whose last write's outcome is unknown is dropped. */
const acked = new Map<string, string>();
let writes = 0;
let unknown = 0;
let writing = true;
const client: KoiClient = await connect(adminUrl);
// The writers overwrite keys that exist before the moves: the keys held stay the same, and the
// keys moved compare with the ideal fraction of them.
const KEYS_PER_WRITER = 300;
for (let w = 0; w < Number(values.writers); w++) {
  await Promise.all(Array.from({ length: KEYS_PER_WRITER }, async (_, i) => {
    await client.put(`resharded-${w}-${i}`, `${w}:0`);
    acked.set(`resharded-${w}-${i}`, `${w}:0`);
  }));
}
const writers = Array.from({ length: Number(values.writers) }, async (_, w) => {
  let n = 0;
  while (writing) {
    const key = `resharded-${w}-${n % KEYS_PER_WRITER}`;
    const value = `${w}:${++n}`;
    try {
      await client.put(key, value);
      acked.set(key, value);
      writes++;
    } catch {
      unknown++;
      acked.delete(key); // it may or may not have applied: nothing to check for this key now
    }
  }
});

const before = Date.now();
const grow = await reshard(grownPath);
const grewAt = Date.now();
const done = (text: string) => text.split("\n").find((l) => l.startsWith("done:")) ?? "";
const meanwhile = (text: string) =>
  text.split("\n").find((l) => l.startsWith("clients meanwhile")) ?? "";
console.log(`grew 3 -> 4 clusters: ${done(grow)}`);
console.log(`  ${meanwhile(grow)}`);
const carp = await (await fetch(`${adminUrl}/v1/carp`)).json();
if (carp.clusters.length !== 4) {
  fail(`the table has ${carp.clusters.length} clusters after growing`);
}
const shrink = await reshard(shrunkPath);
console.log(`shrank 4 -> 3 clusters: ${done(shrink)}`);
console.log(`  ${meanwhile(shrink)}`);
writing = false;
await Promise.all(writers);
client.close();
const after = await (await fetch(`${adminUrl}/v1/carp`)).json();
if (after.clusters.length !== 3 || after.epoch !== epoch + 2) {
  fail(`the table after shrinking: epoch ${after.epoch}, ${after.clusters.length} clusters`);
}
console.log(
  `${writes} writes acknowledged during the moves (${
    ((grewAt - before) / 1000).toFixed(1)
  } s and ` +
    `${((Date.now() - grewAt) / 1000).toFixed(1)} s), ${unknown} not`,
);
const reader = await connect(adminUrl);
let checked = 0;
for (const [key, value] of acked) {
  const got = await reader.getText(key);
  if (got?.value !== value) {
    fail(`${key}: read ${JSON.stringify(got?.value)}, acknowledged ${value}`);
  }
  checked++;
}
reader.close();
console.log(`all ${checked} keys' last acknowledged writes read back after 3 -> 4 -> 3`);

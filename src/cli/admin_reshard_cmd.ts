/**
 * `koi admin reshard --config new.toml`: asks the running admin to move the deployment to the
 * routing of new.toml (docs/resharding.md) and shows the move's progress until it is done.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError, type KoiConfig, loadConfigSource, readSecretFile } from "../config/mod.ts";
import { progressBar } from "../bench/_progress.ts";

/** The usage of `koi admin reshard`. */
export const ADMIN_RESHARD_USAGE = `Usage: koi admin reshard --config <new.toml> [options]

Moves a running deployment to the clusters and load factors of new.toml, online: the
running admin (at new.toml's admin.http) starts the nodes of added clusters, moves exactly
the keys whose owner changes, in batches, while clients go on reading and writing, then
stops drained clusters. new.toml is the running config with [routing] epoch + 1 and the
clusters and load factors changed; the admin section and the nodes of kept clusters stay as
they are. Shows the progress until the move is done (Ctrl-C stops watching; the move goes
on). Afterwards, start the admin with --config new.toml. See docs/resharding.md.

Options:
  -c, --config <path>      the new deployment file (required)
      --secret-file <path> the deployment's secret (default: the config's secret, else
                           <admin.data>/secret, which the admin generated)
      --no-wait            start the move and exit without watching it
  -h, --help               show this help

Exit codes: 0 the move is done (or started, with --no-wait), 1 the admin refused it or
cannot be reached, 2 usage or configuration error.`;

/** Polling interval of the progress, in milliseconds. */
const POLL_MS = 500;

interface Progress {
  state: "running" | "done" | "failed";
  fromEpoch: number;
  toEpoch: number;
  keysMoved: number;
  batches: number;
  keysAtStart: number;
  idealFraction: number;
  sources: { id: string; moved: number; done: boolean }[];
  startedAt: number;
  endedAt: number;
  error: string;
  throughput?: {
    samples: number;
    readsPerSecondAvg: number;
    writesPerSecondAvg: number;
    writesPerSecondMin: number;
  };
}

async function secretOf(config: KoiConfig, file: string | undefined): Promise<string> {
  if (file !== undefined) return await readSecretFile(file);
  const own = config.clusters.flatMap((c) => c.nodes).find((n) => n.secret !== undefined)?.secret;
  if (own !== undefined) return own;
  return await readSecretFile(`${config.admin.dataDir}/secret`, "admin.data");
}

/** Runs `koi admin reshard <args>`; returns the exit code. */
export async function adminReshardCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string", short: "c" },
      "secret-file": { type: "string" },
      "no-wait": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(ADMIN_RESHARD_USAGE);
    return 0;
  }
  if (values.config === undefined) {
    throw new ConfigError("--config", "koi admin reshard needs --config <new.toml>");
  }
  const { config, text } = await loadConfigSource(values.config);
  const secret = await secretOf(config, values["secret-file"]);
  const tls = config.admin.tls;
  const client = tls === undefined
    ? undefined
    : Deno.createHttpClient({ caCerts: [await Deno.readTextFile(tls.ca)] });
  const base = `${tls === undefined ? "http" : "https"}://${config.admin.http.text}`;
  const call = (init: RequestInit = {}) =>
    fetch(`${base}/v1/reshard`, {
      ...init,
      ...(client === undefined ? {} : { client }),
      signal: AbortSignal.timeout(30_000),
    });
  let answer: Response;
  try {
    answer = await call({
      method: "POST",
      headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
      body: JSON.stringify({ path: config.path, config: text }),
    });
  } catch (error) {
    console.error(`koi admin reshard: cannot reach the admin at ${base}: ${error}`);
    return 1;
  }
  const body = await answer.json().catch(() => ({}));
  if (answer.status !== 202) {
    console.error(
      `koi admin reshard: the admin refused the move (${answer.status}): ` +
        `${body.error?.message ?? JSON.stringify(body)}`,
    );
    return 1;
  }
  const started = body as Progress;
  console.error(
    `moving to epoch ${started.toEpoch}: an ideal hash moves ` +
      `${(started.idealFraction * 100).toFixed(1)}% of the keys`,
  );
  if (values["no-wait"]) return 0;
  return await watch(call, started);
}

async function watch(call: () => Promise<Response>, first: Progress): Promise<number> {
  // The keys the deployment holds are counted once the move starts: the total follows.
  let expected = Math.max(1, Math.round(first.idealFraction * first.keysAtStart));
  const tty = Deno.stderr.isTerminal();
  const bar = tty ? progressBar("{bar} {percentage}% | {value} keys moved | {sources}") : undefined;
  bar?.start(expected, 0, { sources: "" });
  let lastLine = 0;
  let lastError = "";
  for (;;) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    let p: Progress;
    try {
      const r = await call();
      if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
      p = await r.json();
    } catch (error) {
      bar?.stop();
      console.error(`koi admin reshard: lost the admin (${error}); the move goes on there`);
      return 1;
    }
    const sources = p.sources.map((s) => `${s.id}${s.done ? " done" : ""}`).join(", ");
    const total = Math.max(1, Math.round(p.idealFraction * p.keysAtStart));
    if (total !== expected) {
      expected = total;
      bar?.setTotal(expected);
    }
    if (bar !== undefined) {
      bar.update(Math.min(p.keysMoved, expected), { sources });
    } else if (Date.now() - lastLine > 2_000 || p.state !== "running") {
      lastLine = Date.now();
      console.error(`${p.keysMoved} keys moved in ${p.batches} batches (${sources})`);
    }
    if (p.error !== "" && p.error !== lastError) {
      lastError = p.error;
      bar?.stop();
      console.error(`the admin retries after: ${p.error}`);
      bar?.start(expected, Math.min(p.keysMoved, expected), { sources });
    }
    if (p.state === "done") {
      bar?.update(expected, { sources });
      bar?.stop();
      const seconds = ((p.endedAt - p.startedAt) / 1000).toFixed(1);
      const share = p.keysAtStart === 0 ? 0 : p.keysMoved / p.keysAtStart;
      console.error(
        `done: ${p.keysMoved} keys moved (${(share * 100).toFixed(1)}% of ${p.keysAtStart}; ` +
          `ideal ${(p.idealFraction * 100).toFixed(1)}%) in ${seconds} s; epoch ${p.toEpoch} ` +
          `is in force. Start the admin with this config from now on.`,
      );
      const t = p.throughput;
      if (t !== undefined && t.samples > 0) {
        console.error(
          `clients meanwhile: ${t.writesPerSecondAvg.toFixed(0)} writes/s on average (lowest ` +
            `${t.writesPerSecondMin.toFixed(0)}), ${t.readsPerSecondAvg.toFixed(0)} reads/s, ` +
            `over ${t.samples} one-second samples`,
        );
      }
      return 0;
    }
  }
}

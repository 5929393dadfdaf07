/**
 * A reshard's life in the admin (docs/resharding.md): `koi admin reshard` posts the new
 * config; the runner checks it, records the move in `<admin.data>/reshard.json`, starts the
 * new clusters' nodes, runs the move (retrying after a failure, from the clusters' cursors),
 * then makes the new config the deployment's, stops the drained clusters and forgets the
 * record. An admin started while the record exists resumes the move.
 *
 * @module
 */
import { dirname } from "node:path";
import { ConfigError, type KoiConfig, parseConfig } from "../config/mod.ts";
import type { MoveTransport } from "./_move_transport.ts";
import { planReshard, type ReshardPlan } from "./_reshard_plan.ts";
import { Resharder, type ReshardProgress } from "./_reshard.ts";

/** The record's file name inside the admin's state directory. */
export const RESHARD_RECORD_FILE = "reshard.json";
/** Pause before a failed move is tried again, in milliseconds. */
export const RESHARD_RETRY_MS = 5_000;
/** Largest config text a reshard takes, in bytes. */
export const RESHARD_CONFIG_BYTES_MAX = 256 * 1024;

/** What the admin lends the runner. */
export interface ReshardHost {
  /** The deployment's state directory. */
  readonly dataDir: string;
  /** The clusters. */
  readonly transport: MoveTransport;
  /** The config the admin runs now (secrets resolved). */
  config(): KoiConfig;
  /** Adds the secret the admin generated, where a config sets none. */
  withSecret(config: KoiConfig): KoiConfig;
  /**
   * Runs the deployment as `config`: polls its nodes, starts those of `added` clusters (each
   * started with `text`, the config it belongs to), stops those of `removed` ones.
   */
  reshape(
    config: KoiConfig,
    changes: {
      added?: { ids: readonly string[]; text: string; path: string };
      removed?: readonly string[];
    },
  ): Promise<void>;
  /**
   * Resolves once no cluster's transactions name one of `drained` (see `_drain_txns.ts`):
   * only then may their nodes stop.
   */
  settleDrained(drained: readonly string[], signal: AbortSignal): Promise<void>;
  /** Resolves once every cluster of the config has a leader. */
  leaders(signal: AbortSignal): Promise<void>;
  /** Keys the deployment holds now (from a status poll that starts after the call). */
  keys(signal: AbortSignal): Promise<number>;
  /** Records the routing the deployment runs (`routing.json`). */
  recordRouting(config: KoiConfig): Promise<void>;
  /** One line for the admin's output. */
  log(line: string): void;
  /**
   * Throws `ReshardPlanError` when a cluster the plan adds cannot start: an address taken
   * (named by its field in the new config) or a data directory that holds an earlier state.
   */
  checkAdded(plan: ReshardPlan): Promise<void>;
  /** The clients' request rates now, summed over clusters (the status page's). */
  rates(): { readsPerSecond: number; writesPerSecond: number };
}

/** What clients did while a move ran: once a second, the deployment's request rates. */
export interface MoveThroughput {
  readonly samples: number;
  readonly readsPerSecondAvg: number;
  readonly writesPerSecondAvg: number;
  /** The lowest write rate of a sample (a stall shows here). */
  readonly writesPerSecondMin: number;
}

interface Record {
  readonly version: 1;
  readonly from: { readonly text: string; readonly path: string };
  readonly to: { readonly text: string; readonly path: string };
  readonly startedAt: number;
}

/**
 * At admin start: a move that an earlier admin left running resumes from the config it began
 * with; an admin started with the new config meanwhile is refused (exit 2), saying which.
 */
export async function checkReshardRecord(dir: string, config: KoiConfig): Promise<void> {
  let record: Record;
  try {
    record = JSON.parse(await Deno.readTextFile(`${dir}/${RESHARD_RECORD_FILE}`)) as Record;
  } catch {
    return; // none (a damaged one is reported when the move resumes)
  }
  let epoch: number | undefined;
  try {
    const to = record.to;
    epoch = parseConfig(to.text, { baseDir: dirname(to.path), path: to.path }).routing.epoch;
  } catch {
    return; // reported when the move resumes
  }
  if (epoch === config.routing.epoch) {
    throw new ConfigError(
      "routing",
      `A reshard to epoch ${epoch} is under way (${dir}/${RESHARD_RECORD_FILE}): start the ` +
        `admin with the config it began from (${record.from.path}) and it resumes the move; ` +
        `once it is done, start it with ${record.to.path}.`,
    );
  }
}

/** A second reshard while one runs. */
export class ReshardBusyError extends Error {
  /** Creates the error. */
  constructor(epoch: number) {
    super(`A reshard to epoch ${epoch} runs already; wait for it (GET /v1/reshard)`);
    this.name = "ReshardBusyError";
  }
}

/** Runs the deployment's reshards, one at a time. */
export class ReshardRunner {
  readonly #host: ReshardHost;
  readonly #abort = new AbortController();
  #resharder: Resharder | undefined;
  #plan: ReshardPlan | undefined;
  #last: ReshardProgress | undefined;
  #running: Promise<void> | undefined;
  /** Whether clients should route by the next table (begin done everywhere). */
  #published = false;

  /** The text of the config in force: the admin's at start, then each finished move's. */
  #currentText: string;

  readonly #retryMs: number;

  /**
   * @param currentText the text of the config the admin runs
   * @param options `retryMs`: the pause before a failed step is tried again
   */
  constructor(host: ReshardHost, currentText: string, options: { retryMs?: number } = {}) {
    this.#host = host;
    this.#currentText = currentText;
    this.#retryMs = options.retryMs ?? RESHARD_RETRY_MS;
  }

  /** The move running or the last one, for `GET /v1/reshard` and the status page. */
  progress(): (ReshardProgress & { throughput: MoveThroughput }) | undefined {
    let p = this.#resharder?.progress() ?? this.#last;
    if (p === undefined) return undefined;
    // Done once the drained clusters are stopped and the new routing recorded, not before.
    if (p.state === "done" && this.#plan !== undefined) p = { ...p, state: "running", endedAt: 0 };
    const t = this.#throughput;
    return {
      ...p,
      throughput: {
        samples: t.samples,
        readsPerSecondAvg: t.samples === 0 ? 0 : t.reads / t.samples,
        writesPerSecondAvg: t.samples === 0 ? 0 : t.writes / t.samples,
        writesPerSecondMin: t.samples === 0 ? 0 : t.writesMin,
      },
    };
  }

  #throughput = { samples: 0, reads: 0, writes: 0, writesMin: Infinity };

  /** The move whose next table clients route by (with every cluster of both), if any. */
  published(): ReshardPlan | undefined {
    return this.#published ? this.#plan : undefined;
  }

  /**
   * The move that runs but has not begun everywhere yet: clients still route by its old
   * table (the clusters it adds are not in it), whatever the admin polls meanwhile.
   */
  pending(): ReshardPlan | undefined {
    return this.#published ? undefined : this.#plan;
  }

  /** Checks `text` against the running config and starts the move; throws ConfigError. */
  async start(text: string, path: string): Promise<ReshardProgress> {
    if (this.#plan !== undefined) throw new ReshardBusyError(this.#plan.to.epoch);
    const current = this.#host.config();
    const next = this.#host.withSecret(parseConfig(text, { baseDir: dirname(path), path }));
    const plan = planReshard(current, next);
    // Before anything is recorded: an added cluster whose addresses are taken, or whose data
    // directories hold an earlier state, is a bad config (400), not a wedged move.
    await this.#host.checkAdded(plan);
    const record: Record = {
      version: 1,
      from: { text: this.#currentText, path: current.path },
      to: { text, path },
      startedAt: Date.now(),
    };
    await this.#write(record);
    this.#begin(plan, record);
    return this.progress()!;
  }

  /** At admin start: resumes a move a previous admin left running. */
  async resume(): Promise<void> {
    let record: Record;
    try {
      record = JSON.parse(await Deno.readTextFile(this.#path())) as Record;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw new Error(`${this.#path()} is damaged (${String(error)}); restore or remove it`);
    }
    const parse = (s: { text: string; path: string }) =>
      this.#host.withSecret(parseConfig(s.text, { baseDir: dirname(s.path), path: s.path }));
    const plan = planReshard(parse(record.from), parse(record.to));
    this.#host.log(`resuming the reshard to epoch ${plan.to.epoch} begun by an earlier admin`);
    this.#begin(plan, record);
  }

  #begin(plan: ReshardPlan, record: Record): void {
    this.#plan = plan;
    // The last move's progress is not this one's: its start and key count are its own.
    this.#last = undefined;
    const signal = this.#abort.signal;
    this.#throughput = { samples: 0, reads: 0, writes: 0, writesMin: Infinity };
    const sampler = setInterval(() => {
      if (this.#resharder === undefined || this.#resharder.progress().state === "done") return;
      const r = this.#host.rates();
      const t = this.#throughput;
      t.samples++;
      t.reads += r.readsPerSecond;
      t.writes += r.writesPerSecond;
      t.writesMin = Math.min(t.writesMin, r.writesPerSecond);
    }, 1_000);
    // Progress from the start (the answer to POST /v1/reshard), before any step ran.
    this.#resharder = new Resharder(plan, this.#host.transport, { now: record.startedAt });
    this.#running = (async () => {
      const host = this.#host;
      // Starting the added clusters may fail at a resume (an address taken meanwhile): the
      // admin says why and tries again, and never dies of it.
      for (;;) {
        if (signal.aborted) return;
        try {
          await host.reshape(plan.during, {
            added: { ids: plan.added, text: record.to.text, path: record.to.path },
          });
          break;
        } catch (error) {
          host.log(
            `cannot start the added clusters (${String((error as Error)?.message ?? error)}); ` +
              `trying again in ${this.#retryMs / 1000} s`,
          );
          await new Promise((r) => setTimeout(r, this.#retryMs));
        }
      }
      for (;;) {
        if (signal.aborted) return;
        // A progress with no Resharder yet: the leaders and the key count come first.
        this.#resharder = new Resharder(plan, host.transport, {
          keysAtStart: this.#last?.keysAtStart ?? 0,
          now: this.#last?.startedAt ?? record.startedAt,
        });
        try {
          await host.leaders(signal);
          const keysAtStart = this.#last?.keysAtStart ?? await host.keys(signal);
          this.#resharder = new Resharder(plan, host.transport, {
            log: (line) => host.log(line),
            keysAtStart,
            now: this.#last?.startedAt ?? record.startedAt,
          });
          await this.#resharder.run(signal, () => (this.#published = true));
          break;
        } catch (error) {
          if (signal.aborted) return;
          this.#last = this.#resharder.progress();
          host.log(
            `the reshard stopped (${String((error as Error)?.message ?? error)}); ` +
              `trying again in ${this.#retryMs / 1000} s`,
          );
          await new Promise((r) => setTimeout(r, this.#retryMs));
        }
      }
      clearInterval(sampler);
      // The retries of a step that fails are the settle's own (it asks until answered).
      await host.settleDrained(plan.drained, signal);
      if (signal.aborted) return;
      await host.recordRouting(plan.after);
      await host.reshape(host.withSecret(plan.after), { removed: plan.drained });
      await Deno.remove(this.#path()).catch(() => {});
      // The next move starts from this config (its text goes into the next record).
      this.#currentText = record.to.text;
      this.#last = this.#resharder!.progress();
      this.#resharder = undefined;
      this.#plan = undefined;
      this.#published = false;
      host.log(
        `the deployment runs epoch ${plan.to.epoch} now; from now on start the admin with ` +
          `--config ${plan.after.path || "the new config"}` +
          (plan.drained.length === 0
            ? ""
            : ` (the drained clusters ${plan.drained.join(", ")} are stopped; their data ` +
              `directories may be removed)`),
      );
    })().catch((error) => {
      this.#host.log(`the reshard failed: ${String((error as Error)?.message ?? error)}`);
    }).finally(() => clearInterval(sampler));
  }

  /** Resolves once the running move (if any) ended: done, failed for good, or closed. */
  async settled(): Promise<void> {
    await this.#running?.catch(() => {});
  }

  /** Stops a running move (it resumes at the next start); resolves once it stopped. */
  async close(): Promise<void> {
    this.#abort.abort();
    await this.#running?.catch(() => {});
  }

  #path(): string {
    return `${this.#host.dataDir}/${RESHARD_RECORD_FILE}`;
  }

  async #write(record: Record): Promise<void> {
    const tmp = `${this.#path()}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify(record, null, 2) + "\n", { mode: 0o600 });
    await Deno.rename(tmp, this.#path());
  }
}

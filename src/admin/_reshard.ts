/**
 * The admin's side of a move (docs/resharding.md): begin everywhere, then per source cluster
 * batch after batch of copy, fence, catch up, copy request-id records, switch, drop; then
 * finish everywhere. Every step is idempotent or guarded by the clusters' cursors, so an admin
 * that crashed runs the same code again and resumes from the cursors the clusters report.
 *
 * @module
 */
import { CarpTable } from "../carp/mod.ts";
import { PairDigest, type RouteCommand, type SessionRecord } from "../storage/mod.ts";
import type { MoveTransport, MovingKey, RouteAnswer } from "./_move_transport.ts";
import type { ReshardPlan } from "./_reshard_plan.ts";
import { compareBytes } from "../client/_bytes.ts";

/** Moving keys in one batch, at most. */
export const BATCH_KEYS_MAX = 500;
/** Bytes of moving keys and values in one batch, about (at least one key). */
export const BATCH_BYTES_MAX = 1 << 20;
/** Bytes of keys and values in one stage command, about (one larger key goes alone). */
export const STAGE_BYTES_MAX = 768 << 10;
/** Request-id records in one sessions command. */
export const SESSIONS_PER_STAGE = 2_000;
/** Times a batch is copied again after its switch found the copy wrong. */
export const SWITCH_RETRIES = 3;

/** How far a move got, for the CLI and the status page. */
export interface ReshardProgress {
  /** `running`, `done`, or `failed` (with `error`; the admin retries after a pause). */
  readonly state: "running" | "done" | "failed";
  readonly fromEpoch: number;
  readonly toEpoch: number;
  readonly added: readonly string[];
  readonly drained: readonly string[];
  /** Per source cluster: keys moved away, and whether it is done. */
  readonly sources: readonly {
    readonly id: string;
    readonly moved: number;
    readonly done: boolean;
  }[];
  /** Keys and bytes moved so far. */
  readonly keysMoved: number;
  readonly bytesMoved: number;
  /** Batches switched. */
  readonly batches: number;
  /** Keys the deployment held when the move began, and the ideal fraction to move. */
  readonly keysAtStart: number;
  readonly idealFraction: number;
  /** When it began and ended (ms since 1970; ended 0 while running). */
  readonly startedAt: number;
  readonly endedAt: number;
  /** Why it failed, or "". */
  readonly error: string;
}

/** `a < b` for cursors (null = the end; the empty key is the start). */
function before(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null) return false;
  if (b === null) return true;
  return compareBytes(a, b) < 0;
}

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

/** Runs one move; {@linkcode Resharder.progress} says how far it got. */
export class Resharder {
  readonly #plan: ReshardPlan;
  readonly #io: MoveTransport;
  readonly #log: (line: string) => void;
  readonly #newTable: CarpTable;
  readonly #oldIds: readonly string[];
  readonly #newIds: readonly string[];
  #progress: {
    -readonly [K in keyof ReshardProgress]: ReshardProgress[K];
  };
  readonly #sources = new Map<string, { moved: number; done: boolean }>();
  /** Per source, the stamp of the last request-id record copied to every destination. */
  readonly #sessionMark = new Map<string, number>();

  /**
   * @param plan the move
   * @param io the clusters
   * @param options `log` for a line per notable step; `keysAtStart` for the progress
   */
  constructor(
    plan: ReshardPlan,
    io: MoveTransport,
    options: { log?: (line: string) => void; keysAtStart?: number; now?: number } = {},
  ) {
    this.#plan = plan;
    this.#io = io;
    this.#log = options.log ?? (() => {});
    this.#newTable = new CarpTable(plan.to);
    this.#oldIds = plan.from.members.map((m) => m.id);
    this.#newIds = plan.to.members.map((m) => m.id);
    for (const id of this.#oldIds) this.#sources.set(id, { moved: 0, done: false });
    this.#progress = {
      state: "running",
      fromEpoch: plan.from.epoch,
      toEpoch: plan.to.epoch,
      added: plan.added,
      drained: plan.drained,
      sources: [],
      keysMoved: 0,
      bytesMoved: 0,
      batches: 0,
      keysAtStart: options.keysAtStart ?? 0,
      idealFraction: plan.idealFraction,
      startedAt: options.now ?? Date.now(),
      endedAt: 0,
      error: "",
    };
  }

  /** How far the move got. */
  progress(): ReshardProgress {
    return {
      ...this.#progress,
      sources: [...this.#sources].map(([id, s]) => ({ id, moved: s.moved, done: s.done })),
    };
  }

  /** Runs the move to its end; throws (and reports `failed`) when a step fails. */
  async run(signal?: AbortSignal, onBegun?: () => void): Promise<void> {
    try {
      this.#progress.state = "running";
      this.#progress.error = "";
      for (const id of this.#plan.clusters) {
        this.#ok(
          await this.#io.route(id, { type: "begin", from: this.#plan.from, to: this.#plan.to }),
          `begin at ${id}`,
        );
      }
      // Every cluster obeys the move's routing now: clients may route by the next table.
      onBegun?.();
      // A cluster that finished already (before a crash) means every key moved: finish alone
      // is left to do (the sources' cursors are gone where they finished).
      let finished = false;
      for (const id of this.#plan.clusters) {
        const r = await this.#io.routing(id);
        if (r !== undefined && r.move === undefined && r.epoch === this.#plan.to.epoch) {
          finished = true;
        }
      }
      if (finished) { for (const s of this.#sources.values()) s.done = true; }
      for (const source of finished ? [] : this.#oldIds) {
        signal?.throwIfAborted();
        await this.#moveSource(source, signal);
      }
      for (const id of this.#plan.clusters) {
        this.#ok(
          await this.#io.route(id, { type: "finish", epoch: this.#plan.to.epoch }),
          `finish at ${id}`,
        );
      }
      this.#progress.state = "done";
      this.#progress.endedAt = Date.now();
      this.#log(
        `moved ${this.#progress.keysMoved} keys in ${this.#progress.batches} batches: epoch ` +
          `${this.#plan.to.epoch} is in force`,
      );
    } catch (error) {
      this.#progress.state = "failed";
      this.#progress.error = String((error as Error)?.message ?? error);
      throw error;
    }
  }

  #ok(answer: RouteAnswer, what: string): number {
    if (!answer.ok) throw new Error(`${what} was refused: ${answer.code}: ${answer.message}`);
    return answer.rev;
  }

  /** The destinations of a source: every cluster of the new table but itself. */
  #dests(source: string): string[] {
    return this.#newIds.filter((id) => id !== source);
  }

  async #moveSource(source: string, signal?: AbortSignal): Promise<void> {
    const dests = this.#dests(source);
    const state = await this.#io.routing(source);
    const fenced = state?.move?.fenced ?? new Uint8Array();
    // Where every destination has switched to: a batch fenced beyond it did not finish.
    const received = new Map<string, Uint8Array | null>();
    let cursor: Uint8Array | null = null;
    for (const d of dests) {
      const r = (await this.#io.routing(d))?.move?.received.get(source);
      const at = r === undefined ? new Uint8Array() : r;
      received.set(d, at);
      if (cursor === null || before(at, cursor)) cursor = at;
    }
    if (dests.length === 0) cursor = fenced; // a table of one cluster: nothing receives
    if (cursor !== null && cursor.length > 0) {
      // A crash may have left switched keys undropped: drop everything below the cursor.
      this.#ok(
        await this.#io.route(source, {
          type: "drop",
          epoch: this.#plan.to.epoch,
          from: new Uint8Array(),
          upTo: cursor,
        }),
        `drop at ${source}`,
      );
    }
    while (cursor !== null) {
      signal?.throwIfAborted();
      // A destination that switched this batch already (before a crash) is left out of it.
      const upTo: Uint8Array | null = await this.#batch(
        source,
        dests,
        cursor,
        before(cursor, fenced) ? fenced : undefined,
        (d, end) => before(received.get(d)!, end),
      );
      for (const d of dests) if (before(received.get(d)!, upTo)) received.set(d, upTo);
      cursor = upTo;
    }
    this.#sources.get(source)!.done = true;
  }

  /**
   * One batch of `source` from `from`. With `fencedTo`, the batch was fenced already (an
   * interrupted one): it is copied whole after the fence. Returns where the next one starts.
   */
  async #batch(
    source: string,
    dests: readonly string[],
    from: Uint8Array,
    fencedTo: Uint8Array | null | undefined,
    needs: (dest: string, upTo: Uint8Array | null) => boolean,
  ): Promise<Uint8Array | null> {
    const epoch = this.#plan.to.epoch;
    let upTo: Uint8Array | null;
    let staged: Map<string, Map<string, number>> | undefined; // dest -> key hex -> rev
    if (fencedTo === undefined) {
      // 1. Copy what the batch holds now; writes go on meanwhile.
      const page = await this.#io.keys(source, from, undefined, {
        count: BATCH_KEYS_MAX,
        bytes: BATCH_BYTES_MAX,
      });
      upTo = page.next;
      staged = new Map();
      for (const d of dests.filter((d) => needs(d, upTo))) {
        const mine = page.items.filter((k) => this.#newTable.owner(k.key) === d);
        await this.#stage(source, d, mine, [], { from, upTo });
        staged.set(d, new Map(mine.map((k) => [hex(k.key), k.rev])));
      }
      // 2. Fence: from here on the batch's keys are frozen at the source.
      this.#ok(await this.#io.route(source, { type: "fence", epoch, upTo }), `fence at ${source}`);
    } else {
      upTo = fencedTo;
    }
    // 3. Catch up: the frozen keys, read after the fence.
    const frozen = await this.#frozen(source, from, upTo);
    const revFloor = frozen.rev;
    await this.#copySessions(source, dests);
    for (const d of dests.filter((d) => needs(d, upTo))) {
      const mine = frozen.items.filter((k) => this.#newTable.owner(k.key) === d);
      const had = staged?.get(d);
      if (had === undefined) {
        await this.#stage(source, d, mine, [], { from, upTo });
      } else {
        const seen = new Set(mine.map((k) => hex(k.key)));
        const changed = mine.filter((k) => had.get(hex(k.key)) !== k.rev);
        const gone = [...had.keys()].filter((h) => !seen.has(h)).map((h) =>
          Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16))
        );
        await this.#stage(source, d, changed, gone, undefined);
      }
      // 4. Switch, once the destination's copy is exactly the frozen one.
      await this.#switch(source, d, mine, from, upTo, revFloor);
    }
    // 5. Drop the moved keys at the source.
    this.#ok(
      await this.#io.route(source, { type: "drop", epoch, from, upTo }),
      `drop at ${source}`,
    );
    const s = this.#sources.get(source)!;
    s.moved += frozen.items.length;
    this.#progress.keysMoved += frozen.items.length;
    this.#progress.bytesMoved += frozen.items.reduce(
      (n, k) => n + k.key.length + k.value.length,
      0,
    );
    this.#progress.batches++;
    return upTo;
  }

  async #frozen(
    source: string,
    from: Uint8Array,
    upTo: Uint8Array | null,
  ): Promise<{ items: MovingKey[]; rev: number }> {
    const items: MovingKey[] = [];
    let at: Uint8Array | null = from;
    let rev = 0;
    while (at !== null && (upTo === null || before(at, upTo))) {
      const page = await this.#io.keys(source, at, upTo, {
        count: BATCH_KEYS_MAX,
        bytes: BATCH_BYTES_MAX,
      });
      rev = Math.max(rev, page.rev);
      items.push(...page.items);
      at = page.next;
    }
    return { items, rev };
  }

  async #switch(
    source: string,
    dest: string,
    keys: MovingKey[],
    from: Uint8Array,
    upTo: Uint8Array | null,
    revFloor: number,
  ): Promise<void> {
    const digest = new PairDigest();
    for (const k of keys) digest.addBytes(k.key, k.rev);
    const command: RouteCommand = {
      type: "switch",
      epoch: this.#plan.to.epoch,
      source,
      upTo,
      count: digest.count,
      digest: digest.hex,
      revFloor,
    };
    for (let attempt = 0;; attempt++) {
      const answer = await this.#io.route(dest, command);
      if (answer.ok) return;
      if (answer.code !== "stage_mismatch" || attempt >= SWITCH_RETRIES) {
        this.#ok(answer, `switch at ${dest} for keys from ${source}`);
      }
      this.#log(
        `switch at ${dest} found its copy from ${source} wrong (${answer.message}); copying again`,
      );
      await this.#stage(source, dest, keys, [], { from, upTo });
    }
  }

  /** Stages `puts` and `deletes` at `dest` in commands of bounded size; `clear` goes first. */
  async #stage(
    source: string,
    dest: string,
    puts: readonly MovingKey[],
    deletes: readonly Uint8Array[],
    clear: { from: Uint8Array; upTo: Uint8Array | null } | undefined,
  ): Promise<void> {
    const epoch = this.#plan.to.epoch;
    let first = true;
    let i = 0;
    do {
      const chunk: MovingKey[] = [];
      let bytes = 0;
      while (
        i < puts.length &&
        (chunk.length === 0 || bytes + puts[i].key.length + puts[i].value.length <= STAGE_BYTES_MAX)
      ) {
        bytes += puts[i].key.length + puts[i].value.length;
        chunk.push(puts[i++]);
      }
      const last = i >= puts.length;
      if (chunk.length === 0 && !first && !(last && deletes.length > 0)) break;
      const command: RouteCommand = {
        type: "stage",
        epoch,
        source,
        ...(first && clear !== undefined ? { clear } : {}),
        puts: chunk,
        deletes: last ? deletes : [],
      };
      if (chunk.length > 0 || command.deletes.length > 0 || command.clear !== undefined) {
        this.#ok(await this.#io.route(dest, command), `stage at ${dest}`);
      }
      first = false;
    } while (i < puts.length);
  }

  /** Copies the source's request-id records written since the last copy to every destination. */
  async #copySessions(source: string, dests: readonly string[]): Promise<void> {
    let after = this.#sessionMark.get(source) ?? -Infinity;
    for (;;) {
      const page = await this.#io.sessions(source, after);
      if (page.records.length === 0) break;
      const records: SessionRecord[] = page.records.map((r) => ({
        client: r.client,
        seq: r.seq,
        result: r.result,
      }));
      for (let i = 0; i < records.length; i += SESSIONS_PER_STAGE) {
        const slice = records.slice(i, i + SESSIONS_PER_STAGE);
        for (const d of dests) {
          this.#ok(
            await this.#io.route(d, {
              type: "sessions",
              epoch: this.#plan.to.epoch,
              records: slice,
            }),
            `sessions at ${d}`,
          );
        }
      }
      after = page.records.at(-1)!.stamp;
      if (!page.more) break;
    }
    this.#sessionMark.set(source, after);
  }
}

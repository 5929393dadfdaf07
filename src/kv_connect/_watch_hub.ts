/**
 * Watches by polling: koi has no change feed of single keys across clusters that matches
 * KV Connect's, so the gateway reads every watched key with a strong read every
 * {@linkcode KV_CONNECT_WATCH_POLL_MS} and tells each watch whose keys' versionstamps
 * changed. The keys of all watches are read together (one batched read per cluster per
 * round, whatever the number of watches), and each watch holds only its latest state (a slow
 * client gets the newest entries, never a backlog). Bounded: keys per watch, and watches.
 *
 * @module
 */
import type { KvEntry, ReadRange } from "./_datapath.ts";
import { KvConnectError } from "./_errors.ts";
import type { KvWatch, KvWatchNext } from "./_handler.ts";
import { versionstampHex } from "./_versionstamp.ts";

/** How often the watched keys are read, in milliseconds. */
export const KV_CONNECT_WATCH_POLL_MS = 150;
/** Keys one watch may name, at most (Deno's client sends at most 10). Beyond: 400. */
export const KV_CONNECT_WATCH_KEYS_MAX = 100;
/**
 * Distinct keys all watches together may name, at most: every round reads each of them, so
 * this bounds a round's cost however the watches are shaped. Beyond: 503 (retried).
 */
export const KV_CONNECT_WATCHED_KEYS_MAX = 4096;
/** The longest key a watch may name (a versionstamped key: 2048 bytes and its suffix). */
export const KV_CONNECT_WATCH_KEY_BYTES_MAX = 2070;
/**
 * Watches open at once, at most. Beyond: `503`, which Deno's client retries (every ~0.25 s)
 * until one closes, rather than failing the caller's watch for good.
 */
export const KV_CONNECT_WATCHES_MAX = 256;
/** One round's read budget, in milliseconds; a round that takes longer is tried again. */
export const KV_CONNECT_WATCH_READ_MS = 5_000;
/** A failing round is reported at most this often, in milliseconds. */
const ERROR_REPORT_MS = 10_000;

/** Options of {@linkcode WatchHub}. */
export interface WatchHubOptions {
  /** Default {@linkcode KV_CONNECT_WATCH_POLL_MS}. */
  readonly pollMs?: number;
  /** Default {@linkcode KV_CONNECT_WATCH_KEYS_MAX}. */
  readonly keysMax?: number;
  /** Default {@linkcode KV_CONNECT_WATCHES_MAX}. */
  readonly watchesMax?: number;
  /** Default {@linkcode KV_CONNECT_WATCH_READ_MS}. */
  readonly readMs?: number;
  /** Default {@linkcode KV_CONNECT_WATCHED_KEYS_MAX}. */
  readonly watchedKeysMax?: number;
  /**
   * The group (cluster) of a key: each round reads each group on its own, so that a group
   * that fails or is slow holds up only the watches of its keys. Default: one group.
   */
  readonly groupOf?: (key: Uint8Array) => string;
  /** Told when a round's read fails (at most every 10 s). */
  readonly onError?: (message: string) => void;
}

/** Strong reads of ranges (the gateway's). */
export type RangeReader = (
  ranges: readonly ReadRange[],
  signal: AbortSignal,
) => Promise<KvEntry[][]>;

/** One watched key: its latest entry and the round that read it. */
interface Watched {
  readonly key: Uint8Array;
  refs: number;
  entry: KvEntry | undefined;
  /** The round whose read gave `entry` (0: none yet). */
  round: number;
}

/** The keys of every open watch, read together each round. */
export class WatchHub {
  readonly #read: RangeReader;
  readonly #pollMs: number;
  readonly #keysMax: number;
  readonly #watchesMax: number;
  readonly #readMs: number;
  readonly #watchedKeysMax: number;
  readonly #groupOf: (key: Uint8Array) => string;
  readonly #onError: ((message: string) => void) | undefined;
  readonly #closer = new AbortController();
  readonly #keys = new Map<string, Watched>();
  readonly #watches = new Set<HubWatch>();
  /** The round in progress or last done. */
  #round = 0;
  /** Groups whose read is in flight. */
  readonly #reading = new Set<string>();
  #running = false;
  #wake: (() => void) | undefined;
  #reportedAt = -Infinity;

  /** A hub reading with `read`. */
  constructor(read: RangeReader, options: WatchHubOptions = {}) {
    this.#read = read;
    this.#pollMs = options.pollMs ?? KV_CONNECT_WATCH_POLL_MS;
    this.#keysMax = options.keysMax ?? KV_CONNECT_WATCH_KEYS_MAX;
    this.#watchesMax = options.watchesMax ?? KV_CONNECT_WATCHES_MAX;
    this.#readMs = options.readMs ?? KV_CONNECT_WATCH_READ_MS;
    this.#watchedKeysMax = options.watchedKeysMax ?? KV_CONNECT_WATCHED_KEYS_MAX;
    this.#groupOf = options.groupOf ?? (() => "");
    this.#onError = options.onError;
  }

  /** Watches open now. */
  get watches(): number {
    return this.#watches.size;
  }

  /** Rounds read so far. */
  get rounds(): number {
    return this.#round;
  }

  /** Whether rounds run (they stop when the last watch closes). */
  get polling(): boolean {
    return this.#running;
  }

  /**
   * A watch of `keys`: its first `next()` gives every key's entry as read by a round that
   * began after this call; later ones, all entries again once one's versionstamp changed.
   * Throws {@linkcode KvConnectError}: 400 for no key or too many, 503 for too many watches.
   */
  open(keys: readonly Uint8Array[]): KvWatch {
    if (this.#closer.signal.aborted) {
      throw new KvConnectError(503, "The KV Connect gateway is closed");
    }
    if (keys.length === 0 || keys.length > this.#keysMax) {
      throw new KvConnectError(400, `A watch names 1 to ${this.#keysMax} keys, got ${keys.length}`);
    }
    keys.forEach((key, i) => {
      // A key no node would read fails the whole round of its group: refuse it here.
      if (key.length > KV_CONNECT_WATCH_KEY_BYTES_MAX) {
        throw new KvConnectError(
          400,
          `Watched key ${i} has ${key.length} bytes, more than ${KV_CONNECT_WATCH_KEY_BYTES_MAX}`,
        );
      }
      if (key.length > 0 && key[0] === 0xff) {
        throw new KvConnectError(
          400,
          `Watched key ${i} starts with the byte 0xFF, which koi keeps for itself`,
        );
      }
    });
    if (this.#watches.size >= this.#watchesMax) {
      throw new KvConnectError(
        503,
        `Too many watches: ${this.#watchesMax} are open on this gateway, the most it polls`,
      );
    }
    const fresh = new Set(keys.map(versionstampHex).filter((id) => !this.#keys.has(id))).size;
    if (this.#keys.size + fresh > this.#watchedKeysMax) {
      throw new KvConnectError(
        503,
        `Too many watched keys: the watches on this gateway name ${this.#keys.size} keys, ` +
          `and at most ${this.#watchedKeysMax} are polled`,
      );
    }
    const watched = keys.map((key) => {
      const id = versionstampHex(key);
      let w = this.#keys.get(id);
      if (w === undefined) this.#keys.set(id, w = { key, refs: 0, entry: undefined, round: 0 });
      w.refs++;
      return w;
    });
    const watch = new HubWatch(
      watched,
      this.#round + 1,
      this.#closer.signal,
      () => this.#release(watch),
    );
    this.#watches.add(watch);
    if (this.#running) this.#wake?.();
    else void this.#loop();
    return watch;
  }

  async #readGroup(group: string, watched: readonly Watched[], round: number): Promise<void> {
    try {
      const signal = AbortSignal.any([this.#closer.signal, AbortSignal.timeout(this.#readMs)]);
      const ranges = watched.map((w) => ({
        start: w.key,
        end: Uint8Array.of(...w.key, 0),
        limit: 1,
        reverse: false,
      }));
      const read = await this.#read(ranges, signal);
      watched.forEach((w, i) => {
        w.entry = read[i][0];
        w.round = round;
      });
    } catch (error) {
      if (this.#closer.signal.aborted) return;
      const now = performance.now();
      if (now - this.#reportedAt >= ERROR_REPORT_MS) {
        this.#reportedAt = now;
        const where = group === "" ? "" : ` of cluster ${group}`;
        this.#onError?.(
          `KV Connect watch: reading ${watched.length} keys${where} failed: ${error}`,
        );
      }
    }
  }

  /** Ends every watch (their `next()` says so) and stops polling. */
  close(): void {
    this.#closer.abort();
    this.#wake?.();
    for (const watch of this.#watches) watch.poke();
  }

  #release(watch: HubWatch): void {
    if (!this.#watches.delete(watch)) return;
    for (const w of watch.watched) {
      if (--w.refs === 0) this.#keys.delete(versionstampHex(w.key));
    }
  }

  async #loop(): Promise<void> {
    this.#running = true;
    try {
      while (this.#watches.size > 0 && !this.#closer.signal.aborted) {
        const round = ++this.#round;
        const groups = new Map<string, Watched[]>();
        for (const w of this.#keys.values()) {
          const g = this.#groupOf(w.key);
          let list = groups.get(g);
          if (list === undefined) groups.set(g, list = []);
          list.push(w);
        }
        // Each group on its own, at its own pace: one that fails or is slow keeps its keys'
        // last entries and holds up only the watches that name them (a group still being
        // read is not asked again; the others go on every round).
        for (const [group, watched] of groups) {
          if (this.#reading.has(group)) continue;
          this.#reading.add(group);
          void this.#readGroup(group, watched, round).finally(() => {
            this.#reading.delete(group);
            for (const watch of this.#watches) watch.poke();
          });
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, this.#pollMs);
          function done() {
            clearTimeout(timer);
            resolve();
          }
          this.#wake = done;
        });
        this.#wake = undefined;
      }
    } finally {
      this.#running = false;
    }
  }
}

/** One watch of a {@linkcode WatchHub}. */
class HubWatch implements KvWatch {
  readonly watched: readonly Watched[];
  readonly #firstRound: number;
  readonly #closed: AbortSignal;
  readonly #release: () => void;
  #sent: (string | null)[] | undefined;
  #pokes: (() => void)[] = [];
  #done = false;

  constructor(
    watched: readonly Watched[],
    firstRound: number,
    closed: AbortSignal,
    release: () => void,
  ) {
    this.watched = watched;
    this.#firstRound = firstRound;
    this.#closed = closed;
    this.#release = release;
  }

  /** Wakes a waiting `next()`: a round ended (or the hub closed). */
  poke(): void {
    const pokes = this.#pokes;
    this.#pokes = [];
    for (const p of pokes) p();
  }

  async next(signal: AbortSignal): Promise<KvWatchNext> {
    for (;;) {
      if (this.#done || this.#closed.aborted) return { kind: "end" };
      if (this.watched.every((w) => w.round >= this.#firstRound)) {
        const stamps = this.watched.map((w) =>
          w.entry === undefined ? null : versionstampHex(w.entry.versionstamp)
        );
        if (this.#sent === undefined || stamps.some((s, i) => s !== this.#sent![i])) {
          this.#sent = stamps;
          return { kind: "entries", entries: this.watched.map((w) => w.entry) };
        }
      }
      if (signal.aborted) return { kind: "idle" };
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener("abort", done);
          resolve();
        };
        this.#pokes.push(done);
        signal.addEventListener("abort", done, { once: true });
      });
      if (signal.aborted && !this.#closed.aborted) return { kind: "idle" };
    }
  }

  close(): void {
    this.#done = true;
    this.#release();
    this.poke();
  }
}

/**
 * A linearizability checker for per-key register histories recorded by koi clients.
 *
 * Linearizability is compositional, so every key is checked on its own. Each key's history
 * is searched with Wing & Gong's algorithm in Lowe's "just-in-time" form: calls and returns
 * sit in one time-ordered list; an op may be linearized when its call precedes the first
 * return still in the list (every op that returned earlier is already linearized), and the
 * search backtracks when that first return's op cannot go next. Lowe's memo table (set of
 * linearized ops, model state) stops it from exploring the same configuration twice.
 *
 * Ops of unknown outcome return at +Infinity and need never be linearized (they may not
 * have happened): the search succeeds once every op with a finite return is linearized.
 *
 * Plain WGL is exponential in the unknown ops whenever it must backtrack (which is always
 * when a history is not linearizable), so the search prunes with rules that each keep it
 * exact (see where they are applied):
 * - dominance: a configuration is skipped when one explored had the same finite ops, a
 *   subset of its unknown ops (ignoring conditional ones that can no longer apply) and a
 *   state covering its state (a symbolic revision admitting at least the same values);
 * - forced ops: an op that fits without changing the state is taken with no alternative;
 * - futility: nothing that overwrites the state is tried right after an unknown op;
 * - symmetry: of interchangeable unknown ops only the first unused is tried, and the
 *   values of unknown writes no read returned are all one placeholder.
 * A 2,000-op key with dozens of unknown ops then takes some thousands of configurations,
 * valid or not.
 *
 * Pure and deterministic: no I/O, no clock, no randomness.
 *
 * @module
 */
import {
  type CheckResult,
  covers,
  describeEntry,
  describeState,
  type ExcerptOp,
  hashString,
  type HistoryEntry,
  initialState,
  minRev,
  prepare,
  type PreparedOp,
  type ReadValue,
  type State,
  step,
  takenRevs,
  type Undecided,
  type Violation,
} from "./_lin_model.ts";

export type {
  CheckResult,
  DeleteResult,
  ExcerptOp,
  HistoryEntry,
  Op,
  OpResult,
  PreconditionFailure,
  ReadValue,
  Undecided,
  Violation,
  WriteResult,
} from "./_lin_model.ts";

/** Options of {@linkcode checkHistory}. */
export interface CheckOptions {
  /**
   * Configurations (memo table entries) one key may explore before it is reported
   * undecided instead of passed or failed. A valid history needs a few per op. Default:
   * 200,000 + 10 per op of the key; an entry takes a few hundred bytes, so that bounds a
   * hopeless key of 2,000 ops to about 100 MB.
   */
  readonly maxStatesPerKey?: number;
  /** At most this many ops in a violation's excerpt (default 24). */
  readonly excerptOps?: number;
  /** The state of a key before the history (default: absent). */
  readonly initial?: (key: string) => ReadValue | null;
}

const DEFAULT_MAX_STATES = 200_000;
const DEFAULT_MAX_STATES_PER_OP = 10;
const DEFAULT_EXCERPT = 24;

/**
 * Checks that a history of single-key operations is linearizable, key by key.
 * Throws a TypeError on a malformed entry (see {@linkcode HistoryEntry}).
 *
 * @example
 * ```ts
 * const r = checkHistory([
 *   { process: "a", key: "k", op: { f: "write", value: "x" }, invokeMs: 0, endMs: 2,
 *     outcome: "ok", result: { rev: 5 } },
 *   { process: "b", key: "k", op: { f: "read" }, invokeMs: 3, endMs: 4, outcome: "ok",
 *     result: null },
 * ]);
 * console.log(r.ok, r.violations.map(formatViolation).join("\n")); // false: a lost write
 * ```
 */
export function checkHistory(
  entries: readonly HistoryEntry[],
  options: CheckOptions = {},
): CheckResult {
  const excerpt = options.excerptOps ?? DEFAULT_EXCERPT;
  const byKey = new Map<string, PreparedOp[]>();
  const keys = new Set<string>();
  entries.forEach((e, i) => {
    const p = prepare(e, i);
    keys.add(e.key);
    if (p === null) return;
    const list = byKey.get(e.key);
    if (list === undefined) byKey.set(e.key, [p]);
    else list.push(p);
  });
  const violations: Violation[] = [];
  const undecided: Undecided[] = [];
  let explored = 0;
  for (const key of [...byKey.keys()].sort()) {
    const ops = byKey.get(key)!;
    const init = initialState(options.initial?.(key) ?? null);
    const maxStates = options.maxStatesPerKey ??
      DEFAULT_MAX_STATES + DEFAULT_MAX_STATES_PER_OP * ops.length;
    const r = new KeySearch(key, ops, init, maxStates, excerpt).run();
    explored += r.explored;
    if (r.violation !== undefined) violations.push(r.violation);
    if (r.undecided !== undefined) undecided.push(r.undecided);
  }
  return {
    ok: violations.length === 0 && undecided.length === 0,
    keys: keys.size,
    ops: entries.length,
    explored,
    violations,
    undecided,
  };
}

/** A violation as readable text: the reason, the state reached, then the excerpt. */
export function formatViolation(v: Violation): string {
  const lines = [
    `key ${JSON.stringify(v.key)}: ${v.reason}`,
    `  state after the longest partial linearization (${v.linearized} ops): ${v.state}`,
  ];
  for (const o of v.ops) {
    const note = o.note === undefined ? "" : `: ${o.note}`;
    lines.push(`  #${o.index} ${o.role.padEnd(10)} ${describeEntry(o.entry)}${note}`);
  }
  return lines.join("\n");
}

/**
 * A memo table entry: a configuration explored (or being explored). Its finite ops and
 * value are the table's key; the unknown ops' bitset is shared by all the entries made
 * while it did not change, which keeps an entry to a few dozen bytes.
 */
interface Seen {
  /** The unknown ops linearized (trailing zero words trimmed). */
  readonly unknown: Uint32Array;
  readonly state: State;
}

interface KeyVerdict {
  readonly explored: number;
  readonly violation?: Violation;
  readonly undecided?: Undecided;
}

/** The deepest dead end seen, kept for the report. */
interface DeadEnd {
  /** Finite ops linearized: the measure of progress. */
  readonly depth: number;
  /** All ops linearized (unknown ones included). */
  readonly length: number;
  readonly state: State;
  readonly stuck: number;
  readonly recent: readonly number[];
  /** Open calls with a finite return, then unknown ones that could take effect. */
  readonly pending: readonly number[];
  /** How many of `pending` have a finite return. */
  readonly concurrent: number;
}

const HEAD = 0;
const FORCED = 0;
const FINITE = 1;
const UNKNOWN = 2;
const NO_BITS = new Uint32Array(0);
const NONE = -1;

/** A copy of a bitset without its trailing zero words. */
function trimmed(bits: Uint32Array): Uint32Array {
  let hi = bits.length;
  while (hi > 0 && bits[hi - 1] === 0) hi--;
  return hi === 0 ? NO_BITS : bits.slice(0, hi);
}

/**
 * The search over one key. Node 0 is the list head; op i has call node 2i + 1 and, when
 * its return is finite, return node 2i + 2 (odd nodes are calls). Lifting an op unlinks
 * its nodes; since an unlinked node keeps its own links, relinking in reverse order undoes
 * it exactly (dancing links), which makes backtracking O(1).
 */
class KeySearch {
  readonly #key: string;
  readonly #ops: readonly PreparedOp[];
  readonly #maxStates: number;
  readonly #excerpt: number;
  readonly #next: Int32Array;
  readonly #prev: Int32Array;
  /** Per op: its bit index among finite ops, or among unknown ops. */
  readonly #slot: Int32Array;
  readonly #finite: Uint8Array;
  /** Per op: 1 when its effect does not depend on the state (a write, a delete). */
  readonly #overwrites: Uint8Array;
  /** Per unknown op (by slot): the ifRev it is conditional on, or +Infinity. */
  readonly #deadBelow: Float64Array;
  readonly #fBits: Uint32Array;
  readonly #uBits: Uint32Array;
  readonly #finiteCount: number;
  readonly #placeholder: string;
  /**
   * Unknown ops with the same effect (same op, value and ifRev) are interchangeable: all
   * those already invoked are equally available from then on. So only the first unused
   * one of each class (in call order) is ever tried, and the used ones of a class are
   * always a prefix of it: configurations differing only in which of them were used
   * become one. Per op its class (-1 when finite); per class its members and how many
   * are used.
   */
  readonly #classOf: Int32Array;
  readonly #members: number[][] = [];
  readonly #used: Int32Array;
  readonly #taken: ReadonlySet<number>;
  readonly #unknownCount: number;
  readonly #seen = new Map<string, Seen[]>();
  /** The unknown bitset as of the top of the stack, shared by the memo entries. */
  #uSnapshot: Uint32Array = NO_BITS;
  readonly #uSnapshots: Uint32Array[] = [];
  #state: State;
  #explored = 0;
  #deadEnd: DeadEnd | undefined;

  constructor(key: string, ops: PreparedOp[], init: State, maxStates: number, excerpt: number) {
    this.#key = key;
    // Call order gives bit indices: the linearized set is then mostly a prefix, which the
    // memo table stores compactly.
    const sorted = [...ops].sort((a, b) => a.invoke - b.invoke || a.index - b.index);
    // An unknown op's value that no read returned can only be told apart from another
    // such value by reads, so they all become one placeholder: states then coincide in the
    // memo table, and unknown ops equal but for that value become interchangeable.
    const read = new Set<string>();
    for (const p of sorted) {
      if (p.entry.op.f === "read" && p.known && p.entry.result !== null) {
        read.add((p.entry.result as ReadValue).value);
      }
    }
    let placeholder = "\u0000unread";
    while (read.has(placeholder)) placeholder += "\u0000";
    this.#placeholder = placeholder;
    const placeholderHash = hashString(placeholder);
    this.#ops = sorted.map((p) =>
      p.known || p.value === undefined || read.has(p.value)
        ? p
        : { ...p, value: placeholder, valueHash: placeholderHash }
    );
    this.#maxStates = maxStates;
    this.#excerpt = excerpt;
    this.#state = init;
    const n = this.#ops.length;
    this.#slot = new Int32Array(n);
    this.#finite = new Uint8Array(n);
    this.#overwrites = new Uint8Array(n);
    let nf = 0;
    let nu = 0;
    for (let i = 0; i < n; i++) {
      const finite = this.#ops[i].end !== Infinity;
      this.#finite[i] = finite ? 1 : 0;
      this.#slot[i] = finite ? nf++ : nu++;
      const p = this.#ops[i];
      const f = p.entry.op.f;
      const existed = p.known
        ? (p.entry.result as { existed?: boolean } | undefined)?.existed
        : undefined;
      this.#overwrites[i] = f === "write" || (f === "delete" && typeof existed !== "boolean")
        ? 1
        : 0;
    }
    this.#finiteCount = nf;
    this.#taken = takenRevs(this.#ops);
    this.#unknownCount = nu;
    this.#fBits = new Uint32Array((nf + 31) >>> 5);
    this.#uBits = new Uint32Array((nu + 31) >>> 5);
    this.#deadBelow = new Float64Array(nu).fill(Infinity);
    this.#classOf = new Int32Array(n).fill(-1);
    const classes = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      if (this.#finite[i]) continue;
      const p = this.#ops[i];
      const op = p.entry.op;
      const name = JSON.stringify([op.f, p.value ?? null, "ifRev" in op ? op.ifRev : null]);
      let c = classes.get(name);
      if (c === undefined) {
        c = this.#members.length;
        classes.set(name, c);
        this.#members.push([]);
      }
      this.#classOf[i] = c;
      this.#members[c].push(i);
    }
    this.#used = new Int32Array(this.#members.length);
    for (let i = 0; i < n; i++) {
      const op = this.#ops[i].entry.op;
      if (!this.#finite[i] && "ifRev" in op) this.#deadBelow[this.#slot[i]] = op.ifRev;
    }
    // Events in time order; at equal times calls come first, so that ops which merely touch
    // count as concurrent: the checker must never blame the clock's resolution.
    const events: number[] = [];
    for (let i = 0; i < n; i++) {
      events.push(2 * i + 1);
      if (this.#finite[i]) events.push(2 * i + 2);
    }
    const time = (node: number) => {
      const p = this.#ops[(node - 1) >> 1];
      return node & 1 ? p.invoke : p.end;
    };
    events.sort((a, b) => time(a) - time(b) || (b & 1) - (a & 1) || a - b);
    this.#next = new Int32Array(2 * n + 1).fill(NONE);
    this.#prev = new Int32Array(2 * n + 1).fill(NONE);
    let last = HEAD;
    for (const node of events) {
      this.#next[last] = node;
      this.#prev[node] = last;
      last = node;
    }
  }

  run(): KeyVerdict {
    const ops = this.#ops;
    const next = this.#next;
    const stackOp: number[] = [];
    const stackState: State[] = [];
    const stackPass: number[] = [];
    let linearizedFinite = 0;
    let linearizedUnknown = 0;
    let node = next[HEAD];
    // Each configuration scans its window (the calls before the first open return) in up
    // to three passes. FORCED looks for an op with a finite return that leaves the state
    // exactly as it is (a read that fits, a refusal that fits): linearizing it now is never
    // worse than later, since it changes nothing and every op that had to precede it
    // already has, so it is taken without trying alternatives. FINITE then tries the other
    // ops with a finite return; UNKNOWN last tries the unknown ops, the least likely to be
    // needed now.
    let pass = FORCED;
    let backtrack = false;
    for (;;) {
      if (linearizedFinite === this.#finiteCount) return { explored: this.#explored };
      if (!backtrack && node & 1) {
        const i = (node - 1) >> 1;
        const finite = this.#finite[i] === 1;
        const top = stackOp.length === 0 ? -1 : stackOp[stackOp.length - 1];
        // Right after an unknown op, an op that overwrites the state whatever it was would
        // make that unknown op pointless: the order without it is explored from the parent
        // and ends in a state at least as permissive. Without this, runs of unknown writes
        // would be tried in every combination.
        const futile = top >= 0 && this.#finite[top] === 0 && this.#overwrites[i] === 1;
        const eligible = finite
          ? pass !== UNKNOWN
          : pass === UNKNOWN && this.#members[this.#classOf[i]][this.#used[this.#classOf[i]]] === i;
        if (eligible && !futile) {
          const after = step(this.#state, ops[i], this.#taken);
          if (typeof after !== "string" && (pass !== FORCED || after === this.#state)) {
            this.#mark(i);
            const snapshot = finite ? this.#uSnapshot : trimmed(this.#uBits);
            if (!this.#dominated(after, snapshot)) {
              if (++this.#explored > this.#maxStates) return this.#giveUp();
              stackOp.push(i);
              stackState.push(this.#state);
              stackPass.push(pass);
              this.#state = after;
              this.#lift(i);
              if (finite) linearizedFinite++;
              else {
                linearizedUnknown++;
                this.#used[this.#classOf[i]]++;
                this.#uSnapshots.push(this.#uSnapshot);
                this.#uSnapshot = snapshot;
              }
              node = next[HEAD];
              pass = FORCED;
              continue;
            }
            this.#mark(i);
            // A forced op leading to a dead end condemns this configuration.
            if (pass === FORCED) backtrack = true;
          }
        }
        if (!backtrack) {
          node = next[node];
          continue;
        }
      }
      // The first open return (its op had to be linearized by now) or a forced dead end.
      if (!backtrack) {
        if (pass === FORCED) {
          pass = FINITE;
          node = next[HEAD];
          continue;
        }
        if (pass === FINITE && linearizedUnknown < this.#unknownCount) {
          pass = UNKNOWN;
          node = next[HEAD];
          continue;
        }
        if (this.#deadEnd === undefined || linearizedFinite > this.#deadEnd.depth) {
          this.#recordDeadEnd(linearizedFinite, (node - 2) >> 1, stackOp);
        }
      }
      const i = stackOp.pop();
      if (i === undefined) return { explored: this.#explored, violation: this.#violation() };
      this.#unlift(i);
      this.#mark(i);
      if (this.#finite[i]) linearizedFinite--;
      else {
        linearizedUnknown--;
        this.#used[this.#classOf[i]]--;
        this.#uSnapshot = this.#uSnapshots.pop()!;
      }
      this.#state = stackState.pop()!;
      pass = stackPass.pop()!;
      // Alternatives to a forced op need no trying: its configuration fails with it.
      backtrack = pass === FORCED;
      node = next[2 * i + 1];
    }
  }

  /** Toggles op i in the linearized set (it is its own inverse). */
  #mark(i: number): void {
    const s = this.#slot[i];
    if (this.#finite[i]) {
      this.#fBits[s >>> 5] ^= 1 << (s & 31);
    } else {
      this.#uBits[s >>> 5] ^= 1 << (s & 31);
    }
  }

  /**
   * Whether the current configuration (linearized ops, `state`) is dominated by one
   * explored already: the same finite ops, a subset of its unknown ops, and a state that
   * covers `state`. Everything reachable from here is reachable from there, so there is no
   * need to go on. Records the configuration if not.
   */
  #dominated(state: State, unknown: Uint32Array): boolean {
    // The key: the finite-op bitset as 16-bit characters, from its first word that is not
    // all ones (the linearized ops are mostly a prefix in call order) to its last non-zero
    // one, after the hash of the state's value. A string is compact and hashed by the engine.
    const f = this.#fBits;
    let lo = 0;
    while (lo < f.length && f[lo] === 0xffffffff) lo++;
    let hi = f.length;
    while (hi > lo && f[hi - 1] === 0) hi--;
    const vh = state.valueHash;
    let key = String.fromCharCode(lo & 0xffff, lo >>> 16, vh & 0xffff, vh >>> 16);
    for (let w = lo; w < hi; w++) key += String.fromCharCode(f[w] & 0xffff, f[w] >>> 16);
    const u = this.#uBits;
    const floor = minRev(state);
    const bucket = this.#seen.get(key);
    if (bucket !== undefined) {
      for (const s of bucket) {
        if (!covers(s.state, state)) continue;
        let subset = true;
        for (let w = 0; w < s.unknown.length && subset; w++) {
          const extra = s.unknown[w] & ~u[w];
          if (extra !== 0) subset = this.#allDead(w, extra, floor);
        }
        if (subset) return true;
      }
    }
    const seen: Seen = { unknown, state };
    if (bucket === undefined) this.#seen.set(key, [seen]);
    else bucket.push(seen);
    return false;
  }

  /**
   * Whether every unknown op in `bits` (word `w`) is conditional on a revision below
   * `floor`: such an op can never take effect again, so whether it was used no longer
   * matters. Without this, each set of long-dead conditional ops would be a configuration
   * of its own, and there are exponentially many.
   */
  #allDead(w: number, bits: number, floor: number): boolean {
    for (let b = 0; b < 32; b++) {
      if ((bits & (1 << b)) !== 0 && this.#deadBelow[(w << 5) | b] >= floor) return false;
    }
    return true;
  }

  #lift(i: number): void {
    const next = this.#next;
    const prev = this.#prev;
    const unlink = (n: number) => {
      next[prev[n]] = next[n];
      if (next[n] !== NONE) prev[next[n]] = prev[n];
    };
    unlink(2 * i + 1);
    if (this.#finite[i]) unlink(2 * i + 2);
  }

  #unlift(i: number): void {
    const next = this.#next;
    const prev = this.#prev;
    const relink = (n: number) => {
      next[prev[n]] = n;
      if (next[n] !== NONE) prev[next[n]] = n;
    };
    if (this.#finite[i]) relink(2 * i + 2);
    relink(2 * i + 1);
  }

  #recordDeadEnd(depth: number, stuck: number, stack: readonly number[]): void {
    // Unknown ops stay open forever, so the window holds every old one: only those that
    // could take effect here are worth showing.
    const pending: number[] = [];
    const unknown: number[] = [];
    for (let n = this.#next[HEAD]; n !== NONE && (n & 1) === 1; n = this.#next[n]) {
      const i = (n - 1) >> 1;
      if (this.#finite[i]) pending.push(i);
      else if (typeof step(this.#state, this.#ops[i], this.#taken) !== "string") unknown.push(i);
    }
    const recent = stack.slice(Math.max(0, stack.length - Math.max(2, this.#excerpt >> 2)));
    this.#deadEnd = {
      depth,
      length: stack.length,
      state: this.#state,
      stuck,
      recent,
      pending: [...pending, ...unknown],
      concurrent: pending.length,
    };
  }

  #giveUp(): KeyVerdict {
    const reason = `no verdict within ${this.#maxStates} explored configurations ` +
      `(raise maxStatesPerKey, or record fewer unknown outcomes)`;
    const undecided = {
      key: this.#key,
      reason,
      explored: this.#maxStates,
      ops: this.#ops.length,
    };
    return { explored: this.#maxStates, undecided };
  }

  #violation(): Violation {
    const d = this.#deadEnd!;
    const ops = this.#ops;
    const note = (i: number) => {
      const r = step(d.state, ops[i], this.#taken);
      return typeof r === "string" ? r : "fits here, but every order with it dead-ends later";
    };
    const stuck = ops[d.stuck];
    const excerpt: ExcerptOp[] = [];
    const seen = new Set<number>();
    const add = (i: number, role: ExcerptOp["role"], withNote: boolean) => {
      if (seen.has(i) || excerpt.length >= this.#excerpt) return;
      seen.add(i);
      const base = { index: ops[i].index, entry: ops[i].entry, role };
      excerpt.push(withNote ? { ...base, note: note(i) } : base);
    };
    add(d.stuck, "stuck", true);
    for (const i of d.recent) add(i, "linearized", false);
    for (const i of d.pending) add(i, "pending", true);
    excerpt.sort((a, b) => a.entry.invokeMs - b.entry.invokeMs || a.index - b.index);
    let reason = `${describeEntry(stuck.entry)} cannot be linearized: ${note(d.stuck)}`;
    const found = stuck.entry.op.f === "read" && stuck.entry.result !== null
      ? (stuck.entry.result as ReadValue).value
      : undefined;
    if (
      found !== undefined && !ops.some((p) => "value" in p.entry.op && p.entry.op.value === found)
    ) {
      reason = `${describeEntry(stuck.entry)} found ${JSON.stringify(found)}, ` +
        `which no write of this key wrote`;
    } else if (d.concurrent > 1) {
      reason += ` (nor in any order with the ${d.concurrent - 1} ops concurrent with it)`;
    }
    return {
      key: this.#key,
      reason,
      state: describeState(d.state, this.#placeholder),
      linearized: d.length,
      ops: excerpt,
    };
  }
}

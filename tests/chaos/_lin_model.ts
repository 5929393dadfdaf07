/**
 * The register model the linearizability checker searches over: the history types a
 * recorder produces, their validation, and the sequential specification of one koi key
 * (`step`), plus the report's types. Kept apart from the search so that the search only
 * knows "state + op -> next state or refusal" and "state covers state".
 *
 * @module
 */

/** One operation on one key, as the client invoked it. */
export type Op =
  | { readonly f: "read" }
  | { readonly f: "write"; readonly value: string }
  | { readonly f: "cas"; readonly ifRev: number; readonly value: string }
  | { readonly f: "putIfAbsent"; readonly value: string }
  | { readonly f: "delete" }
  | { readonly f: "deleteIf"; readonly ifRev: number };

/** What a `read` found: the key's value and the revision of the write that set it. */
export interface ReadValue {
  /** The value. */
  readonly value: string;
  /** The revision the store gave the write that produced it. */
  readonly rev: number;
}

/** The answer to a `write`, a successful `cas` or a successful `putIfAbsent`. */
export interface WriteResult {
  /** The revision the store gave this write; omitted when the client did not learn it. */
  readonly rev?: number;
}

/** The answer to a `delete` or a successful `deleteIf`. */
export interface DeleteResult {
  /** The revision of the delete (a delete is a write, also of an absent key); optional. */
  readonly rev?: number;
  /** Whether the key existed just before; optional. */
  readonly existed?: boolean;
}

/**
 * A definite refusal of a conditional operation (`cas`, `putIfAbsent`, `deleteIf`): it was
 * evaluated against the key's state at one instant and changed nothing. It is recorded with
 * outcome `ok` because, unlike a plain `fail`, it constrains the state at that instant.
 */
export interface PreconditionFailure {
  /** Marks the refusal. */
  readonly precondition: true;
  /**
   * The key's revision the store reported (koi's `PreconditionFailedError.currentRev`):
   * a number when the key existed at that revision, `null` when it was absent, omitted when
   * unknown.
   */
  readonly currentRev?: number | null;
}

/** Any result; which shapes are valid depends on the op (see {@linkcode HistoryEntry}). */
export type OpResult = ReadValue | null | WriteResult | DeleteResult | PreconditionFailure;

/**
 * One completed (or abandoned) call of one client, as recorded.
 *
 * Outcomes:
 * - `ok`: the call took effect exactly once between `invokeMs` and `endMs`, with `result`:
 *   `read` → {@linkcode ReadValue} or `null` (absent); `write` → {@linkcode WriteResult};
 *   `cas` / `putIfAbsent` → {@linkcode WriteResult} or {@linkcode PreconditionFailure};
 *   `delete` → {@linkcode DeleteResult}; `deleteIf` → {@linkcode DeleteResult} or
 *   {@linkcode PreconditionFailure}. `result` may be omitted for everything but reads.
 * - `fail`: the call definitely did not take effect (e.g. refused before reaching the log);
 *   it constrains nothing and is ignored.
 * - `unknown`: it may or may not have taken effect, at any instant after `invokeMs` (even
 *   long after `endMs`, which is ignored and treated as +Infinity). `result` is ignored.
 *   Unknown reads constrain nothing and are dropped.
 *
 * All times must come from one monotonic clock (one process's `performance.now()`).
 */
export interface HistoryEntry {
  /** The client (or worker) that made the call; only used in reports. */
  readonly process: string;
  /** The key; keys are checked independently. */
  readonly key: string;
  /** The operation. */
  readonly op: Op;
  /** When the call was made (ms). */
  readonly invokeMs: number;
  /** When its answer arrived (ms); ignored for `unknown`. */
  readonly endMs: number;
  /** See above. */
  readonly outcome: "ok" | "fail" | "unknown";
  /** The answer of an `ok` call. */
  readonly result?: OpResult;
}

// --- the checker's report (re-exported by linearizability.ts) ---------------------------

/** One op of a violation's excerpt. */
export interface ExcerptOp {
  /** Its position in the input array. */
  readonly index: number;
  /** The entry. */
  readonly entry: HistoryEntry;
  /**
   * `linearized`: among the last ops of the longest order found; `pending`: a call that
   * was open there and could go next; `stuck`: the op that returned next and could not be
   * linearized by any order of the pending ops.
   */
  readonly role: "linearized" | "pending" | "stuck";
  /** For pending and stuck ops: why it cannot take effect in the state reached. */
  readonly note?: string;
}

/** A key whose history has no linearization. */
export interface Violation {
  /** The key. */
  readonly key: string;
  /** What went wrong, in one sentence. */
  readonly reason: string;
  /** The model state at the end of the longest partial linearization found. */
  readonly state: string;
  /** How many ops of the key that partial linearization holds. */
  readonly linearized: number;
  /** The ops around the point where the search got stuck, in call order. */
  readonly ops: readonly ExcerptOp[];
}

/** A key the search gave up on within its budget: neither passed nor failed. */
export interface Undecided {
  /** The key. */
  readonly key: string;
  /** Why no verdict. */
  readonly reason: string;
  /** Configurations explored. */
  readonly explored: number;
  /** Ops of the key that constrain it. */
  readonly ops: number;
}

/** The verdict on a whole history. */
export interface CheckResult {
  /** True only when every key is proven linearizable (no violation, nothing undecided). */
  readonly ok: boolean;
  /** Distinct keys in the history. */
  readonly keys: number;
  /** Entries in the history (including ignored `fail`s and unknown reads). */
  readonly ops: number;
  /** Configurations explored over all keys (a measure of the work done). */
  readonly explored: number;
  /** The keys with no linearization, sorted by key. */
  readonly violations: readonly Violation[];
  /** The keys the budget left undecided, sorted by key. */
  readonly undecided: readonly Undecided[];
}

/**
 * The state of one key during the search. `rev` is the revision of the key's latest
 * mutation (write or delete; 0 before any), known exactly or only as a bound: an unknown
 * write's revision is not known until a read or a reported `currentRev` pins it, so it is
 * kept symbolic (`exact: false`: any integer > `rev` not in `excl`) instead of branching on
 * every possible number. This keeps `step` deterministic and the search small.
 *
 * An absent key's revision only bounds the next mutation's, so it is kept as an exact
 * lower bound: the least revision the latest delete can have had.
 */
export interface State {
  /** The value, or null when the key is absent. */
  readonly value: string | null;
  /** The exact revision, or (when `exact` is false) a strict lower bound of it. */
  readonly rev: number;
  /** Whether `rev` is exact. */
  readonly exact: boolean;
  /** Revisions excluded by precondition failures (sorted; each > rev + 1); symbolic only. */
  readonly excl: readonly number[] | null;
  /**
   * The hash of `value` (0 when absent), the state's part of the memo table's key: it
   * leaves the revision out, because states that may cover one another (see
   * {@linkcode covers}) differ only in it and must meet in one bucket.
   */
  readonly valueHash: number;
}

/** A validated history entry of one key, in the shape the search uses. */
export interface PreparedOp {
  /** Its position in the input array. */
  readonly index: number;
  /** The entry itself. */
  readonly entry: HistoryEntry;
  /** Whether the outcome was `ok` (else `unknown`: maybe took effect, result unknown). */
  readonly known: boolean;
  /** The call time. */
  readonly invoke: number;
  /** The answer time; +Infinity when unknown. */
  readonly end: number;
  /**
   * The value it writes, as the model sees it: the search may replace a value no read
   * returns by a placeholder shared by all such values (see linearizability.ts).
   */
  readonly value: string | undefined;
  /** The hash of `value`, or (a read) of the value found; 0 otherwise. */
  readonly valueHash: number;
}

/** FNV-1a over UTF-16 code units: cheap, deterministic, good enough for a memo table. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function make(
  value: string | null,
  valueHash: number,
  rev: number,
  exact: boolean,
  excl: readonly number[] | null,
): State {
  return { value, rev, exact, excl, valueHash: value === null ? 0 : valueHash };
}

/** A symbolic revision "> lo, not in excl", normalised so that lo + 1 is allowed. */
function symbolic(value: string | null, vh: number, lo: number, excl: readonly number[]): State {
  let i = 0;
  while (i < excl.length && excl[i] <= lo) i++;
  while (i < excl.length && excl[i] === lo + 1) {
    lo++;
    i++;
  }
  return make(value, vh, lo, false, i < excl.length ? excl.slice(i) : null);
}

/** The initial state of a key: absent (floor revision 0) or holding a given value. */
export function initialState(init: ReadValue | null): State {
  return init === null
    ? make(null, 0, 0, true, null)
    : make(init.value, hashString(init.value), init.rev, true, null);
}

/**
 * The least revision the state's revision can have. Revisions only grow along a
 * linearization, so an op conditional on a lower one can no longer take effect.
 */
export function minRev(s: State): number {
  return s.exact ? s.rev : s.rev + 1;
}

/**
 * The state with its revision fixed to r, or null when r is not a possible value of it.
 * A symbolic revision is never one in `taken` (the revisions acknowledged to other writes:
 * two mutations of a key never share one). The search would find that out anyway once it
 * placed those writes; knowing it here cuts dead branches short.
 */
function pin(s: State, r: number, taken: ReadonlySet<number>): State | null {
  if (s.exact) return s.rev === r ? s : null;
  if (r <= s.rev || (s.excl !== null && s.excl.includes(r)) || taken.has(r)) return null;
  return make(s.value, s.valueHash, r, true, null);
}

/** The state after a mutation with revision `rev` (or an unknown one, above `floor`). */
function mutated(
  value: string | null,
  vh: number,
  rev: number | undefined,
  floor: number,
): State {
  if (rev !== undefined) return make(value, vh, rev, true, null);
  return value === null ? make(null, 0, floor + 1, true, null) : symbolic(value, vh, floor, []);
}

/** Checks a precondition failure of a condition (`ifRev`, or null for "absent"). */
function refused(
  s: State,
  ifRev: number | null,
  f: PreconditionFailure,
  taken: ReadonlySet<number>,
): State | string {
  const cur = f.currentRev;
  if (cur === null) {
    if (ifRev === null) return "it reports the key absent, which would have met the condition";
    return s.value === null ? s : "it reports the key absent, but the key held a value";
  }
  if (cur !== undefined) {
    if (cur === ifRev) return "it reports the very revision the condition asked for";
    if (s.value === null) return "it reports a revision, but the key was absent";
    return pin(s, cur, taken) ?? "it reports another revision than the key had";
  }
  if (s.value === null) return ifRev === null ? "the key was absent, meeting the condition" : s;
  if (ifRev === null) return s;
  if (s.exact) return s.rev !== ifRev ? s : "the key had exactly the revision asked for";
  if (ifRev <= s.rev || taken.has(ifRev)) return s; // not a possible revision anyway
  const excl = s.excl === null ? [ifRev] : [...s.excl, ifRev].sort((a, b) => a - b);
  return symbolic(s.value, s.valueHash, s.rev, excl);
}

function isPrecondition(r: OpResult | undefined): r is PreconditionFailure {
  return r !== null && r !== undefined && (r as PreconditionFailure).precondition === true;
}

/**
 * The sequential specification of a koi key: the state after `p` takes effect in `s`, or
 * why it cannot (a constant string: no allocation on the search's hot path). `taken` holds
 * the revisions acknowledged to the key's mutations (see {@linkcode takenRevs}). An unknown
 * op is only ever asked to take effect; "it never happened" is the search leaving it out.
 */
export function step(s: State, p: PreparedOp, taken: ReadonlySet<number>): State | string {
  const op = p.entry.op;
  const r = p.known ? p.entry.result : undefined;
  switch (op.f) {
    case "read": {
      if (r === null) return s.value === null ? s : "it found the key absent, but it held a value";
      const rv = r as ReadValue;
      if (s.value === null) return "it found a value, but the key was absent";
      if (s.value !== rv.value) return "it found another value than the key held";
      return pin(s, rv.rev, taken) ??
        "it found the key's value with another revision than its write got";
    }
    case "write": {
      const rev = (r as WriteResult | undefined)?.rev;
      if (rev !== undefined && rev <= minRev(s)) {
        return "its revision is not above the key's latest revision";
      }
      return mutated(p.value!, p.valueHash, rev, minRev(s));
    }
    case "cas": {
      if (isPrecondition(r)) return refused(s, op.ifRev, r, taken);
      if (s.value === null) return "it took effect, but the key was absent";
      const at = pin(s, op.ifRev, taken);
      if (at === null) return "it took effect, but the key's revision was not ifRev";
      const rev = (r as WriteResult | undefined)?.rev;
      if (rev !== undefined && rev <= op.ifRev) return "its revision is not above ifRev";
      return mutated(p.value!, p.valueHash, rev, op.ifRev);
    }
    case "putIfAbsent": {
      if (isPrecondition(r)) return refused(s, null, r, taken);
      if (s.value !== null) return "it took effect, but the key existed";
      const rev = (r as WriteResult | undefined)?.rev;
      if (rev !== undefined && rev <= minRev(s)) {
        return "its revision is not above the key's latest revision";
      }
      return mutated(p.value!, p.valueHash, rev, minRev(s));
    }
    case "delete": {
      const d = r as DeleteResult | undefined;
      if (d?.existed === true && s.value === null) {
        return "it says the key existed, but it was absent";
      }
      if (d?.existed === false && s.value !== null) {
        return "it says the key was absent, but it existed";
      }
      if (d?.rev !== undefined && d.rev <= minRev(s)) {
        return "its revision is not above the key's latest revision";
      }
      return mutated(null, 0, d?.rev, minRev(s));
    }
    case "deleteIf": {
      if (isPrecondition(r)) return refused(s, op.ifRev, r, taken);
      const d = r as DeleteResult | undefined;
      if (s.value === null) return "it took effect, but the key was absent";
      if (pin(s, op.ifRev, taken) === null) {
        return "it took effect, but the key's revision was not ifRev";
      }
      if (d?.existed === false) return "it says the key was absent, but it deleted it";
      if (d?.rev !== undefined && d.rev <= op.ifRev) return "its revision is not above ifRev";
      return mutated(null, 0, d?.rev, op.ifRev);
    }
  }
}

/**
 * Whether state `a` covers `b`: every concrete state `b` stands for, `a` stands for too,
 * so whatever the rest of the history can do from `b` it can do from `a`. Same value, and
 * for a present key a superset of possible revisions; for an absent one a floor no higher
 * (its revision only bounds the next mutation's).
 */
export function covers(a: State, b: State): boolean {
  if (a === b) return true;
  if (a.value !== b.value) return false;
  if (a.value === null) return a.rev <= b.rev;
  if (a.exact) return b.exact && a.rev === b.rev;
  if (b.exact) return b.rev > a.rev && (a.excl === null || !a.excl.includes(b.rev));
  if (a.rev > b.rev) return false;
  // Whatever a excludes must be outside b's range already.
  return a.excl === null || a.excl.every((x) => x <= b.rev || (b.excl?.includes(x) ?? false));
}

function isRev(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 1;
}

function checkResult(e: HistoryEntry): string | null {
  const r = e.result;
  const op = e.op;
  if (op.f === "read") {
    if (r === null) return null;
    const v = r as ReadValue | undefined;
    if (v === undefined || typeof v.value !== "string" || !isRev(v.rev)) {
      return "an ok read needs result null or { value: string, rev >= 1 }";
    }
    return null;
  }
  if (r === undefined) return null;
  if (r === null || typeof r !== "object") return "result must be an object";
  if (isPrecondition(r)) {
    if (op.f !== "cas" && op.f !== "putIfAbsent" && op.f !== "deleteIf") {
      return `a ${op.f} has no precondition to fail`;
    }
    const c = r.currentRev;
    return c === undefined || c === null || isRev(c) ? null : "currentRev must be a revision";
  }
  const rev = (r as WriteResult).rev;
  if (rev !== undefined && !isRev(rev)) return "rev must be an integer >= 1";
  const existed = (r as DeleteResult).existed;
  if (existed !== undefined && typeof existed !== "boolean") return "existed must be a boolean";
  return null;
}

function checkOp(op: Op): string | null {
  switch (op?.f) {
    case "read":
    case "delete":
      return null;
    case "write":
    case "putIfAbsent":
      return typeof op.value === "string" ? null : "value must be a string";
    case "cas":
      if (typeof op.value !== "string") return "value must be a string";
      return isRev(op.ifRev) ? null : "ifRev must be an integer >= 1";
    case "deleteIf":
      return isRev(op.ifRev) ? null : "ifRev must be an integer >= 1";
    default:
      return "unknown op";
  }
}

/**
 * Validates entry `index` and turns it into a {@linkcode PreparedOp}, or returns null when
 * it constrains nothing (`fail`, or an `unknown` read). Throws a TypeError on malformed
 * input: that is a recorder bug, not a store bug, and must not pass as either verdict.
 */
export function prepare(e: HistoryEntry, index: number): PreparedOp | null {
  const problem = typeof e?.key !== "string"
    ? "key must be a string"
    : !Number.isFinite(e.invokeMs)
    ? "invokeMs must be a finite number"
    : e.outcome !== "ok" && e.outcome !== "fail" && e.outcome !== "unknown"
    ? "outcome must be ok, fail or unknown"
    : e.outcome === "ok" && !(e.endMs >= e.invokeMs)
    ? "endMs must be >= invokeMs"
    : checkOp(e.op) ?? (e.outcome === "ok" ? checkResult(e) : null);
  if (problem !== null) {
    throw new TypeError(`History entry ${index}: ${problem}: ${JSON.stringify(e)}`);
  }
  if (e.outcome === "fail" || (e.outcome === "unknown" && e.op.f === "read")) return null;
  const known = e.outcome === "ok";
  const op = e.op;
  const written = "value" in op ? op.value : undefined;
  const found = op.f === "read" && known && e.result !== null
    ? (e.result as ReadValue).value
    : undefined;
  const v = written ?? found;
  return {
    index,
    entry: e,
    known,
    invoke: e.invokeMs,
    end: known ? e.endMs : Infinity,
    value: written,
    valueHash: v === undefined ? 0 : hashString(v),
  };
}

function showRev(s: State): string {
  if (s.exact) return `rev ${s.rev}`;
  const excl = s.excl === null ? "" : `, not ${s.excl.join("/")}`;
  return `rev unknown (> ${s.rev}${excl})`;
}

/**
 * A state for humans: `"v" @ rev 7`, or `absent (last rev 9)`; `placeholder` is the
 * value standing for every value no read returned.
 */
export function describeState(s: State, placeholder?: string): string {
  if (s.value === null) return `absent (latest mutation ${showRev(s)})`;
  const value = s.value === placeholder ? "(a value no read returned)" : JSON.stringify(s.value);
  return `${value} @ ${showRev(s)}`;
}

function describeResult(e: HistoryEntry): string {
  if (e.outcome !== "ok") return e.outcome;
  const r = e.result;
  if (r === undefined) return "ok";
  if (r === null) return "absent";
  if (isPrecondition(r)) {
    const c = r.currentRev;
    return `precondition failed${
      c === undefined ? "" : c === null ? " (key absent)" : ` (current rev ${c})`
    }`;
  }
  if (e.op.f === "read") {
    return `${JSON.stringify((r as ReadValue).value)} @ rev ${(r as ReadValue).rev}`;
  }
  const d = r as DeleteResult;
  const parts = [d.rev === undefined ? "" : `rev ${d.rev}`];
  if (d.existed !== undefined) parts.push(d.existed ? "existed" : "was absent");
  return `ok ${parts.filter((x) => x !== "").join(", ")}`.trim();
}

/** An entry for humans: `p3 cas(ifRev 5, "v9") → precondition failed [12.0 .. 15.5 ms]`. */
export function describeEntry(e: HistoryEntry): string {
  const op = e.op;
  const call = op.f === "read" || op.f === "delete"
    ? op.f
    : op.f === "deleteIf"
    ? `deleteIf(ifRev ${op.ifRev})`
    : op.f === "cas"
    ? `cas(ifRev ${op.ifRev}, ${JSON.stringify(op.value)})`
    : `${op.f}(${JSON.stringify(op.value)})`;
  const end = e.outcome === "unknown" ? "∞" : e.endMs.toFixed(1);
  return `${e.process} ${call} → ${describeResult(e)} [${e.invokeMs.toFixed(1)} .. ${end} ms]`;
}

/** The revisions acknowledged to mutations among `ops` (all of one key). */
export function takenRevs(ops: readonly PreparedOp[]): Set<number> {
  const taken = new Set<number>();
  for (const p of ops) {
    const r = p.entry.result as { rev?: unknown } | null | undefined;
    if (p.known && p.entry.op.f !== "read" && typeof r?.rev === "number") taken.add(r.rev);
  }
  return taken;
}

/**
 * Observations of the conformance scenarios: what a scenario saw, turned into plain JSON that
 * compares equal between two stores that behave the same. Values and key parts are tagged
 * (`{"bigint":"5"}`, `{"number":"-0"}`, `{"Map":[…]}`, …) so that nothing is lost on the way
 * to JSON; versionstamps are wrapped with {@linkcode vs} and replaced, once the scenario is
 * done, by their rank among the distinct versionstamps it saw (`"vs0"` is the oldest), so
 * that only their order and equalities are compared, never their raw bytes.
 *
 * @module
 */

/** JSON values. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A versionstamp (or null) as a scenario saw it, replaced by its rank in {@linkcode finalize}. */
export class Stamp {
  /** The raw versionstamp (20 hex digits) or null. */
  readonly raw: string | null;
  /** Wraps `raw`. */
  constructor(raw: string | null) {
    this.raw = raw;
  }
}

/** Marks a versionstamp for ranking. */
export function vs(raw: string | null | undefined): Stamp {
  return new Stamp(raw ?? null);
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function number(n: number): Json {
  if (Object.is(n, -0)) return { number: "-0" };
  if (!Number.isFinite(n)) return { number: String(n) };
  return n;
}

/**
 * A value (or key part) read from Deno KV as tagged JSON: every type the V8 serializer keeps
 * apart stays apart (`-0` and `0`, `undefined` and `null`, a number and a KvU64, a Uint8Array
 * and an Int8Array, holes in arrays); a reference back to an enclosing object is
 * `{"cycle": depth}`.
 */
export function norm(value: unknown, ancestors: unknown[] = []): Json {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return number(value);
    case "bigint":
      return { bigint: value.toString() };
    case "undefined":
      return { undefined: true };
    case "symbol":
    case "function":
      return { unexpected: typeof value };
  }
  if (value === null) return null;
  const depth = ancestors.indexOf(value);
  if (depth >= 0) return { cycle: ancestors.length - depth };
  const inner = [...ancestors, value];
  const n = (v: unknown) => norm(v, inner);
  if (value instanceof Deno.KvU64) return { u64: value.value.toString() };
  if (value instanceof Uint8Array && value.constructor === Uint8Array) {
    return { Uint8Array: hex(value) };
  }
  if (ArrayBuffer.isView(value)) {
    const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    return { [value.constructor.name]: hex(bytes) };
  }
  if (value instanceof ArrayBuffer) return { ArrayBuffer: hex(new Uint8Array(value)) };
  if (value instanceof Date) {
    return { Date: Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString() };
  }
  if (value instanceof RegExp) return { RegExp: String(value) };
  if (value instanceof Map) return { Map: [...value].map(([k, v]) => [n(k), n(v)]) };
  if (value instanceof Set) return { Set: [...value].map(n) };
  if (value instanceof Error) return { Error: { name: value.name, message: value.message } };
  if (Array.isArray(value)) {
    return {
      Array: Array.from({ length: value.length }, (_, i) => i in value ? n(value[i]) : "<hole>"),
    };
  }
  const out: Record<string, Json> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = n(v);
  return { Object: out };
}

/** A key as JSON: one tagged part each. */
export function key(k: Deno.KvKey): Json {
  return k.map((part) => norm(part));
}

/** An entry (or a missing one) of `get`, `getMany`, `list` or `watch`. */
export function entry(e: Deno.KvEntryMaybe<unknown>): Record<string, unknown> {
  return e.versionstamp === null
    ? { key: key(e.key), missing: true }
    : { key: key(e.key), value: norm(e.value), vs: vs(e.versionstamp) };
}

/** Just the keys and values of entries (for listings where versionstamps say nothing). */
export function kvs(entries: readonly Deno.KvEntryMaybe<unknown>[]): Json {
  return entries.map((e) =>
    e.versionstamp === null ? [key(e.key), "<missing>"] : [key(e.key), norm(e.value)]
  );
}

/** An atomic commit's outcome: ok with its versionstamp, or not ok. */
export function commit(r: Deno.KvCommitResult | Deno.KvCommitError): Record<string, unknown> {
  return r.ok ? { ok: true, vs: vs(r.versionstamp) } : { ok: false };
}

/**
 * Whether `fn` threw (or rejected); when it did not, what `keep` makes of its result. The
 * error's message and class are not compared: they differ between Deno's local and remote
 * databases.
 */
export async function outcome<T>(
  fn: () => T | Promise<T>,
  keep: (result: T) => unknown = () => "ok",
): Promise<Record<string, unknown>> {
  let result: T;
  try {
    result = await fn();
  } catch {
    return { threw: true };
  }
  return { threw: false, result: keep(result) };
}

/** Every entry of a listing, in order. */
export async function collect<T>(iter: Deno.KvListIterator<T>): Promise<Deno.KvEntry<T>[]> {
  const out: Deno.KvEntry<T>[] = [];
  for await (const e of iter) out.push(e);
  return out;
}

/** Polls `cond` every `intervalMs` until it holds (true) or `deadlineMs` passed (false). */
export async function eventually(
  cond: () => boolean | Promise<boolean>,
  deadlineMs: number,
  intervalMs = 50,
): Promise<boolean> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

const STAMP = /^[0-9a-f]{20}$/;

/**
 * The observation as JSON with every {@linkcode Stamp} replaced by `"vs<rank>"` (rank among
 * the distinct versionstamps of this observation, oldest first), `null` for a null one, and
 * `"vs?<raw>"` for one that is not 20 lowercase hex digits. Throws on anything that is not
 * JSON (a scenario must pass values through {@linkcode norm}).
 */
export function finalize(observation: unknown): Json {
  const seen = new Set<string>();
  const gather = (x: unknown): void => {
    if (x instanceof Stamp) {
      if (x.raw !== null && STAMP.test(x.raw)) seen.add(x.raw);
    } else if (Array.isArray(x)) x.forEach(gather);
    else if (x !== null && typeof x === "object") Object.values(x).forEach(gather);
  };
  gather(observation);
  const ranks = new Map([...seen].sort().map((s, i) => [s, `vs${i}`]));
  const build = (x: unknown, path: string): Json => {
    if (x instanceof Stamp) {
      if (x.raw === null) return null;
      return ranks.get(x.raw) ?? `vs?${x.raw}`;
    }
    if (x === null || typeof x === "string" || typeof x === "boolean") return x;
    if (typeof x === "number" && Number.isFinite(x) && !Object.is(x, -0)) return x;
    if (Array.isArray(x)) return x.map((v, i) => build(v, `${path}[${i}]`));
    if (typeof x === "object" && Object.getPrototypeOf(x) === Object.prototype) {
      const out: Record<string, Json> = {};
      for (const [k, v] of Object.entries(x)) out[k] = build(v, `${path}.${k}`);
      return out;
    }
    throw new TypeError(`Observation ${path} is not JSON (${Deno.inspect(x)}): pass it to norm()`);
  };
  return build(observation, "$");
}

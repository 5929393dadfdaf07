/**
 * A latency histogram of fixed size: log-linear buckets (each power of two split into 128
 * equal parts, like HdrHistogram), so memory stays the same whatever the number of
 * operations, and any percentile is reported within 0.4 % of the exact value.
 *
 * @module
 */

/** Sub-buckets per power of two: a bucket spans 1/128 of its lower bound, or less. */
const SUB_BUCKETS = 128;
/** Powers of two above {@linkcode LOWEST_MS}: 1 µs · 2^32 is about 71 minutes. */
const OCTAVES = 32;
/** The lowest value told apart from zero: 1 µs. Below it, values share bucket 0. */
const LOWEST_MS = 0.001;

/** The percentiles and extremes the load report prints, in milliseconds. */
export interface LatencySummary {
  /** How many values were recorded. */
  readonly count: number;
  /** The smallest value (exact); 0 when empty. */
  readonly min: number;
  /** The mean (exact); 0 when empty. */
  readonly mean: number;
  /** The median, within 0.4 %. */
  readonly p50: number;
  /** The 95th percentile, within 0.4 %. */
  readonly p95: number;
  /** The 99th percentile, within 0.4 %. */
  readonly p99: number;
  /** The largest value (exact); 0 when empty. */
  readonly max: number;
}

/**
 * Counts values (milliseconds) in log-linear buckets. A value v from 1 µs to about 71
 * minutes falls in a bucket [lo, hi) with hi - lo ≤ lo / 128; a percentile is reported as
 * its bucket's midpoint, clamped to the exact min and max, so it is within 1/256 of the
 * exact nearest-rank value. Values under 1 µs are counted in one bucket (no network
 * operation is that fast); values over the range in the top one (max stays exact).
 */
export class Histogram {
  readonly #counts = new Float64Array(1 + OCTAVES * SUB_BUCKETS);
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #max = -Infinity;

  /** How many values were recorded. */
  get count(): number {
    return this.#count;
  }

  /** The bytes the buckets take: the same before and after any number of values. */
  get byteLength(): number {
    return this.#counts.byteLength;
  }

  /** Records `ms` (a finite value ≥ 0; anything else is a programming error). */
  record(ms: number): void {
    if (!(ms >= 0 && ms < Infinity)) throw new RangeError(`Invalid latency: ${ms}`);
    this.#counts[bucketOf(ms)]++;
    this.#count++;
    this.#sum += ms;
    if (ms < this.#min) this.#min = ms;
    if (ms > this.#max) this.#max = ms;
  }

  /** Adds every value of `other` (for the total over operation types). */
  add(other: Histogram): void {
    for (let i = 0; i < this.#counts.length; i++) this.#counts[i] += other.#counts[i];
    this.#count += other.#count;
    this.#sum += other.#sum;
    this.#min = Math.min(this.#min, other.#min);
    this.#max = Math.max(this.#max, other.#max);
  }

  /**
   * The nearest-rank percentile `p` (0 < p ≤ 100): the value at rank ⌈p/100 · count⌉ of the
   * sorted values, within 0.4 %. 0 when empty.
   */
  percentile(p: number): number {
    if (!(p > 0 && p <= 100)) throw new RangeError(`Invalid percentile: ${p}`);
    if (this.#count === 0) return 0;
    if (p === 100) return this.#max;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i];
      if (seen >= rank) {
        const [lo, hi] = boundsOf(i);
        return Math.min(this.#max, Math.max(this.#min, (lo + hi) / 2));
      }
    }
    return this.#max; // not reached: the counts add up to count
  }

  /** Count, min, mean, p50, p95, p99 and max. */
  summary(): LatencySummary {
    const empty = this.#count === 0;
    return {
      count: this.#count,
      min: empty ? 0 : this.#min,
      mean: empty ? 0 : this.#sum / this.#count,
      p50: this.percentile(50),
      p95: this.percentile(95),
      p99: this.percentile(99),
      max: empty ? 0 : this.#max,
    };
  }
}

/** The bucket of `ms`: 0 below 1 µs, then 128 per power of two. */
function bucketOf(ms: number): number {
  if (ms < LOWEST_MS) return 0;
  const ratio = ms / LOWEST_MS;
  let octave = Math.floor(Math.log2(ratio));
  if (octave >= OCTAVES) return OCTAVES * SUB_BUCKETS; // the top bucket
  let mantissa = ratio / 2 ** octave;
  // log2 can be off by one ulp right at a power of two; keep the mantissa in [1, 2).
  if (mantissa >= 2) {
    octave++;
    mantissa /= 2;
    if (octave >= OCTAVES) return OCTAVES * SUB_BUCKETS;
  } else if (mantissa < 1) {
    octave--;
    mantissa *= 2;
  }
  const sub = Math.min(SUB_BUCKETS - 1, Math.floor((mantissa - 1) * SUB_BUCKETS));
  return 1 + octave * SUB_BUCKETS + sub;
}

/** The value range [lo, hi) of bucket `i`. */
function boundsOf(i: number): [number, number] {
  if (i === 0) return [0, LOWEST_MS];
  const octave = Math.floor((i - 1) / SUB_BUCKETS);
  const sub = (i - 1) % SUB_BUCKETS;
  const base = LOWEST_MS * 2 ** octave;
  return [base * (1 + sub / SUB_BUCKETS), base * (1 + (sub + 1) / SUB_BUCKETS)];
}

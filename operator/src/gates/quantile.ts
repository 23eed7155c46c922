/**
 * Quantiles of classic Prometheus histograms, over the increase between two scrapes.
 *
 * `histogramQuantile` reproduces PromQL's `histogram_quantile` on classic buckets (promql/quantile.go,
 * `bucketQuantile`) exactly, so a gate computed here and the same gate computed by a Prometheus server
 * with `histogram_quantile(q, sum by (le) (rate(x_bucket[w])))` agree. The helpers around it turn two
 * scrapes into that `sum by (le) (increase(...))` input: per-series deltas with counter-reset handling,
 * then a sum by `le` over the series a filter selects.
 */
import type { Labels, Sample } from './promtext.js';
import { parsePromFloat } from './promtext.js';

/** One cumulative bucket: the number of observations ≤ `upperBound` (the `le` label). */
export interface Bucket {
  readonly upperBound: number;
  readonly count: number;
}

/**
 * The φ-quantile `q` of a classic histogram given as cumulative buckets, with PromQL's semantics:
 * - buckets are sorted by upper bound here; buckets with the same upper bound (e.g. `le="0.2"` and
 *   `le="2e-1"`) are merged by adding their counts;
 * - float noise (relative difference ≤ 1e-12) between neighbouring counts is smoothed away, then counts
 *   that decrease with a higher bound are raised to the running maximum (Prometheus' `ensureMonotonic`);
 * - linear interpolation inside the bucket where the rank `q · total` falls; the lowest bucket's lower
 *   bound is 0 when its upper bound is > 0, otherwise its upper bound is returned;
 * - a rank in the `+Inf` bucket returns the upper bound of the second-highest bucket.
 *
 * Special cases: `NaN` when `q` is NaN, when there are no buckets or fewer than 2 after merging, when the
 * highest bound is not `+Inf`, or when there are no observations; `-Infinity` for q < 0; `+Infinity` for
 * q > 1. The input is not modified.
 */
export function histogramQuantile(q: number, buckets: readonly Bucket[]): number {
  if (Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  if (buckets.length === 0) return NaN;

  const sorted = buckets.map((b) => ({ upperBound: b.upperBound, count: b.count }));
  sorted.sort((a, b) => a.upperBound - b.upperBound);
  const highest = sorted[sorted.length - 1];
  if (highest === undefined || highest.upperBound !== Infinity) return NaN;

  const merged = coalesce(sorted);
  correctPrecisionErrors(merged, 1e-12);
  ensureMonotonic(merged);
  if (merged.length < 2) return NaN;

  const observations = at(merged, merged.length - 1).count;
  if (observations === 0) return NaN;
  let rank = q * observations;

  // The first bucket (excluding +Inf, as in Prometheus' sort.Search over len-1) whose count reaches rank.
  let b = 0;
  const lastFinite = merged.length - 1;
  while (b < lastFinite && at(merged, b).count < rank) b++;

  if (b === lastFinite) return at(merged, merged.length - 2).upperBound;
  if (b === 0 && at(merged, 0).upperBound <= 0) return at(merged, 0).upperBound;

  let bucketStart = 0;
  const bucketEnd = at(merged, b).upperBound;
  let count = at(merged, b).count;
  if (b > 0) {
    const below = at(merged, b - 1);
    bucketStart = below.upperBound;
    count -= below.count;
    rank -= below.count;
  }
  return bucketStart + (bucketEnd - bucketStart) * (rank / count);
}

function at<T>(array: readonly T[], index: number): T {
  const value = array[index];
  if (value === undefined) throw new Error(`internal error: index ${index} out of range`);
  return value;
}

interface MutableBucket {
  upperBound: number;
  count: number;
}

/** Merges buckets with the same upper bound (input sorted). */
function coalesce(sorted: MutableBucket[]): MutableBucket[] {
  const out: MutableBucket[] = [];
  for (const b of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && last.upperBound === b.upperBound) last.count += b.count;
    else out.push(b);
  }
  return out;
}

/** Prometheus' correctPrecisionErrors: treats a relative change ≤ tolerance between neighbours as none. */
function correctPrecisionErrors(buckets: MutableBucket[], tolerance: number): void {
  let prev = at(buckets, 0).count;
  for (let i = 1; i < buckets.length; i++) {
    const b = at(buckets, i);
    const delta = Math.abs(b.count - prev);
    if (delta === 0) continue;
    if (delta / b.count <= tolerance) b.count = prev;
    else prev = b.count;
  }
}

/** Prometheus' ensureMonotonic: raises every count to the running maximum (the histogram's envelope). */
function ensureMonotonic(buckets: MutableBucket[]): void {
  let max = at(buckets, 0).count;
  for (let i = 1; i < buckets.length; i++) {
    const b = at(buckets, i);
    if (b.count > max) max = b.count;
    else if (b.count < max) b.count = max;
  }
}

/** The increase of one histogram series between two scrapes. */
export interface BucketDelta {
  /** Per-`le` increases, sorted by upper bound. */
  readonly buckets: Bucket[];
  /**
   * True when the series was treated as reset: a bucket count decreased, or the set of bucket bounds
   * changed. The current counts are then the increase, as `rate()` assumes a counter restarted from 0.
   */
  readonly reset: boolean;
}

/**
 * Per-`le` increase between the previous and current cumulative buckets of ONE series.
 *
 * - `prev` undefined (the series appeared after the previous scrape; client libraries create series on
 *   first use): the current counts are the increase.
 * - any bucket decreased, or the bounds differ: a counter reset; the current counts are the increase.
 *   Resetting the whole series (not bucket by bucket) keeps the result a consistent histogram.
 * - otherwise `cur - prev` per bound.
 */
export function bucketDeltas(prev: readonly Bucket[] | undefined, cur: readonly Bucket[]): BucketDelta {
  const current = [...cur].sort((a, b) => a.upperBound - b.upperBound);
  const copy = (): Bucket[] => current.map((b) => ({ upperBound: b.upperBound, count: b.count }));
  if (prev === undefined) return { buckets: copy(), reset: false };
  const previous = [...prev].sort((a, b) => a.upperBound - b.upperBound);
  if (previous.length !== current.length) return { buckets: copy(), reset: true };
  const out: Bucket[] = [];
  for (let i = 0; i < current.length; i++) {
    const c = at(current, i);
    const p = at(previous, i);
    if (p.upperBound !== c.upperBound || c.count < p.count) return { buckets: copy(), reset: true };
    out.push({ upperBound: c.upperBound, count: c.count - p.count });
  }
  return { buckets: out, reset: false };
}

/**
 * Increase of a counter between two scrapes, like `increase()` over exactly those two points: `cur - prev`,
 * or `cur` when the counter went down (a reset: it restarted from 0) or did not exist before.
 */
export function counterIncrease(prev: number | undefined, cur: number): number {
  if (prev === undefined || cur < prev) return cur;
  return cur - prev;
}

/** Selects series by their labels (without `le`). */
export type LabelFilter = (labels: Labels) => boolean;

/**
 * A stable identity of a label set, ignoring the listed label names: the same series in two scrapes gets
 * the same key whatever the label order on the page.
 */
export function seriesKey(labels: Labels, ignore?: string): string {
  const names = Object.keys(labels)
    .filter((n) => n !== ignore)
    .sort();
  // JSON keeps the key unambiguous whatever characters the values contain.
  return JSON.stringify(names.map((n) => [n, labels[n]]));
}

/** One histogram series: its labels without `le` and its cumulative buckets. */
export interface HistogramSeries {
  readonly labels: Labels;
  readonly buckets: Bucket[];
}

/**
 * Groups `_bucket` samples into series keyed by {@link seriesKey} (labels minus `le`), keeping only the
 * series `filter` accepts. Samples whose `le` is missing or not a number are skipped, as Prometheus does.
 */
export function collectHistogramSeries(bucketSamples: readonly Sample[], filter?: LabelFilter): Map<string, HistogramSeries> {
  const series = new Map<string, HistogramSeries>();
  const rejected = new Set<string>(); // so the filter runs once per series, not once per bucket
  for (const sample of bucketSamples) {
    const le = sample.labels['le'];
    if (le === undefined) continue;
    const upperBound = parsePromFloat(le);
    if (upperBound === undefined || Number.isNaN(upperBound)) continue;
    const key = seriesKey(sample.labels, 'le');
    let s = series.get(key);
    if (s === undefined) {
      if (rejected.has(key)) continue;
      const labels = Object.create(null) as Record<string, string>;
      for (const [n, v] of Object.entries(sample.labels)) if (n !== 'le') labels[n] = v;
      if (filter !== undefined && !filter(labels)) {
        rejected.add(key);
        continue;
      }
      s = { labels, buckets: [] };
      series.set(key, s);
    }
    s.buckets.push({ upperBound, count: sample.value });
  }
  return series;
}

/**
 * Sums buckets by upper bound across series (`sum by (le)`). A bound missing from some series simply
 * contributes nothing there; `histogramQuantile` fixes any resulting non-monotonicity as Prometheus does.
 */
export function sumByLe(series: Iterable<readonly Bucket[]>): Bucket[] {
  const totals = new Map<number, number>();
  for (const buckets of series) {
    for (const b of buckets) totals.set(b.upperBound, (totals.get(b.upperBound) ?? 0) + b.count);
  }
  return [...totals.entries()].sort((a, b) => a[0] - b[0]).map(([upperBound, count]) => ({ upperBound, count }));
}

/** The summed increase of a histogram between two scrapes. */
export interface HistogramIncrease {
  /** `sum by (le)` of the per-series increases, sorted by upper bound. */
  readonly buckets: Bucket[];
  /** The total number of observations in the window (the `+Inf` bucket), 0 when none. */
  readonly observations: number;
  /** How many selected series are in the current scrape. */
  readonly series: number;
  /** How many of them were treated as counter resets. */
  readonly resets: number;
}

/**
 * `sum by (le) (increase(x_bucket{filter}))` between two scrapes of the same target: per-series
 * {@link bucketDeltas} (series only in the previous scrape are dropped; series only in the current one
 * count from 0), then {@link sumByLe}.
 */
export function histogramIncrease(prevBucketSamples: readonly Sample[], curBucketSamples: readonly Sample[], filter?: LabelFilter): HistogramIncrease {
  const prev = collectHistogramSeries(prevBucketSamples, filter);
  const cur = collectHistogramSeries(curBucketSamples, filter);
  const deltas: Bucket[][] = [];
  let resets = 0;
  for (const [key, series] of cur) {
    const delta = bucketDeltas(prev.get(key)?.buckets, series.buckets);
    if (delta.reset) resets++;
    deltas.push(delta.buckets);
  }
  const buckets = sumByLe(deltas);
  const inf = buckets.find((b) => b.upperBound === Infinity);
  return { buckets, observations: inf?.count ?? 0, series: cur.size, resets };
}

/**
 * What `npm run bench:fleet` computes from what it reads: the reconcile-duration histogram of the
 * operator's /metrics (cumulative buckets, so a window is the difference of two readings) and the
 * stub's request counts.
 */
import type { PassFigures, RequestFigures } from './fleet-results.js';

/** A cumulative histogram reading: bucket upper bound → count (Infinity for +Inf), sum and count. */
export interface HistogramReading {
  buckets: Map<number, number>;
  sum: number;
  count: number;
}

/** Reads one unlabelled-or-labelled histogram (all its series summed) from Prometheus text. */
export function readHistogram(text: string, name: string): HistogramReading {
  const buckets = new Map<number, number>();
  let sum = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^(\w+)(?:\{([^}]*)\})? ([0-9.eE+-]+|NaN)$/.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    if (m[1] === `${name}_bucket`) {
      const le = /le="([^"]+)"/.exec(m[2] ?? '')?.[1];
      if (le === undefined) continue;
      const bound = le === '+Inf' ? Infinity : Number(le);
      buckets.set(bound, (buckets.get(bound) ?? 0) + value);
    } else if (m[1] === `${name}_sum`) sum += value;
    else if (m[1] === `${name}_count`) count += value;
  }
  return { buckets, sum, count };
}

/** `after - before`, bucket by bucket. */
export function histogramDelta(before: HistogramReading, after: HistogramReading): HistogramReading {
  const buckets = new Map<number, number>();
  for (const [le, v] of after.buckets) buckets.set(le, v - (before.buckets.get(le) ?? 0));
  return { buckets, sum: after.sum - before.sum, count: after.count - before.count };
}

/**
 * The q-quantile, interpolated linearly within its bucket as Prometheus' histogram_quantile does (a
 * quantile in the +Inf bucket is reported as the highest finite bound). NaN for an empty histogram.
 */
export function histogramQuantile(h: HistogramReading, q: number): number {
  const bounds = [...h.buckets.keys()].sort((a, b) => a - b);
  const total = h.buckets.get(Infinity) ?? h.count;
  if (total <= 0) return NaN;
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (const b of bounds) {
    const c = h.buckets.get(b)!;
    if (c >= rank) {
      if (b === Infinity) return prevBound;
      return prevBound + ((b - prevBound) * (rank - prevCount)) / Math.max(1e-12, c - prevCount);
    }
    prevBound = b;
    prevCount = c;
  }
  return prevBound;
}

const round = (x: number, digits = 3): number => Number(x.toFixed(digits));

/** Pass figures of a window's histogram delta. */
export function passFigures(h: HistogramReading): PassFigures {
  const within = h.buckets.get(1) ?? 0;
  return {
    count: h.count,
    p50Seconds: h.count > 0 ? round(histogramQuantile(h, 0.5)) : 0,
    p99Seconds: h.count > 0 ? round(histogramQuantile(h, 0.99)) : 0,
    meanSeconds: h.count > 0 ? round(h.sum / h.count) : 0,
    overOneSecond: h.count - within,
  };
}

/** The stub's counters at one moment. */
export interface StubCounts {
  byVerb: Record<string, number>;
  byCluster: Record<string, number>;
}

/** Request figures of a window between two stub readings over `clusters` targets. */
export function requestFigures(before: StubCounts, after: StubCounts, clusters: number, seconds: number): RequestFigures {
  let total = 0;
  let max = 0;
  for (const [c, n] of Object.entries(after.byCluster)) {
    const d = n - (before.byCluster[c] ?? 0);
    total += d;
    if (d > max) max = d;
  }
  const byVerbPerSecond: Record<string, number> = {};
  for (const [v, n] of Object.entries(after.byVerb)) {
    const d = n - (before.byVerb[v] ?? 0);
    if (d > 0) byVerbPerSecond[v] = round(d / seconds, 2);
  }
  return {
    seconds: Math.round(seconds),
    perClusterPerSecond: round(total / clusters / seconds, 4),
    maxClusterPerSecond: round(max / seconds, 3),
    byVerbPerSecond,
  };
}

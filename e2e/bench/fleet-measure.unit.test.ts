import { describe, expect, it } from '@jest/globals';
import { histogramDelta, histogramQuantile, passFigures, readHistogram, requestFigures } from './fleet-measure.js';

const page = (b: Record<string, number>, sum: number) =>
  [
    '# HELP tro_reconcile_duration_seconds Duration of reconciles.',
    '# TYPE tro_reconcile_duration_seconds histogram',
    ...Object.entries(b).map(([le, v]) => `tro_reconcile_duration_seconds_bucket{le="${le}"} ${v}`),
    `tro_reconcile_duration_seconds_sum ${sum}`,
    `tro_reconcile_duration_seconds_count ${b['+Inf']}`,
    'tro_reconcile_total{result="success"} 3',
  ].join('\n');

describe('fleet benchmark arithmetic', () => {
  it('reads a histogram, subtracts two readings and interpolates quantiles within buckets as histogram_quantile does', () => {
    const before = readHistogram(page({ '0.5': 10, '1': 10, '2.5': 10, '+Inf': 10 }, 2), 'tro_reconcile_duration_seconds');
    const after = readHistogram(page({ '0.5': 60, '1': 90, '2.5': 110, '+Inf': 110 }, 82), 'tro_reconcile_duration_seconds');
    const d = histogramDelta(before, after);
    expect(d.count).toBe(100);
    expect(d.sum).toBe(80);
    // 50 of 100 at or under 0.5 s: the median is the bucket's upper bound; 99th: 19 of the 20 in (1, 2.5].
    expect(histogramQuantile(d, 0.5)).toBeCloseTo(0.5, 9);
    expect(histogramQuantile(d, 0.99)).toBeCloseTo(1 + (1.5 * 19) / 20, 9);
    expect(passFigures(d)).toEqual({ count: 100, p50Seconds: 0.5, p99Seconds: 2.425, meanSeconds: 0.8, overOneSecond: 20 });
  });

  it('gives no quantile for an empty window, and the highest finite bound for one in +Inf', () => {
    const empty = readHistogram(page({ '1': 0, '+Inf': 0 }, 0), 'tro_reconcile_duration_seconds');
    expect(passFigures(empty)).toEqual({ count: 0, p50Seconds: 0, p99Seconds: 0, meanSeconds: 0, overOneSecond: 0 });
    const slow = readHistogram(page({ '1': 0, '60': 0, '+Inf': 4 }, 400), 'tro_reconcile_duration_seconds');
    expect(histogramQuantile(slow, 0.99)).toBe(60);
  });

  it('counts requests per cluster per second over a window, and the busiest cluster', () => {
    const f = requestFigures({ byVerb: { get: 10 }, byCluster: { a: 5, b: 5 } }, { byVerb: { get: 30, watch: 2 }, byCluster: { a: 25, b: 7 } }, 2, 10);
    expect(f).toEqual({ seconds: 10, perClusterPerSecond: 1.1, maxClusterPerSecond: 2, byVerbPerSecond: { get: 2, watch: 0.2 } });
  });
});

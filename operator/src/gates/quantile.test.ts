import { describe, expect, it } from '@jest/globals';
import { samplesNamed } from './promselect.js';
import { parsePrometheusText } from './promtext.js';
import type { Bucket } from './quantile.js';
import { bucketDeltas, collectHistogramSeries, counterIncrease, histogramIncrease, histogramQuantile, seriesKey, sumByLe } from './quantile.js';

/** Buckets from `[upperBound, count]` pairs. */
function b(...pairs: [number, number][]): Bucket[] {
  return pairs.map(([upperBound, count]) => ({ upperBound, count }));
}

// Expected values below are the ones Prometheus' own test suite asserts for `histogram_quantile`
// (promql/promqltest/testdata/histograms.test), evaluated at 50m where every bucket equals 10× its
// per-step increment.
describe('histogramQuantile (Prometheus test-suite values)', () => {
  const positive = b([0.1, 50], [0.2, 70], [1, 110], [Infinity, 120]);
  const negative = b([-0.2, 10], [-0.1, 20], [0.3, 20], [Infinity, 30]);

  it.each([
    [0, 0, -0.2],
    [0.2, 0.048, -0.2],
    [0.5, 0.15, -0.15],
    [0.8, 0.72, 0.3],
    [1, 1, 0.3],
  ])('testhistogram q=%d → positive %d, negative %d', (q, pos, neg) => {
    expect(histogramQuantile(q, positive)).toBeCloseTo(pos, 12);
    expect(histogramQuantile(q, negative)).toBeCloseTo(neg, 12);
  });

  const positive3 = b([0, 0], [0.1, 50], [0.2, 70], [1, 110], [Infinity, 110]);
  const negative3 = b([-0.25, 0], [-0.2, 10], [-0.1, 20], [0.3, 20], [Infinity, 20]);
  it.each([
    [0, 0, -0.25],
    [0.25, 0.055, -0.225],
    [0.5, 0.125, -0.2],
    [0.75, 0.45, -0.15],
    [1, 1, -0.1],
  ])('testhistogram3 q=%d → positive %d, negative %d', (q, pos, neg) => {
    expect(histogramQuantile(q, positive3)).toBeCloseTo(pos, 12);
    expect(histogramQuantile(q, negative3)).toBeCloseTo(neg, 12);
  });

  it('lands exactly in the middle of buckets (testhistogram2)', () => {
    const h = b([0, 0], [2, 10], [4, 20], [6, 30], [Infinity, 30]);
    expect(histogramQuantile(1 / 6, h)).toBeCloseTo(1, 12);
    expect(histogramQuantile(0.5, h)).toBeCloseTo(3, 12);
    expect(histogramQuantile(5 / 6, h)).toBeCloseTo(5, 12);
  });

  it('fixes non-monotonic buckets like ensureMonotonic (nonmonotonic_bucket)', () => {
    const h = b([0.1, 20], [1, 10], [10, 50], [100, 40], [1000, 90], [Infinity, 80]);
    expect(histogramQuantile(0.01, h)).toBeCloseTo(0.0045, 12);
    expect(histogramQuantile(0.5, h)).toBeCloseTo(8.5, 12);
    expect(histogramQuantile(0.99, h)).toBeCloseTo(979.75, 10);
  });

  it('merges different spellings of one bound (mixed_bucket) and gives NaN for a lone +Inf', () => {
    const page = [
      'mixed_bucket{job="job1",instance="ins1",le="0.1"} 10',
      'mixed_bucket{job="job1",instance="ins1",le="0.2"} 10',
      'mixed_bucket{job="job1",instance="ins1",le="2e-1"} 10',
      'mixed_bucket{job="job1",instance="ins1",le="2.0e-1"} 10',
      'mixed_bucket{job="job1",instance="ins1",le="+Inf"} 40',
      'mixed_bucket{job="job1",instance="ins2",le="+inf"} 0',
      'mixed_bucket{job="job1",instance="ins2",le="+Inf"} 0',
    ].join('\n');
    const series = collectHistogramSeries(parsePrometheusText(page).samples);
    const ins1 = series.get(seriesKey({ instance: 'ins1', job: 'job1' }))?.buckets ?? [];
    const ins2 = series.get(seriesKey({ job: 'job1', instance: 'ins2' }))?.buckets ?? [];
    expect(ins1).toHaveLength(5);
    expect(histogramQuantile(0.5, ins1)).toBeCloseTo(0.15, 12);
    expect(histogramQuantile(0.75, ins1)).toBeCloseTo(0.2, 12);
    expect(histogramQuantile(1, ins1)).toBeCloseTo(0.2, 12);
    expect(ins2).toHaveLength(2);
    expect(histogramQuantile(0.5, ins2)).toBeNaN();
  });

  it('returns the second-highest bound when the rank falls in the +Inf bucket', () => {
    expect(histogramQuantile(0.99, b([1, 10], [2, 20], [Infinity, 100]))).toBe(2);
  });

  it('does not care about input order and does not modify the input', () => {
    const h = b([Infinity, 120], [0.2, 70], [1, 110], [0.1, 50]);
    const before = JSON.stringify(h);
    expect(histogramQuantile(0.5, h)).toBeCloseTo(0.15, 12);
    expect(JSON.stringify(h)).toBe(before);
  });

  it.each([
    ['q < 0', -0.1, positive, -Infinity],
    ['q > 1', 1.01, positive, Infinity],
    ['no observations', 0.2, b([0.1, 0], [0.2, 0], [Infinity, 0]), NaN],
    ['fewer than two buckets', 0.5, b([Infinity, 5]), NaN],
    ['no buckets', 0.5, [], NaN],
    ['highest bucket not +Inf', 0.5, b([0.1, 5], [0.2, 10]), NaN],
  ])('%s', (_name, q, buckets, expected) => {
    expect(histogramQuantile(q, buckets)).toBe(expected);
  });

  it('q = NaN gives NaN', () => {
    expect(histogramQuantile(NaN, positive)).toBeNaN();
  });

  it('smooths float noise between neighbouring counts (correctPrecisionErrors)', () => {
    // 100 and 100 + 1e-11 differ by 1e-13 relative: the same count. The rank 100.00000000000004 then lies
    // beyond the (1, 2] bucket and the result is the second-highest bound, 2; without the correction it
    // would interpolate to ≈1.004 inside (1, 2].
    const h = b([1, 100], [2, 100 + 1e-11], [Infinity, 200]);
    expect(histogramQuantile(0.5 + Number.EPSILON, h)).toBe(2);
  });
});

describe('sum by le and histogramIncrease (Prometheus aggregation values)', () => {
  // request_duration_seconds_bucket from histograms.test: 0 at t=0, 10× the increment at 50m.
  const increments: [string, string, number, number, number][] = [
    ['job1', 'ins1', 1, 3, 4],
    ['job1', 'ins2', 2, 5, 6],
    ['job2', 'ins1', 3, 4, 6],
    ['job2', 'ins2', 4, 7, 9],
  ];
  function scrape(factor: number): string {
    return increments
      .flatMap(([job, instance, a, c, inf]) => [
        `request_duration_seconds_bucket{job="${job}",instance="${instance}",le="0.1"} ${a * factor}`,
        `request_duration_seconds_bucket{job="${job}",instance="${instance}",le="0.2"} ${c * factor}`,
        `request_duration_seconds_bucket{job="${job}",instance="${instance}",le="+Inf"} ${inf * factor}`,
      ])
      .join('\n');
  }
  const prev = samplesNamed(parsePrometheusText(scrape(0)), 'request_duration_seconds_bucket');
  const cur = samplesNamed(parsePrometheusText(scrape(10)), 'request_duration_seconds_bucket');

  it('everything in one: q=0.3 → 0.075, q=0.5 → 0.12777…', () => {
    const inc = histogramIncrease(prev, cur);
    expect(inc.buckets).toEqual(b([0.1, 100], [0.2, 190], [Infinity, 250]));
    expect(inc.observations).toBe(250);
    expect(inc.series).toBe(4);
    expect(inc.resets).toBe(0);
    expect(histogramQuantile(0.3, inc.buckets)).toBeCloseTo(0.075, 12);
    expect(histogramQuantile(0.5, inc.buckets)).toBeCloseTo(0.1277777777777778, 12);
  });

  it('with a filter: job1 q=0.3 → 0.1, q=0.5 → 0.14; job2 q=0.3 → 0.0642857…, q=0.5 → 0.1125', () => {
    const job1 = histogramIncrease(prev, cur, (l) => l['job'] === 'job1');
    const job2 = histogramIncrease(prev, cur, (l) => l['job'] === 'job2');
    expect(job1.series).toBe(2);
    expect(histogramQuantile(0.3, job1.buckets)).toBeCloseTo(0.1, 12);
    expect(histogramQuantile(0.5, job1.buckets)).toBeCloseTo(0.14, 12);
    expect(histogramQuantile(0.3, job2.buckets)).toBeCloseTo(0.0642857142857143, 12);
    expect(histogramQuantile(0.5, job2.buckets)).toBeCloseTo(0.1125, 12);
  });

  it('filters see labels without le', () => {
    const seen: string[][] = [];
    collectHistogramSeries(cur, (l) => {
      seen.push(Object.keys(l).sort());
      return true;
    });
    expect(seen).toEqual(Array.from({ length: 4 }, () => ['instance', 'job']));
  });

  it('sumByLe adds counts per bound across series', () => {
    expect(sumByLe([b([1, 2], [Infinity, 3]), b([1, 5], [Infinity, 7]), b([0.5, 1], [Infinity, 1])])).toEqual(b([0.5, 1], [1, 7], [Infinity, 11]));
  });
});

describe('bucketDeltas', () => {
  it('subtracts per bound when nothing went down', () => {
    expect(bucketDeltas(b([1, 10], [Infinity, 20]), b([Infinity, 35], [1, 12]))).toEqual({
      buckets: b([1, 2], [Infinity, 15]),
      reset: false,
    });
  });

  it('treats any decrease as a reset and uses the current counts', () => {
    // Only the +Inf bucket went down; the whole series is treated as restarted, like rate() would.
    expect(bucketDeltas(b([1, 10], [Infinity, 20]), b([1, 11], [Infinity, 15]))).toEqual({
      buckets: b([1, 11], [Infinity, 15]),
      reset: true,
    });
  });

  it('treats a changed bucket layout as a reset', () => {
    expect(bucketDeltas(b([1, 10], [Infinity, 20]), b([1, 12], [2, 18], [Infinity, 25])).reset).toBe(true);
    expect(bucketDeltas(b([1, 10], [Infinity, 20]), b([2, 12], [Infinity, 25])).reset).toBe(true);
  });

  it('counts a series that did not exist before from zero', () => {
    expect(bucketDeltas(undefined, b([1, 3], [Infinity, 4]))).toEqual({ buckets: b([1, 3], [Infinity, 4]), reset: false });
  });

  it('histogramIncrease combines new, reset, steady and vanished series', () => {
    const prev = parsePrometheusText(
      [
        'h_bucket{s="steady",le="1"} 10',
        'h_bucket{s="steady",le="+Inf"} 20',
        'h_bucket{s="restarted",le="1"} 100',
        'h_bucket{s="restarted",le="+Inf"} 200',
        'h_bucket{s="vanished",le="1"} 7',
        'h_bucket{s="vanished",le="+Inf"} 7',
      ].join('\n'),
    ).samples;
    const cur = parsePrometheusText(
      [
        'h_bucket{s="steady",le="1"} 15',
        'h_bucket{s="steady",le="+Inf"} 30',
        'h_bucket{s="restarted",le="1"} 2',
        'h_bucket{s="restarted",le="+Inf"} 3',
        'h_bucket{s="new",le="1"} 1',
        'h_bucket{s="new",le="+Inf"} 4',
      ].join('\n'),
    ).samples;
    const inc = histogramIncrease(prev, cur);
    // steady: +5/+10; restarted: 2/3 (current values); new: 1/4; vanished: ignored.
    expect(inc.buckets).toEqual(b([1, 8], [Infinity, 17]));
    expect(inc.observations).toBe(17);
    expect(inc.series).toBe(3);
    expect(inc.resets).toBe(1);
  });
});

describe('counterIncrease', () => {
  it.each([
    [10, 15, 5],
    [10, 10, 0],
    [10, 4, 4],
    [undefined, 7, 7],
  ])('%s → %d = %d', (prev, cur, expected) => {
    expect(counterIncrease(prev, cur)).toBe(expected);
  });
});

describe('collectHistogramSeries', () => {
  it('skips buckets without a numeric le', () => {
    const samples = parsePrometheusText('h_bucket{le="1"} 1\nh_bucket{le="x"} 2\nh_bucket 3\nh_bucket{le="+Inf"} 4').samples;
    const all = [...collectHistogramSeries(samples).values()];
    expect(all).toHaveLength(1);
    expect(all[0]?.buckets).toEqual(b([1, 1], [Infinity, 4]));
  });
});

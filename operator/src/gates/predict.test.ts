import { describe, expect, it } from '@jest/globals';
import { projectAt, projectTrend } from './predict.js';

describe('projectAt', () => {
  it('is exact on a linear load curve from two small batches', () => {
    const rate = (f: number) => 50 + 900 * f; // 50 req/s base, +9 req/s per percent of nodes
    expect(
      projectAt([
        { fraction: 0.01, value: rate(0.01) },
        { fraction: 0.05, value: rate(0.05) },
      ]),
    ).toBeCloseTo(950, 9);
  });
  it('is exact on a quadratic curve from three batches', () => {
    const p99 = (f: number) => 0.05 + 0.2 * f + 3 * f * f;
    const pts = [0, 0.05, 0.25].map((f) => ({ fraction: f, value: p99(f) }));
    expect(projectAt(pts)).toBeCloseTo(p99(1), 9);
  });
  it('fits noisy points by least squares', () => {
    const pts = [0.01, 0.05, 0.1, 0.25, 0.5].map((f, i) => ({ fraction: f, value: 0.1 + 0.4 * f + (i % 2 ? 0.001 : -0.001) }));
    expect(projectAt(pts)!).toBeCloseTo(0.5, 1);
  });
  it('needs two distinct fractions', () => {
    expect(projectAt([])).toBeUndefined();
    expect(
      projectAt([
        { fraction: 0.1, value: 1 },
        { fraction: 0.1, value: 2 },
      ]),
    ).toBeUndefined();
  });
});

describe('projectTrend', () => {
  const pts = (fs: number[], v: (f: number, i: number) => number) => fs.map((f, i) => ({ fraction: f, value: v(f, i) }));
  it('projects a real convex rise like projectAt', () => {
    const p99 = (f: number) => 0.05 + 0.2 * f + 3 * f * f;
    expect(projectTrend(pts([0, 0.05, 0.25], p99), 0.1)).toBeCloseTo(p99(1), 9);
  });
  it('treats wiggles within the noise as flat: the highest value seen, no extrapolation', () => {
    // Three quiet measurements 20 ms apart; the raw parabola through them projects seconds.
    const noisy = pts([0.01, 0.05, 0.1], (_f, i) => [0.03, 0.05, 0.03][i] as number);
    expect(Math.abs(projectAt(noisy) ?? 0)).toBeGreaterThan(1);
    expect(projectTrend(noisy, 0.1)).toBeCloseTo(0.05, 9);
  });
  it('projects the latest value when the curve does not rise', () => {
    expect(
      projectTrend(
        pts([0, 0.1, 0.2], (_f, i) => [0.9, 0.6, 0.4][i] as number),
        0.1,
      ),
    ).toBeCloseTo(0.4, 9);
  });
  it('takes the straight line when the fit bends down (concave)', () => {
    const concave = pts([0, 0.1, 0.2], (_f, i) => [0.1, 0.5, 0.6][i] as number);
    const raw = projectAt(concave) as number;
    const trend = projectTrend(concave, 0.1) as number;
    expect(trend).toBeGreaterThan(raw);
    // The least-squares line through (0,0.1), (0.1,0.5), (0.2,0.6): slope 2.5, at 1 → 2.6.
    expect(trend).toBeCloseTo(0.1 + 2.5 * 1 + (0.4 - 0.1 - 2.5 * 0.1), 9);
  });
  it('never projects below the highest value seen, and needs two fractions', () => {
    expect(
      projectTrend(
        pts([0, 0.5], (f) => 0.2 + f),
        0,
      ),
    ).toBeCloseTo(1.2, 9);
    expect(projectTrend([{ fraction: 0.1, value: 1 }], 0.1)).toBeUndefined();
  });
});

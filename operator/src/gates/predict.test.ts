import { describe, expect, it } from '@jest/globals';
import { projectAt } from './predict.js';

describe('projectAt', () => {
  it('is exact on a linear load curve from two small batches', () => {
    const rate = (f: number) => 50 + 900 * f; // 50 req/s base, +9 req/s per percent of nodes
    expect(projectAt([{ fraction: 0.01, value: rate(0.01) }, { fraction: 0.05, value: rate(0.05) }])).toBeCloseTo(950, 9);
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
    expect(projectAt([{ fraction: 0.1, value: 1 }, { fraction: 0.1, value: 2 }])).toBeUndefined();
  });
});

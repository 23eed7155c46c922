/**
 * The predictive guard's arithmetic: fit the measured signal against the fraction of nodes on the new
 * revision, and project it to 100 %. Load that grows with cluster size grows with every node batch, so
 * a few small batches on a large cluster show the curve before the whole cluster rides it.
 */

/** One measurement at a fraction of nodes. */
export interface CurvePoint {
  fraction: number;
  value: number;
}

/**
 * Least-squares polynomial fit of degree min(2, distinct fractions - 1), evaluated at `at`: a straight
 * line through two points, a parabola through three or more (queueing makes latency convex in load).
 * Returns undefined with fewer than two distinct fractions: one point predicts nothing.
 */
export function projectAt(points: readonly CurvePoint[], at = 1): number | undefined {
  const pts = points.filter((p) => Number.isFinite(p.fraction) && Number.isFinite(p.value));
  const distinct = new Set(pts.map((p) => p.fraction)).size;
  if (distinct < 2) return undefined;
  const degree = Math.min(2, distinct - 1);
  const n = degree + 1;
  // Normal equations A^T A c = A^T y, solved by Gaussian elimination with partial pivoting.
  const m: number[][] = Array.from({ length: n }, () => new Array<number>(n + 1).fill(0));
  for (const p of pts) {
    const pow = Array.from({ length: 2 * n }, (_, k) => p.fraction ** k);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) (m[i] as number[])[j]! += pow[i + j] as number;
      (m[i] as number[])[n]! += (pow[i] as number) * p.value;
    }
  }
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(m[r]![col]!) > Math.abs(m[pivot]![col]!)) pivot = r;
    [m[col], m[pivot]] = [m[pivot]!, m[col]!];
    const d = m[col]![col]!;
    if (Math.abs(d) < 1e-12) return undefined;
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = m[r]![col]! / d;
      for (let k = col; k <= n; k++) m[r]![k]! -= f * m[col]![k]!;
    }
  }
  const coef = m.map((row, i) => row[n]! / row[i]!);
  return coef.reduce((sum, c, k) => sum + c * at ** k, 0);
}

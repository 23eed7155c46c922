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

/** Slope of the least-squares line through the points (0 with fewer than two distinct fractions). */
function slope(points: readonly CurvePoint[]): number {
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.fraction, 0) / n;
  const my = points.reduce((a, p) => a + p.value, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const p of points) {
    sxy += (p.fraction - mx) * (p.value - my);
    sxx += (p.fraction - mx) ** 2;
  }
  return sxx > 0 ? sxy / sxx : 0;
}

/**
 * The projection the guard acts on: {@link projectAt}, made safe against noise. Extrapolating from a
 * few percent of nodes to 100 % multiplies every wiggle (a parabola through three noisy points at 1, 5
 * and 10 % can project seconds from milliseconds), so:
 * - a curve whose values all sit within `noise` of each other is flat: no trend to extrapolate, the
 *   projection is the highest value seen;
 * - a curve that does not rise (least-squares slope ≤ 0) projects its latest value: load that grows
 *   with cluster size makes every batch worse, never better;
 * - a concave fit is replaced by the straight line: queueing makes latency convex in load, so a concave
 *   parabola is noise, and a line is the conservative reading of a rising trend;
 * - the projection is never below the highest value seen.
 */
export function projectTrend(points: readonly CurvePoint[], noise: number, at = 1): number | undefined {
  const pts = points.filter((p) => Number.isFinite(p.fraction) && Number.isFinite(p.value));
  if (new Set(pts.map((p) => p.fraction)).size < 2) return undefined;
  const values = pts.map((p) => p.value);
  const highest = Math.max(...values);
  if (highest - Math.min(...values) <= noise) return highest;
  const byFraction = [...pts].sort((a, b) => a.fraction - b.fraction);
  if (slope(pts) <= 0) return (byFraction[byFraction.length - 1] as CurvePoint).value;
  const fitted = projectAt(pts, at);
  const linear = projectAt(linearOnly(pts), at);
  if (fitted === undefined || linear === undefined) return undefined;
  // Below the line at `at` means the parabola bends down (concave): take the line.
  return Math.max(fitted, linear, highest);
}

/** The least-squares line through the points, as the two points on it at fractions 0 and 1. */
function linearOnly(points: readonly CurvePoint[]): CurvePoint[] {
  const b = slope(points);
  const mx = points.reduce((a, p) => a + p.fraction, 0) / points.length;
  const my = points.reduce((a, p) => a + p.value, 0) / points.length;
  return [
    { fraction: 0, value: my - b * mx },
    { fraction: 1, value: my + b * (1 - mx) },
  ];
}

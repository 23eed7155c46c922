/**
 * The replay's picture: for each of the three largest clusters, one panel per scenario that has a bad
 * revision (operator off: `incident`; on: `operator-defaults`), over the same time axis: the API
 * server's p99 (log scale, with the 1 s SLO), the time it was down (shaded), and the nodes running the
 * bad revision (as a share of the cluster). Drawn from the results alone, so it is as deterministic as
 * the JSON.
 */
import type { ScenarioResult } from './replay.js';
import { SLO_P99_SECONDS } from './world.js';

const W = 420;
const H = 150;
const PAD = { left: 44, right: 44, top: 22, bottom: 26 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** One panel: a cluster's series in one scenario. */
function panel(x0: number, y0: number, title: string, points: ScenarioResult['series'][string], nodes: number, tMax: number): string {
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const X = (t: number): number => x0 + PAD.left + (Math.min(t, tMax) / tMax) * iw;
  const lo = Math.log10(0.005);
  const hi = Math.log10(60);
  const Y = (v: number): number => y0 + PAD.top + ih - ((Math.log10(Math.min(60, Math.max(0.005, v))) - lo) / (hi - lo)) * ih;
  const Yshare = (share: number): number => y0 + PAD.top + ih - share * ih;
  const out: string[] = [];
  out.push(`<text x="${x0 + PAD.left}" y="${y0 + 14}" font-size="11" font-weight="bold">${esc(title)}</text>`);
  out.push(`<rect x="${x0 + PAD.left}" y="${y0 + PAD.top}" width="${iw}" height="${ih}" fill="none" stroke="#999"/>`);
  // Down intervals.
  const step = points.length > 1 ? points[1]!.t - points[0]!.t : 10;
  for (const p of points)
    if (!p.up && p.t <= tMax)
      out.push(`<rect x="${X(p.t).toFixed(1)}" y="${y0 + PAD.top}" width="${Math.max(1, (step / tMax) * iw).toFixed(1)}" height="${ih}" fill="#f4b6b6"/>`);
  // SLO line and axes labels.
  out.push(
    `<line x1="${x0 + PAD.left}" x2="${x0 + PAD.left + iw}" y1="${Y(SLO_P99_SECONDS).toFixed(1)}" y2="${Y(SLO_P99_SECONDS).toFixed(1)}" stroke="#c00" stroke-dasharray="4 3"/>`,
  );
  for (const v of [0.01, 0.1, 1, 10]) out.push(`<text x="${x0 + PAD.left - 4}" y="${(Y(v) + 3).toFixed(1)}" font-size="9" text-anchor="end">${v} s</text>`);
  for (const s of [0, 0.5, 1]) out.push(`<text x="${x0 + PAD.left + iw + 4}" y="${(Yshare(s) + 3).toFixed(1)}" font-size="9">${s * 100} %</text>`);
  for (const t of [0, tMax / 2, tMax]) out.push(`<text x="${X(t).toFixed(1)}" y="${y0 + H - 10}" font-size="9" text-anchor="middle">${Math.round(t)} s</text>`);
  // p99 (only while up) and the bad agents' share.
  const segs: string[] = [];
  let cur: string[] = [];
  for (const p of points) {
    if (p.t > tMax) break;
    if (p.up && p.p99 !== undefined) cur.push(`${X(p.t).toFixed(1)},${Y(p.p99).toFixed(1)}`);
    else if (cur.length) {
      segs.push(cur.join(' '));
      cur = [];
    }
  }
  if (cur.length) segs.push(cur.join(' '));
  for (const s of segs) out.push(`<polyline points="${s}" fill="none" stroke="#1f5fbf" stroke-width="1.2"/>`);
  const bad = points.filter((p) => p.t <= tMax).map((p) => `${X(p.t).toFixed(1)},${Yshare(p.badAgents / nodes).toFixed(1)}`);
  if (bad.length) out.push(`<polyline points="${bad.join(' ')}" fill="none" stroke="#e07b00" stroke-width="1.2"/>`);
  return out.join('\n');
}

/** The SVG of a replay's results (empty panels are left out). */
export function renderSvg(results: ScenarioResult[], fleetSizes: Record<string, number>): string {
  const shown = results.filter((r) => r.scenario === 'incident' || r.scenario === 'operator-defaults');
  const clusters = [...new Set(shown.flatMap((r) => Object.keys(r.series)))].sort();
  const tMax = Math.max(60, Math.min(1800, ...shown.map((r) => r.simulatedSeconds)));
  const parts: string[] = [];
  clusters.forEach((c, row) => {
    shown.forEach((r, col) => {
      const pts = r.series[c];
      if (pts)
        parts.push(
          panel(
            col * W,
            30 + row * H,
            `${c} (${fleetSizes[c] ?? '?'} nodes): ${r.scenario === 'incident' ? 'no operator' : 'operator, default spec'}`,
            pts,
            fleetSizes[c] ?? 1,
            tMax,
          ),
        );
    });
  });
  const width = Math.max(1, shown.length) * W;
  const height = 30 + clusters.length * H + 20;
  const legend =
    `<text x="8" y="16" font-size="11"><tspan fill="#1f5fbf">API p99 (log scale)</tspan>, <tspan fill="#c00">SLO ${SLO_P99_SECONDS} s</tspan>, ` +
    `<tspan fill="#d06060">API server down</tspan>, <tspan fill="#e07b00">nodes running the bad revision (right axis)</tspan>; time from the revision's introduction</text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="#fff"/>\n${legend}\n${parts.join('\n')}\n</svg>\n`;
}

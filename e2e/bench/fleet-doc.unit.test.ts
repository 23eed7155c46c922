import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { REPO_ROOT } from './breakglass-results.js';
import { FLEET_BEGIN, FLEET_END, FLEET_GOALS, peakRss, renderFleetSection, rssFit, withFleetSection } from './fleet-doc.js';
import { FLEET_RESULTS_FILE, parseFleetResults, readFleetResults } from './fleet-results.js';

const doc = () => readFileSync(join(REPO_ROOT, 'docs/benchmarks.md'), 'utf8');
const resultsText = () => readFileSync(join(REPO_ROOT, FLEET_RESULTS_FILE), 'utf8');

describe('docs/benchmarks.md: the fleet figures and the sizing table', () => {
  it('are the section rendered from the committed results (npm run bench:docs)', () => {
    const d = doc();
    expect(d).toBe(withFleetSection(d, readFleetResults()));
  });

  it('come from a complete run: at least three fleet sizes up to the goal of 1,000 clusters, each with its rollout measured', () => {
    const r = readFleetResults();
    const sizes = new Set(r.runs.map((x) => x.clusters));
    expect(sizes.size).toBeGreaterThanOrEqual(3);
    expect(Math.max(...sizes)).toBeGreaterThanOrEqual(FLEET_GOALS.clusters);
    for (const x of r.runs) {
      expect(x.rollout.seconds).toBeGreaterThan(0);
      expect(x.rollout.peakRssMiB).toBeGreaterThan(0);
      // A run that finished has its steady window; one whose operator died says why.
      if (x.outcome === 'Succeeded') expect(x.requestsSteady).toBeDefined();
      else expect(x.error ?? '').not.toBe('');
    }
  });

  it('refuse a results file with a placeholder where a figure belongs, naming the field', () => {
    const raw = JSON.parse(resultsText()) as { runs: Array<Record<string, unknown> & { rollout: Record<string, unknown> }> };
    raw.runs[0]!.objectBytes = 'TBD';
    expect(() => parseFleetResults(JSON.stringify(raw))).toThrow('runs[0].objectBytes: not a measured number');
    const inner = JSON.parse(resultsText()) as { runs: Array<{ rollout: Record<string, unknown> }> };
    inner.runs[0]!.rollout.peakRssMiB = null;
    expect(() => parseFleetResults(JSON.stringify(inner))).toThrow('runs[0].rollout.peakRssMiB: not a measured number');
  });

  it('show what the results say: a changed figure changes the section and its verdicts, and nothing outside the markers moves', () => {
    const r = readFleetResults();
    // The goals are judged on the run at the goal's size that finished.
    const big = r.runs.find((x) => x.clusters === FLEET_GOALS.clusters && x.outcome === 'Succeeded')!;
    big.rollout.peakRssMiB = 999.5;
    big.passesRollout.p99Seconds = 0.25;
    const section = renderFleetSection(r);
    expect(section).toContain('- RSS under 500 MiB: peak 999.5 MiB');
    expect(section).toContain('**missed** (by 499.5 MiB)');
    expect(section).toContain('- reconcile pass p99 under 1 s: 0.25 s during the rollout');
    expect(section).toMatch(/\| 1,000 \| [^|]+ \| 999\.5 MiB \| no: [0-9.]+ MiB over \|/);
    const d = doc();
    const next = withFleetSection(d, r);
    expect(next).not.toBe(d);
    expect(next.slice(0, next.indexOf(FLEET_BEGIN))).toBe(d.slice(0, d.indexOf(FLEET_BEGIN)));
    expect(next.slice(next.indexOf(FLEET_END))).toBe(d.slice(d.indexOf(FLEET_END)));
  });

  it('size memory by a line through the measured points (finished runs only)', () => {
    const r = readFleetResults();
    const base = r.runs[0]!;
    const at = (clusters: number, rss: number, outcome = 'Succeeded') => ({
      ...base,
      clusters,
      outcome,
      rollout: { ...base.rollout, peakRssMiB: rss },
      steady: undefined,
    });
    const fit = rssFit([at(100, 150), at(300, 170), at(1000, 240), at(2000, 9999, 'OperatorExited')])!;
    expect(fit.perClusterMiB).toBeCloseTo(0.1, 6);
    expect(fit.baseMiB).toBeCloseTo(140, 6);
    expect(rssFit([at(100, 150)])).toBeUndefined();
    expect(peakRss({ ...base, rollout: { ...base.rollout, peakRssMiB: 10 }, steady: { ...base.rollout, peakRssMiB: 12 } })).toBe(12);
  });

  it('cannot be generated into a doc without the markers', () => {
    expect(() => withFleetSection('# Benchmarks\n', readFleetResults())).toThrow('markers missing');
  });
});

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { REPO_ROOT } from './breakglass-results.js';
import { checkFigures, readReplayResults, renderReplaySection, REPLAY_BEGIN, REPLAY_END, withReplaySection } from './replay-doc.js';

const doc = () => readFileSync(join(REPO_ROOT, 'docs/benchmarks.md'), 'utf8');

describe('docs/benchmarks.md: the fleet-replay figures', () => {
  it('are the section rendered from the committed full replay (npm run bench:docs)', () => {
    const d = doc();
    expect(d).toBe(withReplaySection(d, readReplayResults(REPO_ROOT)));
  });

  it('hold one table row per scenario of the results, and say why a good revision did not complete', () => {
    const r = readReplayResults(REPO_ROOT);
    const section = renderReplaySection(r);
    for (const s of r.results) expect(section).toContain(`| ${s.scenario} |`);
    const good = { ...r.results[0]!, scenario: 'healthy' as const, firstBadAgentSeconds: null, completeSeconds: null, finalPhase: 'RolledBack' };
    const withReason = { ...good, warnings: [{ t: 5, reason: 'RollingBack', message: 'rolling back: c000: step 1: only 74/75 agents ready' }] };
    expect(renderReplaySection({ ...r, results: [withReason] })).toContain('`healthy`: RolledBack after');
    expect(renderReplaySection({ ...r, results: [withReason] })).toContain('only 74/75 agents ready');
  });

  it('refuse results without a figure the table prints, naming the scenario and the field', () => {
    const r = readReplayResults(REPO_ROOT);
    const broken = { ...r, results: [{ ...r.results[0]!, dnsFailClusterSeconds: undefined as unknown as number }] };
    expect(() => checkFigures(broken)).toThrow(new RegExp(`scenario ${r.results[0]!.scenario} has no figure dnsFailClusterSeconds`));
  });

  it('refuse a quick run and a doc without markers', () => {
    const d = doc();
    expect(() => withReplaySection(d.replace(REPLAY_BEGIN, ''), readReplayResults(REPO_ROOT))).toThrow(/markers missing/);
    expect(d.indexOf(REPLAY_END)).toBeGreaterThan(d.indexOf(REPLAY_BEGIN));
  });
});

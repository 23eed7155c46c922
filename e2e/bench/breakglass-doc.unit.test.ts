import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { BREAKGLASS_BEGIN, BREAKGLASS_END, renderBreakGlassSection, withBreakGlassSection } from './breakglass-doc.js';
import { parseResults, readResults, REPO_ROOT, RESULTS_FILE } from './breakglass-results.js';
import { defaultTransportConcurrency } from './breakglass-setup.js';

const doc = () => readFileSync(join(REPO_ROOT, 'docs/benchmarks.md'), 'utf8');
const resultsText = () => readFileSync(join(REPO_ROOT, RESULTS_FILE), 'utf8');

describe('docs/benchmarks.md: the break-glass figures', () => {
  it('are the section rendered from the committed results (npm run bench:docs)', () => {
    const d = doc();
    expect(d).toBe(withBreakGlassSection(d, readResults()));
  });

  it('come from a complete run: every round accounted for node by node, the model at the CRD default concurrency', () => {
    const r = readResults();
    expect(r.transports.map((t) => `${t.transport} ${t.purpose}`)).toEqual(
      expect.arrayContaining(['local fleet', 'exec fleet', 'ssh fleet', 'ssh per-connection']),
    );
    for (const t of r.transports) {
      expect(t.ok + t.failed + t.timedOut).toBe(t.nodes);
      expect(t.filesOnDisk).toBeLessThanOrEqual(t.nodes);
    }
    expect(r.phases.map((p) => `${p.phase} ${p.transport}`).sort()).toEqual(['Progressing exec', 'Progressing local', 'RollingBack exec', 'RollingBack local']);
    for (const p of r.phases) {
      expect(p.filesOnDisk).toBeLessThanOrEqual(p.nodesInventoried);
      expect(p.nodesRunningCandidate).toBeLessThanOrEqual(p.nodesInventoried);
      // The pass only starts the fan-out: it is part of the time to the files, and the attempt ends after it.
      expect(p.passMs).toBeLessThanOrEqual(p.triggerToAllStoppedMs);
      expect(p.passMs).toBeLessThanOrEqual(p.attemptEndMs);
      expect(p.nodesPendingAfter).toBeLessThanOrEqual(p.nodesInventoried);
    }
    expect(r.sshModel?.defaultConcurrency).toBe(defaultTransportConcurrency());
  });

  it('refuse a results file with a placeholder where a figure belongs, naming the field', () => {
    const raw = JSON.parse(resultsText()) as { transports: Array<Record<string, unknown>>; sshModel?: Record<string, unknown> };
    raw.transports[0]!.writeMs = 'TBD';
    expect(() => parseResults(JSON.stringify(raw))).toThrow('transports[0].writeMs: not a measured number');
    const noModelWall = JSON.parse(resultsText()) as { sshModel: Record<string, unknown> };
    delete noModelWall.sshModel.wallMsAtDefault;
    expect(() => parseResults(JSON.stringify(noModelWall))).toThrow('sshModel.wallMsAtDefault');
    const phaseFlag = JSON.parse(resultsText()) as { phases: Array<Record<string, unknown>> };
    phaseFlag.phases[0]!.inProgressAfterPass = 'yes';
    expect(() => parseResults(JSON.stringify(phaseFlag))).toThrow('phases[0].inProgressAfterPass: not a boolean');
  });

  it('show what the results say: a changed figure changes the section, and nothing outside the markers moves', () => {
    const r = readResults();
    r.transports[0]!.writeMs = 12_345;
    const d = doc();
    const next = withBreakGlassSection(d, r);
    expect(renderBreakGlassSection(r)).toContain(`| ${r.transports[0]!.transport} | ${r.transports[0]!.nodes} | ${r.transports[0]!.concurrency} | 12.3 s (`);
    expect(next).not.toBe(d);
    expect(next.slice(0, next.indexOf(BREAKGLASS_BEGIN))).toBe(d.slice(0, d.indexOf(BREAKGLASS_BEGIN)));
    expect(next.slice(next.indexOf(BREAKGLASS_END))).toBe(d.slice(d.indexOf(BREAKGLASS_END)));
  });

  it('cannot be generated into a doc without the markers', () => {
    expect(() => withBreakGlassSection('# Benchmarks\n', readResults())).toThrow('markers missing');
  });
});

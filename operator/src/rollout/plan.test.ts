import { describe, expect, it } from '@jest/globals';
import type { StageSpec } from '../api/types.generated.js';
import { assignStages, effectiveBakeSeconds, nodesForStep, orderClusters } from './plan.js';

describe('nodesForStep', () => {
  it.each([
    [1, 7, 1],
    [1, 0, 0],
    [0, 10, 0],
    [5, 20, 1],
    [5, 21, 2],
    [25, 7, 2],
    [50, 7, 4],
    [100, 7, 7],
    [7, 100, 7],
    [1, 1, 1],
    [100, 0, 0],
    [33, 3, 1],
    [34, 3, 2],
    [10, 1000, 100],
    [1, 5000, 50],
  ])('%i%% of %i nodes is %i', (p, total, want) => {
    expect(nodesForStep(p, total)).toBe(want);
  });
  it('never decreases as the percent grows', () => {
    for (const total of [0, 1, 2, 7, 13, 99, 150]) {
      let prev = 0;
      for (let p = 1; p <= 100; p++) {
        const n = nodesForStep(p, total);
        expect(n).toBeGreaterThanOrEqual(prev);
        prev = n;
      }
      expect(prev).toBe(total);
    }
  });
});

describe('orderClusters', () => {
  const cs = [
    { name: 'b', nodes: 20 },
    { name: 'a', nodes: 150 },
    { name: 'c', nodes: 60 },
    { name: 'd', nodes: 60 },
  ];
  it('LargestFirst puts the biggest first, ties by name', () => {
    expect(orderClusters(cs, 'LargestFirst').map((c) => c.name)).toEqual(['a', 'c', 'd', 'b']);
  });
  it('AsListed keeps the order', () => {
    expect(orderClusters(cs, 'AsListed').map((c) => c.name)).toEqual(['b', 'a', 'c', 'd']);
  });
});

describe('assignStages', () => {
  const ordered = ['a', 'b', 'c', 'd', 'e'].map((name) => ({ name, nodes: 1 }));
  const st = (s: Partial<StageSpec>): StageSpec => ({ name: 's', nodeSteps: [100], bakeSeconds: 0, maxConcurrentClusters: 1, ...s });
  it('takes counts and percents in order, the last stage takes the rest', () => {
    const r = assignStages(ordered, [st({ name: 'canary', clusters: 1 }), st({ name: 'early', percent: 25 }), st({ name: 'rest', percent: 10 })]);
    expect(r.map((x) => [x.stage.name, x.clusters.map((c) => c.name)])).toEqual([
      ['canary', ['a']],
      ['early', ['b', 'c']],
      ['rest', ['d', 'e']],
    ]);
  });
  it('leaves later stages empty when clusters run out', () => {
    const r = assignStages(ordered.slice(0, 1), [st({ name: 'x', clusters: 3 }), st({ name: 'y', percent: 100 })]);
    expect(r.map((x) => x.clusters.length)).toEqual([1, 0]);
  });
});

describe('effectiveBakeSeconds', () => {
  it('is the longer of bakeSeconds and the signal lag', () => {
    expect(effectiveBakeSeconds(300, { cacheTTLSeconds: 30, scrapeIntervalSeconds: 15, windowSeconds: 30 })).toBe(300);
    expect(effectiveBakeSeconds(10, { cacheTTLSeconds: 30, scrapeIntervalSeconds: 15, windowSeconds: 30 })).toBe(75);
  });
});

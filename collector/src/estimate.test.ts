import { describe, it, expect } from '@jest/globals';
import { DEFAULT_API_BUDGET, MODEL, OBJECT_BYTES, budgetViolations, estimateApiLoad, formatBytesPerSecond, isNaiveUnsafe, type ClusterSize } from './estimate.js';

const naive = { metadata: { mode: 'Naive' as const } };
const frugal = {};
const cluster = (nodes: number, podsPerNode = 30): ClusterSize => ({
  nodes,
  pods: nodes * podsPerNode,
  services: nodes * 2,
  endpointSlices: nodes * 2,
});

describe('estimateApiLoad', () => {
  it('naive: quorum LISTs and watches per node agent, with the documented object sizes', () => {
    const e = estimateApiLoad(naive, { nodes: 100, pods: 3000, services: 100, endpointSlices: 100, podChurnPerSecond: 0 });
    // 3 resources × 100 agents every 30 s.
    expect(e.quorumListsPerSecond).toBeCloseTo(10, 10);
    expect(e.listRequestsPerSecond).toBeCloseTo(10 + 2 / MODEL.watcherRelistSeconds, 10);
    expect(e.watchConnections).toBe(300 + 2);
    const listBytes = (100 * (3000 * OBJECT_BYTES.pod + 100 * OBJECT_BYTES.service + 100 * OBJECT_BYTES.endpointsObject + 3000 * OBJECT_BYTES.endpointsPerAddress)) / 30;
    const naiveListLines = e.breakdown.filter((b) => b.component.includes('naive LIST'));
    expect(naiveListLines.reduce((a, b) => a + b.bytesPerSecond, 0)).toBeCloseTo(listBytes, 6);
    expect(e.explanation).toContain('without resourceVersion');
    expect(e.explanation).toContain('10.0 LIST/s (10.0 quorum reads from etcd), 302 open watches');
  });

  it('naive grows with nodes × objects; frugal does not', () => {
    const n1 = estimateApiLoad(naive, cluster(50));
    const n2 = estimateApiLoad(naive, cluster(100));
    const n4 = estimateApiLoad(naive, cluster(200));
    // Doubling the cluster (nodes and, with them, objects) quadruples the naive bytes.
    expect(n2.bytesPerSecond / n1.bytesPerSecond).toBeGreaterThan(3.8);
    expect(n4.bytesPerSecond / n2.bytesPerSecond).toBeGreaterThan(3.8);
    // More objects on the same nodes: the naive bytes grow with them too.
    const dense = estimateApiLoad(naive, cluster(100, 60));
    expect(dense.bytesPerSecond / n2.bytesPerSecond).toBeGreaterThan(1.9);

    const f1 = estimateApiLoad(frugal, cluster(50));
    const f2 = estimateApiLoad(frugal, cluster(100));
    const f4 = estimateApiLoad(frugal, cluster(200));
    // At most linear in the cluster size, and no quorum LIST at all.
    expect(f2.bytesPerSecond / f1.bytesPerSecond).toBeLessThanOrEqual(2.0001);
    expect(f4.requestsPerSecond / f2.requestsPerSecond).toBeLessThanOrEqual(2.0001);
    expect(f4.quorumListsPerSecond).toBe(0);
    // O(1) watches and LISTs whatever the number of nodes.
    expect([f1.watchConnections, f2.watchConnections, f4.watchConnections]).toEqual([2, 2, 2]);
    expect(f4.listRequestsPerSecond).toBeCloseTo(f1.listRequestsPerSecond, 12);
    // The gap widens with size: the whole point.
    expect(n4.bytesPerSecond / f4.bytesPerSecond).toBeGreaterThan(4 * (n1.bytesPerSecond / f1.bytesPerSecond) * 0.9);
  });

  it('frugal node agents never LIST; only the watcher lists, from the watch cache', () => {
    const e = estimateApiLoad(frugal, cluster(1000));
    const agentLines = e.breakdown.filter((b) => b.component.startsWith('node agents'));
    expect(agentLines.map((b) => b.verb)).toEqual(['get']);
    expect(e.kubelet.requestsPerSecond).toBeCloseTo(1000 / 10, 10);
    const off = estimateApiLoad({ clusterWatcher: { enabled: false } }, cluster(1000));
    expect(off.watchConnections).toBe(0);
    expect(off.listRequestsPerSecond).toBe(0);
  });

  it('formats bytes per second', () => {
    expect(formatBytesPerSecond(512)).toBe('512 B/s');
    expect(formatBytesPerSecond(1536)).toBe('1.5 KiB/s');
    expect(formatBytesPerSecond(300 * 1024 * 1024)).toBe('300 MiB/s');
  });
});

describe('isNaiveUnsafe', () => {
  it('allows naive on a tiny cluster, refuses it on a large one, never flags frugal', () => {
    expect(isNaiveUnsafe(estimateApiLoad(naive, { nodes: 3, pods: 30, services: 5, endpointSlices: 5 }))).toBe(false);
    const big = estimateApiLoad(naive, cluster(200, 50));
    expect(isNaiveUnsafe(big)).toBe(true);
    const reasons = budgetViolations(big);
    expect(reasons.some((r) => r.includes('quorum LIST/s'))).toBe(true);
    expect(reasons.some((r) => r.includes('MiB/s exceeds'))).toBe(true);
    const huge = estimateApiLoad(frugal, cluster(5000, 30));
    expect(isNaiveUnsafe(huge)).toBe(false);
    expect(budgetViolations(huge)).toEqual([]);
  });

  it('honours a custom budget', () => {
    const e = estimateApiLoad(naive, { nodes: 3, pods: 30, services: 5, endpointSlices: 5 });
    expect(isNaiveUnsafe(e, { maxQuorumListsPerSecond: 0.1 })).toBe(true);
    expect(isNaiveUnsafe(e, {})).toBe(false);
    expect(DEFAULT_API_BUDGET.maxQuorumListsPerSecond).toBe(1);
  });
});

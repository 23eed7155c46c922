import { describe, it, expect } from '@jest/globals';
import {
  DEFAULT_API_BUDGET,
  MODEL,
  OBJECT_BYTES,
  budgetViolations,
  estimateApiLoad,
  formatBytesPerSecond,
  isNaiveUnsafe,
  wireBytes,
  type ClusterSize,
} from './estimate.js';

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
    const listBytes =
      (100 * (3000 * OBJECT_BYTES.pod + 100 * OBJECT_BYTES.service + 100 * OBJECT_BYTES.endpointsObject + 3000 * OBJECT_BYTES.endpointsPerAddress)) / 30;
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
    expect(reasons.some((r) => r.includes('MiB/s of serialized responses exceeds'))).toBe(true);
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

describe('wire bytes and measured object sizes', () => {
  it('gzips only GET/LIST bodies above 128 KiB, never watch streams', () => {
    expect(wireBytes(1000)).toBe(1000);
    expect(wireBytes(MODEL.gzipThresholdBytes)).toBe(MODEL.gzipThresholdBytes);
    expect(wireBytes(1_000_000, 2)).toBeCloseTo(2 * 1_000_000 * MODEL.gzipRatio, 6);
    const e = estimateApiLoad(naive, { nodes: 100, pods: 3000, services: 100, endpointSlices: 100 });
    for (const line of e.breakdown) {
      if (line.verb === 'watch') expect(line.wireBytesPerSecond).toBe(line.bytesPerSecond);
      else expect(line.wireBytesPerSecond).toBeLessThanOrEqual(line.bytesPerSecond);
    }
    // A 3000-pod LIST (12 MB) goes gzipped: the wire total is far below the serialized one.
    const podList = e.breakdown.find((b) => b.component.includes('naive LIST pods'));
    expect(podList?.wireBytesPerSecond).toBeCloseTo((podList?.bytesPerSecond ?? 0) * MODEL.gzipRatio, 6);
    expect(e.wireBytesPerSecond).toBeLessThan(e.bytesPerSecond / 4);
    expect(e.explanation).toMatch(/serialized \([\d.]+ [KMG]iB\/s on the wire\)/);
  });

  it('uses the object sizes it is given instead of the typical ones', () => {
    const size = { nodes: 50, pods: 1500, services: 50, endpointSlices: 50, podChurnPerSecond: 0 };
    const typical = estimateApiLoad(naive, size);
    const tiny = estimateApiLoad(naive, size, { ...OBJECT_BYTES, pod: OBJECT_BYTES.pod / 4 });
    const pods = (e: typeof typical) => e.breakdown.find((b) => b.component.includes('naive LIST pods'))?.bytesPerSecond ?? 0;
    expect(pods(tiny)).toBeCloseTo(pods(typical) / 4, 6);
    // Object sizes change bytes, never the request or quorum-LIST counts the preflight refuses on.
    expect(tiny.quorumListsPerSecond).toBe(typical.quorumListsPerSecond);
    expect(tiny.requestsPerSecond).toBe(typical.requestsPerSecond);
  });
});

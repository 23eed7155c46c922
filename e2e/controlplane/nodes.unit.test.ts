import { describe, expect, it } from '@jest/globals';
import { KUBELET_VERSION, nodeObject } from './nodes.js';

describe('nodeObject', () => {
  it('registers a node like a kubelet: addresses, capacity, zone labels, version', () => {
    const n = nodeObject('east', 1, 7);
    expect(n.metadata?.name).toBe('east-node-007');
    expect(n.metadata?.labels).toMatchObject({
      'kubernetes.io/hostname': 'east-node-007',
      'kubernetes.io/os': 'linux',
      'topology.kubernetes.io/zone': 'east-region-1b',
    });
    expect(n.status?.addresses).toEqual([
      { type: 'InternalIP', address: '10.101.0.17' },
      { type: 'Hostname', address: 'east-node-007' },
    ]);
    expect(n.status?.capacity?.pods).toBe('110');
    expect(n.status?.nodeInfo?.kubeletVersion).toBe(KUBELET_VERSION);
  });

  it('gives unique InternalIPs within and across clusters', () => {
    const ips = [0, 1, 139].flatMap((c) => Array.from({ length: 600 }, (_, i) => nodeObject(`c${c}`, c, i).status?.addresses?.[0]?.address));
    expect(new Set(ips).size).toBe(ips.length);
    expect(ips.every((ip) => /^10\.(1\d\d|2[0-3]\d)\.\d+\.\d+$/.test(ip ?? ''))).toBe(true);
  });

  it('rejects indices outside the address plan', () => {
    expect(() => nodeObject('x', 140, 0)).toThrow(/cluster index/);
    expect(() => nodeObject('x', 0, 64_000)).toThrow(/node index/);
  });
});

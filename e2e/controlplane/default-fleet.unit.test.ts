import { describe, expect, it } from '@jest/globals';
import { DEFAULT_E2E_FLEET, MANAGEMENT_CLUSTER, e2eFleetSpec, parseFleetSpec, targetClusters } from './default-fleet.js';

describe('fleet spec', () => {
  it('parses name:nodes[:podsPerNode] lists', () => {
    expect(parseFleetSpec('mgmt:3, east:50:10,west:0')).toEqual([
      { name: 'mgmt', nodes: 3 },
      { name: 'east', nodes: 50, podsPerNode: 10 },
      { name: 'west', nodes: 0 },
    ]);
  });

  it('names the bad item', () => {
    expect(() => parseFleetSpec('mgmt:3,east')).toThrow(/"east"/);
    expect(() => parseFleetSpec('mgmt:-1')).toThrow(/"mgmt:-1"/);
    expect(() => parseFleetSpec(' , ')).toThrow(/no clusters/);
  });

  it('defaults to mgmt plus three 50-node targets; TRO_E2E_FLEET overrides', () => {
    expect(e2eFleetSpec({})).toEqual(DEFAULT_E2E_FLEET);
    expect(e2eFleetSpec({ TRO_E2E_FLEET: '' })).toEqual(DEFAULT_E2E_FLEET);
    expect(e2eFleetSpec({ TRO_E2E_FLEET: 'mgmt:1,east:2' })).toEqual([
      { name: 'mgmt', nodes: 1 },
      { name: 'east', nodes: 2 },
    ]);
    expect(targetClusters(DEFAULT_E2E_FLEET)).toEqual(['east', 'west', 'north']);
    expect(DEFAULT_E2E_FLEET.filter((c) => c.name !== MANAGEMENT_CLUSTER).every((c) => c.nodes === 50)).toBe(true);
  });
});

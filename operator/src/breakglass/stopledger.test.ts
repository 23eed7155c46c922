// The stop ledger in ConfigMaps: record, owed per rollout, remove; two writers on one cluster do not
// lose each other's entries (read-modify-write with the resourceVersion, retried on conflict).
import { describe, expect, it } from '@jest/globals';
import { FakeConfigMaps } from '../../../testkit/operator/breakglass/configmaps.js';
import { ConfigMapStopLedger, STOP_LEDGER_CLUSTER_LABEL } from './stopledger.js';

describe('ConfigMapStopLedger', () => {
  it('records, lists per rollout and removes stops; the ConfigMap is labelled with the cluster', async () => {
    const api = new FakeConfigMaps();
    const l = new ConfigMapStopLedger({ api, namespace: 'ops' });
    expect(await l.owed('ops/r1', 'prod-east-1')).toEqual({});
    await l.record('ops/r1', 'prod-east-1', 'abc123', '2026-12-07T00:00:00.000Z');
    await l.record('ops/r2', 'prod-east-1', 'def456', '2026-12-07T00:01:00.000Z');
    expect(await l.owed('ops/r1', 'prod-east-1')).toEqual({ abc123: '2026-12-07T00:00:00.000Z' });
    expect(await l.owed('ops/r2', 'prod-east-1')).toEqual({ def456: '2026-12-07T00:01:00.000Z' });
    const cm = api.objects.get('tro-stops-prod-east-1');
    expect(cm?.metadata?.labels?.[STOP_LEDGER_CLUSTER_LABEL]).toBe('prod-east-1');
    await l.remove('ops/r1', 'prod-east-1', 'abc123');
    expect(await l.owed('ops/r1', 'prod-east-1')).toEqual({});
    expect(await l.owed('ops/r2', 'prod-east-1')).toEqual({ def456: '2026-12-07T00:01:00.000Z' });
  });

  it('writes nothing when nothing changes (a repeated record, removing what is absent)', async () => {
    const api = new FakeConfigMaps();
    const l = new ConfigMapStopLedger({ api, namespace: 'ops' });
    await l.record('ops/r1', 'c', 'abc123', 't1');
    const writes = api.writes();
    await l.record('ops/r1', 'c', 'abc123', 't1');
    await l.remove('ops/r1', 'c', 'zzz999');
    expect(api.writes()).toBe(writes);
  });

  it('a concurrent writer between read and write is retried, not overwritten', async () => {
    const api = new FakeConfigMaps();
    const l = new ConfigMapStopLedger({ api, namespace: 'ops' });
    await l.record('ops/r1', 'c', 'abc123', 't1');
    let once = true;
    api.afterGet = async () => {
      if (!once) return;
      once = false;
      // Another rollout records its stop after our read.
      await new ConfigMapStopLedger({ api, namespace: 'ops' }).record('ops/r2', 'c', 'def456', 't2');
    };
    await l.record('ops/r1', 'c', 'bcd234', 't3');
    expect(await l.owed('ops/r1', 'c')).toEqual({ abc123: 't1', bcd234: 't3' });
    expect(await l.owed('ops/r2', 'c')).toEqual({ def456: 't2' });
  });
});

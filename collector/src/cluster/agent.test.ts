import { afterEach, describe, it, expect } from '@jest/globals';
import { resolveConfig, type CollectorConfigInput } from '../config.js';
import type { KubeObject } from '../apiclient.js';
import { flushAsync } from '../../../testkit/core/fakeclock.js';
import { makeRig, type TestRig } from '../../../testkit/collector/harness.js';
import { ClusterAgent } from './agent.js';

const PODS = '/api/v1/pods';
const SERVICES = '/api/v1/services';

const pod = (ns: string, name: string, node: string): KubeObject => ({
  metadata: { namespace: ns, name, uid: `u-${name}`, labels: { app: name }, ownerReferences: [{ kind: 'ReplicaSet', name: `${name}-rs`, controller: true }] },
  spec: { nodeName: node, containers: [{ name: 'c', image: 'img:1' }] },
  status: { phase: 'Running', podIP: '10.1.0.1' },
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function start(config: CollectorConfigInput = {}, seed: (rig: TestRig) => void = () => undefined) {
  const rig = makeRig({ rateLimit: { qps: 2, burst: 5 } });
  seed(rig);
  const agent = new ClusterAgent({
    config: resolveConfig(config),
    api: rig.client,
    killSwitch: rig.killSwitch,
    clock: rig.clock,
    logger: rig.logger,
    backoff: { initialMs: 1000, maxMs: 30_000, jitter: 0 },
    leaseNamespace: 'telemetry',
    leaseName: 'collector',
    identity: 'watcher-0',
    random: () => 0,
  });
  const stop = new AbortController();
  const done = agent.run(stop.signal);
  cleanups.push(async () => {
    stop.abort(new Error('test over'));
    await rig.clock.advance(3000);
    await done;
  });
  return { rig, agent };
}

const get = async (agent: ClusterAgent, path: string) => {
  const url = new URL(path, 'http://x');
  const reply = await agent.routes()[url.pathname]?.(url);
  return { status: reply?.status, body: JSON.parse(reply?.body ?? 'null') as { items?: { name: string }[]; leader?: boolean } };
};

describe('ClusterAgent', () => {
  it('lists with resourceVersion=0, watches from the list resourceVersion, and serves pods by node', async () => {
    const { rig, agent } = start({}, (rig) => {
      rig.server.put(PODS, pod('a', 'p1', 'n1'));
      rig.server.put(PODS, pod('a', 'p2', 'n2'));
      rig.server.put(SERVICES, { metadata: { namespace: 'a', name: 's1' }, spec: { selector: { app: 'p1' }, clusterIP: '10.0.0.10', ports: [{ port: 80 }] } });
    });
    // Lease GET+create, 2 LISTs and the first WATCH use the burst of 5; the second WATCH waits 500 ms.
    await rig.clock.advance(1000);
    expect(agent.ready()).toBe(true);
    const listRv = rig.server.resourceVersion;
    const apiCalls = rig.server.requests.filter((r) => r.collection !== '/apis/coordination.k8s.io/v1/leases');
    expect(apiCalls.map((r) => `${r.verb} ${r.collection} rv=${r.query.resourceVersion}`).sort()).toEqual([
      `list ${PODS} rv=0`,
      `list ${SERVICES} rv=0`,
      `watch ${PODS} rv=${listRv}`,
      `watch ${SERVICES} rv=${listRv}`,
    ]);
    expect((await get(agent, '/metadata/pods?node=n1')).body.items?.map((p) => p.name)).toEqual(['p1']);
    expect((await get(agent, '/metadata/pods')).body.items).toHaveLength(2);
    expect((await get(agent, '/metadata/services')).body.items?.[0]).toMatchObject({ name: 's1', clusterIP: '10.0.0.10' });
    expect((await get(agent, '/metadata/nodes')).status).toBe(404);
    expect((await get(agent, '/readyz')).status).toBe(200);

    // Watch events update the cache (and the node index) without any new LIST.
    rig.server.put(PODS, pod('a', 'p3', 'n1'));
    rig.server.delete(PODS, 'a', 'p1');
    rig.server.put(PODS, { ...pod('a', 'p2', 'n1') });
    await flushAsync();
    expect((await get(agent, '/metadata/pods?node=n1')).body.items?.map((p) => p.name).sort()).toEqual(['p2', 'p3']);
    expect((await get(agent, '/metadata/pods?node=n2')).body.items).toEqual([]);
    expect(rig.server.count('list')).toBe(2);
  });

  it('rewatches from the last resourceVersion when the server closes a watch, without relisting', async () => {
    const { rig } = start({ clusterWatcher: { resources: ['pods'] } });
    await rig.clock.advance(100);
    rig.server.put(PODS, pod('a', 'p1', 'n1'));
    await flushAsync();
    const rv = rig.server.resourceVersion;
    rig.server.closeWatches();
    await rig.clock.advance(100);
    expect(rig.server.count('list', PODS)).toBe(1);
    const watches = rig.server.requests.filter((r) => r.verb === 'watch');
    expect(watches.map((w) => w.query.resourceVersion)).toEqual([String(Number(rv) - 1), rv]);
  });

  it('relists (rv=0) after 410 Gone only after the backoff delay', async () => {
    const { rig } = start({ clusterWatcher: { resources: ['pods'] } });
    await rig.clock.advance(100);
    const t = rig.clock.nowMs();
    rig.server.compact();
    await rig.clock.advance(999);
    expect(rig.server.count('list', PODS)).toBe(1);
    await rig.clock.advance(1);
    expect(rig.server.count('list', PODS)).toBe(2);
    const relist = rig.server.requests.filter((r) => r.verb === 'list')[1];
    expect(relist?.query.resourceVersion).toBe('0');
    expect((relist?.at ?? 0) - t).toBe(1000);
  });

  it('no relist storm: a failing LIST is retried with exponential backoff, a watch closed at once is backed off', async () => {
    const { rig } = start({ clusterWatcher: { resources: ['pods'] } }, (rig) => {
      rig.server.faults.push((r) => (r.verb === 'list' ? { status: 500 } : undefined));
    });
    const t0 = rig.clock.nowMs();
    for (let i = 0; i < 62; i++) await rig.clock.advance(1000);
    const lists = rig.server.requests.filter((r) => r.verb === 'list').map((r) => (r.at - t0) / 1000);
    expect(lists).toEqual([0, 1, 3, 7, 15, 31, 61]);

    // Now the LIST works but every watch is closed by the server immediately, without events.
    rig.server.faults.length = 0;
    rig.server.faults.push((r) => (r.verb === 'watch' ? { status: 200, body: '' } : undefined));
    for (let i = 0; i < 40; i++) await rig.clock.advance(1000);
    const watches = rig.server.count('watch');
    // Backoff 1, 2, 4, 8, 16 s between immediately-closed watches: about 6 in 40 s, not thousands.
    expect(watches).toBeGreaterThanOrEqual(4);
    expect(watches).toBeLessThanOrEqual(8);
  });

  it('serves 503 (not stale data) when not the leader', async () => {
    const { rig, agent } = start({}, (rig) => {
      rig.server.put('/apis/coordination.k8s.io/v1/leases', {
        metadata: { namespace: 'telemetry', name: 'collector' },
        spec: { holderIdentity: 'watcher-1', leaseDurationSeconds: 15, renewTime: '2026-11-25T12:00:00.000000Z' },
      });
    });
    await rig.clock.advance(5000);
    expect(agent.elector.isLeader()).toBe(false);
    expect(await get(agent, '/metadata/pods?node=n1')).toEqual({ status: 503, body: { leader: false, holder: 'watcher-1' } });
    expect((await get(agent, '/readyz')).status).toBe(503);
    expect(rig.server.count('list') + rig.server.count('watch')).toBe(0);
  });

  it('with clusterWatcher.enabled=false makes no API call', async () => {
    const { rig } = start({ clusterWatcher: { enabled: false } });
    await rig.clock.advance(60_000);
    expect(rig.server.requests).toHaveLength(0);
  });
});

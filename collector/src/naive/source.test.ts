import { afterEach, describe, it, expect } from '@jest/globals';
import type { KubeObject } from '../apiclient.js';
import { FakeApiServer } from '../../../testkit/collector/fakeapiserver.js';
import { FakeClock, flushAsync } from '../../../testkit/core/fakeclock.js';
import { counterValue, makeRig, stopFileFor, TEST_REVISION, TEST_STOP_PATH, type TestRig } from '../../../testkit/collector/harness.js';
import { NaivePodSource } from './source.js';

const pod = (i: number, node: string): KubeObject => ({
  metadata: { namespace: 'default', name: `pod-${i}`, labels: { app: 'x' } },
  spec: { nodeName: node, containers: [{ name: 'app', image: 'img:1' }] },
  status: { phase: 'Running' },
});

function populate(server: FakeApiServer, nodes: number, podsPerNode: number): void {
  for (let n = 0; n < nodes; n++) for (let i = 0; i < podsPerNode; i++) server.put('/api/v1/pods', pod(n * podsPerNode + i, `node-${n}`));
  for (let s = 0; s < nodes; s++) {
    server.put('/api/v1/services', { metadata: { namespace: 'default', name: `svc-${s}` }, spec: {} });
    server.put('/api/v1/endpoints', { metadata: { namespace: 'default', name: `svc-${s}` }, subsets: [] });
  }
}

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

function agent(rig: TestRig, nodeName: string) {
  const source = new NaivePodSource({
    api: rig.client,
    killSwitch: rig.killSwitch,
    clock: rig.clock,
    logger: rig.logger,
    backoff: { initialMs: 1000, maxMs: 30_000, jitter: 0 },
    nodeName,
    relistSeconds: 30,
    random: () => 0,
  });
  const stop = new AbortController();
  const done = source.run(stop.signal);
  stops.push(async () => {
    stop.abort(new Error('test over'));
    await done;
    await rig.killSwitch.close();
  });
  return source;
}

describe('NaivePodSource (the incident pattern)', () => {
  it('LISTs pods, services and endpoints cluster-wide without resourceVersion, watches, and relists every period', async () => {
    const rig = makeRig({ rateLimit: null });
    populate(rig.server, 3, 4);
    const source = agent(rig, 'node-1');
    const t0 = rig.clock.nowMs();
    for (let i = 0; i < 95; i++) await rig.clock.advance(1000);
    const lists = rig.server.requests.filter((r) => r.verb === 'list');
    expect(lists.every((r) => r.namespace === undefined && !('resourceVersion' in r.query))).toBe(true);
    for (const c of ['/api/v1/pods', '/api/v1/services', '/api/v1/endpoints']) {
      expect([c, lists.filter((r) => r.collection === c).map((r) => (r.at - t0) / 1000)]).toEqual([c, [0, 30, 60, 90]]);
    }
    const watches = rig.server.requests.filter((r) => r.verb === 'watch');
    expect(watches).toHaveLength(12);
    expect(watches.every((w) => w.namespace === undefined && w.query.resourceVersion !== undefined)).toBe(true);
    // Only the node's own pods are kept.
    expect((await source.pods()).map((p) => p.name).sort()).toEqual(['pod-4', 'pod-5', 'pod-6', 'pod-7']);
    expect(source.objectCounts()).toEqual({ pods: 12, services: 3, endpoints: 3 });
  });

  it('is not rate limited: the whole relist goes out at once', async () => {
    const rig = makeRig({ rateLimit: null });
    populate(rig.server, 1, 1);
    agent(rig, 'node-0');
    await flushAsync();
    const t0 = rig.clock.nowMs();
    expect(
      rig.server.requests
        .filter((r) => r.at === t0)
        .map((r) => r.verb)
        .sort(),
    ).toEqual(['list', 'list', 'list', 'watch', 'watch', 'watch']);
  });

  it('still obeys the kill switch: every watch is aborted and nothing is sent while stopped', async () => {
    const rig = makeRig({ rateLimit: null });
    populate(rig.server, 2, 2);
    rig.killSwitch.start();
    agent(rig, 'node-0');
    await rig.clock.advance(1000);
    expect(rig.server.openWatches).toBe(3);
    rig.fs.write(TEST_STOP_PATH, stopFileFor(TEST_REVISION));
    await rig.clock.advance(500);
    expect(rig.server.openWatches).toBe(0);
    const n = rig.server.requests.length;
    for (let i = 0; i < 120; i++) await rig.clock.advance(1000);
    expect(rig.server.requests.length).toBe(n);
    rig.fs.remove(TEST_STOP_PATH);
    await rig.clock.advance(500);
    expect(rig.server.count('list')).toBeGreaterThan(3);
  });

  it('its API traffic grows with nodes × objects (measured by the agents own byte counters)', async () => {
    async function bytesFor(nodes: number, podsPerNode: number): Promise<number> {
      const clock = new FakeClock();
      const server = new FakeApiServer(clock);
      populate(server, nodes, podsPerNode);
      const rigs = Array.from({ length: nodes }, () => makeRig({ rateLimit: null, server, clock }));
      rigs.forEach((r, i) => agent(r, `node-${i}`));
      for (let i = 0; i < 65; i++) await clock.advance(1000);
      let sum = 0;
      for (const r of rigs) sum += await counterValue(r.metrics.apiResponseBytes);
      for (const s of stops.splice(0)) await s();
      return sum;
    }
    const small = await bytesFor(2, 5); // 2 agents × 10 pods
    const large = await bytesFor(8, 5); // 8 agents × 40 pods
    // 4× the nodes and 4× the objects: ~16× the bytes (not 4×, as a per-node cost would give).
    expect(large / small).toBeGreaterThan(12);
    expect(large / small).toBeLessThan(20);
  });
});

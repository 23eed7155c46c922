import { afterEach, describe, it, expect } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig } from '../config.js';
import { KubeletClient, httpGetter } from '../kubelet.js';
import { STOP_FILE_POLL_MS } from '../killswitch.js';
import { FakeKubelet, kubeletPod } from '../../../testkit/collector/fakekubelet.js';
import { waitFor } from '../../../testkit/core/fakeclock.js';
import { counterValue, makeRig, stopFileFor, TEST_REVISION, TEST_STOP_PATH } from '../../../testkit/collector/harness.js';
import { KubeletPodSource, NodeAgent } from './agent.js';
import { NodeMetrics } from './metrics.js';
import { NodeCollector, nodePathsUnder, realNodeFs } from './procfs.js';
import { writeFakeHostRoot } from '../../../testkit/collector/node/fakehostroot.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function setup(opts: { nodeInfoRefreshMs?: number } = {}) {
  const rig = makeRig();
  const kubelet = new FakeKubelet();
  const url = await kubelet.start();
  const root = await mkdtemp(path.join(os.tmpdir(), 'collector-node-'));
  await writeFakeHostRoot(root);
  const shutdown = new AbortController();
  cleanups.push(async () => {
    shutdown.abort(new Error('test over'));
    await rig.killSwitch.close();
    await kubelet.stop();
    await rm(root, { recursive: true, force: true });
  });
  rig.server.put('/api/v1/nodes', {
    metadata: { name: 'node-1', labels: { 'topology.kubernetes.io/zone': 'zone-a', 'node.kubernetes.io/instance-type': 'm5.large' } },
    status: { nodeInfo: { kubeletVersion: 'v1.36.0', osImage: 'Debian' } },
  });
  kubelet.pods = [kubeletPod('default', 'web-1', 'node-1'), kubeletPod('kube-system', 'dns-1', 'node-1', { restarts: 2 })];
  const config = resolveConfig({ intervalSeconds: 10, metadata: { kubeletURL: url } });
  const nodeMetrics = new NodeMetrics(rig.metrics.registry);
  const agent = new NodeAgent({
    config,
    nodeName: 'node-1',
    clock: rig.clock,
    logger: rig.logger,
    killSwitch: rig.killSwitch,
    api: rig.client,
    podSource: new KubeletPodSource(new KubeletClient({ baseURL: url, getter: httpGetter, metrics: rig.metrics, killSwitch: rig.killSwitch })),
    nodeCollector: new NodeCollector(realNodeFs, nodePathsUnder(root)),
    nodeMetrics,
    nodeInfoRefreshMs: opts.nodeInfoRefreshMs ?? 60_000,
    backoff: { initialMs: 1000, maxMs: 30_000, jitter: 0 },
    random: () => 0,
  });
  const running = agent.run(shutdown.signal);
  return { rig, kubelet, agent, shutdown, running, nodeMetrics };
}

describe('NodeAgent (frugal, kubelet metadata)', () => {
  it('collects every interval from /proc and the kubelet, and never LISTs or WATCHes the API server', async () => {
    const { rig, kubelet, agent } = await setup();
    await waitFor(() => agent.status().collections === 1, 5000, 'first collection');
    for (let i = 2; i <= 13; i++) {
      await rig.clock.advance(10_000);
      await waitFor(() => agent.status().collections === i, 5000, `collection ${i}`);
    }
    expect(kubelet.requests.length).toBe(13);
    // 120 s with a 60 s refresh: the Node object was read at 0, 60 and 120 s, and nothing else.
    expect(rig.server.requests.map((r) => `${r.verb} ${r.path} rv=${r.query.resourceVersion}`)).toEqual([
      'get /api/v1/nodes/node-1 rv=0',
      'get /api/v1/nodes/node-1 rv=0',
      'get /api/v1/nodes/node-1 rv=0',
    ]);
    expect(rig.server.count('list') + rig.server.count('watch')).toBe(0);
    const text = await rig.metrics.registry.metrics();
    expect(text).toContain('collector_pods{phase="Running"} 2');
    expect(text).toContain('collector_container_restarts{namespace="kube-system",pod="dns-1",container="app"} 2');
    expect(text).toContain('collector_node_memory_bytes{kind="total"} 16777216000');
    expect(text).toContain('collector_node_info{node="node-1",kubelet_version="v1.36.0",os_image="Debian",zone="zone-a",instance_type="m5.large"} 1');
    expect(text).toMatch(/collector_node_filesystem_bytes\{mountpoint="\/",kind="size"\} [1-9]/);
    expect(agent.status().lastErrors).toEqual([]);
  });

  it('counts a failing kubelet and keeps collecting the node', async () => {
    const { rig, kubelet, agent, nodeMetrics } = await setup();
    kubelet.status = 500;
    await waitFor(() => agent.status().collections === 1);
    expect(agent.status().lastErrors[0]).toContain('HTTP 500');
    expect(await counterValue(nodeMetrics.collectErrors, { source: 'pods' })).toBe(1);
    expect(await rig.metrics.registry.metrics()).toContain('collector_node_cpus 2');
  });

  it('idles while the stop file names its revision (no API or kubelet request), and resumes when it is removed', async () => {
    const { rig, kubelet, agent } = await setup({ nodeInfoRefreshMs: 10_000 });
    rig.killSwitch.start();
    await waitFor(() => agent.status().collections === 1);
    rig.fs.write(TEST_STOP_PATH, stopFileFor(TEST_REVISION));
    await rig.clock.advance(STOP_FILE_POLL_MS);
    expect(rig.killSwitch.isStopped()).toBe(true);
    const apiBefore = rig.server.requests.length;
    const kubeletBefore = kubelet.requests.length;
    for (let i = 0; i < 30; i++) await rig.clock.advance(10_000);
    expect(rig.server.requests.length).toBe(apiBefore);
    expect(kubelet.requests.length).toBe(kubeletBefore);
    expect(agent.status().collections).toBe(1);
    rig.fs.remove(TEST_STOP_PATH);
    await rig.clock.advance(STOP_FILE_POLL_MS);
    await waitFor(() => agent.status().collections === 2, 5000, 'collection after resume');
    expect(kubelet.requests.length).toBe(kubeletBefore + 1);
    expect(rig.server.requests.length).toBe(apiBefore + 1);
  });

  it('backs off the Node GET across cycles while the API server fails', async () => {
    const { rig, agent } = await setup({ nodeInfoRefreshMs: 10_000 });
    rig.server.faults.push(() => ({ status: 503 }));
    await waitFor(() => agent.status().collections === 1);
    for (let i = 2; i <= 12; i++) {
      await rig.clock.advance(10_000);
      await waitFor(() => agent.status().collections === i);
    }
    // Cycles every 10 s; after each failure the next GET waits 1, 2, 4, 8, 16, 30 s (cap) first.
    const t0 = rig.clock.nowMs() - 110_000;
    expect(rig.server.requests.map((r) => (r.at - t0) / 1000)).toEqual([0, 10, 20, 30, 40, 60, 90]);
  });

  it('resolves run() after shutdown', async () => {
    const { agent, shutdown, running } = await setup();
    await waitFor(() => agent.status().collections === 1);
    shutdown.abort(new Error('SIGTERM'));
    await expect(running).resolves.toBeUndefined();
  });
});

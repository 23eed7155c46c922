import { afterEach, describe, it, expect } from '@jest/globals';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import winston from 'winston';
import { ConfigError } from './errors.js';
import { expandEnv, leaseNameFor, loadConfigFile, resolveKubeConfig, startAgent, userAgentFor, type AgentHandle } from './main.js';
import { KubeConfigError, type ApiServerConfig } from '#core/kubeconfig.js';
import { resolveConfig } from './config.js';
import { writeFakeHostRoot } from '../../testkit/collector/node/fakehostroot.js';
import { FakeApiServer } from '../../testkit/collector/fakeapiserver.js';
import { FakeClock, waitFor } from '../../testkit/core/fakeclock.js';
import { FakeKubelet, kubeletPod } from '../../testkit/collector/fakekubelet.js';
import { stopFileFor } from '../../testkit/collector/harness.js';

const silent = winston.createLogger({ silent: true });
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tmpdir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'collector-main-'));
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

/**
 * A fake node as the e2e runtime would make one: a root dir with proc/, sys/ and the stop-file dir (the
 * stop directory, and the legacy single file's place).
 */
async function fakeNode(root: string, seed: number): Promise<{ root: string; stopFile: string; stopDir: string }> {
  await writeFakeHostRoot(root, seed);
  await mkdir(path.join(root, 'var/run/telemetry-rollout'), { recursive: true });
  return { root, stopFile: path.join(root, 'var/run/telemetry-rollout/stop'), stopDir: path.join(root, 'var/run/telemetry-rollout/stop.d') };
}

async function http(port: number | undefined, p: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`);
  return { status: res.status, text: await res.text() };
}

function track(h: AgentHandle): AgentHandle {
  cleanups.push(() => h.stop());
  return h;
}

describe('startAgent', () => {
  it('runs several node agents in one process, each with its own node, root, stop file, registry and port', async () => {
    const base = await tmpdir();
    const clock = new FakeClock();
    const server = new FakeApiServer(clock);
    const kubelet = new FakeKubelet();
    const kubeletURL = await kubelet.start();
    cleanups.push(() => kubelet.stop());
    kubelet.pods = [kubeletPod('default', 'web', 'node-a')];
    const agents: AgentHandle[] = [];
    for (const [i, name] of ['node-a', 'node-b'].entries()) {
      const n = await fakeNode(path.join(base, name), i);
      server.put('/api/v1/nodes', { metadata: { name } });
      agents.push(
        track(
          await startAgent({
            mode: 'node',
            config: { intervalSeconds: 10, metadata: { kubeletURL } },
            identity: {
              nodeName: name,
              podName: `collector-${name}`,
              podNamespace: 'telemetry',
              revision: i === 0 ? 'rev-1' : 'rev-2',
              rollout: 'telemetry/agent',
            },
            transport: server,
            hostRoot: n.root,
            stopFilePath: n.stopFile,
            stopDirectory: n.stopDir,
            metricsPort: 0,
            metricsHost: '127.0.0.1',
            logger: silent,
            clock,
            random: () => 0,
          }),
        ),
      );
    }
    const [a, b] = agents as [AgentHandle, AgentHandle];
    expect(a.port).not.toBe(b.port);
    await waitFor(() => a.status().details.collections === 1 && b.status().details.collections === 1, 5000, 'first collections');

    // Separate registries: each /metrics shows only its own agent.
    const ma = (await http(a.port, '/metrics')).text;
    const mb = (await http(b.port, '/metrics')).text;
    expect(ma).toContain('collector_info{mode="node",metadata_mode="Kubelet",node="node-a",revision="rev-1"} 1');
    expect(ma).not.toContain('node-b');
    expect(mb).toContain('node="node-b"');
    expect(ma).toContain('collector_kubelet_requests_total{code="200"} 1');
    expect(mb).toContain('collector_kubelet_requests_total{code="200"} 1');
    expect(ma).toContain('collector_api_requests_total{verb="get",resource="nodes",code="200"} 1');
    expect(ma).toContain('collector_node_memory_bytes{kind="free"} 8192000000');
    expect(mb).toContain('collector_node_memory_bytes{kind="free"} 8191998976');

    // A stop file in node-a's stop directory stops node-a only; /healthz stays 200 (idle, not
    // crash-looping) and names the file; the metrics say which file stopped it.
    const stopPath = path.join(base, 'node-a/var/run/telemetry-rollout/stop.d/auto-rev-1');
    await mkdir(path.dirname(stopPath), { recursive: true });
    await writeFile(stopPath, stopFileFor('rev-1'));
    await clock.advance(500);
    await waitFor(() => a.killSwitch.isStopped(), 5000, 'stop detected');
    const health = await http(a.port, '/healthz');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.text)).toMatchObject({ stopped: true, node: 'node-a', revision: 'rev-1', stopReason: expect.stringContaining(stopPath) });
    const metricsA = (await http(a.port, '/metrics')).text;
    expect(metricsA).toContain('collector_stopped 1');
    expect(metricsA).toContain(`collector_stop_files{file="${stopPath}",reason="revision-match"} 1`);
    expect(b.killSwitch.isStopped()).toBe(false);
    await clock.advance(10_000);
    await waitFor(() => b.status().details.collections === 2, 5000, 'node-b keeps collecting');
    expect(a.status().details.collections).toBe(1);
  });

  it('makes not a single API request when started on a node whose (legacy, single) stop file names its revision', async () => {
    const n = await fakeNode(await tmpdir(), 0);
    await writeFile(n.stopFile, stopFileFor('*'));
    const clock = new FakeClock();
    const server = new FakeApiServer(clock);
    const h = track(
      await startAgent({
        mode: 'node',
        config: { metadata: { mode: 'Naive' } },
        identity: { nodeName: 'n', podName: 'p', podNamespace: 'ns', revision: 'rev-1' },
        transport: server,
        hostRoot: n.root,
        stopFilePath: n.stopFile,
        stopDirectory: n.stopDir,
        metricsPort: null,
        logger: silent,
        clock,
      }),
    );
    for (let i = 0; i < 60; i++) await clock.advance(1000);
    expect(server.requests).toHaveLength(0);
    expect(h.status()).toMatchObject({ stopped: true, metadataMode: 'Naive' });
  });

  it('cluster mode serves /metadata/pods?node=X over HTTP and releases its Lease on stop()', async () => {
    const n = await fakeNode(await tmpdir(), 0);
    const clock = new FakeClock();
    const server = new FakeApiServer(clock);
    server.put('/api/v1/pods', { metadata: { namespace: 'a', name: 'p1' }, spec: { nodeName: 'n1' } });
    server.put('/api/v1/pods', { metadata: { namespace: 'a', name: 'p2' }, spec: { nodeName: 'n2' } });
    const h = await startAgent({
      mode: 'cluster',
      config: {},
      identity: { podName: 'watcher-0', podNamespace: 'telemetry', revision: 'rev-1', rollout: 'telemetry/agent' },
      transport: server,
      stopFilePath: n.stopFile,
      metricsPort: 0,
      metricsHost: '127.0.0.1',
      logger: silent,
      clock,
    });
    cleanups.push(() => h.stop());
    await clock.advance(1000);
    await waitFor(() => h.status().details.leader === true);
    const ready = await http(h.port, '/readyz');
    expect(ready.status).toBe(200);
    const pods = JSON.parse((await http(h.port, '/metadata/pods?node=n1')).text) as { items: { name: string }[] };
    expect(pods.items.map((p) => p.name)).toEqual(['p1']);
    expect(server.objects('/apis/coordination.k8s.io/v1/leases')[0]?.metadata?.name).toBe('agent-collector-watcher');
    await h.stop();
    await h.done;
    expect((server.objects('/apis/coordination.k8s.io/v1/leases')[0]?.spec as { holderIdentity?: string }).holderIdentity).toBe('');
    await expect(fetch(`http://127.0.0.1:${h.port}/healthz`)).rejects.toThrow();
  });

  it('rejects an invalid config or identity before doing anything', async () => {
    const base = {
      mode: 'node' as const,
      identity: { nodeName: 'n', podName: 'p', podNamespace: 'ns', revision: 'r' },
      transport: new FakeApiServer(),
      metricsPort: null,
      logger: silent,
    };
    await expect(startAgent({ ...base, config: { apiRateLimit: { qps: 0 } } })).rejects.toBeInstanceOf(ConfigError);
    await expect(startAgent({ ...base, config: {}, identity: { ...base.identity, nodeName: '' } })).rejects.toThrow('NODE_NAME');
    await expect(startAgent({ ...base, config: {}, identity: { ...base.identity, revision: '' } })).rejects.toThrow('TRO_REVISION');
  });

  it('fails clearly when the metrics port is taken', async () => {
    const n = await fakeNode(await tmpdir(), 0);
    const mk = (port: number) =>
      startAgent({
        mode: 'node',
        config: { collect: { containers: false } },
        identity: { nodeName: 'n', podName: 'p', podNamespace: 'ns', revision: 'r' },
        transport: new FakeApiServer(),
        hostRoot: n.root,
        stopFilePath: n.stopFile,
        stopDirectory: n.stopDir,
        metricsPort: port,
        metricsHost: '127.0.0.1',
        logger: silent,
        nodeInfoRefreshSeconds: 0,
      });
    const first = track(await mk(0));
    await expect(mk(first.port ?? 0)).rejects.toThrow(`127.0.0.1:${first.port}`);
  });
});

describe('helpers', () => {
  it('userAgentFor identifies mode, metadata mode, node and revision', () => {
    const c = resolveConfig({ metadata: { mode: 'Naive' } });
    expect(userAgentFor('node', c, { nodeName: 'n1', podName: 'p', podNamespace: 'ns', revision: 'abc' })).toBe(
      'telemetry-collector/0.1.0 (mode=node; metadata=Naive; node=n1; revision=abc)',
    );
    expect(userAgentFor('cluster', c, { podName: 'w-0', podNamespace: 'ns', revision: 'abc' })).toBe(
      'telemetry-collector/0.1.0 (mode=cluster; pod=w-0; revision=abc)',
    );
  });

  it('expandEnv fills ${VAR} from env and refuses unset variables', () => {
    expect(expandEnv('http://${HOST_IP}:10255', { HOST_IP: '10.0.0.7' })).toBe('http://10.0.0.7:10255');
    expect(expandEnv('http://127.0.0.1:10255', {})).toBe('http://127.0.0.1:10255');
    expect(() => expandEnv('http://${HOST_IP}:10255', {})).toThrow('HOST_IP');
  });

  it('leaseNameFor derives a DNS-safe name from the rollout', () => {
    expect(leaseNameFor('telemetry/Agent_V2')).toBe('agent-v2-collector-watcher');
    expect(leaseNameFor(undefined)).toBe('telemetry-collector-watcher');
  });

  it('loadConfigFile reads YAML or JSON and validates', async () => {
    const d = await tmpdir();
    await writeFile(path.join(d, 'c.yaml'), 'intervalSeconds: 30\nmetadata:\n  mode: Naive\n');
    await writeFile(path.join(d, 'c.json'), '{"apiRateLimit":{"qps":5}}');
    await writeFile(path.join(d, 'bad.yaml'), 'logLevel: loud\n');
    await writeFile(path.join(d, 'empty.yaml'), '');
    expect((await loadConfigFile(path.join(d, 'c.yaml'))).metadata.mode).toBe('Naive');
    expect((await loadConfigFile(path.join(d, 'c.json'))).apiRateLimit).toEqual({ qps: 5, burst: 5 });
    expect((await loadConfigFile(path.join(d, 'empty.yaml'))).intervalSeconds).toBe(10);
    await expect(loadConfigFile(path.join(d, 'bad.yaml'))).rejects.toThrow(/bad\.yaml.*logLevel/);
  });

  it('kubeConfig may be an ApiServerConfig, a kubeconfig path, or a client-node KubeConfig (anything with exportConfig)', async () => {
    const d = await tmpdir();
    const text = JSON.stringify({
      'current-context': 'c',
      contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
      clusters: [{ name: 'k', cluster: { server: 'https://10.1.2.3:6443' } }],
      users: [{ name: 'u', user: { token: 't0k' } }],
    });
    await writeFile(path.join(d, 'kubeconfig'), text);
    const direct: ApiServerConfig = { server: 'https://direct:1', insecureSkipTLSVerify: false, source: 'test' };
    expect(await resolveKubeConfig(direct)).toBe(direct);
    expect((await resolveKubeConfig(path.join(d, 'kubeconfig'))).server).toBe('https://10.1.2.3:6443');
    const fromClientNode = await resolveKubeConfig({ exportConfig: () => text });
    expect(fromClientNode.server).toBe('https://10.1.2.3:6443');
    expect(await fromClientNode.token?.token()).toBe('t0k');
  });

  it('rejects a kubeconfig it cannot use before starting anything', async () => {
    const d = await tmpdir();
    await writeFile(path.join(d, 'kubeconfig'), 'current-context: nope\n');
    const stopFile = path.join(d, 'stop');
    const start = startAgent({
      mode: 'node',
      config: {},
      identity: { nodeName: 'n', podName: 'p', podNamespace: 'ns', revision: 'r' },
      kubeConfig: path.join(d, 'kubeconfig'),
      stopFilePath: stopFile,
      metricsPort: null,
      logger: silent,
    });
    await expect(start).rejects.toBeInstanceOf(KubeConfigError);
  });
});

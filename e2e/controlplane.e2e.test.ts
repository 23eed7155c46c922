// Acceptance of the local control plane (issue 3): real kube-apiserver, controller-manager, scheduler,
// etcd, kwok nodes and CoreDNS, checked with the real kubectl and real DNS queries.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { queryDNS } from './controlplane/dns.js';
import { attachFleet, startFleet } from './controlplane/fleet.js';
import { httpGet } from './controlplane/net.js';
import { isAlive, isStopped } from './controlplane/processes.js';
import {
  apply,
  createNamespace,
  deleteNamespace,
  dumpOnFailure,
  eventually,
  fleet,
  kubectl,
  kubectlJSON,
  kubectlResult,
  targetClusters,
} from './controlplane/testing.js';
import type { ClusterHandle } from './controlplane/fleet.js';

interface PodList {
  items: Array<{ metadata: { name: string }; spec: { nodeName?: string }; status: { phase?: string } }>;
}
interface DaemonSetStatus {
  status?: { desiredNumberScheduled?: number; numberReady?: number; numberAvailable?: number };
}

function readyNodeCount(kubectlGetNodes: string): { total: number; ready: number } {
  const rows = kubectlGetNodes
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.trim().split(/\s+/));
  return { total: rows.length, ready: rows.filter((r) => r[1] === 'Ready').length };
}

function daemonSet(name: string) {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'agent', image: 'registry.k8s.io/pause:3.10', resources: { requests: { cpu: '5m', memory: '8Mi' } } }] },
      },
    },
  };
}

function service(name: string) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name },
    spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
  };
}

async function clusterIP(c: ClusterHandle, ns: string, name: string): Promise<string> {
  const svc = await kubectlJSON<{ spec: { clusterIP: string } }>(c, ['get', 'service', name, '-n', ns]);
  return svc.spec.clusterIP;
}

// Budget per test: generous for 2 busy cores; the jest project's testTimeout does not apply per project.
const TIMEOUT_MS = 300_000;

describe('local control plane', () => {
  it(
    'brings up every cluster; the real kubectl shows all kwok nodes Ready',
    dumpOnFailure(async () => {
      const f = fleet();
      expect(targetClusters().length).toBeGreaterThan(0);
      for (const c of f.clusters) {
        const out = await kubectl(c, ['get', 'nodes', '--no-headers']);
        expect(readyNodeCount(out)).toEqual({ total: c.nodes, ready: c.nodes });
        // Each cluster is its own API server (own port, own etcd prefix) and reports the version we built.
        const version = await kubectlJSON<{ serverVersion: { gitVersion: string } }>(c, ['version']);
        expect(version.serverVersion.gitVersion).toBe('v1.36.3');
      }
      expect(new Set(f.clusters.map((c) => c.apiServerURL)).size).toBe(f.clusters.length);
      // Nodes carry the InternalIP range of their cluster, unique across the fleet.
      const ips = await Promise.all(
        targetClusters().map(async (c) => {
          const nodes = await kubectlJSON<{ items: Array<{ status: { addresses: Array<{ type: string; address: string }> } }> }>(c, ['get', 'nodes']);
          return nodes.items.map((n) => n.status.addresses.find((a) => a.type === 'InternalIP')?.address);
        }),
      );
      const all = ips.flat();
      expect(all.every((ip) => typeof ip === 'string' && ip.startsWith('10.'))).toBe(true);
      expect(new Set(all).size).toBe(all.length);
    }),
    TIMEOUT_MS,
  );

  it(
    'runs a DaemonSet: one Running pod per kwok node and numberReady equals the node count',
    dumpOnFailure(async () => {
      const c = targetClusters()[0] as ClusterHandle;
      const ns = await createNamespace(c, 'ds');
      try {
        await apply(c, daemonSet('agent'), { namespace: ns });
        const ds = await eventually(
          `${c.name}: DaemonSet ready on ${c.nodes} nodes`,
          async () => {
            const d = await kubectlJSON<DaemonSetStatus>(c, ['get', 'daemonset', 'agent', '-n', ns]);
            return d.status?.numberReady === c.nodes ? d : undefined;
          },
          180_000,
          1000,
        );
        expect(ds.status).toMatchObject({ desiredNumberScheduled: c.nodes, numberReady: c.nodes });
        const pods = await kubectlJSON<PodList>(c, ['get', 'pods', '-n', ns, '-l', 'app=agent']);
        expect(pods.items).toHaveLength(c.nodes);
        expect(pods.items.every((p) => p.status.phase === 'Running')).toBe(true);
        const nodesWithPod = new Set(pods.items.map((p) => p.spec.nodeName));
        const nodeNames = (await kubectl(c, ['get', 'nodes', '-o', 'name']))
          .trim()
          .split('\n')
          .map((n) => n.replace('node/', ''));
        expect([...nodesWithPod].sort()).toEqual(nodeNames.sort());
      } finally {
        await deleteNamespace(c, ns);
      }
    }),
    TIMEOUT_MS,
  );

  it(
    "resolves a Service name through the cluster's CoreDNS to its ClusterIP and exports CoreDNS metrics",
    dumpOnFailure(async () => {
      const c = targetClusters()[0] as ClusterHandle;
      const ns = await createNamespace(c, 'dns');
      try {
        await apply(c, service('web'), { namespace: ns });
        const ip = await clusterIP(c, ns, 'web');
        expect(ip).toMatch(/^10\.96\./);
        const name = `web.${ns}.svc.cluster.local`;
        const answer = await eventually(
          `${name} resolves`,
          async () => {
            const a = await queryDNS({ ...c.dns, name });
            return a.rcodeName === 'NOERROR' && a.addresses.length > 0 ? a : undefined;
          },
          30_000,
        );
        expect(answer.addresses).toEqual([ip]);
        // A name that does not exist is NXDOMAIN: CoreDNS answers from the cluster's data, not a wildcard.
        expect((await queryDNS({ ...c.dns, name: `nope.${ns}.svc.cluster.local` })).rcodeName).toBe('NXDOMAIN');
        const metrics = await httpGet(c.coreDNSMetricsURL);
        expect(metrics.status).toBe(200);
        expect(metrics.body).toMatch(/^coredns_dns_requests_total\{/m);
        expect(metrics.body).toMatch(/^coredns_dns_responses_total\{.*rcode="NXDOMAIN".*\} [1-9]/m);
      } finally {
        await deleteNamespace(c, ns);
      }
    }),
    TIMEOUT_MS,
  );

  it(
    'with the API server stopped, a synced CoreDNS still answers but a restarted one answers SERVFAIL; after SIGCONT it answers again',
    dumpOnFailure(async () => {
      const c = targetClusters()[targetClusters().length - 1] as ClusterHandle;
      const ns = await createNamespace(c, 'outage');
      await apply(c, service('api'), { namespace: ns });
      const ip = await clusterIP(c, ns, 'api');
      const name = `api.${ns}.svc.cluster.local`;
      await eventually(`${name} resolves`, async () => (await queryDNS({ ...c.dns, name })).addresses[0] === ip, 30_000);
      const apiPid = c.pids['kube-apiserver'] as number;
      c.pauseApiServer();
      try {
        expect(isStopped(apiPid)).toBe(true);
        // The API server really does not answer.
        await expect(httpGet(`${c.apiServerURL}/readyz`, { ca: readFileSync(c.caFile), timeoutMs: 2000 })).rejects.toThrow(/no answer/);
        // The running CoreDNS synced before the outage and serves from its informer cache.
        const cached = await queryDNS({ ...c.dns, name });
        expect(cached.rcodeName).toBe('NOERROR');
        expect(cached.addresses).toEqual([ip]);
        // A new CoreDNS cannot sync: after its start-up wait it answers SERVFAIL for cluster names.
        const oldDNS = c.pids.coredns as number;
        await c.restartCoreDNS();
        expect(c.pids.coredns).not.toBe(oldDNS);
        expect(isAlive(oldDNS)).toBe(false);
        const failed = await eventually(
          `${name} SERVFAIL from the restarted CoreDNS`,
          async () => {
            const a = await queryDNS({ ...c.dns, name });
            return a.rcodeName === 'SERVFAIL' ? a : undefined;
          },
          30_000,
        );
        expect(failed.addresses).toEqual([]);
      } finally {
        c.resumeApiServer();
      }
      expect(isStopped(apiPid)).toBe(false);
      const recovered = await eventually(
        `${name} resolves after SIGCONT`,
        async () => {
          const a = await queryDNS({ ...c.dns, name });
          return a.rcodeName === 'NOERROR' && a.addresses.length > 0 ? a : undefined;
        },
        60_000,
      );
      expect(recovered.addresses).toEqual([ip]);
      const metrics = await httpGet(c.coreDNSMetricsURL);
      expect(metrics.body).toMatch(/^coredns_dns_responses_total\{.*rcode="SERVFAIL".*\} [1-9]/m);
      await deleteNamespace(c, ns);
    }),
    TIMEOUT_MS,
  );

  it(
    "runs extra users under real RBAC: the operator's ServiceAccount can do only what it is bound to",
    dumpOnFailure(async () => {
      const c = targetClusters()[0] as ClusterHandle;
      const user = 'system:serviceaccount:telemetry-system:telemetry-rollout-operator';
      const ns = await createNamespace(c, 'rbac');
      try {
        const before = await kubectlResult(c, ['auth', 'can-i', 'list', 'configmaps', '-n', ns], { user });
        expect(before.stdout.trim()).toBe('no');
        await kubectl(c, ['create', 'rolebinding', 'op-view', '--clusterrole=view', `--serviceaccount=telemetry-system:telemetry-rollout-operator`, '-n', ns]);
        await eventually(
          'RoleBinding takes effect',
          async () => (await kubectlResult(c, ['auth', 'can-i', 'list', 'configmaps', '-n', ns], { user })).stdout.trim() === 'yes',
          30_000,
        );
        const denied = await kubectlResult(c, ['get', 'secrets', '-n', 'kube-system'], { user });
        expect(denied.code).not.toBe(0);
        expect(denied.stderr).toMatch(/forbidden/i);
      } finally {
        await deleteNamespace(c, ns);
      }
    }),
    TIMEOUT_MS,
  );

  it(
    'a fleet of its own: own etcd, a pod population, restarts its API server, and stop() leaves no process and no work dir',
    async () => {
      const own = await startFleet({ clusters: [{ name: 'solo', nodes: 2, podsPerNode: 3 }], sharedEtcd: false, handleSignals: false });
      let stopped = false;
      try {
        const c = own.cluster('solo');
        expect(readyNodeCount(await kubectl(c, ['get', 'nodes', '--no-headers']))).toEqual({ total: 2, ready: 2 });
        // The population: exactly 3 Running pause pods on each node, placed by the real scheduler.
        const pods = await kubectlJSON<PodList>(c, ['get', 'pods', '-n', 'tro-population']);
        expect(pods.items.every((p) => p.status.phase === 'Running')).toBe(true);
        const perNode = new Map<string, number>();
        for (const p of pods.items) perNode.set(p.spec.nodeName ?? '', (perNode.get(p.spec.nodeName ?? '') ?? 0) + 1);
        expect(Object.fromEntries(perNode)).toEqual({ 'solo-node-000': 3, 'solo-node-001': 3 });
        // Separate etcd: the cluster has its own.
        expect(c.pids.etcd).toBeDefined();
        const oldPid = c.pids['kube-apiserver'];
        await c.restartApiServer();
        expect(c.pids['kube-apiserver']).not.toBe(oldPid);
        // The info file has the new pid, so another process attaching (the teardown) kills the right one.
        const attached = attachFleet(own.infoFile);
        expect(attached.cluster('solo').pids['kube-apiserver']).toBe(c.pids['kube-apiserver']);
        expect(readyNodeCount(await kubectl(c, ['get', 'nodes', '--no-headers'])).ready).toBe(2);
        const pids = own.processes().map((p) => p.pid);
        expect(pids).toHaveLength(6);
        expect(pids.every(isAlive)).toBe(true);
        await attached.stop();
        stopped = true;
        // Gone means reaped too: no /proc entry, not even a zombie.
        await eventually('every pid reaped', () => pids.every((pid) => !existsSync(`/proc/${pid}`)), 5000, 50);
        expect(existsSync(own.workDir)).toBe(false);
      } finally {
        if (!stopped) {
          own.dumpLogs(40);
          await own.stop();
        }
      }
    },
    TIMEOUT_MS,
  );

  it(
    '`npm run cluster -- up` prints kubeconfigs, serves until Ctrl-C, then leaves no process and no work dir',
    async () => {
      const cli = join(dirname(fileURLToPath(import.meta.url)), 'controlplane', 'cli.ts');
      // process.execPath is the pinned Node 24 jest runs on; the npm script runs the same command.
      const hook = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', 'operator', 'src', 'cli', 'ts-resolve-hook.ts')).href;
      const child = spawn(process.execPath, ['--no-warnings', '--import', hook, cli, 'up', '--fleet', 'cli:1'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
      child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      try {
        await eventually('the CLI says the fleet is up', () => out.includes('Press Ctrl-C'), 120_000, 200);
        const kubeconfigPath = /kubeconfig\s+(\S+)/.exec(out)?.[1] as string;
        const infoFile = /Fleet info \(for attachFleet\): (\S+)/.exec(out)?.[1] as string;
        expect(existsSync(kubeconfigPath)).toBe(true);
        const attached = attachFleet(infoFile);
        const pids = attached.processes().map((p) => p.pid);
        expect(pids.every(isAlive)).toBe(true);
        expect(readyNodeCount(await kubectl(attached.cluster('cli'), ['get', 'nodes', '--no-headers']))).toEqual({ total: 1, ready: 1 });
        child.kill('SIGINT');
        expect(await exited).toBe(0);
        expect(out).toContain('stopped: no process left, work dir removed');
        expect(pids.filter(isAlive)).toEqual([]);
        expect(existsSync(attached.workDir)).toBe(false);
      } finally {
        if (child.exitCode === null) {
          child.kill('SIGINT');
          await exited;
        }
      }
    },
    TIMEOUT_MS,
  );
});

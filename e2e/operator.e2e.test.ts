// The operator end to end on the real control plane: a management cluster and three targets of
// different sizes; the operator runs as a real process under config/rbac (management) and
// config/target-rbac (targets), never as cluster-admin.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { CoreV1Api } from '@kubernetes/client-node';
import type { TelemetryRollout } from '../operator/src/api/types.generated.js';
import { nodesForStep } from '../operator/src/rollout/plan.js';
import { createNodes } from './controlplane/nodes.js';
import type { ClusterHandle } from './controlplane/fleet.js';
import { dumpOnFailure, fleet, kubectl, kubectlJSON, kubectlResult, managementCluster, targetClusters } from './controlplane/testing.js';
import { MGMT_OPERATOR_USER, OPERATOR_NAMESPACE, prepareFleet, startOperator, type OperatorProcess } from './support/operator.js';

const REVISION_LABEL = 'telemetry.rollout.dev/revision';
let targets: ClusterHandle[] = [];
/** Extra nodes added to the first target so the three sizes differ (the fleet's targets start equal). */
const EXTRA_NODES = 12;
const operators: OperatorProcess[] = [];
const sizes: Record<string, number> = {};

function rollout(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'telemetry.rollout.dev/v1alpha1',
    kind: 'TelemetryRollout',
    metadata: { name, namespace: OPERATOR_NAMESPACE },
    spec: {
      collector: { image: `registry.example/collector:${name}` },
      targets: { clusters: targets.map((t) => ({ name: t.name, kubeconfigSecretRef: { name: `${t.name}-kubeconfig` } })) },
      strategy: {
        order: 'LargestFirst',
        nodeRelabelQPS: 20,
        stages: [
          { name: 'canary', clusters: 1, nodeSteps: [10, 50, 100], bakeSeconds: 0 },
          { name: 'rest', percent: 100, nodeSteps: [50, 100], bakeSeconds: 0, maxConcurrentClusters: 2 },
        ],
      },
      // Short signal lag (bake = ttl + scrape + window = 6 s) and tolerant latency bounds: these tests are
      // about the engine, the gates have their own.
      gates: {
        intervalSeconds: 2,
        windowSeconds: 5,
        scrapeIntervalSeconds: 1,
        failureLimit: 3,
        coreDNS: { cacheTTLSeconds: 0 },
        apiServer: { maxP99LatencySeconds: 5, maxLatencyIncreaseRatio: 20 },
      },
      ...extra,
    },
  };
}

async function get(name: string): Promise<TelemetryRollout> {
  return kubectlJSON<TelemetryRollout>(managementCluster(), ['get', 'tro', name, '-n', OPERATOR_NAMESPACE, '-o', 'json']);
}

async function waitFor(
  name: string,
  what: string,
  pred: (r: TelemetryRollout) => boolean,
  timeoutMs = 300_000,
  onPoll?: (r: TelemetryRollout) => Promise<void>,
): Promise<TelemetryRollout> {
  const deadline = Date.now() + timeoutMs;
  let last: TelemetryRollout | undefined;
  for (;;) {
    last = await get(name).catch(() => last);
    if (last && onPoll) await onPoll(last);
    if (last && pred(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${name}: ${what}\nstatus: ${JSON.stringify(last?.status, null, 1)?.slice(0, 4000)}\n--- operator logs ---\n${operators.map((o) => `[${o.identity}]\n${o.tail(40)}`).join('\n')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Revision label counts in a target, through the real kubectl (`get nodes -L`). */
async function labelCounts(t: ClusterHandle): Promise<Record<string, number>> {
  const out = await kubectl(t, ['get', 'nodes', '-L', REVISION_LABEL, '--no-headers']);
  const counts: Record<string, number> = {};
  for (const line of out.trim().split('\n')) {
    const cols = line.trim().split(/\s+/);
    const rev = cols.length >= 6 ? (cols[5] as string) : '';
    counts[rev] = (counts[rev] ?? 0) + 1;
  }
  return counts;
}

async function stopAll(): Promise<void> {
  for (const o of operators.splice(0)) await o.kill('SIGTERM');
}

async function cleanupRollout(name: string): Promise<void> {
  await kubectl(managementCluster(), ['delete', 'tro', name, '-n', OPERATOR_NAMESPACE, '--ignore-not-found']);
  for (const t of targets) {
    await kubectl(t, ['label', 'nodes', '--all', `${REVISION_LABEL}-`]);
    await kubectl(t, [
      'delete',
      'daemonsets,deployments,configmaps',
      '-n',
      'telemetry-system',
      '-l',
      'app.kubernetes.io/managed-by=telemetry-rollout',
      '--ignore-not-found',
    ]);
  }
}

describe('the operator on the real control plane', () => {
  beforeAll(async () => {
    targets = targetClusters();
    const first = targets[0] as ClusterHandle;
    const index = fleet().clusters.findIndex((c) => c.name === first.name);
    await createNodes(first.kubeConfig(), first.name, index, first.nodes + EXTRA_NODES);
    for (const t of targets) sizes[t.name] = (await t.kubeConfig().makeApiClient(CoreV1Api).listNode()).items.length;
    await prepareFleet(targets);
  }, 300_000);

  // Whatever a test leaves (it may fail half-way), the next one starts from clean targets.
  afterEach(async () => {
    for (const name of ['two-stage', 'pause-abort', 'sigkill', 'failover']) await cleanupRollout(name).catch(() => undefined);
  }, 120_000);

  afterAll(async () => {
    await stopAll();
    const first = targets[0];
    if (first) {
      const core = first.kubeConfig().makeApiClient(CoreV1Api);
      for (let i = first.nodes; i < first.nodes + EXTRA_NODES; i++) {
        await core.deleteNode({ name: `${first.name}-node-${String(i).padStart(3, '0')}` }).catch(() => undefined);
      }
    }
  }, 120_000);

  it(
    'runs with the least privilege of config/rbac, not as cluster-admin',
    dumpOnFailure(async () => {
      const mgmt = managementCluster();
      const can = async (args: string[]) => (await kubectlResult(mgmt, ['auth', 'can-i', ...args], { user: MGMT_OPERATOR_USER })).stdout.trim();
      expect(await can(['update', 'telemetryrollouts/status', '-n', OPERATOR_NAMESPACE])).toBe('yes');
      expect(await can(['get', 'secrets', '-n', OPERATOR_NAMESPACE])).toBe('yes');
      expect(await can(['get', 'secrets', '-n', 'kube-system'])).toBe('no');
      expect(await can(['create', 'pods', '-n', OPERATOR_NAMESPACE])).toBe('no');
      expect(await can(['delete', 'nodes'])).toBe('no');
    }),
  );

  it(
    'completes a 2-stage rollout: largest cluster first, expected node counts after every step, Ready',
    dumpOnFailure(async () => {
      operators.push(await startOperator({ identity: 'op-a' }));
      const name = 'two-stage';
      await kubectl(managementCluster(), ['apply', '-f', '-'], { input: JSON.stringify(rollout(name)) });
      const largest = Object.entries(sizes).sort((a, b) => b[1] - a[1])[0]![0];
      const checked = new Set<string>();
      const done = await waitFor(
        name,
        'Succeeded',
        (r) => r.status?.phase === 'Succeeded',
        400_000,
        async (r) => {
          // Whenever a cluster is baking a step we have not checked yet, kubectl shows exactly ceil(p% x n) nodes.
          for (const c of r.status?.clusters ?? []) {
            const key = `${c.name}/${c.step}`;
            if (c.phase !== 'Baking' || checked.has(key)) continue;
            const t = targets.find((x) => x.name === c.name)!;
            const counts = await labelCounts(t);
            expect({ key, n: counts[r.status!.revision!] ?? 0 }).toEqual({ key, n: nodesForStep(c.stepPercent ?? 0, sizes[c.name]!) });
            checked.add(key);
          }
        },
      );
      const st = done.status!;
      expect(st.clusters?.[0]?.name).toBe(largest);
      expect(st.clusters?.[0]?.stage).toBe('canary');
      expect(checked.size).toBe(3 + 2 + 2);
      // The canary finished every step before any other cluster started.
      const hist = st.history ?? [];
      const canaryDone = hist.findIndex((h) => h.reason === 'ClusterSucceeded' && h.cluster === largest);
      const otherStart = hist.findIndex((h) => h.reason === 'ClusterStarted' && h.cluster !== largest);
      expect(canaryDone).toBeGreaterThan(-1);
      expect(otherStart).toBeGreaterThan(canaryDone);
      for (const t of targets) expect(await labelCounts(t)).toEqual({ [st.revision!]: sizes[t.name] });
      const wait = await kubectl(managementCluster(), ['wait', '--for=condition=Ready', `tro/${name}`, '-n', OPERATOR_NAMESPACE, '--timeout=10s']);
      expect(wait).toContain('condition met');
      const ds = await kubectlJSON<{ status: { numberReady: number } }>(targets[0]!, [
        'get',
        'daemonset',
        `telemetry-collector-${st.revision}`,
        '-n',
        'telemetry-system',
        '-o',
        'json',
      ]);
      expect(ds.status.numberReady).toBe(sizes[targets[0]!.name]);
      const events = await kubectl(managementCluster(), ['get', 'events', '-n', OPERATOR_NAMESPACE, '--field-selector', `regarding.name=${name}`]).catch(() =>
        kubectl(managementCluster(), ['get', 'events', '-n', OPERATOR_NAMESPACE]),
      );
      expect(events).toContain('ClusterSucceeded');
      await cleanupRollout(name);
    }),
  );

  it(
    'pause stops progress and resume continues; abort rolls everything back',
    dumpOnFailure(async () => {
      if (!operators.length) operators.push(await startOperator({ identity: 'op-a' }));
      const name = 'pause-abort';
      await kubectl(managementCluster(), ['apply', '-f', '-'], { input: JSON.stringify(rollout(name)) });
      await waitFor(name, 'canary baking its first step', (r) => r.status?.clusters?.[0]?.phase === 'Baking');
      await kubectl(managementCluster(), ['patch', 'tro', name, '-n', OPERATOR_NAMESPACE, '--type=merge', '-p', '{"spec":{"paused":true}}']);
      const paused = await waitFor(name, 'Paused', (r) => r.status?.phase === 'Paused');
      const step = paused.status?.clusters?.[0]?.step;
      const before = await labelCounts(targets.find((t) => t.name === paused.status?.clusters?.[0]?.name)!);
      await new Promise((r) => setTimeout(r, 15_000)); // longer than a bake: nothing may move
      const still = await get(name);
      expect(still.status?.phase).toBe('Paused');
      expect(still.status?.clusters?.[0]?.step).toBe(step);
      expect(await labelCounts(targets.find((t) => t.name === paused.status?.clusters?.[0]?.name)!)).toEqual(before);
      expect(still.status?.conditions?.find((c) => c.type === 'Paused')).toMatchObject({ status: 'True', reason: 'PausedByUser' });
      await kubectl(managementCluster(), ['patch', 'tro', name, '-n', OPERATOR_NAMESPACE, '--type=merge', '-p', '{"spec":{"paused":false}}']);
      await waitFor(name, 'a later step', (r) => (r.status?.clusters?.[0]?.step ?? 0) > (step ?? 0));
      await kubectl(managementCluster(), ['annotate', 'tro', name, '-n', OPERATOR_NAMESPACE, 'telemetry.rollout.dev/abort=e2e', '--overwrite']);
      const rolledBack = await waitFor(name, 'RolledBack', (r) => r.status?.phase === 'RolledBack');
      expect(rolledBack.status?.reason).toBe('Aborted');
      for (const t of targets) {
        expect(await labelCounts(t)).toEqual({ '': sizes[t.name] });
        const ds = await kubectl(t, ['get', 'daemonsets', '-n', 'telemetry-system', '--no-headers', '--ignore-not-found']);
        expect(ds.trim()).toBe('');
      }
      await cleanupRollout(name);
    }),
  );

  it(
    'survives SIGKILL at random moments (5 times) and ends in exactly the right state',
    dumpOnFailure(async () => {
      await stopAll();
      const name = 'sigkill';
      let op = await startOperator({ identity: 'op-k0' });
      operators.push(op);
      await kubectl(managementCluster(), ['apply', '-f', '-'], { input: JSON.stringify(rollout(name)) });
      for (let i = 1; i <= 5; i++) {
        await new Promise((r) => setTimeout(r, 3000 + Math.floor(Math.random() * 7000)));
        await op.kill('SIGKILL');
        operators.splice(operators.indexOf(op), 1);
        // A new process (as a Deployment would start) with a new identity: it must wait out the dead
        // leader's lease (15 s) before acting, like a real restart.
        op = await startOperator({ identity: `op-k${i}` });
        operators.push(op);
      }
      const done = await waitFor(name, 'Succeeded after 5 kills', (r) => r.status?.phase === 'Succeeded', 600_000);
      const st = done.status!;
      const starts = (st.history ?? []).filter((h) => h.reason === 'StepStarted').map((h) => h.message);
      expect(new Set(starts).size).toBe(starts.length);
      expect(starts).toHaveLength(3 + 2 + 2);
      for (const t of targets) expect(await labelCounts(t)).toEqual({ [st.revision!]: sizes[t.name] });
      await cleanupRollout(name);
    }),
  );

  it(
    'with two replicas only the leader acts, and the rollout continues after a failover',
    dumpOnFailure(async () => {
      await stopAll();
      const a = await startOperator({ identity: 'op-leader-a' });
      operators.push(a);
      await new Promise((r) => setTimeout(r, 3000)); // a takes the lease first
      const b = await startOperator({ identity: 'op-leader-b' });
      operators.push(b);
      const name = 'failover';
      await kubectl(managementCluster(), ['apply', '-f', '-'], { input: JSON.stringify(rollout(name)) });
      await waitFor(name, 'canary on its second step', (r) => (r.status?.clusters?.[0]?.step ?? 0) >= 1);
      const lease = await kubectlJSON<{ spec: { holderIdentity: string } }>(managementCluster(), [
        'get',
        'lease',
        'telemetry-rollout-operator',
        '-n',
        OPERATOR_NAMESPACE,
        '-o',
        'json',
      ]);
      expect(lease.spec.holderIdentity).toBe('op-leader-a');
      const reconciles = (m: string) => [...m.matchAll(/^tro_reconcile_total\{[^}]*\} (\d+)/gm)].reduce((s, x) => s + Number(x[1]), 0);
      expect(reconciles(await a.metrics())).toBeGreaterThan(0);
      expect(reconciles(await b.metrics())).toBe(0);
      await a.kill('SIGKILL');
      operators.splice(operators.indexOf(a), 1);
      const done = await waitFor(name, 'Succeeded after failover', (r) => r.status?.phase === 'Succeeded', 400_000);
      const after = await kubectlJSON<{ spec: { holderIdentity: string } }>(managementCluster(), [
        'get',
        'lease',
        'telemetry-rollout-operator',
        '-n',
        OPERATOR_NAMESPACE,
        '-o',
        'json',
      ]);
      expect(after.spec.holderIdentity).toBe('op-leader-b');
      expect(reconciles(await b.metrics())).toBeGreaterThan(0);
      const starts = (done.status?.history ?? []).filter((h) => h.reason === 'StepStarted').map((h) => h.message);
      expect(new Set(starts).size).toBe(starts.length);
      await cleanupRollout(name);
    }),
  );
});

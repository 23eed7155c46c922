// Which pods the node runtime runs an agent for, and with what identity and config.
import { describe, expect, it } from '@jest/globals';
import { revisionObjects } from '../../operator/src/rollout/desired.js';
import { agentConfig, desiredAgent, type PodLike } from './pods.js';
import { collectorRollout } from './testing.js';

const rollout = collectorRollout('r', { metadata: { mode: 'Naive' } });

/** A pod as the DaemonSet (or Deployment) controller would create it from the operator's template. */
function podFrom(kind: 'DaemonSet' | 'Deployment', over: { phase?: string; node?: string; deleting?: boolean; uid?: string } = {}): PodLike {
  const objs = revisionObjects(rollout, 'abc123', true) as Array<{
    kind: string;
    spec?: { template?: { metadata?: { labels?: Record<string, string> }; spec?: PodLike['spec'] } };
  }>;
  const owner = objs.find((o) => o.kind === kind);
  const template = owner?.spec?.template;
  return {
    metadata: {
      name: kind === 'DaemonSet' ? 'telemetry-collector-abc123-x1' : 'telemetry-collector-cluster-abc123-5d-x2',
      namespace: 'telemetry-system',
      uid: over.uid ?? 'uid-1',
      labels: template?.metadata?.labels ?? {},
      ownerReferences: [{ kind: kind === 'DaemonSet' ? 'DaemonSet' : 'ReplicaSet', name: 'x', controller: true }],
      ...(over.deleting ? { deletionTimestamp: '2026-11-25T00:00:00Z' } : {}),
    },
    spec: { ...template?.spec, ...(over.node === '' ? {} : { nodeName: over.node ?? 'big-node-001' }) },
    status: { phase: over.phase ?? 'Running' },
  };
}

describe('desiredAgent', () => {
  it('runs a node-mode agent for a Running DaemonSet pod, identity from its env and volumes', () => {
    expect(desiredAgent(podFrom('DaemonSet'), 'telemetry-system')).toEqual({
      id: 'uid-1',
      mode: 'node',
      node: 'big-node-001',
      pod: 'telemetry-collector-abc123-x1',
      namespace: 'telemetry-system',
      revision: 'abc123',
      rollout: 'telemetry-rollout-system/r',
      configMap: 'telemetry-collector-config-abc123',
      serviceAccount: 'telemetry-collector-node',
      automountToken: true,
    });
  });

  it('takes the ServiceAccount and the token opt-out from the pod spec, as a kubelet would', () => {
    expect(desiredAgent(podFrom('Deployment'), 'telemetry-system')?.serviceAccount).toBe('telemetry-collector-watcher');
    const pod = podFrom('DaemonSet');
    pod.spec = { ...pod.spec, automountServiceAccountToken: false };
    delete pod.spec.serviceAccountName;
    expect(desiredAgent(pod, 'telemetry-system')).toMatchObject({ serviceAccount: 'default', automountToken: false });
  });

  it('runs a cluster-mode agent for the Deployment pod, with its Lease', () => {
    const d = desiredAgent(podFrom('Deployment'), 'telemetry-system');
    expect(d?.mode).toBe('cluster');
    expect(d?.leaseName).toBe('telemetry-collector-cluster');
  });

  it.each([
    ['pending', { phase: 'Pending' }],
    ['not scheduled', { node: '' }],
    ['being deleted', { deleting: true }],
  ])('runs nothing for a pod %s', (_name, over) => {
    expect(desiredAgent(podFrom('DaemonSet', over), 'telemetry-system')).toBeUndefined();
  });

  it('ignores other namespaces and pods that are not the collector', () => {
    expect(desiredAgent(podFrom('DaemonSet'), 'elsewhere')).toBeUndefined();
    const other = podFrom('DaemonSet');
    other.metadata = { ...other.metadata, labels: { app: 'x' } };
    expect(desiredAgent(other, 'telemetry-system')).toBeUndefined();
  });

  it('falls back to the revision label when the env has none', () => {
    const p = podFrom('DaemonSet');
    for (const c of p.spec?.containers ?? []) c.env = (c.env ?? []).filter((e) => e.name !== 'TRO_REVISION');
    expect(desiredAgent(p, 'telemetry-system')?.revision).toBe('abc123');
  });
});

describe('agentConfig', () => {
  it('points the kubelet at the runtime and keeps the rest', () => {
    const c = agentConfig(
      JSON.stringify({ metadata: { mode: 'Naive', kubeletURL: 'http://127.0.0.1:10255' }, intervalSeconds: 5 }),
      'http://127.0.0.1:1/node/n',
    );
    expect(c).toEqual({ metadata: { mode: 'Naive', kubeletURL: 'http://127.0.0.1:1/node/n' }, intervalSeconds: 5 });
  });

  it('refuses JSON that is not an object', () => {
    expect(() => agentConfig('[]', 'http://x')).toThrow(/not a JSON object/);
  });
});

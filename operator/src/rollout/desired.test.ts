import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { parseAllDocuments } from 'yaml';
import { findRepoRoot } from '../api/crd.js';
import type { TelemetryRollout } from '../api/types.generated.js';
import { validateRollout } from '../api/validate.js';
import {
  COLLECTOR_CLUSTER_ROLES,
  COLLECTOR_NODE_SERVICE_ACCOUNT,
  COLLECTOR_WATCHER_SERVICE_ACCOUNT,
  STOP_DIR,
  naiveBindingName,
  revisionObjects,
  revisionRefs,
  sharedObjects,
} from './desired.js';
import type { KubeObject } from './interfaces.js';

const rollout = (mode: 'Kubelet' | 'Naive' = 'Kubelet') =>
  validateRollout({
    apiVersion: 'telemetry.rollout.dev/v1alpha1',
    kind: 'TelemetryRollout',
    metadata: { name: 'r', namespace: 'default' },
    spec: { collector: { image: 'c:1', config: { metadata: { mode } } }, targets: { clusters: [{ name: 'a', kubeconfigSecretRef: { name: 'a' } }] } },
  }).defaulted as unknown as TelemetryRollout;

interface PodSpecLike {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  containers: { volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[] }[];
  volumes?: { name: string; hostPath?: { path: string } }[];
}
const podSpec = (o: KubeObject | undefined): PodSpecLike => (o as unknown as { spec: { template: { spec: PodSpecLike } } }).spec.template.spec;
const byKind = (objs: KubeObject[], kind: string) => objs.filter((o) => o.kind === kind);

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface RbacDoc {
  kind: string;
  metadata: { name: string };
  rules?: Rule[];
}
const targetRbac = (): RbacDoc[] =>
  parseAllDocuments(readFileSync(join(findRepoRoot(), 'config', 'target-rbac', 'target-role.yaml'), 'utf8')).map((d) => d.toJS() as RbacDoc);

describe('desired collector objects', () => {
  it('runs node agents and the cluster watcher under separate ServiceAccounts, each bound to its own fixed role', () => {
    const shared = sharedObjects(rollout());
    expect(
      byKind(shared, 'ServiceAccount')
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual([COLLECTOR_NODE_SERVICE_ACCOUNT, COLLECTOR_WATCHER_SERVICE_ACCOUNT].sort());
    const bindings = byKind(shared, 'ClusterRoleBinding') as unknown as { roleRef: { name: string }; subjects: { name: string }[] }[];
    expect(bindings.map((b) => [b.roleRef.name, b.subjects.map((s) => s.name)])).toEqual([
      [COLLECTOR_CLUSTER_ROLES.node, [COLLECTOR_NODE_SERVICE_ACCOUNT]],
      [COLLECTOR_CLUSTER_ROLES.watcher, [COLLECTOR_WATCHER_SERVICE_ACCOUNT]],
    ]);
    // The Lease is the watcher's alone.
    const rb = byKind(shared, 'RoleBinding')[0] as unknown as { subjects: { name: string }[] };
    expect(rb.subjects.map((s) => s.name)).toEqual([COLLECTOR_WATCHER_SERVICE_ACCOUNT]);

    const objs = revisionObjects(rollout(), 'abc', false);
    const ds = podSpec(byKind(objs, 'DaemonSet')[0]);
    expect(ds.serviceAccountName).toBe(COLLECTOR_NODE_SERVICE_ACCOUNT);
    // The node agent GETs its own Node, so it needs its token.
    expect(ds.automountServiceAccountToken).not.toBe(false);
    expect(podSpec(byKind(objs, 'Deployment')[0]).serviceAccountName).toBe(COLLECTOR_WATCHER_SERVICE_ACCOUNT);
  });

  it('mounts the node stop directory read-only into the watcher too, so break-glass reaches it without the API server', () => {
    for (const kind of ['DaemonSet', 'Deployment']) {
      const spec = podSpec(byKind(revisionObjects(rollout(), 'abc', true), kind)[0]);
      expect(spec.volumes?.find((v) => v.name === 'stop')?.hostPath?.path).toBe(STOP_DIR);
      expect(spec.containers[0]?.volumeMounts?.find((m) => m.name === 'stop')).toEqual({ name: 'stop', mountPath: STOP_DIR, readOnly: true });
    }
  });

  it('grants cluster-wide lists to node agents only for a Naive revision, with a binding deleted with the revision', () => {
    expect(byKind(revisionObjects(rollout('Kubelet'), 'abc', false), 'ClusterRoleBinding')).toEqual([]);
    const naive = byKind(revisionObjects(rollout('Naive'), 'abc', false), 'ClusterRoleBinding') as unknown as {
      metadata: { name: string };
      roleRef: { name: string };
      subjects: { name: string }[];
    }[];
    expect(naive.map((b) => [b.metadata.name, b.roleRef.name, b.subjects.map((s) => s.name)])).toEqual([
      [naiveBindingName('abc'), COLLECTOR_CLUSTER_ROLES.naive, [COLLECTOR_NODE_SERVICE_ACCOUNT]],
    ]);
    expect(revisionRefs('telemetry-system', 'abc')).toContainEqual({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      name: naiveBindingName('abc'),
    });
  });

  it('is a pure function of the spec and the revision', () => {
    expect(revisionObjects(rollout(), 'abc', true)).toEqual(revisionObjects(rollout(), 'abc', true));
    expect(sharedObjects(rollout())).toEqual(sharedObjects(rollout()));
  });

  it('binds only roles that config/target-rbac defines, lets the operator bind exactly those, and gives node agents no list or watch', () => {
    const docs = targetRbac();
    const roles = new Map(docs.filter((d) => d.kind === 'ClusterRole').map((d) => [d.metadata.name, d.rules ?? []]));
    for (const name of Object.values(COLLECTOR_CLUSTER_ROLES)) expect(roles.has(name)).toBe(true);
    const bind = (roles.get('telemetry-rollout-operator') ?? []).find((r) => r.verbs.includes('bind'));
    expect([...(bind?.resourceNames ?? [])].sort()).toEqual(Object.values(COLLECTOR_CLUSTER_ROLES).sort());
    expect(roles.get(COLLECTOR_CLUSTER_ROLES.node)).toEqual([{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }]);
    // The watcher's role must cover what the cluster-mode agent watches, and nothing that writes.
    const watcherVerbs = new Set((roles.get(COLLECTOR_CLUSTER_ROLES.watcher) ?? []).flatMap((r) => r.verbs));
    expect([...watcherVerbs].sort()).toEqual(['list', 'watch']);
  });
});

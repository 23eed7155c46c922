/**
 * The collector's objects in a target cluster, as pure functions of the rollout spec and the revision:
 * no timestamps, no random names, nothing read from the cluster. Applying them twice changes nothing,
 * and every operator replica computes the same objects.
 *
 * Mechanism: one DaemonSet per revision, selecting nodes by the node label
 * `telemetry.rollout.dev/revision=<revision>`. The stable revision's DaemonSet also takes unlabelled
 * nodes (new nodes join on the stable revision). Moving a batch = relabelling nodes; rollback = removing
 * the label, which hands the nodes back to the stable DaemonSet.
 */
import type { TelemetryRollout } from '../api/types.generated.js';
import { canonicalJson, rolloutLabelValue } from './revision.js';
import { OBJECT_REVISION_LABEL, REVISION_LABEL, ROLLOUT_LABEL, STABLE_LABEL, type KubeObject, type ObjectRef } from './interfaces.js';

/** Name of the collector's ServiceAccount in each target. */
export const COLLECTOR_SERVICE_ACCOUNT = 'telemetry-collector';
/** The fixed ClusterRole installed by config/target-rbac that the collector is bound to. */
export const COLLECTOR_CLUSTER_ROLE = 'telemetry-rollout-collector';
/** The Lease the cluster-mode replicas elect a leader on (shared by all revisions: one watcher at a time). */
export const CLUSTER_WATCHER_LEASE = 'telemetry-collector-cluster';
/** Where the stop file directory lives on every node. */
export const STOP_DIR = '/var/run/telemetry-rollout';

/** Name of the node-agent DaemonSet of a revision. */
export const daemonSetName = (revision: string): string => `telemetry-collector-${revision}`;
/** Name of the cluster-mode Deployment of a revision. */
export const clusterDeploymentName = (revision: string): string => `telemetry-collector-cluster-${revision}`;
/** Name of the ConfigMap holding a revision's rendered config. */
export const configMapName = (revision: string): string => `telemetry-collector-config-${revision}`;

function commonLabels(rollout: TelemetryRollout): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'telemetry-collector',
    'app.kubernetes.io/managed-by': 'telemetry-rollout',
    [ROLLOUT_LABEL]: rolloutLabelValue(rollout.metadata?.namespace ?? 'default', rollout.metadata?.name ?? ''),
  };
}

/** Objects shared by every revision: namespace, ServiceAccount, and the collector's RBAC bindings. */
export function sharedObjects(rollout: TelemetryRollout): KubeObject[] {
  const ns = rollout.spec.collector.namespace;
  const labels = commonLabels(rollout);
  return [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      // Node agents mount hostPath (/proc, /sys, the stop file), which PodSecurity "restricted" forbids.
      metadata: { name: ns, labels: { ...labels, 'pod-security.kubernetes.io/enforce': 'privileged' } },
    },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: COLLECTOR_SERVICE_ACCOUNT, namespace: ns, labels } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: `telemetry-rollout-collector-${ns}`, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: COLLECTOR_CLUSTER_ROLE },
      subjects: [{ kind: 'ServiceAccount', name: COLLECTOR_SERVICE_ACCOUNT, namespace: ns }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'telemetry-collector', namespace: ns, labels },
      rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'telemetry-collector', namespace: ns, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'telemetry-collector' },
      subjects: [{ kind: 'ServiceAccount', name: COLLECTOR_SERVICE_ACCOUNT, namespace: ns }],
    },
  ];
}

function agentEnv(rollout: TelemetryRollout, revision: string, mode: 'node' | 'cluster'): unknown[] {
  const field = (path: string) => ({ valueFrom: { fieldRef: { fieldPath: path } } });
  return [
    { name: 'NODE_NAME', ...field('spec.nodeName') },
    { name: 'POD_NAME', ...field('metadata.name') },
    { name: 'POD_NAMESPACE', ...field('metadata.namespace') },
    { name: 'TRO_REVISION', value: revision },
    { name: 'TRO_ROLLOUT', value: `${rollout.metadata?.namespace ?? 'default'}/${rollout.metadata?.name ?? ''}` },
    { name: 'TRO_MODE', value: mode },
    { name: 'TRO_CONFIG', value: '/etc/telemetry-collector/config.json' },
  ];
}

const securityContext = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
};

/**
 * The objects of one revision: its rendered config, its node-agent DaemonSet and its cluster-mode
 * Deployment. `stable` makes the DaemonSet also take nodes without the revision label.
 */
export function revisionObjects(rollout: TelemetryRollout, revision: string, stable: boolean): KubeObject[] {
  const c = rollout.spec.collector;
  const ns = c.namespace;
  const labels = { ...commonLabels(rollout), [OBJECT_REVISION_LABEL]: revision };
  const podLabels = { 'app.kubernetes.io/name': 'telemetry-collector', [OBJECT_REVISION_LABEL]: revision };
  const matchRevision = { key: REVISION_LABEL, operator: 'In', values: [revision] };
  const nodeSelectorTerms = stable
    ? [{ matchExpressions: [matchRevision] }, { matchExpressions: [{ key: REVISION_LABEL, operator: 'DoesNotExist' }] }]
    : [{ matchExpressions: [matchRevision] }];
  const resources = c.resources ?? { requests: { cpu: '20m', memory: '32Mi' }, limits: { memory: '64Mi' } };
  const configVolume = { name: 'config', configMap: { name: configMapName(revision) } };
  const configMount = { name: 'config', mountPath: '/etc/telemetry-collector', readOnly: true };
  const metricsPort = c.config?.metricsPort ?? 9464;
  return [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: configMapName(revision), namespace: ns, labels },
      data: { 'config.json': canonicalJson(c.config ?? {}) },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: daemonSetName(revision), namespace: ns, labels: { ...labels, ...(stable ? { [STABLE_LABEL]: 'true' } : {}) } },
      spec: {
        selector: { matchLabels: podLabels },
        // OnDelete: a revision's pod template changes only once, when the revision becomes stable (its
        // affinity then also takes unlabelled nodes). A rolling update would restart every agent of the
        // fleet right after the rollout; with OnDelete running agents stay and new nodes get the new template.
        updateStrategy: { type: 'OnDelete' },
        template: {
          metadata: { labels: podLabels },
          spec: {
            serviceAccountName: COLLECTOR_SERVICE_ACCOUNT,
            // Node agents talk to the kubelet and not the API server, so they do not need a token.
            automountServiceAccountToken: false,
            affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms } } },
            tolerations: [{ operator: 'Exists' }],
            terminationGracePeriodSeconds: 10,
            containers: [
              {
                name: 'agent',
                image: c.image,
                imagePullPolicy: c.imagePullPolicy,
                env: agentEnv(rollout, revision, 'node'),
                ports: [{ name: 'metrics', containerPort: metricsPort }],
                resources,
                securityContext,
                volumeMounts: [
                  configMount,
                  { name: 'stop', mountPath: STOP_DIR, readOnly: true },
                  { name: 'proc', mountPath: '/host/proc', readOnly: true },
                  { name: 'sys', mountPath: '/host/sys', readOnly: true },
                ],
              },
            ],
            volumes: [
              configVolume,
              { name: 'stop', hostPath: { path: STOP_DIR, type: 'DirectoryOrCreate' } },
              { name: 'proc', hostPath: { path: '/proc' } },
              { name: 'sys', hostPath: { path: '/sys' } },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: clusterDeploymentName(revision), namespace: ns, labels },
      spec: {
        replicas: c.config?.clusterWatcher?.enabled === false ? 0 : 1,
        selector: { matchLabels: { ...podLabels, 'telemetry.rollout.dev/mode': 'cluster' } },
        strategy: { type: 'Recreate' },
        template: {
          metadata: { labels: { ...podLabels, 'telemetry.rollout.dev/mode': 'cluster' } },
          spec: {
            serviceAccountName: COLLECTOR_SERVICE_ACCOUNT,
            securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [
              {
                name: 'watcher',
                image: c.image,
                imagePullPolicy: c.imagePullPolicy,
                env: [...agentEnv(rollout, revision, 'cluster'), { name: 'TRO_LEASE', value: CLUSTER_WATCHER_LEASE }],
                resources,
                securityContext,
                volumeMounts: [configMount],
              },
            ],
            volumes: [configVolume],
          },
        },
      },
    },
  ];
}

/** References to a revision's objects, for deletion on rollback or cleanup. */
export function revisionRefs(namespace: string, revision: string): ObjectRef[] {
  return [
    { apiVersion: 'apps/v1', kind: 'DaemonSet', name: daemonSetName(revision), namespace },
    { apiVersion: 'apps/v1', kind: 'Deployment', name: clusterDeploymentName(revision), namespace },
    { apiVersion: 'v1', kind: 'ConfigMap', name: configMapName(revision), namespace },
  ];
}

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

/** ServiceAccount of the node agents (DaemonSet): may GET nodes, nothing else. */
export const COLLECTOR_NODE_SERVICE_ACCOUNT = 'telemetry-collector-node';
/** ServiceAccount of the cluster-mode watcher (Deployment): list/watch of metadata and its Lease. */
export const COLLECTOR_WATCHER_SERVICE_ACCOUNT = 'telemetry-collector-watcher';
/**
 * The fixed ClusterRoles installed by config/target-rbac that the operator binds (it holds `bind` on
 * exactly these names, so it cannot grant anything else). Split by job so that a node agent, one per
 * node, physically cannot do the incident's cluster-wide LIST/WATCH.
 */
export const COLLECTOR_CLUSTER_ROLES = {
  /** GET nodes: a node agent reads its own Node (RBAC cannot narrow it to "own"). */
  node: 'telemetry-rollout-collector-node',
  /** list/watch pods, services, nodes, endpointslices: the single leader-elected watcher. */
  watcher: 'telemetry-rollout-collector-watcher',
  /** list/watch pods, services, endpoints from every node: the Naive pressure-test mode only. */
  naive: 'telemetry-rollout-collector-naive',
} as const;
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
/**
 * Name of the ClusterRoleBinding that gives a Naive revision's node agents cluster-wide list/watch.
 * Per revision, so it goes away with the revision (rollback or supersession) and never outlives the test.
 */
export const naiveBindingName = (revision: string): string => `telemetry-collector-naive-${revision}`;

const rbacGroup = 'rbac.authorization.k8s.io';

function clusterRoleBinding(name: string, role: string, serviceAccount: string, ns: string, labels: Record<string, string>): KubeObject {
  return {
    apiVersion: `${rbacGroup}/v1`,
    kind: 'ClusterRoleBinding',
    metadata: { name, labels },
    roleRef: { apiGroup: rbacGroup, kind: 'ClusterRole', name: role },
    subjects: [{ kind: 'ServiceAccount', name: serviceAccount, namespace: ns }],
  };
}

function commonLabels(rollout: TelemetryRollout): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'telemetry-collector',
    'app.kubernetes.io/managed-by': 'telemetry-rollout',
    [ROLLOUT_LABEL]: rolloutLabelValue(rollout.metadata?.namespace ?? 'default', rollout.metadata?.name ?? ''),
  };
}

/**
 * Objects shared by every revision: namespace, the two ServiceAccounts and their RBAC bindings. Binding
 * names carry the namespace because ClusterRoleBindings are cluster-scoped and two rollouts may use two
 * collector namespaces in one target.
 */
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
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: COLLECTOR_NODE_SERVICE_ACCOUNT, namespace: ns, labels } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: COLLECTOR_WATCHER_SERVICE_ACCOUNT, namespace: ns, labels } },
    clusterRoleBinding(`${COLLECTOR_CLUSTER_ROLES.node}-${ns}`, COLLECTOR_CLUSTER_ROLES.node, COLLECTOR_NODE_SERVICE_ACCOUNT, ns, labels),
    clusterRoleBinding(`${COLLECTOR_CLUSTER_ROLES.watcher}-${ns}`, COLLECTOR_CLUSTER_ROLES.watcher, COLLECTOR_WATCHER_SERVICE_ACCOUNT, ns, labels),
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: 'Role',
      metadata: { name: 'telemetry-collector-watcher', namespace: ns, labels },
      // Leader election only (collector/src/cluster/leader.ts): get, create and update its Lease.
      rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }],
    },
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: 'RoleBinding',
      metadata: { name: 'telemetry-collector-watcher', namespace: ns, labels },
      roleRef: { apiGroup: rbacGroup, kind: 'Role', name: 'telemetry-collector-watcher' },
      subjects: [{ kind: 'ServiceAccount', name: COLLECTOR_WATCHER_SERVICE_ACCOUNT, namespace: ns }],
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
  const stopVolume = { name: 'stop', hostPath: { path: STOP_DIR, type: 'DirectoryOrCreate' } };
  const stopMount = { name: 'stop', mountPath: STOP_DIR, readOnly: true };
  const metricsPort = c.config?.metricsPort ?? 9464;
  const naive = c.config?.metadata?.mode === 'Naive';
  return [
    // Only a Naive revision (a pressure test the preflight let through) gets cluster-wide list/watch for
    // its node agents; the binding is the revision's and is deleted with it.
    ...(naive ? [clusterRoleBinding(naiveBindingName(revision), COLLECTOR_CLUSTER_ROLES.naive, COLLECTOR_NODE_SERVICE_ACCOUNT, ns, labels)] : []),
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
            serviceAccountName: COLLECTOR_NODE_SERVICE_ACCOUNT,
            // The token is for one GET of the agent's own Node every few minutes (labels, addresses);
            // everything else comes from the kubelet. Its role allows nothing more (config/target-rbac).
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
                  stopMount,
                  { name: 'proc', mountPath: '/host/proc', readOnly: true },
                  { name: 'sys', mountPath: '/host/sys', readOnly: true },
                ],
              },
            ],
            volumes: [configVolume, stopVolume, { name: 'proc', hostPath: { path: '/proc' } }, { name: 'sys', hostPath: { path: '/sys' } }],
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
            serviceAccountName: COLLECTOR_WATCHER_SERVICE_ACCOUNT,
            securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [
              {
                name: 'watcher',
                image: c.image,
                imagePullPolicy: c.imagePullPolicy,
                env: [...agentEnv(rollout, revision, 'cluster'), { name: 'TRO_LEASE', value: CLUSTER_WATCHER_LEASE }],
                resources,
                securityContext,
                // The node's stop directory: break-glass writes a stop file on every node, and the
                // watcher must obey it on whichever node it runs, without the API server.
                volumeMounts: [configMount, stopMount],
              },
            ],
            volumes: [configVolume, stopVolume],
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
    // Exists only for a Naive revision; deleting a missing object is a no-op.
    { apiVersion: `${rbacGroup}/v1`, kind: 'ClusterRoleBinding', name: naiveBindingName(revision) },
  ];
}

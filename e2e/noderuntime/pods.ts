/**
 * Which pods the node runtime runs an agent for, and with what identity: pure functions of the pod
 * objects, so the rules are unit-tested without a cluster.
 */

/** The label every collector pod carries (DaemonSet and cluster-mode Deployment). */
export const COLLECTOR_APP_LABEL = 'app.kubernetes.io/name';
/** Its value. */
export const COLLECTOR_APP = 'telemetry-collector';
/** Pod label of the cluster-mode Deployment's pods. */
export const MODE_LABEL = 'telemetry.rollout.dev/mode';
/** Pod label naming the collector revision (also in env TRO_REVISION). */
export const POD_REVISION_LABEL = 'telemetry.rollout.dev/collector-revision';
/** Key of the collector config in the revision's ConfigMap. */
export const CONFIG_KEY = 'config.json';

/** The fields of a pod the runtime reads (client-node's V1Pod and raw watch JSON both fit). */
export interface PodLike {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    ownerReferences?: Array<{ kind?: string; name?: string; controller?: boolean }>;
    deletionTimestamp?: unknown;
  };
  spec?: {
    nodeName?: string;
    serviceAccountName?: string;
    automountServiceAccountToken?: boolean;
    containers?: Array<{ env?: Array<{ name?: string; value?: string }> }>;
    volumes?: Array<{ name?: string; configMap?: { name?: string } }>;
  };
  status?: { phase?: string };
}

/**
 * Which agent a collector pod stands for: the part the runtime's desired state ({@link DesiredAgent})
 * and the worker's start message (`AgentSpec` in protocol.ts) share, so the two cannot drift.
 */
export interface AgentDescription {
  /** The pod's UID, unique per pod incarnation: a new pod with the same name is a new agent. */
  id: string;
  mode: 'node' | 'cluster';
  /** The node the pod runs on (kwok's `spec.nodeName`). */
  node: string;
  pod: string;
  namespace: string;
  revision: string;
  rollout?: string;
  /** Cluster mode: the Lease to elect a leader on (env TRO_LEASE), else the collector's default. */
  leaseName?: string;
}

/** What the runtime needs from a collector pod to run its agent (the config still has to be read). */
export interface DesiredAgent extends AgentDescription {
  /** The ConfigMap mounted as volume `config` (same namespace). */
  configMap: string;
  /** The pod's ServiceAccount (`default` when unset, as the API server defaults it). */
  serviceAccount: string;
  /** Whether the pod gets its ServiceAccount token (`automountServiceAccountToken`, default true). */
  automountToken: boolean;
}

function env(pod: PodLike, name: string): string | undefined {
  for (const c of pod.spec?.containers ?? []) {
    const v = c.env?.find((e) => e.name === name)?.value;
    if (v !== undefined && v !== '') return v;
  }
  return undefined;
}

/**
 * The agent a pod stands for, or undefined when the runtime must not run one: not a collector pod, not
 * (or no longer) Running on a node, being deleted (a real kubelet sends SIGTERM at that point), not
 * owned by a DaemonSet (node mode) nor labelled cluster mode, or lacking a revision or a config volume.
 * `namespace` limits the pods considered (the collector's namespace).
 */
export function desiredAgent(pod: PodLike, namespace: string): DesiredAgent | undefined {
  const m = pod.metadata;
  if (!m?.name || !m.uid || m.namespace !== namespace) return undefined;
  if (m.labels?.[COLLECTOR_APP_LABEL] !== COLLECTOR_APP) return undefined;
  if (m.deletionTimestamp) return undefined;
  const node = pod.spec?.nodeName;
  if (!node || pod.status?.phase !== 'Running') return undefined;
  const cluster = m.labels[MODE_LABEL] === 'cluster';
  const ownedByDaemonSet = (m.ownerReferences ?? []).some((o) => o.kind === 'DaemonSet');
  if (!cluster && !ownedByDaemonSet) return undefined;
  const revision = env(pod, 'TRO_REVISION') ?? m.labels[POD_REVISION_LABEL];
  const configMap = pod.spec?.volumes?.find((v) => v.name === 'config')?.configMap?.name;
  if (!revision || !configMap) return undefined;
  const rollout = env(pod, 'TRO_ROLLOUT');
  const leaseName = env(pod, 'TRO_LEASE');
  return {
    id: m.uid,
    mode: cluster ? 'cluster' : 'node',
    node,
    pod: m.name,
    namespace,
    revision,
    configMap,
    serviceAccount: pod.spec?.serviceAccountName || 'default',
    automountToken: pod.spec?.automountServiceAccountToken !== false,
    ...(rollout ? { rollout } : {}),
    ...(cluster && leaseName ? { leaseName } : {}),
  };
}

/**
 * The config an agent of the runtime runs with: the ConfigMap's `config.json` with the kubelet pointed at
 * the runtime's per-node endpoint. Throws when the JSON is not an object (the agent then is not started
 * and the problem is logged).
 */
export function agentConfig(configJson: string, kubeletURL: string): Record<string, unknown> {
  const parsed: unknown = JSON.parse(configJson);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${CONFIG_KEY} is not a JSON object`);
  const config = structuredClone(parsed) as Record<string, unknown>;
  const metadata = typeof config.metadata === 'object' && config.metadata !== null ? (config.metadata as Record<string, unknown>) : {};
  config.metadata = { ...metadata, kubeletURL };
  return config;
}

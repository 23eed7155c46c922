// Fake nodes and a pod population for a cluster. kwok makes Nodes Ready and pods Running, but it does not
// create Nodes: we register them the way a kubelet would (status included), with cloud-like labels.
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Deployment, type V1Node } from '@kubernetes/client-node';
import { waitUntil } from './net.js';

/** The kubelet version the fake nodes report (the control plane's version). */
export const KUBELET_VERSION = 'v1.36.3';
/** The image of populated pods: never pulled (kwok runs no containers), only realistic. */
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10';
/** Namespace of the pod population Deployments. */
export const POPULATION_NAMESPACE = 'tro-population';

const ZONES = ['a', 'b', 'c'];

/**
 * The `i`-th node of cluster number `clusterIndex` (0-based), as a kubelet would register it: name
 * `<cluster>-node-<iii>`, InternalIP 10.<100+clusterIndex>.<i/250>.<10+i%250> (unique per cluster; these
 * addresses are only data, nothing ever connects to them), zone labels spread over three zones, and
 * capacity of a mid-size cloud VM. Supports up to 64 000 nodes and 140 clusters.
 */
export function nodeObject(cluster: string, clusterIndex: number, i: number): V1Node {
  if (clusterIndex < 0 || clusterIndex >= 140) throw new Error(`cluster index ${clusterIndex} out of range 0..139`);
  if (i < 0 || i >= 64_000) throw new Error(`node index ${i} out of range 0..63999`);
  const name = `${cluster}-node-${String(i).padStart(3, '0')}`;
  const ip = `10.${100 + clusterIndex}.${Math.floor(i / 250)}.${10 + (i % 250)}`;
  const region = `${cluster}-region-1`;
  const capacity = { cpu: '8', memory: '32Gi', pods: '110', 'ephemeral-storage': '100Gi' };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'node.kubernetes.io/instance-type': 'm6i.2xlarge',
        'topology.kubernetes.io/region': region,
        'topology.kubernetes.io/zone': `${region}${ZONES[i % ZONES.length]}`,
        type: 'kwok',
      },
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
    },
    spec: {},
    status: {
      addresses: [
        { type: 'InternalIP', address: ip },
        { type: 'Hostname', address: name },
      ],
      capacity,
      allocatable: { ...capacity, cpu: '7910m', memory: '31Gi' },
      nodeInfo: {
        architecture: 'amd64',
        operatingSystem: 'linux',
        osImage: 'Ubuntu 24.04.3 LTS',
        kernelVersion: '6.8.0-1021-aws',
        containerRuntimeVersion: 'containerd://2.1.4',
        kubeletVersion: KUBELET_VERSION,
        kubeProxyVersion: KUBELET_VERSION,
        bootID: '',
        machineID: '',
        systemUUID: '',
      },
    },
  };
}

/** Runs `fn` over `items` with at most `limit` in flight; rejects with the first failure after all settle. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const errors: unknown[] = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        errors.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (errors.length > 0) throw new Error(`${errors.length} of ${items.length} operations failed`, { cause: errors[0] });
}

function isReady(n: V1Node): boolean {
  return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

// The node-lifecycle controller taints new nodes not-ready and lifts the taint only after it sees the
// Ready condition; until then the scheduler places nothing there.
const NOT_READY_TAINTS = new Set(['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']);

function isSchedulable(n: V1Node): boolean {
  return isReady(n) && !(n.spec?.taints ?? []).some((t) => NOT_READY_TAINTS.has(t.key));
}

/** Counts Ready nodes of a cluster (one LIST). */
export async function countReadyNodes(kc: KubeConfig): Promise<{ total: number; ready: number }> {
  const list = await kc.makeApiClient(CoreV1Api).listNode();
  return { total: list.items.length, ready: list.items.filter(isReady).length };
}

/**
 * Registers `count` nodes (see {@link nodeObject}) and waits until all are Ready (kwok's node-initialize
 * stage) and the node-lifecycle controller has lifted their not-ready taint, so the scheduler uses them. Nodes that already exist are kept, so a restarted harness can call it again.
 */
export async function createNodes(kc: KubeConfig, cluster: string, clusterIndex: number, count: number, timeoutMs = 120_000): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const indices = Array.from({ length: count }, (_, i) => i);
  try {
    await pool(indices, 8, async (i) => {
      try {
        await core.createNode({ body: nodeObject(cluster, clusterIndex, i) });
      } catch (err) {
        if ((err as { code?: number }).code !== 409) throw err;
      }
    });
  } catch (cause) {
    throw new Error(`${cluster}: create ${count} nodes`, { cause });
  }
  await waitUntil(
    `${cluster}: ${count} nodes Ready and untainted`,
    async () => {
      const list = await core.listNode();
      return list.items.filter(isSchedulable).length >= count;
    },
    { timeoutMs, intervalMs: 500 },
  );
}

/**
 * Adds a pod population of exactly `podsPerNode` pause pods on every node (kwok runs them): `podsPerNode`
 * Deployments in namespace `tro-population`, each with one replica per node and a hard topology spread
 * over hostnames (as many real services spread), and waits until every replica is available. Call once
 * per cluster: existing Deployments fail with 409, which is reported.
 */
export async function populatePods(kc: KubeConfig, cluster: string, nodes: number, podsPerNode: number, timeoutMs = 300_000): Promise<void> {
  const total = nodes * podsPerNode;
  if (total <= 0) return;
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  try {
    await core.createNamespace({ body: { metadata: { name: POPULATION_NAMESPACE } } });
    await waitUntil(
      `${cluster}: default ServiceAccount in ${POPULATION_NAMESPACE}`,
      async () => {
        await core.readNamespacedServiceAccount({ name: 'default', namespace: POPULATION_NAMESPACE });
        return true;
      },
      { timeoutMs: 60_000 },
    );
    for (let d = 0; d < podsPerNode; d++) {
      const name = `app-${String(d).padStart(2, '0')}`;
      const labels = { app: name };
      const body: V1Deployment = {
        metadata: { name, namespace: POPULATION_NAMESPACE, labels },
        spec: {
          replicas: nodes,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              containers: [{ name: 'app', image: PAUSE_IMAGE, resources: { requests: { cpu: '10m', memory: '16Mi' } } }],
              topologySpreadConstraints: [
                { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: labels } },
              ],
            },
          },
        },
      };
      await apps.createNamespacedDeployment({ namespace: POPULATION_NAMESPACE, body });
    }
  } catch (cause) {
    throw new Error(`${cluster}: create pod population`, { cause });
  }
  await waitUntil(
    `${cluster}: ${total} population pods available`,
    async () => {
      const list = await apps.listNamespacedDeployment({ namespace: POPULATION_NAMESPACE });
      return list.items.reduce((n, d) => n + (d.status?.availableReplicas ?? 0), 0) >= total;
    },
    { timeoutMs, intervalMs: 1000 },
  );
}

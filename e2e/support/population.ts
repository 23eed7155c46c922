// The pod population the load generator's LISTs pay for (loadgen.ts): pause-pod Deployments, which
// kwok runs on its fake nodes, with a Service each so endpoints and EndpointSlices carry the pods too.
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Deployment, type V1Service } from '@kubernetes/client-node';
import { waitUntil } from '../controlplane/net.js';
import { PAUSE_IMAGE } from '../controlplane/nodes.js';

/** Options of {@link ensurePodPopulation}. */
export interface PodPopulationOptions {
  /** Pods in total (split evenly over the Deployments). */
  pods: number;
  /** Deployments (each with a Service selecting its pods, so endpoints exist too). Default 10. */
  deployments?: number;
  /** How long to wait for every pod to be available. Default 300 s. */
  timeoutMs?: number;
}

/**
 * Creates a pod population in `namespace` (which must exist): `deployments` Deployments of pause pods
 * (kwok marks them Running on its fake nodes) with `pods` replicas in total, and one ClusterIP Service per
 * Deployment (so endpoints and EndpointSlices carry the pods too), then waits until every replica is
 * available. Objects that already exist are kept as they are. Delete the namespace to remove it all.
 */
export async function ensurePodPopulation(kc: KubeConfig, namespace: string, o: PodPopulationOptions): Promise<void> {
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const n = Math.max(1, o.deployments ?? 10);
  for (let d = 0; d < n; d++) {
    const name = `load-${String(d).padStart(2, '0')}`;
    const replicas = Math.floor(o.pods / n) + (d < o.pods % n ? 1 : 0);
    const labels = { app: name, 'telemetry.rollout.dev/e2e': 'population' };
    const deployment: V1Deployment = {
      metadata: { name, namespace, labels },
      spec: {
        replicas,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels },
          spec: {
            containers: [
              { name: 'app', image: PAUSE_IMAGE, ports: [{ containerPort: 8080, name: 'http' }], resources: { requests: { cpu: '1m', memory: '4Mi' } } },
            ],
            // kwok nodes carry no taints kwok cares about; tolerate its usual ones anyway.
            tolerations: [{ key: 'kwok.x-k8s.io/node', operator: 'Exists', effect: 'NoSchedule' }],
          },
        },
      },
    };
    const service: V1Service = {
      metadata: { name, namespace, labels },
      spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
    };
    try {
      await apps.createNamespacedDeployment({ namespace, body: deployment });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw new Error(`create Deployment ${namespace}/${name}`, { cause: err });
    }
    try {
      await core.createNamespacedService({ namespace, body: service });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw new Error(`create Service ${namespace}/${name}`, { cause: err });
    }
  }
  await waitUntil(
    `${o.pods} pods available in ${namespace}`,
    async () => {
      const list = await apps.listNamespacedDeployment({ namespace });
      return list.items.reduce((sum, d) => sum + (d.status?.availableReplicas ?? 0), 0) >= o.pods;
    },
    { timeoutMs: o.timeoutMs ?? 300_000, intervalMs: 2000 },
  );
}

import { describe, expect, it } from '@jest/globals';
import type { TelemetryRollout } from '../api/types.generated.js';
import { validateRollout } from '../api/validate.js';
import { FakeCluster } from '../../../testkit/operator/rollout/fakes.js';
import { ALLOW_UNSAFE_ANNOTATION, collectorLoadPreflight, objectCounts } from './preflight.js';

const rollout = (mode: string, annotations: Record<string, string> = {}) =>
  validateRollout({
    apiVersion: 'telemetry.rollout.dev/v1alpha1',
    kind: 'TelemetryRollout',
    metadata: { name: 'r', namespace: 'default', annotations },
    spec: { collector: { image: 'c:1', config: { metadata: { mode } } }, targets: { clusters: [{ name: 'a', kubeconfigSecretRef: { name: 'a' } }] } },
  }).defaulted as unknown as TelemetryRollout;

function cluster(nodes: number, pods: number): FakeCluster {
  const c = new FakeCluster('a', nodes);
  c.metricsText = [
    '# TYPE apiserver_resource_objects gauge',
    `apiserver_resource_objects{group="",resource="pods"} ${pods}`,
    'apiserver_resource_objects{group="",resource="services"} 40',
    'apiserver_resource_objects{group="discovery.k8s.io",resource="endpointslices"} 45',
    '',
  ].join('\n');
  return c;
}

describe('collector-load preflight', () => {
  const check = collectorLoadPreflight();
  const target = { name: 'a', secretName: 'a', secretKey: 'value' };
  const run = async (r: TelemetryRollout, c: FakeCluster) => check(r, target, await c.listNodes(), c);

  it('reads object counts from the API server metrics, without a LIST', async () => {
    const c = cluster(3, 1200);
    expect(await objectCounts(c)).toEqual({ pods: 1200, services: 40, endpointSlices: 45 });
    expect(c.calls.listNodes ?? 0).toBe(0);
  });

  it('refuses the Naive mode on a large cluster, with the numbers', async () => {
    const refusal = await run(rollout('Naive'), cluster(200, 4000));
    expect(refusal).toContain('Naive metadata mode on 200 nodes (4000 pods, 40 services)');
    expect(refusal).toMatch(/quorum LIST\/s exceeds the budget/);
    expect(refusal).toContain(ALLOW_UNSAFE_ANNOTATION);
  });

  it('allows the Kubelet mode at any size, and Naive when the rollout opts in', async () => {
    expect(await run(rollout('Kubelet'), cluster(5000, 100000))).toBeUndefined();
    expect(await run(rollout('Naive', { [ALLOW_UNSAFE_ANNOTATION]: 'true' }), cluster(200, 4000))).toBeUndefined();
  });

  it('allows Naive on a tiny cluster where its load stays within budget', async () => {
    expect(await run(rollout('Naive'), cluster(2, 10))).toBeUndefined();
  });
});

/**
 * Preflight checks the operator runs before a cluster starts. The collector-load check predicts the
 * API load of the collector config at 100 % of the cluster (collector/src/estimate.ts) and refuses the
 * Naive metadata mode where it would break the API budget: the December 2024 incident, caught before
 * the first node moves.
 */
import { budgetViolations, estimateApiLoad, isNaiveUnsafe, type ApiLoadBudget } from '#collector/estimate.js';
import type { CollectorConfigInput } from '#collector/config.js';
import { parsePrometheusText } from '../gates/promtext.js';
import type { ClusterClient } from './interfaces.js';
import type { PreflightCheck } from './reconciler.js';

/**
 * Set to "true" on a rollout to run a collector config the preflight refuses: for pressure tests that
 * must show the gates catching the incident pattern. Never on production fleets.
 */
export const ALLOW_UNSAFE_ANNOTATION = 'telemetry.rollout.dev/allow-unsafe-collector';

/** Object counts a target reports in its own /metrics (no LIST, no extra RBAC). */
export async function objectCounts(client: ClusterClient): Promise<{ pods: number; services: number; endpointSlices: number }> {
  const parsed = parsePrometheusText(await client.getRaw('/metrics'));
  const count = (resource: string, group: string): number => {
    // apiserver_resource_objects (1.34+) or the deprecated apiserver_storage_objects; -1 means a failed
    // count and 0 may mean "not counted yet": both give a lower bound of 0.
    for (const s of parsed.samples) {
      if (s.name === 'apiserver_resource_objects' && s.labels.resource === resource && (s.labels.group ?? '') === group) return Math.max(0, s.value);
    }
    const legacy = group ? `${resource}.${group}` : resource;
    for (const s of parsed.samples) if (s.name === 'apiserver_storage_objects' && s.labels.resource === legacy) return Math.max(0, s.value);
    return 0;
  };
  return { pods: count('pods', ''), services: count('services', ''), endpointSlices: count('endpointslices', 'discovery.k8s.io') };
}

/** The collector-load preflight check (refuses an unsafe Naive config unless the rollout opts in). */
export function collectorLoadPreflight(budget?: ApiLoadBudget): PreflightCheck {
  return async (rollout, _target, nodes, client) => {
    const config = (rollout.spec.collector.config ?? {}) as CollectorConfigInput;
    if (config.metadata?.mode !== 'Naive') return undefined;
    if (rollout.metadata?.annotations?.[ALLOW_UNSAFE_ANNOTATION] === 'true') return undefined;
    const counts = await objectCounts(client);
    const estimate = estimateApiLoad(config, { nodes: nodes.length, ...counts });
    if (!isNaiveUnsafe(estimate, budget)) return undefined;
    return `Naive metadata mode on ${nodes.length} nodes (${counts.pods} pods, ${counts.services} services): ${budgetViolations(estimate, budget).join('; ')}. ${estimate.explanation} Use metadata.mode Kubelet, or set the annotation ${ALLOW_UNSAFE_ANNOTATION}=true for a pressure test.`;
  };
}

/**
 * The per-cluster API request counter the operator exposes: every request it makes to a cluster
 * (target or management), by verb, resource and response code. It is how the operator's own API
 * footprint is measured (goal: no LIST in steady state, only watches).
 */
import { Counter, register as globalRegistry, type Registry } from 'prom-client';

/** Name of the counter (a Prometheus counter: the `_total` suffix is part of the name). */
export const CLUSTER_API_REQUESTS_METRIC = 'tro_cluster_api_requests_total';

/** The `code` of a request that got no HTTP response (client-go's convention, as in controller/metrics.ts). */
export const NO_RESPONSE_CODE = '<error>';

/** The labels of {@link CLUSTER_API_REQUESTS_METRIC}. */
export type RequestLabel = 'cluster' | 'verb' | 'resource' | 'code';

/**
 * What the cluster clients need of the counter: a prom-client `Counter<RequestLabel>` satisfies it.
 * Labels: `cluster` (the target's name), `verb` (get, list, watch, create, update, patch, apply,
 * delete, deletecollection, as kube-apiserver names them), `resource` (plural resource, with a
 * subresource as `telemetryrollouts/status`; a non-resource path as itself, e.g. `/readyz`;
 * `discovery` for API discovery), `code` (the HTTP status, or {@link NO_RESPONSE_CODE} when no
 * response came back: refused, reset, timed out or cancelled).
 */
export interface RequestCounter {
  inc(labels: Record<RequestLabel, string>, value?: number): void;
}

/**
 * The counter registered in `registry` (default: prom-client's global registry), created on first use
 * and reused afterwards, so every client of every cluster adds to the one metric family the manager
 * serves on /metrics. The manager's `ControllerMetrics` (controller/metrics.ts) registers the same
 * family on its registry: `clusterRequestCounter(metrics.registry)` returns that very counter.
 */
export function clusterRequestCounter(registry: Registry = globalRegistry): Counter<RequestLabel> {
  const existing = registry.getSingleMetric(CLUSTER_API_REQUESTS_METRIC);
  if (existing !== undefined) {
    if (!(existing instanceof Counter)) {
      throw new Error(`metric ${CLUSTER_API_REQUESTS_METRIC} is registered but is not a counter`);
    }
    return existing;
  }
  return new Counter({
    name: CLUSTER_API_REQUESTS_METRIC,
    help: 'API requests the operator made to each cluster, by verb, resource and response code.',
    labelNames: ['cluster', 'verb', 'resource', 'code'],
    registers: [registry],
  });
}

/** A counter registered nowhere: the default when a caller passes none (tests, tools). */
export function unregisteredRequestCounter(): Counter<RequestLabel> {
  return new Counter({
    name: CLUSTER_API_REQUESTS_METRIC,
    help: 'API requests the operator made to each cluster (unregistered).',
    labelNames: ['cluster', 'verb', 'resource', 'code'],
    registers: [],
  });
}

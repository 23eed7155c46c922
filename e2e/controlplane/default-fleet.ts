// The fleet every e2e run shares, in one place, and the notation to override it.
import type { ClusterSpec } from './fleet.js';

/** Name of the management cluster (where the operator and its CRD live) in the default fleet. */
export const MANAGEMENT_CLUSTER = 'mgmt';

/**
 * The default e2e fleet: a small management cluster and three 50-node targets. Override with env
 * `TRO_E2E_FLEET` (see {@link parseFleetSpec}), e.g. `mgmt:3,east:5` for a quick local run.
 */
export const DEFAULT_E2E_FLEET: readonly ClusterSpec[] = [
  { name: MANAGEMENT_CLUSTER, nodes: 3 },
  { name: 'east', nodes: 50 },
  { name: 'west', nodes: 50 },
  { name: 'north', nodes: 50 },
];

/**
 * Parses `name:nodes[:podsPerNode]` items separated by commas, e.g. `mgmt:3,east:50:10`. Throws with
 * the offending item on anything else (names are checked later by startFleet).
 */
export function parseFleetSpec(text: string): ClusterSpec[] {
  const items = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0) throw new Error(`fleet spec ${JSON.stringify(text)}: no clusters`);
  return items.map((item) => {
    const m = /^([a-z0-9-]+):(\d+)(?::(\d+))?$/.exec(item);
    if (!m) throw new Error(`fleet spec item ${JSON.stringify(item)}: expected name:nodes[:podsPerNode]`);
    const spec: ClusterSpec = { name: m[1] as string, nodes: Number(m[2]) };
    if (m[3] !== undefined) spec.podsPerNode = Number(m[3]);
    return spec;
  });
}

/** The fleet an e2e run starts: `TRO_E2E_FLEET` when set and non-empty, else {@link DEFAULT_E2E_FLEET}. */
export function e2eFleetSpec(env: NodeJS.ProcessEnv = process.env): ClusterSpec[] {
  const text = env.TRO_E2E_FLEET?.trim();
  return text ? parseFleetSpec(text) : DEFAULT_E2E_FLEET.map((c) => ({ ...c }));
}

/** Names of the target clusters of a fleet spec: every cluster except the management cluster. */
export function targetClusters(specs: readonly ClusterSpec[]): string[] {
  return specs.filter((c) => c.name !== MANAGEMENT_CLUSTER).map((c) => c.name);
}

/**
 * Users added to every cluster of the e2e fleet: the operator's ServiceAccount (config/manager), so tests
 * can run the operator under its real RBAC (config/rbac, config/target-rbac) instead of cluster-admin.
 */
export const DEFAULT_E2E_EXTRA_USERS: ReadonlyArray<{ name: string; groups?: string[] }> = [
  { name: 'system:serviceaccount:telemetry-system:telemetry-rollout-operator' },
  // The operator's ServiceAccount in the management cluster (config/rbac, namespace of config/kustomization).
  { name: 'system:serviceaccount:telemetry-rollout-system:telemetry-rollout-operator' },
];

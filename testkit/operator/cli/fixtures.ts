/**
 * Realistic TelemetryRollouts for the plugin's tests: the unit tests render them, the e2e test writes
 * their status to a real API server (there is no operator there) and reads it back through the plugin.
 * Times are fixed ISO strings around {@link FIXTURE_NOW}.
 */
import { API_VERSION, KIND } from '../../../operator/src/api/crd.js';
import type { TelemetryRollout, TelemetryRolloutStatus } from '../../../operator/src/api/types.generated.js';

/** "Now" of the fixtures: ages in rendered output are relative to it. */
export const FIXTURE_NOW = new Date('2026-11-25T10:00:00Z');

/** A manifest with three stages (as config/samples/fleet-multistage.yaml, with explicit clusters). */
export function fixtureManifest(name = 'collector-v2', namespace?: string): TelemetryRollout {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, ...(namespace ? { namespace } : {}) },
    spec: {
      collector: { image: 'ghcr.io/telemetry-rollout/collector:0.2.0' },
      targets: {
        clusters: [
          { name: 'prod-east-1', kubeconfigSecretRef: { name: 'prod-east-1-kubeconfig', key: 'value' } },
          { name: 'prod-west-1', kubeconfigSecretRef: { name: 'prod-west-1-kubeconfig', key: 'value' } },
          { name: 'prod-north-1', kubeconfigSecretRef: { name: 'prod-north-1-kubeconfig', key: 'value' } },
        ],
      },
      strategy: {
        order: 'LargestFirst',
        stages: [
          { name: 'canary', clusters: 1, nodeSteps: [1, 5, 25, 100], bakeSeconds: 300 },
          { name: 'rest', percent: 100, nodeSteps: [25, 100], bakeSeconds: 300, maxConcurrentClusters: 2 },
        ],
      },
    },
  } as unknown as TelemetryRollout;
}

/**
 * The status of a rollout whose canary gate failed at the second node step of the largest cluster:
 * p99 over its baseline-relative bound twice in a row, rolling back.
 */
export function gateFailureStatus(): TelemetryRolloutStatus {
  return {
    observedGeneration: 1,
    phase: 'RollingBack',
    reason: 'GateFailed',
    revision: '5d2c9a1f',
    previousRevision: '1f0e3b7c',
    stage: 'canary',
    stageIndex: 0,
    progress: '0/3 clusters',
    health: 'Fail',
    message: 'gate failed on prod-east-1: apiServerP99Seconds 1.42 > 0.315; rolling back newest-first',
    startedAt: '2026-11-25T09:40:00Z',
    clusters: [
      {
        name: 'prod-east-1',
        stage: 'canary',
        phase: 'RollingBack',
        reachable: true,
        nodesTotal: 150,
        nodesUpdated: 8,
        step: 1,
        stepPercent: 5,
        revision: '5d2c9a1f',
        previousRevision: '1f0e3b7c',
        message: 'relabelling 8 nodes back to 1f0e3b7c',
        baseline: { capturedAt: '2026-11-25T09:50:00Z', values: { apiServerP99Seconds: 0.21, apiServerErrorRatio: 0.0008, apiServerRequestRate: 180 } },
        lastGate: {
          time: '2026-11-25T09:59:48Z',
          verdict: 'Fail',
          consecutiveFailures: 2,
          measurements: {
            apiServerP99Seconds: 1.42,
            apiServerErrorRatio: 0.0012,
            apfRejectionsPerSecond: 0,
            coreDNSErrorRatio: 0.0004,
            apiServerRequestRate: 212.5,
          },
          thresholds: { apiServerP99Seconds: 0.315, apiServerErrorRatio: 0.01, apfRejectionsPerSecond: 0.5, coreDNSErrorRatio: 0.01, coreDNSP99Seconds: 0.25 },
          failed: ['apiServerP99Seconds'],
          message: 'apiServerP99Seconds 1.42 > 0.315 (1.5 × baseline 0.21)',
        },
        projection: { time: '2026-11-25T09:59:48Z', verdict: 'Fail', projectedP99Seconds: 9.8, projectedRequestRate: 3900 },
      },
      { name: 'prod-west-1', stage: 'rest', phase: 'Pending', nodesTotal: 60, nodesUpdated: 0 },
      { name: 'prod-north-1', stage: 'rest', phase: 'Pending', nodesTotal: 20, nodesUpdated: 0 },
    ],
    history: [
      { time: '2026-11-25T09:40:00Z', reason: 'Planning', message: 'planned 3 clusters: canary=[prod-east-1] rest=[prod-west-1,prod-north-1]' },
      { time: '2026-11-25T09:50:00Z', reason: 'StepStarted', cluster: 'prod-east-1', message: 'step 1/4: 2 of 150 nodes (1%)' },
      { time: '2026-11-25T09:55:00Z', reason: 'StepStarted', cluster: 'prod-east-1', message: 'step 2/4: 8 of 150 nodes (5%)' },
      { time: '2026-11-25T09:59:48Z', reason: 'GateFailed', cluster: 'prod-east-1', message: 'apiServerP99Seconds 1.42 > 0.315; rolling back' },
    ],
    conditions: [
      { type: 'Ready', status: 'False', reason: 'GateFailed', message: 'rolling back', lastTransitionTime: '2026-11-25T09:59:48Z', observedGeneration: 1 },
      {
        type: 'Degraded',
        status: 'True',
        reason: 'GateFailed',
        message: 'gate failed on prod-east-1',
        lastTransitionTime: '2026-11-25T09:59:48Z',
        observedGeneration: 1,
      },
    ],
  };
}

/** The status of a rollout whose canary cluster's API server stopped answering: stop files issued. */
export function breakGlassStatus(): TelemetryRolloutStatus {
  return {
    observedGeneration: 1,
    phase: 'BreakGlass',
    reason: 'Unreachable',
    revision: '5d2c9a1f',
    previousRevision: '1f0e3b7c',
    stage: 'canary',
    progress: '0/3 clusters',
    health: 'NoData',
    clusters: [
      {
        name: 'prod-east-1',
        stage: 'canary',
        phase: 'BreakGlass',
        reachable: false,
        unreachableSince: '2026-11-25T09:58:00Z',
        nodesTotal: 150,
        nodesUpdated: 38,
        step: 2,
        stepPercent: 25,
        lastGate: { time: '2026-11-25T09:58:10Z', verdict: 'NoData', consecutiveFailures: 1, message: 'API server unreachable: timed out' },
        breakGlass: {
          issuedAt: '2026-11-25T09:59:00Z',
          revision: '5d2c9a1f',
          nodesTargeted: 38,
          nodesStopped: 36,
          nodesFailed: 1,
          nodesTimedOut: 1,
          nodesPending: 2,
          attempts: 3,
          failingNodes: [
            { node: 'prod-east-1-node-017', message: 'Permission denied (publickey)' },
            { node: 'prod-east-1-node-090', message: 'no result within 10s' },
          ],
          message: 'stop files written over ssh',
        },
      },
    ],
  };
}

/** A full object: the manifest with metadata the API server would add and the given status. */
export function fixtureRollout(status: TelemetryRolloutStatus, name = 'collector-v2', namespace = 'fleet'): TelemetryRollout {
  const ro = fixtureManifest(name, namespace);
  ro.metadata = { ...ro.metadata, uid: '0b7c1f2e', generation: 1, resourceVersion: '1001', creationTimestamp: '2026-11-25T09:38:00Z' };
  ro.status = status;
  return ro;
}

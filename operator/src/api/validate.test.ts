import { describe, expect, it } from '@jest/globals';
import { INVALID_CASES, formatErrors, invalidObject, loadSamples, validBase } from '../../../testkit/operator/api/fixtures.js';
import type { TelemetryRollout } from './types.generated.js';
import { validateRollout } from './validate.js';

const specOf = (o: Record<string, unknown>) => (o as unknown as TelemetryRollout).spec;

describe('offline validation: samples', () => {
  const samples = loadSamples();
  it('finds the samples', () => {
    expect(samples.map((s) => s.file)).toEqual(
      expect.arrayContaining(['minimal.yaml', 'fleet-multistage.yaml', 'prometheus-gates.yaml', 'ssh-breakglass.yaml']),
    );
  });
  it.each(samples.map((s) => [s.file, s.object] as const))('%s validates', (_file, object) => {
    const r = validateRollout(object);
    expect(formatErrors(r.errors)).toBe('');
    expect(r.valid).toBe(true);
  });
});

describe('offline validation: defaults', () => {
  it('fills safe defaults into a minimal rollout', () => {
    const r = validateRollout(validBase());
    expect(r.valid).toBe(true);
    const spec = specOf(r.defaulted);
    expect(spec.paused).toBe(false);
    expect(spec.strategy.order).toBe('LargestFirst');
    expect(spec.strategy.stages.map((s) => s.name)).toEqual(['canary', 'fleet']);
    expect(spec.strategy.stages[0]).toMatchObject({ clusters: 1, nodeSteps: [1, 5, 25, 100], maxConcurrentClusters: 1 });
    expect(spec.gates).toMatchObject({ failureLimit: 2, onFailure: 'Rollback', onNoData: 'Pause' });
    expect(spec.gates.apiServer).toEqual({
      maxP99LatencySeconds: 1,
      maxLatencyIncreaseRatio: 1.5,
      minLatencyIncreaseSeconds: 0.1,
      maxErrorRatio: 0.01,
      maxAPFRejectionsPerSecond: 1,
    });
    expect(spec.breakGlass).toMatchObject({ unreachableAfterSeconds: 60, action: 'Auto' });
    expect(spec.targets.clusters?.[0]?.kubeconfigSecretRef.key).toBe('value');
    expect(spec.collector.namespace).toBe('telemetry-system');
  });
  it('defaults inside a user stage and inside collector config sections that are present', () => {
    const o = validBase();
    const spec = o.spec as Record<string, Record<string, unknown>>;
    spec.strategy = { stages: [{ name: 'one', percent: 100 }] };
    spec.collector!.config = { metadata: {} };
    const r = validateRollout(o);
    expect(r.valid).toBe(true);
    const d = specOf(r.defaulted);
    expect(d.strategy.stages[0]).toEqual({ name: 'one', percent: 100, nodeSteps: [1, 5, 25, 100], bakeSeconds: 300, maxConcurrentClusters: 1 });
    expect(d.collector.config?.metadata).toEqual({ mode: 'Kubelet', kubeletURL: 'http://127.0.0.1:10255', naiveRelistSeconds: 30 });
    expect((spec.strategy.stages as Array<Record<string, unknown>>)[0]!.nodeSteps).toBeUndefined(); // the input is not modified
  });
  it('rejects unknown fields, naming them', () => {
    const o = validBase();
    (o.spec as Record<string, unknown>).pausd = true;
    const r = validateRollout(o);
    expect(r.errors).toEqual([{ path: 'spec.pausd', message: 'field not declared in schema' }]);
  });
  it('rejects a wrong apiVersion and kind and a missing name', () => {
    const r = validateRollout({ apiVersion: 'v1', kind: 'ConfigMap', metadata: {}, spec: validBase().spec });
    expect(r.errors.map((e) => e.path)).toEqual(['apiVersion', 'kind', 'metadata.name']);
  });
});

describe('offline validation: the table of invalid rollouts', () => {
  it('has at least twenty cases', () => {
    expect(INVALID_CASES.length).toBeGreaterThanOrEqual(20);
  });
  it.each(INVALID_CASES.map((c, i) => [c.name, c, i] as const))('rejects: %s', (_name, c, i) => {
    const r = validateRollout(invalidObject(c, i));
    expect(r.valid).toBe(false);
    const paths = r.errors.map((e) => e.path);
    expect(paths).toContain(c.field);
    const msg = formatErrors(r.errors);
    expect(msg).toContain(`${c.field}: `);
  });
});

// The API against the real kube-apiserver: the CRD from crds/ installs, every sample applies, every case
// of the shared invalid-rollout table is rejected naming the same field as the offline validator, the
// server's defaults equal the offline validator's, and kubectl get/explain/wait work.
import { beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { findRepoRoot } from '../operator/src/api/crd.js';
import { INVALID_CASES, invalidObject, loadSamples, validBase } from '../testkit/operator/api/fixtures.js';
import { validateRollout } from '../operator/src/api/validate.js';
import { installCrd } from './support/api.js';
import { createNamespace, dumpOnFailure, kubectl, kubectlJSON, kubectlResult, managementCluster } from './controlplane/testing.js';

const mgmt = () => managementCluster();
let ns = '';

function withoutNamespace(o: Record<string, unknown>): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(o)) as Record<string, Record<string, unknown>>;
  delete copy.metadata!.namespace;
  return copy;
}

describe('the TelemetryRollout API on a real kube-apiserver', () => {
  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace(mgmt(), 'crd');
  });

  it(
    'serves the CRD with short name, category and status subresource',
    dumpOnFailure(async () => {
      const out = await kubectl(mgmt(), ['api-resources', '--api-group=telemetry.rollout.dev', '--no-headers']);
      expect(out).toMatch(/^telemetryrollouts\s+tro\s+telemetry\.rollout\.dev\/v1alpha1\s+true\s+TelemetryRollout/m);
      const crd = await kubectlJSON<{ spec: { names: { categories: string[] }; versions: Array<{ subresources: unknown }> } }>(mgmt(), [
        'get',
        'crd',
        'telemetryrollouts.telemetry.rollout.dev',
        '-o',
        'json',
      ]);
      expect(crd.spec.names.categories).toContain('telemetry');
      expect(crd.spec.versions[0]?.subresources).toEqual({ status: {} });
    }),
  );

  it(
    'applies every sample in config/samples',
    dumpOnFailure(async () => {
      const samples = loadSamples();
      expect(samples.length).toBeGreaterThanOrEqual(4);
      for (const s of samples) {
        const r = await kubectlResult(mgmt(), ['apply', '-n', ns, '-f', '-'], { input: JSON.stringify(withoutNamespace(s.object)) });
        expect({ file: s.file, code: r.code, stderr: r.stderr }).toEqual({ file: s.file, code: 0, stderr: '' });
      }
      const names = await kubectl(mgmt(), ['get', 'tro', '-n', ns, '-o', 'name']);
      expect(names.trim().split('\n')).toHaveLength(samples.length);
    }),
  );

  it(
    'defaults a minimal rollout exactly as the offline validator does',
    dumpOnFailure(async () => {
      const obj = validBase('defaults-check');
      await kubectl(mgmt(), ['apply', '-n', ns, '-f', '-'], { input: JSON.stringify(obj) });
      const served = await kubectlJSON<{ spec: unknown }>(mgmt(), ['get', 'tro', 'defaults-check', '-n', ns, '-o', 'json']);
      expect(served.spec).toEqual((validateRollout(obj).defaulted as { spec: unknown }).spec);
    }),
  );

  describe('rejects every case of the shared invalid-rollout table, naming the field', () => {
    it.each(INVALID_CASES.map((c, i) => [c.name, c, i] as const))('%s', async (_name, c, i) => {
      const obj = invalidObject(c, i);
      const r = await kubectlResult(mgmt(), ['create', '-n', ns, '-f', '-'], { input: JSON.stringify(obj) });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(c.field);
      // The offline validator names the same field.
      expect(validateRollout(obj).errors.map((e) => e.path)).toContain(c.field);
    });
  });

  it(
    'shows the printer columns in kubectl get tro, and REVISION and MESSAGE with -o wide',
    dumpOnFailure(async () => {
      await kubectl(mgmt(), ['apply', '-n', ns, '-f', '-'], { input: JSON.stringify(validBase('columns')) });
      const status = {
        status: { phase: 'Progressing', stage: 'canary', progress: '1/3 clusters', health: 'Pass', revision: 'abc1234567', message: 'east: baking' },
      };
      await kubectl(mgmt(), ['patch', 'tro', 'columns', '-n', ns, '--subresource=status', '--type=merge', '-p', JSON.stringify(status)]);
      const out = await kubectl(mgmt(), ['get', 'tro', 'columns', '-n', ns]);
      const [head, row] = out.trim().split('\n');
      expect(head?.split(/\s+/)).toEqual(['NAME', 'PHASE', 'STAGE', 'PROGRESS', 'HEALTH', 'AGE']);
      expect(row).toMatch(/^columns\s+Progressing\s+canary\s+1\/3 clusters\s+Pass\s+\S+$/);
      const wide = await kubectl(mgmt(), ['get', 'tro', 'columns', '-n', ns, '-o', 'wide']);
      expect(wide.split('\n')[0]?.split(/\s+/)).toEqual(['NAME', 'PHASE', 'STAGE', 'PROGRESS', 'HEALTH', 'AGE', 'REVISION', 'MESSAGE']);
      expect(wide).toMatch(/abc1234567\s+east: baking/);
    }),
  );

  it(
    'lets kubectl wait --for=condition=Ready return once Ready is True',
    dumpOnFailure(async () => {
      await kubectl(mgmt(), ['apply', '-n', ns, '-f', '-'], { input: JSON.stringify(validBase('waitable')) });
      const cond = (status: string) => ({
        status: {
          phase: status === 'True' ? 'Succeeded' : 'Progressing',
          conditions: [
            {
              type: 'Ready',
              status,
              reason: status === 'True' ? 'Succeeded' : 'Progressing',
              message: 'm',
              lastTransitionTime: new Date().toISOString(),
              observedGeneration: 1,
            },
          ],
        },
      });
      await kubectl(mgmt(), ['patch', 'tro', 'waitable', '-n', ns, '--subresource=status', '--type=merge', '-p', JSON.stringify(cond('False'))]);
      const notYet = await kubectlResult(mgmt(), ['wait', '--for=condition=Ready', '--timeout=2s', 'tro/waitable', '-n', ns]);
      expect(notYet.code).not.toBe(0);
      await kubectl(mgmt(), ['patch', 'tro', 'waitable', '-n', ns, '--subresource=status', '--type=merge', '-p', JSON.stringify(cond('True'))]);
      const done = await kubectl(mgmt(), ['wait', '--for=condition=Ready', '--timeout=30s', 'tro/waitable', '-n', ns]);
      expect(done).toContain('condition met');
    }),
  );

  it(
    'teaches the API through kubectl explain',
    dumpOnFailure(async () => {
      const out = await kubectl(mgmt(), ['explain', 'telemetryrollout.spec.strategy']);
      expect(out).toContain('KIND:');
      expect(out).toContain('TelemetryRollout');
      expect(out).toMatch(/order\s+<string>/);
      expect(out).toContain('LargestFirst');
      expect(out).toMatch(/stages\s+<\[\]Object>/);
      const gates = await kubectl(mgmt(), ['explain', 'tro.spec.gates.apiServer.maxP99LatencySeconds']);
      expect(gates).toContain('Absolute bound on the p99 request latency');
    }),
  );

  it(
    'installs CRD, RBAC and operator with one kubectl apply -k',
    dumpOnFailure(async () => {
      const out = await kubectl(mgmt(), ['apply', '--server-side', '--force-conflicts', '-k', join(findRepoRoot(), 'config')]);
      for (const kind of [
        'namespace/telemetry-rollout-system',
        'customresourcedefinition.apiextensions.k8s.io/telemetryrollouts.telemetry.rollout.dev',
        'role.rbac.authorization.k8s.io/telemetry-rollout-operator',
        'rolebinding.rbac.authorization.k8s.io/telemetry-rollout-operator',
        'serviceaccount/telemetry-rollout-operator',
        'deployment.apps/telemetry-rollout-operator',
      ]) {
        expect(out).toContain(kind);
      }
      const dep = await kubectlJSON<{
        spec: {
          template: { spec: { securityContext: { runAsNonRoot: boolean }; containers: Array<{ securityContext: { readOnlyRootFilesystem: boolean } }> } };
        };
      }>(mgmt(), ['get', 'deployment', 'telemetry-rollout-operator', '-n', 'telemetry-rollout-system', '-o', 'json']);
      expect(dep.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
      expect(dep.spec.template.spec.containers[0]?.securityContext.readOnlyRootFilesystem).toBe(true);
      // The namespace enforces PodSecurity "restricted": the API server admitted the Deployment's pod template.
      await kubectl(mgmt(), ['delete', 'namespace', 'telemetry-rollout-system', '--wait=false']);
    }),
  );
});

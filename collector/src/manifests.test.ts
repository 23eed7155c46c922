/**
 * Keeps the reference manifests in config/collector/ consistent with the code: the config they ship is
 * valid, the env the agent reads is set, the stop-file directory is mounted read-only where the agent
 * looks for it, containers are restricted-grade, and node agents get no list/watch permission.
 */
import { describe, it, expect } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { DEFAULT_CONFIG, validateCollectorConfig } from './config.js';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../config/collector');

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument -- walking parsed YAML */
async function docs(file: string): Promise<any[]> {
  return YAML.parseAllDocuments(await readFile(path.join(dir, file), 'utf8')).map((d) => d.toJS());
}

function podSpecs(all: any[]): [string, any][] {
  return all.filter((d) => d.kind === 'DaemonSet' || d.kind === 'Deployment').map((d) => [d.kind, d.spec.template.spec]);
}

describe('config/collector manifests', () => {
  it('every file in the kustomization exists and parses', async () => {
    const k = (await docs('kustomization.yaml'))[0];
    for (const f of k.resources as string[]) expect((await docs(f)).length).toBeGreaterThan(0);
  });

  it('the shipped config is valid and equals the defaults but for the kubelet URL', async () => {
    const cm = (await docs('configmap.yaml'))[0];
    const cfg = YAML.parse(cm.data['config.yaml']);
    expect(validateCollectorConfig(cfg)).toEqual([]);
    expect({ ...cfg, metadata: { ...cfg.metadata, kubeletURL: DEFAULT_CONFIG.metadata.kubeletURL } }).toEqual(DEFAULT_CONFIG);
    expect(cfg.metadata.kubeletURL).toBe('http://${HOST_IP}:10255');
  });

  it('pods: identity env, read-only stop-file mount, restricted-grade containers', async () => {
    const all = [...(await docs('daemonset.yaml')), ...(await docs('deployment.yaml'))];
    const specs = podSpecs(all);
    expect(specs.map(([k]) => k).sort()).toEqual(['DaemonSet', 'Deployment']);
    for (const [kind, spec] of specs) {
      expect([kind, spec.securityContext.runAsNonRoot, spec.securityContext.seccompProfile.type]).toEqual([kind, true, 'RuntimeDefault']);
      const c = spec.containers[0];
      expect([kind, c.securityContext]).toEqual([kind, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } }]);
      const env = new Map<string, any>(c.env.map((e: any) => [e.name, e]));
      for (const name of ['TRO_MODE', 'TRO_CONFIG', 'TRO_REVISION', 'TRO_ROLLOUT', 'POD_NAME', 'POD_NAMESPACE', 'HOST_IP'])
        expect([kind, env.has(name)]).toEqual([kind, true]);
      expect(env.get('POD_NAME').valueFrom.fieldRef.fieldPath).toBe('metadata.name');
      const stopMount = c.volumeMounts.find((m: any) => m.mountPath === path.dirname(DEFAULT_CONFIG.stopFilePath));
      expect([kind, stopMount?.readOnly]).toEqual([kind, true]);
      const stopVol = spec.volumes.find((v: any) => v.name === stopMount.name);
      expect(stopVol.hostPath.path).toBe('/var/run/telemetry-rollout');
      expect(c.livenessProbe.httpGet.path).toBe('/healthz');
      // Every host mount is read-only.
      for (const m of c.volumeMounts) expect([kind, m.name, m.readOnly]).toEqual([kind, m.name, true]);
    }
    const ds = specs.find(([k]) => k === 'DaemonSet')?.[1];
    const dsEnv = new Map<string, any>(ds.containers[0].env.map((e: any) => [e.name, e]));
    expect(dsEnv.get('TRO_MODE').value).toBe('node');
    expect(dsEnv.get('NODE_NAME').valueFrom.fieldRef.fieldPath).toBe('spec.nodeName');
    expect(ds.hostNetwork).toBeUndefined();
    const dep = specs.find(([k]) => k === 'Deployment')?.[1];
    expect(dep.containers[0].readinessProbe.httpGet.path).toBe('/readyz');
  });

  it('RBAC: node agents may only get nodes; the watcher lists/watches and uses its Lease', async () => {
    const rbac = await docs('rbac.yaml');
    const role = (name: string) => rbac.find((d) => (d.kind === 'ClusterRole' || d.kind === 'Role') && d.metadata.name === name);
    expect(role('telemetry-collector-node').rules).toEqual([{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }]);
    const watcherVerbs = new Set(role('telemetry-collector-watcher').rules.flatMap((r: any) => r.verbs));
    expect([...watcherVerbs].sort()).toEqual(['list', 'watch']);
    expect(role('telemetry-collector-watcher-lease').rules[0].verbs.sort()).toEqual(['create', 'get', 'update']);
    // The naive role exists for pressure tests but is bound to nobody.
    const bound = rbac.filter((d) => d.kind.endsWith('Binding')).map((d) => d.roleRef.name);
    expect(bound).not.toContain('telemetry-collector-naive');
  });
});
/* eslint-enable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument */

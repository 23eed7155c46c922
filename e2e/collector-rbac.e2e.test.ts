// The collector's least privilege, enforced by the real API server: agents run with their pods' own
// ServiceAccount tokens (TokenRequest, bound to the pod, as a kubelet mounts them), under the RBAC the
// operator renders (`sharedObjects`/`revisionObjects`) and the fixed roles of config/target-rbac.
//
//   (a) frugal node agents GET their own Node (200) and the single cluster watcher lists, watches and
//       holds its Lease: no 401 or 403 anywhere, so the roles are enough;
//   (b) a Naive revision WITHOUT its per-revision binding is refused cluster-wide lists (403): a node
//       agent's role physically cannot do the incident's LIST; once the operator's binding for that
//       revision exists, the same agents list (200).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { findRepoRoot } from '../operator/src/api/crd.js';
import type { TelemetryRollout } from '../operator/src/api/types.generated.js';
import { naiveBindingName, revisionObjects, sharedObjects } from '../operator/src/rollout/desired.js';
import { revisionOf } from '../operator/src/rollout/revision.js';
import type { ClusterHandle } from './controlplane/fleet.js';
import { dumpOnFailure, eventually, kubectl, targetClusters } from './controlplane/testing.js';
import { startNodeRuntime, type AgentInfo, type NodeRuntime } from './noderuntime/index.js';
import { applyObjects, collectorRollout, labelNodes, nodeNames } from './noderuntime/testing.js';

const TIMEOUT_MS = 300_000;
const run = randomBytes(3).toString('hex');
const ns = `tro-rbac-${run}`;

function inNamespace(r: TelemetryRollout): TelemetryRollout {
  return { ...r, spec: { ...r.spec, collector: { ...r.spec.collector, namespace: ns } } };
}

/** Responses of the agents matching `pred`, summed by `<verb> <resource> <code>`. */
function responses(agents: AgentInfo[], pred: (a: AgentInfo) => boolean): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of agents.filter(pred)) for (const [k, v] of Object.entries(a.apiResponses ?? {})) out[k] = (out[k] ?? 0) + v;
  return out;
}
const denied = (r: Record<string, number>) => Object.keys(r).filter((k) => / (401|403)$/.test(k));

describe("collector RBAC on the real API server, with the pods' own ServiceAccount tokens", () => {
  let target: ClusterHandle;
  let rt: NodeRuntime | undefined;
  let rootDir = '';
  let labelled: string[] = [];
  const frugal = inNamespace(collectorRollout(`rbac-frugal-${run}`, { intervalSeconds: 10 }));
  const frugalRev = revisionOf(frugal.spec.collector);
  const naive = inNamespace(collectorRollout(`rbac-naive-${run}`, { metadata: { mode: 'Naive', naiveRelistSeconds: 10 }, clusterWatcher: { enabled: false } }));
  const naiveRev = revisionOf(naive.spec.collector);

  beforeAll(async () => {
    const targets = targetClusters();
    if (targets.length === 0) throw new Error('the e2e fleet has no target cluster');
    target = targets[0] as ClusterHandle;
    await kubectl(target, ['apply', '--server-side', '--force-conflicts', '-k', path.join(findRepoRoot(), 'config', 'target-rbac')]);
    rootDir = mkdtempSync(path.join(tmpdir(), 'tro-rbac-e2e-'));
    const admin = target.kubeConfig();
    labelled = (await nodeNames(admin)).slice(0, 3);
    await applyObjects(admin, [...sharedObjects(frugal), ...revisionObjects(frugal, frugalRev, false)]);
    await labelNodes(admin, labelled, frugalRev);
    rt = await startNodeRuntime({ kubeConfig: admin, credentials: 'pod', rootDir, namespace: ns, workers: 1 });
  }, TIMEOUT_MS);

  afterAll(async () => {
    await rt?.stop();
    if (target) {
      await labelNodes(target.kubeConfig(), labelled, null).catch(() => undefined);
      for (const b of [
        ...sharedObjects(frugal)
          .filter((o) => o.kind === 'ClusterRoleBinding')
          .map((o) => o.metadata.name),
        naiveBindingName(naiveRev),
      ]) {
        await kubectl(target, ['delete', 'clusterrolebinding', b, '--ignore-not-found']).catch(() => undefined);
      }
      await kubectl(target, ['delete', 'namespace', ns, '--ignore-not-found', '--wait=false']).catch(() => undefined);
    }
    if (rootDir) rmSync(rootDir, { recursive: true, force: true });
  }, 120_000);

  async function agentsWhere(what: string, pred: (a: AgentInfo[]) => boolean): Promise<AgentInfo[]> {
    const runtime = rt;
    if (!runtime) throw new Error('no runtime');
    return eventually(
      what,
      async () => {
        const a = await runtime.agents();
        return pred(a) ? a : undefined;
      },
      180_000,
      1000,
    );
  }

  it(
    '(a) frugal node agents read their own Node and the watcher lists, watches and leads: nothing denied',
    dumpOnFailure(async () => {
      const agents = await agentsWhere(
        '3 frugal node agents that read their Node, and a leading watcher that listed',
        (a) =>
          a.filter((x) => x.mode === 'node' && (x.apiResponses?.['get nodes 200'] ?? 0) > 0).length === labelled.length &&
          a.some((x) => x.mode === 'cluster' && Object.keys(x.apiResponses ?? {}).some((k) => /^list pods 200$/.test(k))),
      );
      const node = responses(agents, (a) => a.mode === 'node');
      const watcher = responses(agents, (a) => a.mode === 'cluster');
      process.stderr.write(`[rbac e2e] node agents: ${JSON.stringify(node)}; watcher: ${JSON.stringify(watcher)}\n`);
      expect(denied(node)).toEqual([]);
      expect(denied(watcher)).toEqual([]);
      // Node agents send nothing but GETs of nodes.
      expect(Object.keys(node).every((k) => k.startsWith('get nodes '))).toBe(true);
      // The watcher took its Lease (created or updated it) with its own token.
      expect(Object.keys(watcher).some((k) => /^(create|update) leases 20[01]$/.test(k))).toBe(true);
    }),
    TIMEOUT_MS,
  );

  it(
    "(b) a Naive revision's cluster-wide lists are refused until its own binding exists",
    dumpOnFailure(async () => {
      const admin = target.kubeConfig();
      const objs = revisionObjects(naive, naiveRev, false);
      const binding = objs.filter((o) => o.kind === 'ClusterRoleBinding');
      expect(binding.map((o) => o.metadata.name)).toEqual([naiveBindingName(naiveRev)]);
      await applyObjects(admin, [...sharedObjects(naive), ...objs.filter((o) => o.kind !== 'ClusterRoleBinding')]);
      await labelNodes(admin, labelled, naiveRev);
      const isNaive = (a: AgentInfo) => a.mode === 'node' && a.revision === naiveRev;
      const refused = await agentsWhere(
        '3 naive agents refused a cluster-wide LIST',
        (a) => a.filter((x) => isNaive(x) && (x.apiResponses?.['list pods 403'] ?? 0) > 0).length === labelled.length,
      );
      expect(Object.keys(responses(refused, isNaive)).filter((k) => k.startsWith('list ') && k.endsWith(' 200'))).toEqual([]);

      await applyObjects(admin, binding);
      const allowed = await agentsWhere(
        '3 naive agents listing pods cluster-wide once the binding exists',
        (a) => a.filter((x) => isNaive(x) && (x.apiResponses?.['list pods 200'] ?? 0) > 0).length === labelled.length,
      );
      process.stderr.write(`[rbac e2e] naive agents: ${JSON.stringify(responses(allowed, isNaive))}\n`);
    }),
    TIMEOUT_MS,
  );
});

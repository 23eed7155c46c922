// The real implementations of the reconciler's interfaces (operator/src/cluster/) against the real local
// control plane: KubeClusterClient on a target cluster (objects applied by server-side apply, kwok runs the
// collector pods, node relabelling moves them, the node cache makes no LIST in steady state, a SIGSTOPped
// API server is reported unreachable within the probe timeout), SecretClusterClientFactory on a real
// kubeconfig Secret, and KubeStatusWriter / KubeEventRecorder on a real TelemetryRollout.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CoreV1Api } from '@kubernetes/client-node';
import { Registry, type Counter } from 'prom-client';
import { findRepoRoot } from '../operator/src/api/crd.js';
import { validBase } from '../testkit/operator/api/fixtures.js';
import type { TelemetryRollout } from '../operator/src/api/types.generated.js';
import { CLUSTER_NAME_LABEL, SecretClusterClientFactory } from '../operator/src/cluster/factory.js';
import { ApiSecretReader } from '../testkit/operator/cluster/secretreader.js';
import { KubeClusterClient } from '../operator/src/cluster/kubeclient.js';
import { clusterRequestCounter, type RequestLabel } from '../operator/src/cluster/metrics.js';
import { KubeEventRecorder, KubeStatusWriter } from '../operator/src/cluster/status.js';
import { isConflict } from '../operator/src/controller/kube.js';
import {
  COLLECTOR_NODE_SERVICE_ACCOUNT,
  COLLECTOR_WATCHER_SERVICE_ACCOUNT,
  daemonSetName,
  revisionObjects,
  revisionRefs,
  sharedObjects,
} from '../operator/src/rollout/desired.js';
import { ClusterUnavailableError, REVISION_LABEL } from '../operator/src/rollout/interfaces.js';
import { revisionOf, rolloutLabelValue } from '../operator/src/rollout/revision.js';
import { memoryLogger } from '../testkit/operator/util/logging.js';
import type { ClusterHandle } from './controlplane/fleet.js';
import {
  createNamespace,
  deleteNamespace,
  dumpOnFailure,
  eventually,
  kubectl,
  kubectlJSON,
  kubectlResult,
  managementCluster,
  targetClusters,
} from './controlplane/testing.js';
import { installCrd } from './support/api.js';

const TIMEOUT_MS = 300_000;
const run = randomBytes(3).toString('hex');
/** The collector namespace of this run in the target, unique so parallel or repeated runs do not collide. */
const collectorNs = `tro-cc-${run}`;

let target: ClusterHandle;
let counter: Counter<RequestLabel>;
let client: KubeClusterClient;
let rollout: TelemetryRollout;
let revision: string;
let labelled: string[] = [];
let mgmtNs = '';

async function requestCount(verb: string, resource: string): Promise<number> {
  let n = 0;
  for (const v of (await counter.get()).values) {
    if (v.labels.cluster === target.name && v.labels.verb === verb && v.labels.resource === resource) n += v.value;
  }
  return n;
}

interface DaemonSetJSON {
  metadata: { generation: number; resourceVersion: string };
}

describe('cluster clients on the real control plane', () => {
  beforeAll(async () => {
    const targets = targetClusters();
    if (targets.length === 0) throw new Error('the e2e fleet has no target cluster');
    target = targets[0] as ClusterHandle;
    await installCrd();
    // The desired objects bind the collector's fixed ClusterRole, which config/target-rbac installs.
    await kubectl(target, ['apply', '--server-side', '--force-conflicts', '-k', join(findRepoRoot(), 'config', 'target-rbac')]);
    mgmtNs = await createNamespace(managementCluster(), 'cc');
    counter = clusterRequestCounter(new Registry());
    client = new KubeClusterClient(target.name, target.kubeConfig(), { requests: counter, logger: memoryLogger().logger });
    const base = validBase(`cc-${run}`) as unknown as TelemetryRollout;
    rollout = {
      ...base,
      metadata: { name: `cc-${run}`, namespace: mgmtNs, uid: `uid-${run}` },
      spec: { ...base.spec, collector: { image: 'registry.example/collector:1.0.0', imagePullPolicy: 'IfNotPresent', namespace: collectorNs } },
    };
    revision = revisionOf(rollout.spec.collector);
  });

  afterAll(async () => {
    // Whatever happened, leave the target as we found it: API server running, no labels, no objects.
    target?.resumeApiServer();
    for (const n of labelled) {
      await kubectl(target, ['label', 'node', n, `${REVISION_LABEL}-`]).catch(() => undefined);
    }
    if (target) {
      for (const b of sharedObjects(rollout).filter((o) => o.kind === 'ClusterRoleBinding')) {
        await kubectl(target, ['delete', 'clusterrolebinding', b.metadata.name, '--ignore-not-found']).catch(() => undefined);
      }
      await deleteNamespace(target, collectorNs).catch(() => undefined);
    }
    if (mgmtNs) await deleteNamespace(managementCluster(), mgmtNs).catch(() => undefined);
    await client?.close();
  });

  it(
    "probes /readyz and reads the API server's own /metrics",
    dumpOnFailure(async () => {
      expect(await client.probe()).toEqual({ reachable: true, message: 'readyz ok' });
      const metrics = await client.getRaw('/metrics');
      expect(metrics).toContain('apiserver_request_total');
    }),
    TIMEOUT_MS,
  );

  it(
    "applies the desired objects, and kwok runs the revision's pods on exactly the labelled nodes",
    dumpOnFailure(async () => {
      for (const obj of [...sharedObjects(rollout), ...revisionObjects(rollout, revision, false)]) await client.apply(obj);
      const nodes = await client.listNodes();
      expect(nodes).toHaveLength(target.nodes);
      labelled = nodes.slice(0, 3).map((n) => n.name);
      for (const n of labelled) await client.setNodeRevision(n, revision);
      // Idempotent: setting the label it already has is fine.
      await client.setNodeRevision(labelled[0] as string, revision);

      const shown = await kubectl(target, ['get', 'nodes', '-L', REVISION_LABEL, '--no-headers']);
      expect(shown.split('\n').filter((l) => l.trim().endsWith(revision)).length).toBe(3);
      // Our own writes are visible in the node cache at once.
      expect((await client.listNodes()).filter((n) => n.labels[REVISION_LABEL] === revision).map((n) => n.name)).toEqual(labelled);

      const label = rolloutLabelValue(mgmtNs, rollout.metadata?.name ?? '');
      const ready = await eventually(
        'the revision DaemonSet has 3 ready pods',
        async () => {
          const ds = await client.listCollectorDaemonSets(collectorNs, label);
          return ds.length === 1 && ds[0]?.numberReady === 3 && ds[0].observed ? ds : undefined;
        },
        180_000,
        1000,
      );
      expect(ready).toEqual([{ name: daemonSetName(revision), revision, stable: false, desiredNumberScheduled: 3, numberReady: 3, observed: true }]);
    }),
    TIMEOUT_MS,
  );

  it(
    'gives the collector least privilege: node agents may GET a Node and nothing cluster-wide; only the watcher lists and watches',
    dumpOnFailure(async () => {
      // The API server's own authorizer decides (SubjectAccessReview through kubectl auth can-i --as),
      // against the bindings the desired objects made and the fixed roles of config/target-rbac.
      const can = async (sa: string, args: string[]): Promise<boolean> => {
        const r = await kubectlResult(target, ['auth', 'can-i', ...args, `--as=system:serviceaccount:${collectorNs}:${sa}`]);
        if (r.stdout.trim() !== 'yes' && r.stdout.trim() !== 'no') throw new Error(`kubectl auth can-i ${args.join(' ')}: ${r.stdout}${r.stderr}`);
        return r.stdout.trim() === 'yes';
      };
      const node = COLLECTOR_NODE_SERVICE_ACCOUNT;
      const watcher = COLLECTOR_WATCHER_SERVICE_ACCOUNT;
      expect({
        nodeGetNode: await can(node, ['get', 'nodes/some-node']),
        nodeListNodes: await can(node, ['list', 'nodes']),
        nodeListPods: await can(node, ['list', 'pods', '--all-namespaces']),
        nodeWatchPods: await can(node, ['watch', 'pods', '--all-namespaces']),
        nodeListEndpoints: await can(node, ['list', 'endpoints', '--all-namespaces']),
        nodeLease: await can(node, ['create', 'leases', '-n', collectorNs]),
        watcherListPods: await can(watcher, ['list', 'pods', '--all-namespaces']),
        watcherWatchSlices: await can(watcher, ['watch', 'endpointslices.discovery.k8s.io', '--all-namespaces']),
        watcherLease: await can(watcher, ['update', 'leases', '-n', collectorNs]),
        watcherLeaseElsewhere: await can(watcher, ['update', 'leases', '-n', 'kube-system']),
        watcherSecrets: await can(watcher, ['list', 'secrets', '--all-namespaces']),
      }).toEqual({
        nodeGetNode: true,
        nodeListNodes: false,
        nodeListPods: false,
        nodeWatchPods: false,
        nodeListEndpoints: false,
        nodeLease: false,
        watcherListPods: true,
        watcherWatchSlices: true,
        watcherLease: true,
        watcherLeaseElsewhere: false,
        watcherSecrets: false,
      });
    }),
    TIMEOUT_MS,
  );

  it(
    'applies again and nothing changes: the desired objects are pure',
    dumpOnFailure(async () => {
      const before = await kubectlJSON<DaemonSetJSON>(target, ['get', 'daemonset', daemonSetName(revision), '-n', collectorNs]);
      for (const obj of [...sharedObjects(rollout), ...revisionObjects(rollout, revision, false)]) await client.apply(obj);
      const after = await kubectlJSON<DaemonSetJSON>(target, ['get', 'daemonset', daemonSetName(revision), '-n', collectorNs]);
      expect(after.metadata.generation).toBe(before.metadata.generation);
      expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    }),
    TIMEOUT_MS,
  );

  it(
    "removing a node's label takes its pod away",
    dumpOnFailure(async () => {
      const node = labelled[2] as string;
      await client.setNodeRevision(node, null);
      await client.setNodeRevision(node, null);
      const label = rolloutLabelValue(mgmtNs, rollout.metadata?.name ?? '');
      await eventually(
        'the revision DaemonSet shrinks to 2 ready pods',
        async () => {
          const ds = await client.listCollectorDaemonSets(collectorNs, label);
          return ds[0]?.desiredNumberScheduled === 2 && ds[0].numberReady === 2;
        },
        180_000,
        1000,
      );
      expect((await client.listNodes()).find((n) => n.name === node)?.labels[REVISION_LABEL]).toBeUndefined();
    }),
    TIMEOUT_MS,
  );

  it(
    'keeps the node inventory from one LIST and the watch: no LIST in 20 s of steady state',
    dumpOnFailure(async () => {
      await client.listNodes();
      expect(client.nodeCacheSynced).toBe(true);
      const lists = await requestCount('list', 'nodes');
      expect(lists).toBe(1);
      // A measurement window, not a timing assertion: whatever happens in it, the count must stay the same.
      await new Promise((r) => setTimeout(r, 20_000));
      for (let i = 0; i < 10; i++) expect(await client.listNodes()).toHaveLength(target.nodes);
      expect(await requestCount('list', 'nodes')).toBe(lists);
      expect(await requestCount('watch', 'nodes')).toBeGreaterThanOrEqual(1);
    }),
    TIMEOUT_MS,
  );

  it(
    'reports a SIGSTOPped API server unreachable within the probe timeout, and still serves the node inventory',
    dumpOnFailure(async () => {
      target.pauseApiServer();
      try {
        const r = await client.probe();
        expect(r.reachable).toBe(false);
        expect(r.message).toMatch(/\/readyz: timed out after 3000 ms/);
        // Break-glass needs the inventory exactly when the API server is down.
        expect(await client.listNodes()).toHaveLength(target.nodes);
        // Other calls fail after their own timeout, naming the cluster.
        const small = new KubeClusterClient(target.name, target.kubeConfig(), { timeoutMs: 2000, logger: memoryLogger().logger });
        await expect(small.listCollectorDaemonSets(collectorNs, 'x')).rejects.toThrow(
          `cluster ${target.name}: list DaemonSets in ${collectorNs}: timed out after 2000 ms`,
        );
        await small.close();
      } finally {
        target.resumeApiServer();
      }
      await eventually('the API server answers again', async () => (await client.probe()).reachable, 60_000, 500);
    }),
    TIMEOUT_MS,
  );

  it(
    "deletes the revision's objects; deleting them again is fine",
    dumpOnFailure(async () => {
      for (const ref of revisionRefs(collectorNs, revision)) await client.delete(ref);
      for (const ref of revisionRefs(collectorNs, revision)) await client.delete(ref);
      const label = rolloutLabelValue(mgmtNs, rollout.metadata?.name ?? '');
      await eventually('the DaemonSet is gone', async () => (await client.listCollectorDaemonSets(collectorNs, label)).length === 0, 60_000, 500);
    }),
    TIMEOUT_MS,
  );

  it(
    'builds a client from a real kubeconfig Secret selected by label; a broken Secret is a condition, not a crash',
    dumpOnFailure(async () => {
      const mgmt = managementCluster();
      const core = mgmt.kubeConfig().makeApiClient(CoreV1Api);
      await core.createNamespacedSecret({
        namespace: mgmtNs,
        body: { metadata: { name: 'kc-a', labels: { fleet: 'e2e', [CLUSTER_NAME_LABEL]: target.name } }, stringData: { value: target.kubeconfig } },
      });
      await core.createNamespacedSecret({
        namespace: mgmtNs,
        body: {
          metadata: { name: 'kc-broken', labels: { fleet: 'e2e' } },
          stringData: { value: target.kubeconfig.replace(/token: .*/, 'token-file: /var/run/secrets/kubernetes.io/serviceaccount/token') },
        },
      });
      const factory = new SecretClusterClientFactory({ reader: new ApiSecretReader(core), clientOptions: { logger: memoryLogger().logger } });
      try {
        const ro = { ...rollout, spec: { ...rollout.spec, targets: { selector: { matchLabels: { fleet: 'e2e' }, key: 'value' } } } } as TelemetryRollout;
        const targets = await factory.resolveTargets(ro);
        expect(targets.map((t) => [t.name, t.secretName])).toEqual(
          [
            [target.name, 'kc-a'],
            ['kc-broken', 'kc-broken'],
          ].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
        );
        const good = await factory.client(
          ro,
          targets.find((t) => t.secretName === 'kc-a')!,
        );
        expect((await good.probe()).reachable).toBe(true);
        const err = await factory
          .client(
            ro,
            targets.find((t) => t.secretName === 'kc-broken')!,
          )
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(err).toBeInstanceOf(ClusterUnavailableError);
        expect((err as ClusterUnavailableError).reason).toBe('UnsupportedKubeconfig');
        expect((err as Error).message).not.toContain(target.adminToken);
      } finally {
        await factory.close();
      }
    }),
    TIMEOUT_MS,
  );

  it(
    'writes status with optimistic concurrency: kubectl shows the phase; a stale write gets 409',
    dumpOnFailure(async () => {
      const mgmt = managementCluster();
      const name = `status-${run}`;
      await kubectl(mgmt, ['apply', '-n', mgmtNs, '-f', '-'], { input: JSON.stringify(validBase(name)) });
      const current = await kubectlJSON<TelemetryRollout>(mgmt, ['get', 'tro', name, '-n', mgmtNs]);
      const writer = new KubeStatusWriter(mgmt.kubeConfig());
      await writer.writeStatus(current, {
        observedGeneration: current.metadata?.generation ?? 1,
        phase: 'Progressing',
        stage: 'canary',
        progress: '0/2 clusters',
        message: 'e2e',
      });
      const table = await kubectl(mgmt, ['get', 'tro', name, '-n', mgmtNs]);
      expect(table).toMatch(/PHASE/);
      expect(table).toMatch(new RegExp(`${name}\\s+Progressing\\s+canary\\s+0/2 clusters`));
      // `current` still carries the resourceVersion from before the write: it is stale now.
      const stale = await writer.writeStatus(current, { phase: 'Succeeded' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isConflict(stale)).toBe(true);
      expect((await kubectlJSON<TelemetryRollout>(mgmt, ['get', 'tro', name, '-n', mgmtNs])).status?.phase).toBe('Progressing');
    }),
    TIMEOUT_MS,
  );

  it(
    'records events on the rollout, aggregating a repeat into the series of one Event',
    dumpOnFailure(async () => {
      const mgmt = managementCluster();
      const name = `events-${run}`;
      await kubectl(mgmt, ['apply', '-n', mgmtNs, '-f', '-'], { input: JSON.stringify(validBase(name)) });
      const ro = await kubectlJSON<TelemetryRollout>(mgmt, ['get', 'tro', name, '-n', mgmtNs]);
      const { logger, entries } = memoryLogger();
      const recorder = KubeEventRecorder.forKubeConfig(mgmt.kubeConfig(), { logger, reportingInstance: 'e2e' });
      recorder.event(ro, 'Normal', 'StageStarted', 'stage canary started');
      await recorder.flush();
      recorder.event(ro, 'Normal', 'StageStarted', 'stage canary started');
      await recorder.flush();
      expect(entries.filter((e) => e.level === 'warn')).toEqual([]);
      const events = await kubectlJSON<{
        items: Array<{ reason: string; note: string; series?: { count: number }; regarding: { uid: string }; reportingController: string }>;
      }>(mgmt, ['get', 'events.events.k8s.io', '-n', mgmtNs, '--field-selector', `regarding.name=${name}`]);
      expect(events.items).toHaveLength(1);
      expect(events.items[0]).toMatchObject({
        reason: 'StageStarted',
        note: 'stage canary started',
        series: { count: 2 },
        regarding: { uid: ro.metadata?.uid },
        reportingController: 'telemetry-rollout-operator',
      });
      // kubectl describe (core/v1 view) shows it on the rollout.
      const described = await kubectl(mgmt, ['describe', 'tro', name, '-n', mgmtNs]);
      expect(described).toMatch(/StageStarted/);
    }),
    TIMEOUT_MS,
  );
});

import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { ServerResponse } from 'node:http';
import { Registry } from 'prom-client';
import { isConflict, isNotFound, isRetryable } from '../controller/kube.js';
import { memoryLogger } from '../../../testkit/operator/util/logging.js';
import { FIELD_MANAGER, REVISION_LABEL } from '../rollout/interfaces.js';
import { json, startFakeApiServer, status, type FakeApiServer, type RecordedRequest } from '../../../testkit/operator/cluster/fakeapiserver.js';
import { ClusterRequestError } from './kubeapi.js';
import { KubeClusterClient, collectorDaemonSetOf, failingChecks } from './kubeclient.js';
import { clusterRequestCounter, type RequestLabel } from './metrics.js';
import type { Counter } from 'prom-client';

const TOKEN = 'FAKE-TOKEN-kubeclient-0123456789abcdef';

async function counts(counter: Counter<RequestLabel>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await counter.get()).values) out[`${v.labels.verb} ${v.labels.resource} ${v.labels.code}`] = v.value;
  return out;
}

const node = (name: string, rv: string, labels: Record<string, string> = {}) => ({
  metadata: { name, resourceVersion: rv, labels: { 'kubernetes.io/hostname': name, 'beta.kubernetes.io/os': 'linux', ...labels } },
  status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }], conditions: [{ type: 'Ready', status: 'True' }], images: [{ names: ['big'] }] },
});

describe('collectorDaemonSetOf', () => {
  it('maps labels and status', () => {
    expect(
      collectorDaemonSetOf({
        metadata: {
          name: 'telemetry-collector-abc',
          generation: 3,
          labels: { 'telemetry.rollout.dev/collector-revision': 'abc', 'telemetry.rollout.dev/stable': 'true' },
        },
        status: { desiredNumberScheduled: 5, numberReady: 4, observedGeneration: 3, currentNumberScheduled: 5, numberMisscheduled: 0 },
      }),
    ).toEqual({ name: 'telemetry-collector-abc', revision: 'abc', stable: true, desiredNumberScheduled: 5, numberReady: 4, observed: true });
  });

  it('is not observed before the controller caught up, and not stable without the label', () => {
    const ds = collectorDaemonSetOf({
      metadata: { name: 'x', generation: 4, labels: { 'telemetry.rollout.dev/collector-revision': 'r' } },
      status: { observedGeneration: 3 } as never,
    });
    expect(ds).toMatchObject({ observed: false, stable: false, desiredNumberScheduled: 0, numberReady: 0 });
    expect(collectorDaemonSetOf({ metadata: { name: 'x', generation: 1, labels: { 'telemetry.rollout.dev/collector-revision': 'r' } } })?.observed).toBe(false);
  });

  it('skips DaemonSets without the revision label', () => {
    expect(collectorDaemonSetOf({ metadata: { name: 'x', labels: {} } })).toBeUndefined();
  });
});

describe('failingChecks', () => {
  it('keeps the failing /readyz checks', () => {
    expect(failingChecks('[+]ping ok\n[-]etcd failed: reason withheld\n[+]log ok\n[-]poststarthook/x failed: not finished\nreadyz check failed\n')).toBe(
      'etcd failed: reason withheld; poststarthook/x failed: not finished',
    );
    expect(failingChecks('ok')).toBe('');
  });
});

describe('KubeClusterClient against a scripted API server', () => {
  let server: FakeApiServer;
  let counter: Counter<RequestLabel>;
  let client: KubeClusterClient;
  const hanging: ServerResponse[] = [];

  beforeEach(async () => {
    server = await startFakeApiServer((_req, res) => json(res, 404, status(404, 'not scripted', 'NotFound')));
    counter = clusterRequestCounter(new Registry());
    client = new KubeClusterClient('east', server.kubeConfig(TOKEN), {
      requests: counter,
      timeoutMs: 300,
      probeTimeoutMs: 300,
      logger: memoryLogger().logger,
    });
  });

  afterEach(async () => {
    await client.close();
    hanging.length = 0;
    await server.close();
  });

  const noToken = (err: unknown) => {
    const text = `${(err as Error).message}\n${JSON.stringify(err)}`;
    expect(text).not.toContain(TOKEN);
  };

  it('probe: reachable only on 200, with the failing checks otherwise', async () => {
    server.handle((req, res) => {
      expect(req.headers.authorization).toBe(`Bearer ${TOKEN}`);
      res.end('ok');
    });
    expect(await client.probe()).toEqual({ reachable: true, message: 'readyz ok' });
    server.handle((_req, res) => {
      res.writeHead(500);
      res.end('[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n');
    });
    expect(await client.probe()).toEqual({ reachable: false, message: 'GET /readyz answered HTTP 500: etcd failed: reason withheld' });
    server.handle((_req, res) => {
      res.writeHead(401);
      res.end('Unauthorized');
    });
    expect((await client.probe()).message).toMatch(/HTTP 401 \(the kubeconfig's credentials were rejected\)/);
    expect(await counts(counter)).toEqual({ 'get /readyz 200': 1, 'get /readyz 500': 1, 'get /readyz 401': 1 });
  });

  it('probe: an API server that refuses the credentials (401 or 403) is reachable, with credentialsRejected, never unreachable', async () => {
    for (const code of [401, 403]) {
      server.handle((_req, res) => {
        res.writeHead(code);
        res.end('Forbidden');
      });
      expect(await client.probe()).toEqual({
        reachable: true,
        credentialsRejected: true,
        message: `GET /readyz answered HTTP ${code} (the kubeconfig's credentials were rejected)`,
      });
    }
  });

  it('probe: an API server that does not answer is unreachable after the probe timeout, and probe does not throw', async () => {
    server.handle((_req, res) => hanging.push(res));
    const r = await client.probe();
    expect(r.reachable).toBe(false);
    expect(r.message).toMatch(/\/readyz: timed out after 300 ms/);
    expect(await counts(counter)).toEqual({ 'get /readyz <error>': 1 });
  });

  it('probe: a closed port is unreachable with "connection refused"', async () => {
    const kc = server.kubeConfig(TOKEN);
    await server.close();
    const c = new KubeClusterClient('gone', kc, { probeTimeoutMs: 1000, logger: memoryLogger().logger });
    const r = await c.probe();
    expect(r).toEqual({ reachable: false, message: expect.stringMatching(/ECONNREFUSED/) as unknown as string });
    server = await startFakeApiServer(() => undefined);
  });

  it('setNodeRevision: a JSON merge patch of the one label; null removes it; the result feeds the node cache', async () => {
    server.handle((req, res) => {
      if (req.method === 'GET' && req.path === '/api/v1/nodes' && req.query.get('watch') !== 'true') {
        json(res, 200, { kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: '10' }, items: [node('n1', '5')] });
      } else if (req.method === 'GET' && req.path === '/api/v1/nodes') {
        hanging.push(res);
        res.writeHead(200, { 'content-type': 'application/json' });
      } else if (req.method === 'PATCH') {
        const patch = JSON.parse(req.body) as { metadata: { labels: Record<string, string | null> } };
        const value = patch.metadata.labels[REVISION_LABEL];
        json(res, 200, node('n1', '11', value === null || value === undefined ? {} : { [REVISION_LABEL]: value }));
      } else json(res, 404, status(404, 'no'));
    });
    expect((await client.listNodes()).map((n) => n.labels)).toEqual([{ 'kubernetes.io/hostname': 'n1' }]);
    await client.setNodeRevision('n1', 'abc123');
    expect((await client.listNodes())[0]?.labels[REVISION_LABEL]).toBe('abc123');
    await client.setNodeRevision('n1', null);
    expect((await client.listNodes())[0]?.labels[REVISION_LABEL]).toBeUndefined();
    const patches = server.requests.filter((r) => r.method === 'PATCH');
    expect(patches.map((r): unknown[] => [r.path, r.headers['content-type'], JSON.parse(r.body) as unknown])).toEqual([
      ['/api/v1/nodes/n1', 'application/merge-patch+json', { metadata: { labels: { [REVISION_LABEL]: 'abc123' } } }],
      ['/api/v1/nodes/n1', 'application/merge-patch+json', { metadata: { labels: { [REVISION_LABEL]: null } } }],
    ]);
    const c = await counts(counter);
    expect(c['list nodes 200']).toBe(1);
    expect(c['patch nodes 200']).toBe(2);
  });

  it('apply: server-side apply with the operator field manager and force', async () => {
    server.handle((req, res) => {
      if (req.method === 'GET' && req.path === '/apis/apps/v1') {
        json(res, 200, {
          kind: 'APIResourceList',
          groupVersion: 'apps/v1',
          resources: [{ name: 'daemonsets', kind: 'DaemonSet', namespaced: true, singularName: 'daemonset', verbs: ['patch'] }],
        });
      } else if (req.method === 'PATCH') json(res, 200, JSON.parse(req.body));
      else json(res, 404, status(404, 'no'));
    });
    const ds = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'x', namespace: 'ns' }, spec: { selector: { matchLabels: { a: 'b' } } } };
    await client.apply(ds);
    await client.apply(ds);
    const patches = server.requests.filter((r) => r.method === 'PATCH');
    expect(patches).toHaveLength(2);
    expect(patches[0]?.path).toBe('/apis/apps/v1/namespaces/ns/daemonsets/x');
    expect(patches[0]?.query.get('fieldManager')).toBe(FIELD_MANAGER);
    expect(patches[0]?.query.get('force')).toBe('true');
    expect(patches[0]?.headers['content-type']).toBe('application/apply-patch+yaml');
    expect(JSON.parse(patches[0]?.body ?? '{}')).toMatchObject(ds);
    // Discovery is asked once per apiVersion.
    expect(await counts(counter)).toEqual({ 'get discovery 200': 1, 'apply daemonsets 200': 2 });
  });

  it('delete: Background propagation; 404 is success; other failures name cluster and object', async () => {
    let answer = 200;
    server.handle((req, res) => {
      if (req.method === 'GET')
        json(res, 200, {
          kind: 'APIResourceList',
          groupVersion: 'v1',
          resources: [{ name: 'configmaps', kind: 'ConfigMap', namespaced: true, singularName: 'configmap', verbs: ['delete'] }],
        });
      else
        json(res, answer, answer === 200 ? { kind: 'Status', status: 'Success' } : status(answer, answer === 404 ? 'configmaps "c" not found' : 'etcd is sad'));
    });
    const ref = { apiVersion: 'v1', kind: 'ConfigMap', name: 'c', namespace: 'ns' };
    await client.delete(ref);
    answer = 404;
    await client.delete(ref);
    answer = 500;
    const err = await client.delete(ref).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ClusterRequestError);
    expect((err as Error).message).toBe('cluster east: delete ConfigMap ns/c: HTTP 500: etcd is sad');
    expect(isRetryable(err)).toBe(true);
    noToken(err);
    const deletes = server.requests.filter((r) => r.method === 'DELETE');
    expect(deletes.map((r) => [r.path, r.query.get('propagationPolicy')])).toEqual(Array(3).fill(['/api/v1/namespaces/ns/configmaps/c', 'Background']));
    expect(await counts(counter)).toMatchObject({ 'delete configmaps 200': 1, 'delete configmaps 404': 1, 'delete configmaps 500': 1 });
  });

  it('listCollectorDaemonSets: by rollout label, mapped and sorted', async () => {
    server.handle((req, res) => {
      json(res, 200, {
        kind: 'DaemonSetList',
        apiVersion: 'apps/v1',
        metadata: {},
        items: [
          {
            metadata: { name: 'telemetry-collector-b', generation: 1, labels: { 'telemetry.rollout.dev/collector-revision': 'b' } },
            status: { observedGeneration: 1, desiredNumberScheduled: 2, numberReady: 1, currentNumberScheduled: 2, numberMisscheduled: 0 },
          },
          {
            metadata: {
              name: 'telemetry-collector-a',
              generation: 2,
              labels: { 'telemetry.rollout.dev/collector-revision': 'a', 'telemetry.rollout.dev/stable': 'true' },
            },
            status: { observedGeneration: 2, desiredNumberScheduled: 3, numberReady: 3, currentNumberScheduled: 3, numberMisscheduled: 0 },
          },
          { metadata: { name: 'unrelated', labels: {} } },
        ],
      });
      expect(req.query.get('labelSelector')).toBe('telemetry.rollout.dev/rollout=fleet.ro');
    });
    expect(await client.listCollectorDaemonSets('telemetry-system', 'fleet.ro')).toEqual([
      { name: 'telemetry-collector-a', revision: 'a', stable: true, desiredNumberScheduled: 3, numberReady: 3, observed: true },
      { name: 'telemetry-collector-b', revision: 'b', stable: false, desiredNumberScheduled: 2, numberReady: 1, observed: true },
    ]);
    expect(server.requests[0]?.path).toBe('/apis/apps/v1/namespaces/telemetry-system/daemonsets');
  });

  it('a request that gets no answer fails after the timeout, naming cluster and operation, counted as <error>', async () => {
    server.handle((_req, res) => hanging.push(res));
    const err = await client.setNodeRevision('n1', 'r').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).message).toBe(`cluster east: set label ${REVISION_LABEL}=r on Node n1: timed out after 300 ms`);
    expect(isRetryable(err)).toBe(true);
    noToken(err);
    expect(await counts(counter)).toEqual({ 'patch nodes <error>': 1 });
  });

  it('the caller can cancel a request', async () => {
    server.handle((_req, res) => hanging.push(res));
    const ac = new AbortController();
    const p = client.listCollectorDaemonSets('ns', 'x', ac.signal);
    setImmediate(() => ac.abort());
    await expect(p).rejects.toThrow(/cluster east: list DaemonSets in ns: aborted/);
  });

  it('HTTP errors keep their status for isNotFound/isConflict', async () => {
    server.handle((_req, res) => json(res, 409, status(409, 'the object has been modified', 'Conflict')));
    const err = await client.setNodeRevision('n1', 'r').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isConflict(err)).toBe(true);
    expect(isNotFound(err)).toBe(false);
  });

  it('getRaw: the body of a 2xx; an error with the status otherwise', async () => {
    server.handle((req, res) => {
      if (req.path === '/metrics') res.end('apiserver_request_total{code="200"} 1\n');
      else {
        res.writeHead(403);
        res.end('forbidden');
      }
    });
    expect(await client.getRaw('/metrics')).toContain('apiserver_request_total');
    const err = await client.getRaw('/debug/pprof').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).message).toBe('cluster east: GET /debug/pprof: HTTP 403');
    expect(isRetryable(err)).toBe(false);
    expect(await counts(counter)).toEqual({ 'get /metrics 200': 1, 'get /debug/pprof 403': 1 });
  });
});

describe('KubeClusterClient node cache against a scripted API server', () => {
  let server: FakeApiServer;

  afterEach(async () => {
    await server.close();
  });

  it('lists once, then follows the watch (with bookmarks) and never lists again', async () => {
    const watchers: Array<{ req: RecordedRequest; res: ServerResponse }> = [];
    server = await startFakeApiServer((req, res) => {
      if (req.query.get('watch') === 'true') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        watchers.push({ req, res });
      } else {
        json(res, 200, {
          kind: 'NodeList',
          apiVersion: 'v1',
          metadata: { resourceVersion: '100' },
          items: [node('b', '90'), node('a', '91', { 'topology.kubernetes.io/zone': 'z1' })],
        });
      }
    });
    const counter = clusterRequestCounter(new Registry());
    const client = new KubeClusterClient('east', server.kubeConfig(TOKEN), { requests: counter, logger: memoryLogger().logger });
    try {
      const [first, second] = await Promise.all([client.listNodes(), client.listNodes()]);
      expect(first).toEqual(second);
      expect(first).toEqual([
        {
          name: 'a',
          labels: { 'kubernetes.io/hostname': 'a', 'topology.kubernetes.io/zone': 'z1' },
          addresses: [{ type: 'InternalIP', address: '10.0.0.1' }],
          ready: true,
        },
        { name: 'b', labels: { 'kubernetes.io/hostname': 'b' }, addresses: [{ type: 'InternalIP', address: '10.0.0.1' }], ready: true },
      ]);
      expect(client.nodeCacheSynced).toBe(true);
      await waitFor(() => watchers.length === 1);
      const w = watchers[0]!;
      expect(w.req.query.get('resourceVersion')).toBe('100');
      expect(w.req.query.get('allowWatchBookmarks')).toBe('true');
      const send = (type: string, object: unknown) => w.res.write(`${JSON.stringify({ type, object })}\n`);
      send('ADDED', node('c', '101'));
      send('DELETED', node('b', '102'));
      send('BOOKMARK', { kind: 'Node', metadata: { resourceVersion: '150' } });
      await waitFor(async () => (await client.listNodes()).map((n) => n.name).join() === 'a,c');
      // The server ends the watch: the cache resumes from the bookmark's resourceVersion, without a LIST.
      w.res.end();
      await waitFor(() => watchers.length === 2);
      expect(watchers[1]?.req.query.get('resourceVersion')).toBe('150');
      await waitFor(async () => (await counts(counter))['watch nodes 200'] === 2);
      expect((await counts(counter))['list nodes 200']).toBe(1);
    } finally {
      await client.close();
    }
  });
});

/** Polls `check` on the event loop (no wall-clock assertion: it only waits for real I/O to happen). */
async function waitFor(check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('condition not reached');
}

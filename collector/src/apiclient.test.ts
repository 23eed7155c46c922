import { describe, it, expect } from '@jest/globals';
import { RESOURCES, resourcePath, type KubeObject, type WatchEvent } from './apiclient.js';
import { ApiError, NetworkError, StoppedError } from './errors.js';
import { STOP_FILE_POLL_MS } from './killswitch.js';
import { flushAsync } from '../../testkit/core/fakeclock.js';
import { counterValue, makeRig, stopFileFor, TEST_REVISION, TEST_STOP_PATH } from '../../testkit/collector/harness.js';

const pod = (ns: string, name: string, node = 'node-1'): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace: ns, name },
  spec: { nodeName: node },
});

describe('resourcePath', () => {
  it.each([
    [RESOURCES.pods, {}, '/api/v1/pods'],
    [RESOURCES.pods, { namespace: 'kube-system' }, '/api/v1/namespaces/kube-system/pods'],
    [RESOURCES.nodes, { name: 'node-1' }, '/api/v1/nodes/node-1'],
    [RESOURCES.endpointslices, {}, '/apis/discovery.k8s.io/v1/endpointslices'],
    [RESOURCES.leases, { namespace: 'ns', name: 'l' }, '/apis/coordination.k8s.io/v1/namespaces/ns/leases/l'],
  ])('%j %j → %s', (ref, where, expected) => {
    expect(resourcePath(ref, where)).toBe(expected);
  });
});

describe('ApiClient', () => {
  it('counts requests by verb, resource and code, and response bytes', async () => {
    const rig = makeRig();
    rig.server.put('/api/v1/pods', pod('default', 'a'));
    rig.server.put('/api/v1/pods', pod('default', 'b'));
    const list = await rig.client.list(RESOURCES.pods, { resourceVersion: '0' });
    expect(list.items.map((p) => p.metadata?.name)).toEqual(['a', 'b']);
    await expect(rig.client.get(RESOURCES.nodes, { name: 'missing' })).rejects.toMatchObject({ code: 404 });
    expect(await counterValue(rig.metrics.apiRequests, { verb: 'list', resource: 'pods', code: '200' })).toBe(1);
    expect(await counterValue(rig.metrics.apiRequests, { verb: 'get', resource: 'nodes', code: '404' })).toBe(1);
    const listBytes = JSON.stringify({
      kind: 'List',
      apiVersion: 'v1',
      metadata: { resourceVersion: rig.server.resourceVersion },
      items: rig.server.objects('/api/v1/pods'),
    }).length;
    expect(await counterValue(rig.metrics.apiResponseBytes, { verb: 'list', resource: 'pods' })).toBe(listBytes);
    expect(rig.server.requests[0]?.query).toEqual({ resourceVersion: '0' });
  });

  it('passes every call through the token bucket (burst, then qps)', async () => {
    const rig = makeRig({ rateLimit: { qps: 2, burst: 5 } });
    const t0 = rig.clock.nowMs();
    const calls = Array.from({ length: 9 }, () => rig.client.list(RESOURCES.services, { resourceVersion: '0' }));
    await rig.clock.advance(2000);
    await Promise.all(calls);
    expect(rig.server.requests.map((r) => r.at - t0)).toEqual([0, 0, 0, 0, 0, 500, 1000, 1500, 2000]);
  });

  it('without a token bucket (Naive mode) nothing is throttled', async () => {
    const rig = makeRig({ rateLimit: null });
    const t0 = rig.clock.nowMs();
    await Promise.all(Array.from({ length: 50 }, () => rig.client.list(RESOURCES.pods)));
    expect(rig.server.requests.map((r) => r.at - t0)).toEqual(new Array<number>(50).fill(0));
  });

  it('retries 503 and 429 with backoff (and retries also take tokens), not 403', async () => {
    const rig = makeRig({ rateLimit: { qps: 100, burst: 100 } });
    let failures = 2;
    rig.server.faults.push(() => {
      if (failures-- <= 0) return undefined;
      return failures === 1 ? { status: 503 } : { status: 429, headers: { 'retry-after': '3' } };
    });
    const t0 = rig.clock.nowMs();
    const p = rig.client.list(RESOURCES.pods, { resourceVersion: '0' });
    await rig.clock.advance(10_000);
    await p;
    // attempt at 0 (503) → 1 s backoff → attempt at 1000 (429, Retry-After 3 s) → attempt at 4000.
    expect(rig.server.requests.map((r) => r.at - t0)).toEqual([0, 1000, 4000]);
    expect(await counterValue(rig.metrics.apiRetries)).toBe(2);
    expect(await counterValue(rig.metrics.apiRequests, { code: '503' })).toBe(1);
    expect(await counterValue(rig.metrics.apiRequests, { code: '429' })).toBe(1);

    rig.server.faults.length = 0;
    rig.server.faults.push(() => ({ status: 403 }));
    await expect(rig.client.list(RESOURCES.pods)).rejects.toBeInstanceOf(ApiError);
    expect(rig.server.count('list')).toBe(4);
  });

  it('refuses calls while the stop file is engaged: nothing reaches the server', async () => {
    const rig = makeRig();
    rig.fs.write(TEST_STOP_PATH, stopFileFor(TEST_REVISION));
    await rig.killSwitch.poll();
    await expect(rig.client.list(RESOURCES.pods)).rejects.toBeInstanceOf(StoppedError);
    await expect(rig.client.get(RESOURCES.nodes, { name: 'n' })).rejects.toBeInstanceOf(StoppedError);
    expect(rig.server.requests).toHaveLength(0);
    expect(await counterValue(rig.metrics.apiBlocked)).toBe(2);
    rig.fs.remove(TEST_STOP_PATH);
    await rig.killSwitch.poll();
    await rig.client.list(RESOURCES.pods);
    expect(rig.server.requests).toHaveLength(1);
  });

  it('aborts an in-flight request, a queued call and a backoff wait within one poll of the file appearing', async () => {
    const rig = makeRig({ rateLimit: { qps: 1, burst: 1 } });
    rig.killSwitch.start();
    await flushAsync();
    rig.server.faults.push((r) => (r.collection === '/api/v1/pods' ? { hang: true } : undefined));
    rig.server.faults.push((r) => (r.collection === '/api/v1/services' ? { status: 500 } : undefined));
    // t=0: pods takes the only token and hangs; services gets a token at 1000, fails with 500 and waits
    // 1 s of backoff; nodes is queued for the token of 2000.
    const hanging = rig.client.list(RESOURCES.pods).catch((e: unknown) => e);
    const failing = rig.client.list(RESOURCES.services).catch((e: unknown) => e);
    const queued = rig.client.list(RESOURCES.nodes).catch((e: unknown) => e);
    await rig.clock.advance(1400);
    expect(rig.server.requests.map((r) => `${r.verb} ${r.collection}`)).toEqual(['list /api/v1/pods', 'list /api/v1/services']);
    const seen = rig.server.requests.length;
    rig.fs.write(TEST_STOP_PATH, stopFileFor('*'));
    await rig.clock.advance(STOP_FILE_POLL_MS);
    expect(await hanging).toBeInstanceOf(StoppedError);
    expect(await queued).toBeInstanceOf(StoppedError);
    expect(await failing).toBeInstanceOf(StoppedError);
    await rig.clock.advance(60_000);
    expect(rig.server.requests.length).toBe(seen);
    expect(await counterValue(rig.metrics.apiRequests, { verb: 'list', resource: 'pods', code: 'aborted' })).toBe(1);
    await rig.killSwitch.close();
  });

  it('the shutdown signal cancels calls too', async () => {
    const rig = makeRig();
    rig.server.faults.push(() => ({ hang: true }));
    const p = rig.client.list(RESOURCES.pods).catch((e: unknown) => e);
    await flushAsync();
    rig.shutdown.abort(new Error('SIGTERM'));
    expect(((await p) as Error).message).toBe('SIGTERM');
  });

  describe('watch', () => {
    it('delivers events from the resourceVersion, tracks bookmarks and returns the resume point when the server closes', async () => {
      const rig = makeRig();
      rig.server.put('/api/v1/pods', pod('a', 'p1'));
      const rv = rig.server.resourceVersion;
      const events: WatchEvent[] = [];
      const done = rig.client.watch(RESOURCES.pods, { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: 300 }, (e) => events.push(e));
      await flushAsync();
      rig.server.put('/api/v1/pods', pod('a', 'p2'));
      rig.server.delete('/api/v1/pods', 'a', 'p1');
      rig.server.bookmark();
      await flushAsync();
      const afterBookmark = rig.server.resourceVersion;
      rig.server.closeWatches();
      const result = await done;
      expect(events.map((e) => `${e.type} ${e.object.metadata?.name}`)).toEqual(['ADDED p2', 'DELETED p1']);
      expect(result).toEqual({ resourceVersion: afterBookmark, events: 2, bookmarks: 1 });
      expect(rig.server.requests[0]?.query).toEqual({ watch: 'true', resourceVersion: rv, allowWatchBookmarks: 'true', timeoutSeconds: '300' });
      expect(await counterValue(rig.metrics.apiResponseBytes, { verb: 'watch' })).toBeGreaterThan(100);
    });

    it('rejects with a 410 ApiError when the resourceVersion is too old', async () => {
      const rig = makeRig();
      rig.server.put('/api/v1/pods', pod('a', 'p1'));
      const old = rig.server.resourceVersion;
      rig.server.put('/api/v1/pods', pod('a', 'p2'));
      rig.server.compact();
      await expect(rig.client.watch(RESOURCES.pods, { resourceVersion: old }, () => undefined)).rejects.toMatchObject({ code: 410 });
    });

    it('is aborted mid-stream by the kill switch', async () => {
      const rig = makeRig();
      rig.killSwitch.start();
      const p = rig.client.watch(RESOURCES.pods, { resourceVersion: rig.server.resourceVersion }, () => undefined).catch((e: unknown) => e);
      await rig.clock.advance(1000);
      expect(rig.server.openWatches).toBe(1);
      rig.fs.write(TEST_STOP_PATH, stopFileFor(TEST_REVISION));
      await rig.clock.advance(STOP_FILE_POLL_MS);
      expect(await p).toBeInstanceOf(StoppedError);
      expect(rig.server.openWatches).toBe(0);
      await rig.killSwitch.close();
    });

    it('an idle stream is cut by the watchdog as a network error', async () => {
      const rig = makeRig();
      const p = rig.client
        .watch(RESOURCES.pods, { resourceVersion: rig.server.resourceVersion, idleTimeoutMs: 60_000 }, () => undefined)
        .catch((e: unknown) => e);
      await rig.clock.advance(59_000);
      expect(rig.server.openWatches).toBe(1);
      await rig.clock.advance(1000);
      expect(await p).toBeInstanceOf(NetworkError);
      expect(rig.server.openWatches).toBe(0);
    });

    it('a throwing handler ends the watch with that error (never swallowed)', async () => {
      const rig = makeRig();
      rig.server.put('/api/v1/pods', pod('a', 'p1'));
      const p = rig.client.watch(RESOURCES.pods, { resourceVersion: '1' }, () => {
        throw new Error('handler bug');
      });
      await expect(p).rejects.toThrow('handler bug');
      expect(rig.server.openWatches).toBe(0);
    });
  });
});

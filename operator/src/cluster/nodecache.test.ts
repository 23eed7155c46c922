import { describe, expect, it } from '@jest/globals';
import type { V1Node } from '@kubernetes/client-node';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import { memoryLogger } from '../../../testkit/operator/util/logging.js';
import { REVISION_LABEL } from '../rollout/interfaces.js';
import { NodeCache, nodeInfoOf, olderResourceVersion, type NodeCacheSource } from './nodecache.js';
import type { WatchEvent } from './watch.js';

const node = (name: string, rv: string, labels: Record<string, string> = {}): V1Node => ({
  metadata: { name, resourceVersion: rv, labels },
  status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }], conditions: [{ type: 'Ready', status: 'True' }] },
});

describe('nodeInfoOf', () => {
  it('keeps name, the labels that matter, addresses and Ready', () => {
    expect(
      nodeInfoOf({
        metadata: {
          name: 'n1',
          labels: {
            [REVISION_LABEL]: 'abc',
            'kubernetes.io/hostname': 'n1',
            'topology.kubernetes.io/zone': 'eu-1a',
            'node.kubernetes.io/instance-type': 'm6i.2xlarge',
            'kubernetes.io/os': 'linux',
            team: 'x',
          },
        },
        status: {
          addresses: [
            { type: 'InternalIP', address: '10.1.0.1' },
            { type: 'Hostname', address: 'n1' },
          ],
          conditions: [
            { type: 'MemoryPressure', status: 'False' },
            { type: 'Ready', status: 'False' },
          ],
          images: [{ names: ['huge'], sizeBytes: 1 }],
        },
      }),
    ).toEqual({
      name: 'n1',
      labels: {
        [REVISION_LABEL]: 'abc',
        'kubernetes.io/hostname': 'n1',
        'topology.kubernetes.io/zone': 'eu-1a',
        'node.kubernetes.io/instance-type': 'm6i.2xlarge',
      },
      addresses: [
        { type: 'InternalIP', address: '10.1.0.1' },
        { type: 'Hostname', address: 'n1' },
      ],
      ready: false,
    });
    expect(nodeInfoOf({ metadata: { name: 'bare' } })).toEqual({ name: 'bare', labels: {}, addresses: [], ready: false });
  });
});

describe('olderResourceVersion', () => {
  it.each<[string | undefined, string | undefined, boolean]>([
    ['9', '10', true],
    ['10', '9', false],
    ['10', '10', false],
    ['123456789012345678901', '123456789012345678902', true],
    ['abc', '10', false],
    [undefined, '10', false],
  ])('%s < %s is %s', (a, b, want) => expect(olderResourceVersion(a, b)).toBe(want));
});

/** A scripted cluster: LIST answers from `nodes`; each WATCH is a stream the test drives. */
class ScriptedSource implements NodeCacheSource {
  lists = 0;
  watches: Array<{ rv: string; emit: (e: WatchEvent) => void; end: () => void; fail: (err: unknown) => void }> = [];
  listResult: () => Promise<{ items: V1Node[]; resourceVersion: string }> = async () => ({ items: [node('a', '1')], resourceVersion: '5' });
  watchFailure: Error | undefined;

  list(): Promise<{ items: V1Node[]; resourceVersion: string }> {
    this.lists++;
    return this.listResult();
  }

  watch(rv: string, signal: AbortSignal, onEvent: (e: WatchEvent) => void): Promise<void> {
    if (this.watchFailure !== undefined) {
      const err = this.watchFailure;
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      signal.addEventListener('abort', () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' })), { once: true });
      this.watches.push({ rv, emit: onEvent, end: resolve, fail: reject });
    });
  }
}

const names = (c: NodeCache) => c.nodes().then((ns) => ns.map((n) => `${n.name}${n.labels[REVISION_LABEL] ? `=${n.labels[REVISION_LABEL]}` : ''}`));

function setup() {
  const clock = new FakeClock();
  const src = new ScriptedSource();
  const { logger, entries } = memoryLogger();
  const cache = new NodeCache(src, { clock, logger, random: () => 0.5 });
  return { clock, src, cache, entries };
}

describe('NodeCache', () => {
  it('waits for the first LIST, shares it between callers, then watches from its resourceVersion', async () => {
    const { clock, src, cache } = setup();
    expect(cache.synced).toBe(false);
    const [a, b] = await Promise.all([names(cache), names(cache)]);
    expect(a).toEqual(['a']);
    expect(b).toEqual(['a']);
    expect(src.lists).toBe(1);
    expect(cache.synced).toBe(true);
    await clock.flush();
    expect(src.watches.map((w) => w.rv)).toEqual(['5']);
    await cache.stop();
  });

  it('applies ADDED, MODIFIED, DELETED and BOOKMARK events and resumes from the last resourceVersion without a LIST', async () => {
    const { clock, src, cache } = setup();
    await cache.nodes();
    await clock.flush();
    const w = src.watches[0]!;
    w.emit({ type: 'ADDED', object: node('b', '6') as never });
    w.emit({ type: 'MODIFIED', object: node('a', '7', { [REVISION_LABEL]: 'r1' }) as never });
    w.emit({ type: 'DELETED', object: node('b', '8') as never });
    w.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '20' } } });
    expect(await names(cache)).toEqual(['a=r1']);
    w.end();
    await clock.flush();
    expect(src.watches.map((x) => x.rv)).toEqual(['5', '20']);
    expect(src.lists).toBe(1);
    await cache.stop();
  });

  it('relists only after 410 Gone (as an answer or as an ERROR event)', async () => {
    const { clock, src, cache } = setup();
    await cache.nodes();
    await clock.flush();
    src.listResult = async () => ({ items: [node('a', '30'), node('z', '31')], resourceVersion: '40' });
    src.watches[0]!.fail(Object.assign(new Error('HTTP 410'), { statusCode: 410 }));
    await clock.flush();
    expect(src.lists).toBe(2);
    expect(src.watches.map((w) => w.rv)).toEqual(['5', '40']);
    expect(await names(cache)).toEqual(['a', 'z']);

    src.listResult = async () => ({ items: [node('a', '50')], resourceVersion: '60' });
    src.watches[1]!.emit({ type: 'ERROR', object: { kind: 'Status', code: 410, message: 'too old resource version' } });
    src.watches[1]!.end();
    await clock.flush();
    expect(src.lists).toBe(3);
    expect(src.watches.map((w) => w.rv)).toEqual(['5', '40', '60']);
    await cache.stop();
  });

  it('keeps serving the inventory while the watch fails, retrying with backoff and without LISTs', async () => {
    const { clock, src, cache, entries } = setup();
    await cache.nodes();
    await clock.flush();
    src.watchFailure = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    src.watches[0]!.fail(src.watchFailure);
    await clock.flush();
    // 1 s, 2 s, 4 s, ... (random 0.5 means no jitter either way).
    for (const ms of [1000, 2000, 4000, 8000, 16000, 30000, 30000]) {
      expect(clock.nextTimerInMs()).toBe(ms);
      await clock.advance(ms);
    }
    expect(await names(cache)).toEqual(['a']);
    expect(src.lists).toBe(1);
    expect(entries.some((e) => e.level === 'warn' && /list\/watch failed/.test(e.message))).toBe(true);
    src.watchFailure = undefined;
    await clock.advance(30000);
    expect(src.watches).toHaveLength(2);
    expect(src.watches[1]?.rv).toBe('5');
    await cache.stop();
  });

  it('a failed first LIST rejects the read and is retried by the loop', async () => {
    const { clock, src, cache } = setup();
    src.listResult = async () => {
      throw new Error('cluster east: list Nodes: timed out after 10000 ms');
    };
    await expect(cache.nodes()).rejects.toThrow(/timed out/);
    expect(cache.synced).toBe(false);
    src.listResult = async () => ({ items: [node('a', '1')], resourceVersion: '5' });
    await clock.advance(1000);
    expect(cache.synced).toBe(true);
    expect(await names(cache)).toEqual(['a']);
    await cache.stop();
  });

  it('a node we wrote is not undone by an older watch event', async () => {
    const { clock, src, cache } = setup();
    await cache.nodes();
    await clock.flush();
    cache.observe(node('a', '12', { [REVISION_LABEL]: 'new' }));
    src.watches[0]!.emit({ type: 'MODIFIED', object: node('a', '11', { [REVISION_LABEL]: 'old' }) as never });
    expect(await names(cache)).toEqual(['a=new']);
    src.watches[0]!.emit({ type: 'MODIFIED', object: node('a', '13') as never });
    expect(await names(cache)).toEqual(['a']);
    await cache.stop();
  });

  it('a server that closes every watch at once is backed off, not spun', async () => {
    const { clock, src, cache } = setup();
    await cache.nodes();
    await clock.flush();
    src.watches[0]!.end();
    await clock.flush();
    expect(src.watches).toHaveLength(1);
    expect(clock.nextTimerInMs()).toBe(1000);
    await clock.advance(1000);
    expect(src.watches).toHaveLength(2);
    await cache.stop();
  });

  it('stop ends the loop and later reads fail', async () => {
    const { clock, cache } = setup();
    await cache.nodes();
    await clock.flush();
    await cache.stop();
    expect(clock.pendingTimers()).toBe(0);
    await expect(cache.nodes()).rejects.toThrow(/stopped/);
  });
});

import { describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import { memoryLogger } from '../../../testkit/operator/util/logging.js';
import { FakeListWatch } from '../../../testkit/operator/controller/fakes.js';
import { Informer, objectKey, splitKey } from './informer.js';
import type { InformerEvent, InformerOptions } from './informer.js';

const obj = (name: string, rv: string, namespace = 'ns'): KubernetesObject => ({
  apiVersion: 'v1',
  kind: 'Thing',
  metadata: { name, namespace, resourceVersion: rv },
});

/**
 * An informer over scripted fake sources: each (re)start takes the next behaviour (default `ok`) and
 * lists the current `server` objects.
 */
function setup(opts: Partial<InformerOptions<KubernetesObject>> = {}, behaviours: Array<'ok' | 'fail' | 'hang' | 'manual'> = []) {
  const clock = new FakeClock(0);
  const { logger, entries } = memoryLogger();
  const server = new Map<string, KubernetesObject>();
  const sources: Array<FakeListWatch<KubernetesObject>> = [];
  const events: Array<Pick<InformerEvent<KubernetesObject>, 'type' | 'key'>> = [];
  const informer = new Informer<KubernetesObject>({
    name: 'things',
    clock,
    logger,
    random: () => 0,
    newSource: () => {
      const s = new FakeListWatch([...server.values()], behaviours.shift() ?? 'ok');
      sources.push(s);
      return s;
    },
    ...opts,
  });
  informer.addHandler((e) => events.push({ type: e.type, key: e.key }));
  const put = (o: KubernetesObject): void => void server.set(objectKey(o), o);
  const last = (): FakeListWatch<KubernetesObject> => sources.at(-1)!;
  return { clock, entries, server, sources, events, informer, put, last };
}

describe('objectKey/splitKey', () => {
  it('uses namespace/name, or name for cluster-scoped objects', () => {
    expect(objectKey(obj('a', '1', 'ns'))).toBe('ns/a');
    expect(objectKey({ metadata: { name: 'node-1' } })).toBe('node-1');
    expect(splitKey('ns/a')).toEqual({ namespace: 'ns', name: 'a' });
    expect(splitKey('node-1')).toEqual({ name: 'node-1' });
  });
});

describe('Informer', () => {
  it('lists into its cache, reports adds, and syncs', async () => {
    const t = setup();
    t.put(obj('a', '1'));
    t.put(obj('b', '1', 'other'));
    const synced = t.informer.waitForSync();
    t.informer.start();
    await synced;
    expect(t.informer.hasSynced()).toBe(true);
    expect(t.events).toEqual([
      { type: 'add', key: 'ns/a' },
      { type: 'add', key: 'other/b' },
    ]);
    expect(t.informer.get('ns/a')?.metadata?.resourceVersion).toBe('1');
    expect(t.informer.list('other').map(objectKey)).toEqual(['other/b']);
    expect(t.informer.keys().sort()).toEqual(['ns/a', 'other/b']);
    await t.informer.stop();
  });

  it('passes watch updates and deletes through, skipping unchanged objects', async () => {
    const t = setup();
    t.informer.start();
    await t.clock.flush();
    t.last().emit('add', obj('a', '1'));
    t.last().emit('update', obj('a', '2'));
    t.last().emit('update', obj('a', '2'));
    t.last().emit('delete', obj('a', '2'));
    t.last().emit('delete', obj('never-seen', '1'));
    expect(t.events).toEqual([
      { type: 'add', key: 'ns/a' },
      { type: 'update', key: 'ns/a' },
      { type: 'delete', key: 'ns/a' },
    ]);
    expect(t.informer.get('ns/a')).toBeUndefined();
    await t.informer.stop();
  });

  it('restarts after an error with exponential backoff, on a fresh source, and reconciles the cache', async () => {
    const t = setup({ restartBaseMs: 1000 }, ['ok', 'fail', 'ok']);
    t.put(obj('keep', '1'));
    t.put(obj('gone', '1'));
    t.put(obj('changed', '1'));
    t.informer.start();
    await t.clock.flush();
    t.events.length = 0;

    // While the watch is down the world changes; the watch fails.
    t.server.delete('ns/gone');
    t.put(obj('changed', '2'));
    t.put(obj('new', '1'));
    t.last().fail(new Error('watch failed'));
    expect(t.sources).toHaveLength(1);
    await t.clock.advance(999);
    expect(t.sources).toHaveLength(1);
    await t.clock.advance(1);
    // Second source: its list fails, next backoff is doubled.
    expect(t.sources).toHaveLength(2);
    await t.clock.advance(1999);
    expect(t.sources).toHaveLength(2);
    await t.clock.advance(1);
    expect(t.sources).toHaveLength(3);
    await t.clock.flush();

    expect(t.events).toEqual(
      expect.arrayContaining([
        { type: 'update', key: 'ns/changed' },
        { type: 'add', key: 'ns/new' },
        { type: 'delete', key: 'ns/gone' },
      ]),
    );
    expect(t.events).toHaveLength(3);
    expect(t.informer.keys().sort()).toEqual(['ns/changed', 'ns/keep', 'ns/new']);
    // Old sources were stopped; their AbortErrors did not trigger more restarts.
    expect(t.sources.slice(0, 2).every((s) => s.stopped)).toBe(true);
    expect(t.informer.restarts()).toBe(2);
    expect(t.entries.filter((e) => e.message.includes('restarting after backoff'))).toHaveLength(2);

    // A successful sync resets the backoff.
    t.last().fail(new Error('again'));
    await t.clock.advance(1000);
    expect(t.sources).toHaveLength(4);
    await t.informer.stop();
  });

  it('restarts a watch that went silent, but not one that keeps reconnecting', async () => {
    const t = setup({ watchdogSeconds: 120 });
    t.informer.start();
    await t.clock.flush();
    for (let i = 0; i < 10; i++) {
      await t.clock.advance(30_000);
      t.last().reconnect();
    }
    expect(t.sources).toHaveLength(1);
    await t.clock.advance(120_000);
    expect(t.sources).toHaveLength(2);
    expect(t.sources[0]!.stopped).toBe(true);
    expect(t.entries.some((e) => e.message === 'no list/watch activity; restarting')).toBe(true);
    await t.informer.stop();
  });

  it('restarts a list that hangs and syncs on the next source', async () => {
    const t = setup({ watchdogSeconds: 60 }, ['hang']);
    t.put(obj('a', '1'));
    t.informer.start();
    await t.clock.advance(59_000);
    expect(t.informer.hasSynced()).toBe(false);
    await t.clock.advance(15_000);
    expect(t.sources).toHaveLength(2);
    expect(t.informer.hasSynced()).toBe(true);
    await t.informer.stop();
  });

  it('stops a source again when a start that was in flight at stop() completes (client-node opens the watch late)', async () => {
    const t = setup({ watchdogSeconds: 60 }, ['manual']);
    t.put(obj('a', '1'));
    t.informer.start();
    const slow = t.last();
    // The list is slow; the watchdog replaces the source while its start() is still running.
    await t.clock.advance(60_000);
    expect(t.sources).toHaveLength(2);
    expect(slow.stopCalls).toBe(1);
    slow.finishStart();
    await t.clock.flush();
    expect(slow.stopCalls).toBe(2);
    // Only the current source's list reached the handlers, not the late one.
    expect(t.events).toEqual([{ type: 'add', key: 'ns/a' }]);
    await t.informer.stop();
  });

  it('relists every resync period and reports every cached object', async () => {
    const t = setup({ resyncSeconds: 600, watchdogSeconds: 0 });
    t.put(obj('a', '1'));
    t.put(obj('b', '1'));
    t.informer.start();
    await t.clock.flush();
    t.events.length = 0;
    await t.clock.advance(600_000);
    expect(t.sources).toHaveLength(2);
    expect(t.events).toEqual([
      { type: 'resync', key: 'ns/a' },
      { type: 'resync', key: 'ns/b' },
    ]);
    await t.clock.advance(600_000);
    expect(t.sources).toHaveLength(3);
    expect(t.events).toHaveLength(4);
    await t.informer.stop();
  });

  it('isolates a throwing handler', async () => {
    const t = setup();
    t.informer.addHandler(() => {
      throw new Error('handler bug');
    });
    const seen: string[] = [];
    t.informer.addHandler((e) => seen.push(e.key));
    t.put(obj('a', '1'));
    t.informer.start();
    await t.clock.flush();
    expect(seen).toEqual(['ns/a']);
    expect(t.informer.get('ns/a')).toBeDefined();
    expect(t.entries.filter((e) => e.level === 'error' && e.message === 'informer event handler threw')).toHaveLength(1);
    await t.informer.stop();
  });

  it('stops cleanly: ignores the AbortError of stop(), delivers nothing more, leaves no timers', async () => {
    const t = setup();
    t.informer.start();
    await t.clock.flush();
    const source = t.last();
    await t.informer.stop();
    expect(source.stopped).toBe(true);
    source.emit('add', obj('late', '1'));
    expect(t.events).toEqual([]);
    expect(t.clock.pendingTimers()).toBe(0);
    expect(t.entries.some((e) => e.level === 'warn')).toBe(false);
    await t.informer.stop();
  });

  it('waitForSync rejects when its signal aborts first', async () => {
    const t = setup({}, ['hang']);
    t.informer.start();
    const ac = new AbortController();
    const waiting = t.informer.waitForSync(ac.signal);
    ac.abort(new Error('gave up'));
    await expect(waiting).rejects.toThrow('gave up');
    await t.informer.stop();
  });
});

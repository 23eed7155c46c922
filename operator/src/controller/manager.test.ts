import { describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import { memoryLogger } from '../../../testkit/operator/util/logging.js';
import { FakeLeaseClient, FakeLeaseStore, apiError } from '../../../testkit/operator/controller/fakes.js';
import { EventLoopMonitor, Manager, runUntilStopped } from './manager.js';
import type { DelayHistogram, ManagedInformer, ManagerOptions } from './manager.js';
import { WorkQueue } from './workqueue.js';
import type { ReconcileFn } from './workqueue.js';

/** An informer whose sync the test controls. */
class ControlledInformer implements ManagedInformer {
  readonly name = 'things';
  started = false;
  stopped = false;
  private synced = false;
  private waiters: Array<() => void> = [];
  start(): void {
    this.started = true;
  }
  async stop(): Promise<void> {
    this.stopped = true;
  }
  hasSynced(): boolean {
    return this.synced;
  }
  sync(): void {
    this.synced = true;
    for (const w of this.waiters.splice(0)) w();
  }
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      this.waiters.push(resolve);
    });
  }
}

const LEASE = { namespace: 'operators', name: 'tro-leader' };

function replica(id: string, clock: FakeClock, reconcile: ReconcileFn, extra: Partial<ManagerOptions> & { store?: FakeLeaseStore } = {}) {
  const { logger, entries } = memoryLogger();
  const informer = new ControlledInformer();
  const queue = new WorkQueue({ clock, name: 'things' });
  const leaseClient = extra.store ? new FakeLeaseClient(extra.store) : undefined;
  const manager = new Manager({
    logger,
    clock,
    healthPort: 0,
    livenessCheck: () => ({ ok: true, message: 'ok' }),
    leaderElection: leaseClient && { ...LEASE, identity: id, leaseClient, random: () => 0 },
    ...extra,
  });
  manager.addInformer(informer);
  manager.addController({ name: 'things', queue, reconcile, workers: 2 });
  const url = (path: string): string => `http://127.0.0.1:${manager.addresses()[0]!.port}${path}`;
  const get = async (path: string): Promise<{ status: number; body: string }> => {
    const res = await fetch(url(path));
    return { status: res.status, body: await res.text() };
  };
  return { manager, informer, queue, entries, leaseClient, get };
}

describe('Manager', () => {
  it('without election: ready after sync, reconciles queued keys, exposes metrics, stops with code 0', async () => {
    const clock = new FakeClock(0);
    const seen: string[] = [];
    const r = replica('solo', clock, async (key) => void seen.push(key), { metricsPort: 0 });
    await r.manager.start();
    expect(r.informer.started).toBe(true);
    expect(await r.get('/readyz')).toEqual({ status: 503, body: 'caches not synced: things\n' });
    expect((await r.get('/healthz')).status).toBe(200);

    r.queue.add('ns/a');
    await clock.flush();
    expect(seen).toEqual([]);
    r.informer.sync();
    await clock.flush();
    expect(seen).toEqual(['ns/a']);
    expect(await r.get('/readyz')).toEqual({ status: 200, body: 'ok\n' });
    expect(r.manager.isLeader()).toBe(true);

    // Metrics live on their own port.
    const metricsPort = r.manager.addresses()[1]!.port;
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(text).toContain('tro_reconcile_total{result="success"} 1');
    expect(text).toContain('tro_workqueue_depth 0');
    expect((await r.get('/metrics')).status).toBe(404);

    const exit = await r.manager.stop();
    expect(exit).toEqual({ code: 0, reason: 'stop requested' });
    expect(await r.manager.done()).toEqual(exit);
    expect(r.informer.stopped).toBe(true);
    await expect(fetch(`http://127.0.0.1:${metricsPort}/metrics`)).rejects.toThrow();
  });

  it('with two replicas only the leader reconciles; the follower is ready too and takes over on release', async () => {
    const clock = new FakeClock(0);
    const store = new FakeLeaseStore();
    const byA: string[] = [];
    const byB: string[] = [];
    const a = replica('a', clock, async (key) => void byA.push(key), { store, metricsPort: 0, healthPort: 0 });
    await a.manager.start();
    await clock.flush();
    const b = replica('b', clock, async (key) => void byB.push(key), { store });
    await b.manager.start();
    a.informer.sync();
    b.informer.sync();
    await clock.advance(4000);
    expect(a.manager.isLeader()).toBe(true);
    expect(b.manager.isLeader()).toBe(false);
    expect((await b.get('/readyz')).status).toBe(200);

    // Informer handlers enqueue on both replicas; only the leader works.
    a.queue.add('ns/x');
    b.queue.add('ns/x');
    await clock.flush();
    expect(byA).toEqual(['ns/x']);
    expect(byB).toEqual([]);
    expect(await b.manager.metrics.metrics()).toContain('tro_leader 0');
    expect(await a.manager.metrics.metrics()).toContain('tro_leader 1');

    const exit = await a.manager.stop('rolling update');
    expect(exit.code).toBe(0);
    expect(store.peek(LEASE.namespace, LEASE.name)!.holderIdentity).toBe('');
    await clock.advance(2000);
    expect(b.manager.isLeader()).toBe(true);
    // The follower's queue kept the key; it reconciles it once it leads.
    expect(byB).toEqual(['ns/x']);
    await b.manager.stop();
  });

  it('exits with code 1 when it loses leadership, after aborting in-flight work', async () => {
    const clock = new FakeClock(0);
    const store = new FakeLeaseStore();
    let signalSeen: AbortSignal | undefined;
    const r = replica(
      'a',
      clock,
      async (_key, signal) => {
        signalSeen = signal;
        // A reconcile that stops as soon as it is told to.
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      },
      { store },
    );
    await r.manager.start();
    r.informer.sync();
    await clock.flush();
    r.queue.add('ns/slow');
    await clock.flush();
    expect(signalSeen?.aborted).toBe(false);

    r.leaseClient!.failWith = apiError(503, 'ServiceUnavailable');
    await clock.advance(15_000);
    const exit = await r.manager.done();
    expect(exit).toEqual({ code: 1, reason: 'lost leadership' });
    expect(signalSeen?.aborted).toBe(true);
    expect(r.manager.isLeader()).toBe(false);
    expect(r.entries.some((e) => e.level === 'error' && e.message.startsWith('lost leadership'))).toBe(true);
  });

  it('keeps the lease when in-flight reconciles overrun the shutdown deadline, after aborting them at once', async () => {
    const clock = new FakeClock(0);
    const store = new FakeLeaseStore();
    let signalSeen: AbortSignal | undefined;
    const r = replica(
      'a',
      clock,
      async (_key, signal) => {
        signalSeen = signal;
        // A straggler that ignores its signal and never ends.
        await new Promise<void>(() => undefined);
      },
      { store, shutdownTimeoutMs: 5000 },
    );
    await r.manager.start();
    r.informer.sync();
    await clock.flush();
    r.queue.add('ns/stuck');
    await clock.flush();

    const stopping = r.manager.stop('SIGTERM');
    let stopped = false;
    void stopping.then(() => (stopped = true));
    await clock.flush();
    expect((await r.get('/readyz')).status).toBe(503);
    // Told to stop acting at once, not at the deadline.
    expect(signalSeen?.aborted).toBe(true);
    await clock.advance(4999);
    expect(stopped).toBe(false);
    await clock.advance(1);
    expect((await stopping).code).toBe(0);
    // Not released: the successor waits for expiry instead of overlapping a straggler.
    expect(store.peek(LEASE.namespace, LEASE.name)!.holderIdentity).toBe('a');
    expect(r.entries.some((e) => e.message.startsWith('in-flight reconciles did not finish'))).toBe(true);
  });

  it('lets in-flight reconciles finish before releasing the lease', async () => {
    const clock = new FakeClock(0);
    const store = new FakeLeaseStore();
    let finish!: () => void;
    let holderWhenFinished: string | undefined;
    const r = replica(
      'a',
      clock,
      async () => {
        await new Promise<void>((resolve) => (finish = resolve));
        holderWhenFinished = store.peek(LEASE.namespace, LEASE.name)!.holderIdentity;
      },
      { store },
    );
    await r.manager.start();
    r.informer.sync();
    await clock.flush();
    r.queue.add('ns/busy');
    await clock.flush();
    const stopping = r.manager.stop();
    await clock.advance(3000);
    expect(store.peek(LEASE.namespace, LEASE.name)!.holderIdentity).toBe('a');
    finish();
    expect((await stopping).code).toBe(0);
    expect(holderWhenFinished).toBe('a');
    expect(store.peek(LEASE.namespace, LEASE.name)!.holderIdentity).toBe('');
  });

  it('reports liveness failures on /healthz', async () => {
    const clock = new FakeClock(0);
    let live = true;
    const r = replica('solo', clock, async () => undefined, {
      livenessCheck: () => (live ? { ok: true, message: 'ok' } : { ok: false, message: 'event loop blocked' }),
    });
    await r.manager.start();
    expect((await r.get('/healthz')).status).toBe(200);
    live = false;
    expect(await r.get('/healthz')).toEqual({ status: 503, body: 'event loop blocked\n' });
    expect((await r.get('/nope')).status).toBe(404);
    await r.manager.stop();
  });

  it('refuses registration after start and a second start', async () => {
    const clock = new FakeClock(0);
    const r = replica('solo', clock, async () => undefined, { healthPort: undefined });
    await r.manager.start();
    expect(() => r.manager.addInformer(new ControlledInformer())).toThrow('after start');
    await expect(r.manager.start()).rejects.toThrow('already started');
    await r.manager.stop();
  });
});

describe('EventLoopMonitor', () => {
  it('fails when the loop was blocked longer than the threshold since the last check', () => {
    const h: DelayHistogram & { max: number } = {
      max: 0,
      reset() {
        this.max = 0;
      },
      enable: () => true,
      disable: () => true,
    };
    const m = new EventLoopMonitor(1000, h);
    m.start();
    h.max = 200e6;
    expect(m.check().ok).toBe(true);
    h.max = 3000e6;
    expect(m.check()).toEqual({ ok: false, message: 'event loop blocked for 3000 ms (limit 1000 ms)' });
    expect(m.check().ok).toBe(true);
    m.stop();
  });
});

describe('runUntilStopped', () => {
  it('stops gracefully on SIGTERM and exits with the manager code; a second signal exits at once', async () => {
    const clock = new FakeClock(0);
    const r = replica('solo', clock, async () => undefined, { healthPort: undefined });
    const { logger } = memoryLogger();
    const proc = new EventEmitter();
    const exits: number[] = [];
    const running = runUntilStopped(r.manager, logger, proc, (code) => exits.push(code));
    await clock.flush();
    proc.emit('SIGTERM');
    proc.emit('SIGINT');
    const result = await running;
    expect(result).toEqual({ code: 0, reason: 'received SIGTERM' });
    expect(exits).toEqual([1, 0]);
    expect(proc.listenerCount('SIGTERM')).toBe(0);
  });

  it('exits 1 when the manager cannot start', async () => {
    const clock = new FakeClock(0);
    const first = replica('one', clock, async () => undefined);
    await first.manager.start();
    const port = first.manager.addresses()[0]!.port;
    const second = replica('two', clock, async () => undefined, { healthPort: port, host: '127.0.0.1' });
    const exits: number[] = [];
    const result = await runUntilStopped(second.manager, memoryLogger().logger, new EventEmitter(), (code) => exits.push(code));
    expect(result.code).toBe(1);
    expect(result.reason).toContain('start failed');
    expect(exits).toEqual([1]);
    await first.manager.stop();
  });
});

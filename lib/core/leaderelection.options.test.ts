import { describe, expect, it } from '@jest/globals';
import { FakeLeaseClient, leaseApiError } from '../../testkit/core/fakelease.js';
import { candidate, memoryLogger, NAME, NS, world } from '../../testkit/core/electorworld.js';
import { LeaderElector, isLeaseConflict } from './leaderelection.js';

describe('LeaderElector options the collector uses', () => {
  it('renews with a GET and a PUT when renewFromLastWrite is false', async () => {
    const { clock, store, timeline } = world();
    const a = candidate('a', clock, store, timeline, { renewFromLastWrite: false });
    const run = a.elector.run();
    await clock.flush();
    await clock.advance(4000);
    expect(a.client.calls).toEqual(['get', 'create', 'get', 'replace', 'get', 'replace']);
    expect(store.peek(NS, NAME)).toMatchObject({ holderIdentity: 'a', renewTime: new Date(4000), acquireTime: new Date(0), leaseTransitions: 0 });
    await a.elector.stop();
    await run;
  });

  it('with awaitLeaderWork, releases only after the leader work has ended', async () => {
    const { clock, store } = world();
    const { logger } = memoryLogger();
    let finishWork = (): void => undefined;
    const client = new FakeLeaseClient(store);
    const elector = new LeaderElector({
      namespace: NS,
      name: NAME,
      identity: 'a',
      clock,
      leaseClient: client,
      logger,
      awaitLeaderWork: true,
      callbacks: {
        // Leader work that needs a moment after its signal aborts (closing watches, say).
        onStartedLeading: (signal) => new Promise<void>((resolve) => signal.addEventListener('abort', () => (finishWork = resolve), { once: true })),
        onStoppedLeading: () => undefined,
      },
    });
    const run = elector.run();
    await clock.flush();
    const stopping = elector.stop();
    await clock.flush();
    expect(store.peek(NS, NAME)!.holderIdentity).toBe('a');
    finishWork();
    await stopping;
    await run;
    expect(store.peek(NS, NAME)!.holderIdentity).toBe('');
  });

  it('bounds the release by releaseTimeoutMs', async () => {
    const { clock, store, timeline } = world();
    const a = candidate('a', clock, store, timeline, { releaseTimeoutMs: 2000 });
    const run = a.elector.run();
    await clock.flush();
    a.client.hang = true;
    let stopped = false;
    const stopping = a.elector.stop().then(() => (stopped = true));
    await clock.advance(1999);
    expect(stopped).toBe(false);
    await clock.advance(1);
    await stopping;
    await run;
    expect(stopped).toBe(true);
  });

  it('does not treat leader work that rejects after its signal aborted as a failure', async () => {
    const { clock, store } = world();
    const { logger, entries } = memoryLogger();
    const elector = new LeaderElector({
      namespace: NS,
      name: NAME,
      identity: 'a',
      clock,
      leaseClient: new FakeLeaseClient(store),
      logger,
      callbacks: {
        onStartedLeading: (signal) =>
          new Promise<void>((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('watch aborted')), { once: true })),
        onStoppedLeading: () => undefined,
      },
    });
    const run = elector.run();
    await clock.flush();
    await elector.stop();
    await run;
    await clock.flush();
    expect(entries.some((e) => e.level === 'error')).toBe(false);
    expect(store.peek(NS, NAME)!.holderIdentity).toBe('');
  });

  it('reports the observed holder, and makes single attempts outside run()', async () => {
    const { clock, store, timeline } = world();
    const a = candidate('a', clock, store, timeline);
    expect(a.elector.observedHolder()).toBeUndefined();
    await expect(a.elector.tryAcquireOrRenew()).resolves.toBe(true);
    expect(a.elector.observedHolder()).toBe('a');
    const b = candidate('b', clock, store, timeline);
    await expect(b.elector.tryAcquireOrRenew()).resolves.toBe(false);
    expect(b.elector.observedHolder()).toBe('a');
    // Released by its holder: free at once, and the observed holder is '' until b writes.
    store.set({ ...store.peek(NS, NAME)!, holderIdentity: '' });
    const c = candidate('c', clock, store, timeline);
    await c.elector.tryAcquireOrRenew();
    expect(c.elector.observedHolder()).toBe('c');
    expect(store.peek(NS, NAME)).toMatchObject({ holderIdentity: 'c', leaseTransitions: 1 });
  });

  it('logs with the lease and identity fields through a logger without children', async () => {
    const { clock, store } = world();
    const { logger, entries } = memoryLogger();
    const elector = new LeaderElector({
      namespace: NS,
      name: NAME,
      identity: 'a',
      clock,
      leaseClient: new FakeLeaseClient(store),
      logger,
      callbacks: { onStartedLeading: () => undefined, onStoppedLeading: () => undefined },
    });
    const run = elector.run();
    await clock.flush();
    expect(entries.find((e) => e.message === 'became leader')?.meta).toEqual({ component: 'leader-election', lease: `${NS}/${NAME}`, identity: 'a' });
    await elector.stop();
    await run;
    expect(entries.some((e) => e.message === 'released the lease')).toBe(true);
  });

  it('rejects inconsistent timings with a RangeError', () => {
    const { clock, store } = world();
    const base = {
      namespace: NS,
      name: NAME,
      identity: 'x',
      clock,
      leaseClient: new FakeLeaseClient(store),
      logger: memoryLogger().logger,
      callbacks: { onStartedLeading: () => undefined, onStoppedLeading: () => undefined },
    };
    expect(() => new LeaderElector({ ...base, leaseDurationSeconds: 5, renewDeadlineSeconds: 10 })).toThrow(RangeError);
  });
});

describe('isLeaseConflict', () => {
  it('finds status 409 as code or statusCode, also in a cause, and nothing else', () => {
    expect(isLeaseConflict(leaseApiError(409, 'Conflict'))).toBe(true);
    expect(isLeaseConflict(new Error('replace Lease', { cause: Object.assign(new Error('x'), { statusCode: 409 }) }))).toBe(true);
    expect(isLeaseConflict(leaseApiError(503, 'ServiceUnavailable'))).toBe(false);
    expect(isLeaseConflict(new DOMException('timed out', 'TimeoutError'))).toBe(false);
    expect(isLeaseConflict(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBe(false);
    expect(isLeaseConflict(undefined)).toBe(false);
  });
});

import { describe, expect, it } from '@jest/globals';
import { FakeLeaseClient, leaseApiError } from '../../testkit/core/fakelease.js';
import { candidate, memoryLogger, NAME, NS, world } from '../../testkit/core/electorworld.js';
import { LeaderElector, defaultIdentity } from './leaderelection.js';

describe('LeaderElector', () => {
  it('creates an absent lease, leads, and renews every retry period with one request', async () => {
    const { clock, store, timeline } = world();
    const a = candidate('a', clock, store, timeline);
    const done = a.elector.run();
    await clock.flush();
    expect(a.elector.isLeader()).toBe(true);
    expect(timeline).toEqual([
      { t: 0, who: 'a', what: 'sees a' },
      { t: 0, who: 'a', what: 'started' },
    ]);
    const lease = store.peek(NS, NAME)!;
    expect(lease).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 15, leaseTransitions: 0 });
    expect(a.client.calls).toEqual(['get', 'create']);

    await clock.advance(6000);
    expect(store.peek(NS, NAME)!.renewTime!.getTime()).toBe(6000);
    expect(a.client.calls).toEqual(['get', 'create', 'replace', 'replace', 'replace']);
    expect(a.state.signal!.aborted).toBe(false);
    await a.elector.stop();
    await done;
  });

  it('only one of two candidates leads; the other takes over after the leader stops renewing', async () => {
    const { clock, store, timeline } = world();
    const a = candidate('a', clock, store, timeline);
    const b = candidate('b', clock, store, timeline);
    const runA = a.elector.run();
    await clock.flush();
    const runB = b.elector.run();
    await clock.advance(30_000);
    expect(a.elector.isLeader()).toBe(true);
    expect(b.elector.isLeader()).toBe(false);
    expect(b.elector.getLeader()).toBe('a');

    // The leader's API server connection breaks: it cannot renew any more.
    a.client.failWith = leaseApiError(503, 'ServiceUnavailable');
    const lastRenew = store.peek(NS, NAME)!.renewTime!.getTime();
    await clock.advance(30_000);
    await runA;

    const aStopped = timeline.find((e) => e.who === 'a' && e.what === 'stopped')!;
    const bStarted = timeline.find((e) => e.who === 'b' && e.what === 'started')!;
    // The old leader gives up within the renew deadline, before the lease may be taken.
    expect(aStopped.t).toBeLessThanOrEqual(lastRenew + 10_000);
    expect(a.state.signal!.aborted).toBe(true);
    // The follower waits a full lease duration after the last change it saw.
    expect(bStarted.t).toBeGreaterThanOrEqual(lastRenew + 15_000);
    expect(bStarted.t).toBeGreaterThan(aStopped.t);
    expect(b.elector.isLeader()).toBe(true);
    expect(store.peek(NS, NAME)).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    expect(a.entries.some((e) => e.level === 'error' && e.message === 'stopped leading: lost the lease')).toBe(true);
    await b.elector.stop();
    await runB;
  });

  it('takes over a lease left by a dead holder only after a full lease duration of local observation', async () => {
    const { clock, store, timeline } = world();
    // Written long ago by a process that is gone; its renewTime is ancient, but remote clocks are not
    // trusted: expiry counts from when this candidate first saw the record.
    store.set({ namespace: NS, name: NAME, holderIdentity: 'dead', leaseDurationSeconds: 15, renewTime: new Date(0), leaseTransitions: 4 });
    await clock.advance(3_600_000);
    const b = candidate('b', clock, store, timeline);
    const run = b.elector.run();
    await clock.advance(14_000);
    expect(b.elector.isLeader()).toBe(false);
    await clock.advance(4_000);
    expect(b.elector.isLeader()).toBe(true);
    expect(store.peek(NS, NAME)).toMatchObject({ holderIdentity: 'b', leaseTransitions: 5 });
    expect(timeline.map((e) => e.what)).toEqual(['sees dead', 'sees b', 'started']);
    await b.elector.stop();
    await run;
  });

  it('treats a 409 as a lost race and does not lead', async () => {
    const { clock, store, timeline } = world();
    store.set({ namespace: NS, name: NAME, holderIdentity: '', leaseDurationSeconds: 1, leaseTransitions: 2 });
    const b = candidate('b', clock, store, timeline);
    // Between b's read and b's write, c takes the released lease.
    b.client.beforeCall = (op) => {
      if (op === 'replace' && store.peek(NS, NAME)!.holderIdentity === '') {
        store.set({ ...store.peek(NS, NAME)!, holderIdentity: 'c', leaseDurationSeconds: 15, renewTime: clock.now() });
      }
    };
    const run = b.elector.run();
    await clock.flush();
    expect(b.elector.isLeader()).toBe(false);
    expect(b.entries.some((e) => e.message === 'lost a lease write race (409)')).toBe(true);
    await clock.advance(10_000);
    expect(b.elector.isLeader()).toBe(false);
    expect(b.elector.getLeader()).toBe('c');
    expect(store.peek(NS, NAME)!.holderIdentity).toBe('c');
    await b.elector.stop();
    await run;
  });

  it('stops leading at the renew deadline when requests hang', async () => {
    const { clock, store, timeline } = world();
    const a = candidate('a', clock, store, timeline);
    const run = a.elector.run();
    await clock.flush();
    await clock.advance(4000);
    const lastRenew = store.peek(NS, NAME)!.renewTime!.getTime();
    a.client.hang = true;
    await clock.advance(20_000);
    await run;
    const stopped = timeline.find((e) => e.what === 'stopped')!;
    expect(stopped.t).toBe(lastRenew + 10_000);
    expect(a.state.signal!.aborted).toBe(true);
    expect(String(a.state.signal!.reason)).toContain('failed to renew');
    expect(a.elector.isLeader()).toBe(false);
  });

  it('stops leading at once when another holder shows up', async () => {
    const { clock, store, timeline } = world();
    const a = candidate('a', clock, store, timeline);
    const run = a.elector.run();
    await clock.flush();
    store.set({ ...store.peek(NS, NAME)!, holderIdentity: 'intruder', renewTime: clock.now() });
    await clock.advance(2000);
    await run;
    expect(timeline.find((e) => e.what === 'stopped')!.t).toBe(2000);
    expect(String(a.state.signal!.reason)).toContain('lease taken by intruder');
    // It does not release a lease that is not its own.
    expect(store.peek(NS, NAME)!.holderIdentity).toBe('intruder');
  });

  it('releases on stop, after aborting the leading signal, so a follower takes over at once', async () => {
    const { clock, store, timeline } = world();
    const a = candidate('a', clock, store, timeline);
    const b = candidate('b', clock, store, timeline);
    const runA = a.elector.run();
    await clock.flush();
    const runB = b.elector.run();
    await clock.advance(10_000);

    let abortedBeforeRelease: boolean | undefined;
    a.client.beforeCall = (op) => {
      if (op === 'replace') abortedBeforeRelease ??= a.state.signal!.aborted;
    };
    const stopAt = clock.nowMs();
    await a.elector.stop();
    await runA;
    expect(abortedBeforeRelease).toBe(true);
    expect(store.peek(NS, NAME)).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
    expect(store.writes.at(-1)!.op).toBe('replace');

    await clock.advance(2000);
    expect(b.elector.isLeader()).toBe(true);
    const bStarted = timeline.find((e) => e.who === 'b' && e.what === 'started')!;
    expect(bStarted.t - stopAt).toBeLessThanOrEqual(2000);
    await b.elector.stop();
    await runB;
  });

  it('gives up a release whose request hangs after the request timeout, so stop() stays bounded', async () => {
    const { clock, store, timeline } = world();
    const a = candidate('a', clock, store, timeline);
    const run = a.elector.run();
    await clock.flush();
    expect(a.elector.isLeader()).toBe(true);
    // The API server stops answering just as the leader leaves.
    a.client.hang = true;
    let stopped = false;
    const stopping = a.elector.stop().then(() => (stopped = true));
    await clock.advance(4999);
    expect(stopped).toBe(false);
    // Default request timeout: half the 10 s renew deadline.
    await clock.advance(1);
    await stopping;
    await run;
    expect(store.peek(NS, NAME)!.holderIdentity).toBe('a');
    expect(a.entries.some((e) => e.level === 'warn' && e.message.startsWith('could not release the lease'))).toBe(true);
    expect(timeline.at(-1)).toMatchObject({ who: 'a', what: 'stopped' });
  });

  it('keeps the lease on stop({ release: false })', async () => {
    const { clock, store, timeline } = world();
    const a = candidate('a', clock, store, timeline);
    const run = a.elector.run();
    await clock.flush();
    await a.elector.stop({ release: false });
    await run;
    expect(store.peek(NS, NAME)!.holderIdentity).toBe('a');
    expect(timeline.at(-1)).toMatchObject({ who: 'a', what: 'stopped' });
  });

  it('steps down and releases when the leader work fails', async () => {
    const { clock, store } = world();
    const { logger, entries } = memoryLogger();
    let stopped = false;
    const elector = new LeaderElector({
      namespace: NS,
      name: NAME,
      identity: 'a',
      clock,
      leaseClient: new FakeLeaseClient(store),
      logger,
      callbacks: {
        onStartedLeading: async () => {
          throw new Error('cannot start workers');
        },
        onStoppedLeading: () => (stopped = true),
      },
    });
    await elector.run();
    expect(stopped).toBe(true);
    expect(store.peek(NS, NAME)!.holderIdentity).toBe('');
    expect(entries.some((e) => e.level === 'error' && e.message === 'leader work failed; stepping down')).toBe(true);
  });

  it('stops campaigning without ever leading', async () => {
    const { clock, store, timeline } = world();
    store.set({ namespace: NS, name: NAME, holderIdentity: 'other', leaseDurationSeconds: 15, renewTime: clock.now() });
    const b = candidate('b', clock, store, timeline);
    const run = b.elector.run();
    await clock.advance(5000);
    await b.elector.stop();
    await run;
    expect(timeline.map((e) => e.what)).toEqual(['sees other']);
  });

  it('validates its timing invariants', () => {
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
    expect(() => new LeaderElector({ ...base, leaseDurationSeconds: 10, renewDeadlineSeconds: 10 })).toThrow('leaseDurationSeconds');
    expect(() => new LeaderElector({ ...base, renewDeadlineSeconds: 2, retryPeriodSeconds: 2 })).toThrow('renewDeadlineSeconds');
    expect(() => new LeaderElector({ ...base, identity: '' })).toThrow('identity');
    expect(defaultIdentity('pod-1')).toMatch(/^pod-1_[0-9a-f]{8}$/);
  });
});

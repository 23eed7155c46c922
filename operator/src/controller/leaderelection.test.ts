import { describe, expect, it } from '@jest/globals';
import type { V1Lease } from '@kubernetes/client-node';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import { memoryLogger } from '../../../testkit/operator/util/logging.js';
import { FakeLeaseClient, FakeLeaseStore, apiError } from '../../../testkit/operator/controller/fakes.js';
import { isConflict } from './kube.js';
import { KubeLeaseClient, LeaderElector, defaultIdentity, fromV1Lease, toV1Lease } from './leaderelection.js';
import type { LeaseApi, LeaderElectorOptions } from './leaderelection.js';

const NS = 'operators';
const NAME = 'telemetry-rollout-leader';

/** A timeline of callbacks across electors, with the fake time they happened at. */
type Timeline = Array<{ t: number; who: string; what: string }>;

function candidate(
  who: string,
  clock: FakeClock,
  store: FakeLeaseStore,
  timeline: Timeline,
  extra: Partial<LeaderElectorOptions> = {},
) {
  const client = new FakeLeaseClient(store);
  const { logger, entries } = memoryLogger();
  const state: { signal?: AbortSignal } = {};
  const elector = new LeaderElector({
    namespace: NS,
    name: NAME,
    identity: who,
    clock,
    leaseClient: client,
    logger,
    random: () => 0,
    callbacks: {
      onStartedLeading: (signal) => {
        state.signal = signal;
        timeline.push({ t: clock.nowMs(), who, what: 'started' });
      },
      onStoppedLeading: () => timeline.push({ t: clock.nowMs(), who, what: 'stopped' }),
      onNewLeader: (id) => timeline.push({ t: clock.nowMs(), who, what: `sees ${id}` }),
    },
    ...extra,
  });
  return { elector, client, entries, state };
}

function world() {
  return { clock: new FakeClock(0), store: new FakeLeaseStore(), timeline: [] as Timeline };
}

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
    a.client.failWith = apiError(503, 'ServiceUnavailable');
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

describe('Lease conversion', () => {
  it('writes MicroTime with six fractional digits and reads string timestamps back', () => {
    const when = new Date('2026-11-25T10:00:00.123Z');
    const v1 = toV1Lease({ namespace: NS, name: NAME, resourceVersion: '7', holderIdentity: 'a', renewTime: when, acquireTime: when });
    const wire = JSON.parse(JSON.stringify(v1)) as { spec: { renewTime: string }; metadata: { resourceVersion: string } };
    expect(wire.spec.renewTime).toBe('2026-11-25T10:00:00.123000Z');
    expect(wire.metadata.resourceVersion).toBe('7');
    // client-node 2.0.1 hands MicroTime back as the raw string.
    const back = fromV1Lease(wire as unknown as V1Lease);
    expect(back.renewTime?.getTime()).toBe(when.getTime());
    expect(back).toMatchObject({ namespace: NS, name: NAME, holderIdentity: 'a', resourceVersion: '7' });
  });
});

describe('KubeLeaseClient', () => {
  function fakeApi(overrides: Partial<Record<keyof LeaseApi, (...args: unknown[]) => Promise<V1Lease>>>): LeaseApi {
    const unexpected = (): Promise<V1Lease> => Promise.reject(new Error('unexpected call'));
    return {
      readNamespacedLease: overrides.readNamespacedLease ?? unexpected,
      createNamespacedLease: overrides.createNamespacedLease ?? unexpected,
      replaceNamespacedLease: overrides.replaceNamespacedLease ?? unexpected,
    };
  }

  it('maps 404 to undefined and keeps the status of wrapped errors', async () => {
    const client = new KubeLeaseClient(
      fakeApi({
        readNamespacedLease: () => Promise.reject(apiError(404, 'NotFound')),
        replaceNamespacedLease: () => Promise.reject(apiError(409, 'Conflict')),
      }),
    );
    await expect(client.get(NS, NAME)).resolves.toBeUndefined();
    const err = await client.replace({ namespace: NS, name: NAME, resourceVersion: '1' }).catch((e: unknown) => e);
    expect(isConflict(err)).toBe(true);
    expect((err as Error).message).toBe(`replace Lease ${NS}/${NAME}`);
  });

  it('sends the lease with its resourceVersion and per-request options when given a signal', async () => {
    const seen: unknown[][] = [];
    const client = new KubeLeaseClient(
      fakeApi({
        createNamespacedLease: (...args) => {
          seen.push(args);
          return Promise.resolve({ metadata: { namespace: NS, name: NAME, resourceVersion: '1' }, spec: { holderIdentity: 'a' } });
        },
      }),
    );
    const created = await client.create({ namespace: NS, name: NAME, holderIdentity: 'a' }, new AbortController().signal);
    expect(created).toMatchObject({ resourceVersion: '1', holderIdentity: 'a' });
    const [param, options] = seen[0]! as [{ namespace: string; body: V1Lease }, { middleware: unknown[] }];
    expect(param.namespace).toBe(NS);
    expect(param.body.spec?.holderIdentity).toBe('a');
    expect(options.middleware).toHaveLength(1);
  });
});

import { afterEach, describe, it, expect } from '@jest/globals';
import { FakeApiServer } from '../../../testkit/collector/fakeapiserver.js';
import { FakeClock, flushAsync } from '../../../testkit/core/fakeclock.js';
import { makeRig, stopFileFor, TEST_STOP_PATH, type TestRig } from '../../../testkit/collector/harness.js';
import { isLeaseConflict } from '#core/leaderelection.js';
import { ApiLeaseStore, LeaderElector, microTime, type Lease } from './leader.js';

const LEASES = '/apis/coordination.k8s.io/v1/leases';

interface Replica {
  id: string;
  rig: TestRig;
  elector: LeaderElector;
  /** Leadership periods as [start, end?] in ms since the test start. */
  terms: [number, number | undefined][];
  stop: AbortController;
  done: Promise<void>;
}

const running: Replica[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    r.stop.abort(new Error('test over'));
    await r.rig.clock.advance(5000);
    await r.done;
    await r.rig.killSwitch.close();
  }
});

function replica(id: string, server: FakeApiServer, clock: FakeClock, t0: number): Replica {
  const rig = makeRig({ server, clock });
  const terms: [number, number | undefined][] = [];
  const stop = new AbortController();
  const elector = new LeaderElector({
    api: rig.client,
    killSwitch: rig.killSwitch,
    clock,
    logger: rig.logger,
    namespace: 'telemetry',
    name: 'collector-leader',
    identity: id,
    random: () => 0,
    onStartedLeading: async (signal) => {
      terms.push([clock.nowMs() - t0, undefined]);
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      const last = terms[terms.length - 1];
      if (last) last[1] = clock.nowMs() - t0;
    },
  });
  rig.killSwitch.start();
  const r: Replica = { id, rig, elector, terms, stop, done: elector.run(stop.signal) };
  running.push(r);
  return r;
}

function lease(server: FakeApiServer): Lease | undefined {
  return server.objects(LEASES)[0];
}

describe('LeaderElector', () => {
  it('creates the Lease when absent and renews it every retry period', async () => {
    const clock = new FakeClock();
    const server = new FakeApiServer(clock);
    const t0 = clock.nowMs();
    const a = replica('pod-a', server, clock, t0);
    await clock.advance(0);
    expect(a.elector.isLeader()).toBe(true);
    expect(lease(server)?.spec).toEqual({
      holderIdentity: 'pod-a',
      leaseDurationSeconds: 15,
      acquireTime: microTime(t0),
      renewTime: microTime(t0),
      leaseTransitions: 0,
    });
    await clock.advance(10_000);
    expect(lease(server)?.spec?.renewTime).toBe(microTime(t0 + 10_000));
    expect(lease(server)?.spec?.acquireTime).toBe(microTime(t0));
    // One GET + one PUT per 2 s: the whole cost of leader election for a leader.
    const leaseRequests = server.requests.filter((r) => r.collection === LEASES && r.at > t0);
    expect(leaseRequests.length).toBe(10);
  });

  it('exactly one of two replicas leads; the other takes over after the lease expires when the leader dies silently', async () => {
    const clock = new FakeClock();
    const server = new FakeApiServer(clock);
    const t0 = clock.nowMs();
    const a = replica('pod-a', server, clock, t0);
    await clock.advance(0);
    const b = replica('pod-b', server, clock, t0);
    await clock.advance(30_000);
    expect([a.elector.isLeader(), b.elector.isLeader()]).toEqual([true, false]);
    expect(b.elector.holder()).toBe('pod-a');
    // pod-a can no longer reach the API server (a partition): it stops leading after the renew deadline,
    // and pod-b only acquires once the lease has not changed for 15 s on its own clock.
    a.rig.transport.failWith = 503;
    const cut = clock.nowMs() - t0;
    for (let i = 0; i < 40; i++) await clock.advance(500);
    const aEnd = a.terms[0]?.[1];
    const bStart = b.terms[0]?.[0];
    expect(aEnd).toBeDefined();
    expect(bStart).toBeDefined();
    expect((aEnd ?? 0) - cut).toBeLessThanOrEqual(10_000 + 2000);
    expect((bStart ?? 0) - cut).toBeGreaterThanOrEqual(15_000 - 2000);
    // Never two leaders at once.
    expect(aEnd ?? Infinity).toBeLessThan(bStart ?? -Infinity);
    expect(lease(server)?.spec).toMatchObject({ holderIdentity: 'pod-b', leaseTransitions: 1 });
  });

  it('releases the lease on shutdown so a follower takes over within a retry period', async () => {
    const clock = new FakeClock();
    const server = new FakeApiServer(clock);
    const t0 = clock.nowMs();
    const a = replica('pod-a', server, clock, t0);
    await clock.advance(0);
    const b = replica('pod-b', server, clock, t0);
    await clock.advance(6000);
    a.stop.abort(new Error('SIGTERM'));
    await flushAsync();
    await a.done;
    expect(lease(server)?.spec?.holderIdentity).toBe('');
    const released = clock.nowMs() - t0;
    await clock.advance(2000);
    expect(b.elector.isLeader()).toBe(true);
    expect((b.terms[0]?.[0] ?? 0) - released).toBeLessThanOrEqual(2000);
  });

  it('drops leadership at once when the kill switch engages, and campaigns again after the resume', async () => {
    const clock = new FakeClock();
    const server = new FakeApiServer(clock);
    const t0 = clock.nowMs();
    const a = replica('pod-a', server, clock, t0);
    await clock.advance(0);
    a.rig.fs.write(TEST_STOP_PATH, stopFileFor('*'));
    await clock.advance(500);
    expect(a.elector.isLeader()).toBe(false);
    expect(a.terms[0]?.[1]).toBeLessThanOrEqual(500);
    const before = server.requests.length;
    await clock.advance(60_000);
    expect(server.requests.length).toBe(before);
    a.rig.fs.remove(TEST_STOP_PATH);
    await clock.advance(500);
    expect(a.elector.isLeader()).toBe(true);
  });

  it('optimistic concurrency: of two simultaneous acquisitions of a free lease exactly one wins', async () => {
    const clock = new FakeClock();
    const server = new FakeApiServer(clock);
    server.put(LEASES, { metadata: { namespace: 'telemetry', name: 'collector-leader' }, spec: { holderIdentity: '', leaseDurationSeconds: 1 } });
    const mk = (id: string) => {
      const rig = makeRig({ server, clock });
      return new LeaderElector({
        api: rig.client,
        killSwitch: rig.killSwitch,
        clock,
        logger: rig.logger,
        namespace: 'telemetry',
        name: 'collector-leader',
        identity: id,
        onStartedLeading: async () => undefined,
      });
    };
    const signal = new AbortController().signal;
    const results = await Promise.all([mk('pod-a').tryAcquireOrRenew(signal), mk('pod-b').tryAcquireOrRenew(signal)]);
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(server.requests.filter((r) => r.verb === 'update').length).toBe(2);
  });

  it('a failure of the leader work releases the lease, and the replica campaigns again a retry period later', async () => {
    const clock = new FakeClock();
    const server = new FakeApiServer(clock);
    const rig = makeRig({ server, clock });
    rig.killSwitch.start();
    let starts = 0;
    const elector = new LeaderElector({
      api: rig.client,
      killSwitch: rig.killSwitch,
      clock,
      logger: rig.logger,
      namespace: 'telemetry',
      name: 'collector-leader',
      identity: 'pod-a',
      random: () => 0,
      onStartedLeading: async (signal) => {
        if (++starts === 1) throw new Error('cannot list pods');
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      },
    });
    const stop = new AbortController();
    const done = elector.run(stop.signal);
    await clock.advance(0);
    expect(elector.isLeader()).toBe(false);
    expect(lease(server)?.spec?.holderIdentity).toBe('');
    expect(elector.holder()).toBe('');
    await clock.advance(2000);
    expect(starts).toBe(2);
    expect(elector.isLeader()).toBe(true);
    stop.abort(new Error('test over'));
    await clock.advance(0);
    await done;
    expect(lease(server)?.spec?.holderIdentity).toBe('');
    await rig.killSwitch.close();
  });

  it('rejects inconsistent timings', () => {
    const rig = makeRig();
    expect(
      () =>
        new LeaderElector({
          api: rig.client,
          killSwitch: rig.killSwitch,
          clock: rig.clock,
          logger: rig.logger,
          namespace: 'n',
          name: 'l',
          identity: 'i',
          leaseDurationMs: 5000,
          renewDeadlineMs: 10_000,
          onStartedLeading: async () => undefined,
        }),
    ).toThrow(RangeError);
  });
});

describe('ApiLeaseStore', () => {
  it('reads an absent Lease as undefined, keeps metadata and writes MicroTime on replace, and a stale write is a conflict', async () => {
    const clock = new FakeClock();
    const server = new FakeApiServer(clock);
    const rig = makeRig({ server, clock });
    rig.killSwitch.start();
    try {
      const store = new ApiLeaseStore(rig.client);
      await expect(store.get('telemetry', 'l')).resolves.toBeUndefined();
      server.put(LEASES, {
        metadata: { namespace: 'telemetry', name: 'l', labels: { app: 'collector' } },
        spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: '2026-11-25T10:00:00.123456Z', leaseTransitions: 3 },
      });
      const read = await store.get('telemetry', 'l');
      expect(read).toMatchObject({ namespace: 'telemetry', name: 'l', holderIdentity: 'a', leaseDurationSeconds: 15, leaseTransitions: 3 });
      expect(read?.renewTime?.getTime()).toBe(Date.parse('2026-11-25T10:00:00.123Z'));
      const written = await store.replace({ ...read!, holderIdentity: 'b', renewTime: new Date(Date.parse('2026-11-25T10:00:01.005Z')) });
      expect(written.resourceVersion).not.toBe(read?.resourceVersion);
      expect(lease(server)?.metadata?.labels).toEqual({ app: 'collector' });
      expect(lease(server)?.spec).toMatchObject({ holderIdentity: 'b', renewTime: '2026-11-25T10:00:01.005000Z', leaseTransitions: 3 });
      const stale = await store.replace(read!).catch((e: unknown) => e);
      expect(isLeaseConflict(stale)).toBe(true);
    } finally {
      await rig.killSwitch.close();
    }
  });
});

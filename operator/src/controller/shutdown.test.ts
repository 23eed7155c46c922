// The shutdown order of the manager and its elector, on a fake Lease store: stop taking work, abort the
// in-flight reconciles' signal at once, release the Lease only once they ended, and never take longer
// than the grace period as a process.
import { describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { abortReason } from '#core/clock.js';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import { memoryLogger } from '../../../testkit/operator/util/logging.js';
import { FakeLeaseClient, FakeLeaseStore } from '../../../testkit/operator/controller/fakes.js';
import { Manager, type ManagedInformer, type ManagerOptions } from './manager.js';
import { runUntilStopped } from './process.js';
import { WorkQueue, type ReconcileFn } from './workqueue.js';

/** An informer that is synced from the start. */
class SyncedInformer implements ManagedInformer {
  readonly name = 'things';
  stopped = false;
  start(): void {}
  async stop(): Promise<void> {
    this.stopped = true;
  }
  hasSynced(): boolean {
    return true;
  }
  async waitForSync(): Promise<void> {}
}

const LEASE = { namespace: 'operators', name: 'tro-leader' };
/** The elector's defaults, which the assertions on lease fields rely on. */
const LEASE_DURATION_MS = 15_000;

function replica(id: string, clock: FakeClock, store: FakeLeaseStore, reconcile: ReconcileFn, extra: Partial<ManagerOptions> = {}) {
  const { logger, entries } = memoryLogger();
  const informer = new SyncedInformer();
  const queue = new WorkQueue({ clock, name: 'things' });
  const manager = new Manager({
    logger,
    clock,
    livenessCheck: () => ({ ok: true, message: 'ok' }),
    leaderElection: { ...LEASE, identity: id, leaseClient: new FakeLeaseClient(store), random: () => 0 },
    ...extra,
  });
  manager.addInformer(informer);
  manager.addController({ name: 'things', queue, reconcile, workers: 2 });
  return { manager, informer, queue, entries };
}

/** A stand-in for one API request: answers when the test says so, or rejects when its signal aborts. */
function hangingRequest(signal: AbortSignal): Promise<void> {
  return new Promise<void>((_resolve, reject) => {
    if (signal.aborted) reject(abortReason(signal));
    signal.addEventListener('abort', () => reject(abortReason(signal)), { once: true });
  });
}

const holder = (store: FakeLeaseStore): string | undefined => store.peek(LEASE.namespace, LEASE.name)?.holderIdentity;

describe('Manager shutdown', () => {
  it('stops taking keys, aborts in-flight reconciles at once, and releases the Lease only after they ended', async () => {
    const clock = new FakeClock(0);
    const store = new FakeLeaseStore();
    const started: string[] = [];
    let endPass!: () => void;
    let holderWhenEnded: string | undefined;
    let writesWhenEnded = 0;
    const r = replica('a', clock, store, async (key, signal) => {
      started.push(key);
      // A pass that notices the abort and then needs a moment to reach its safe point.
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      await new Promise<void>((resolve) => (endPass = resolve));
      holderWhenEnded = holder(store);
      writesWhenEnded = store.writes.length;
    });
    await r.manager.start();
    await clock.flush();
    r.queue.add('ns/busy');
    await clock.flush();
    expect(started).toEqual(['ns/busy']);

    const stopping = r.manager.stop('received SIGTERM');
    await clock.flush();
    // The queue takes nothing new, and the pass was told to stop without waiting for any deadline.
    r.queue.add('ns/late');
    await clock.advance(3000);
    expect(started).toEqual(['ns/busy']);
    expect(holder(store)).toBe('a');
    expect(r.entries.some((e) => e.message === 'aborting in-flight reconciles')).toBe(true);

    endPass();
    expect(await stopping).toEqual({ code: 0, reason: 'received SIGTERM' });
    expect(holderWhenEnded).toBe('a');
    // The release is the first Lease write after the pass ended: empty holder, one-second duration.
    const release = store.writes[writesWhenEnded];
    expect(release?.lease).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
    expect(holder(store)).toBe('');
    expect(r.informer.stopped).toBe(true);
  });

  it('cuts a reconcile hung in a request loose and hands the Lease over before the old one would expire', async () => {
    const clock = new FakeClock(0);
    const store = new FakeLeaseStore();
    let requests = 0;
    const a = replica('a', clock, store, async (_key, signal) => {
      requests++;
      await hangingRequest(signal);
    });
    await a.manager.start();
    await clock.advance(2000);
    const b = replica('b', clock, store, async () => undefined);
    await b.manager.start();
    await clock.advance(2000);
    expect(a.manager.isLeader()).toBe(true);
    a.queue.add('ns/unreachable-target');
    await clock.flush();
    expect(requests).toBe(1);

    const held = store.peek(LEASE.namespace, LEASE.name)!;
    const oldExpiryMs = held.renewTime!.getTime() + LEASE_DURATION_MS;
    // No clock advance: the abort alone ends the pass, so the stop needs none of its 20 s deadline.
    expect((await a.manager.stop('received SIGTERM')).code).toBe(0);
    expect(clock.nowMs()).toBe(4000);
    expect(holder(store)).toBe('');
    // An interrupted pass is no failure of the object: logged at info, not as an error.
    expect(a.entries.some((e) => e.level === 'info' && e.message.startsWith('reconcile interrupted'))).toBe(true);
    expect(a.entries.some((e) => e.message.startsWith('reconcile failed'))).toBe(false);

    // The follower's next try (one retry period) finds the Lease free.
    await clock.advance(2000);
    expect(b.manager.isLeader()).toBe(true);
    const taken = store.peek(LEASE.namespace, LEASE.name)!;
    expect(taken.holderIdentity).toBe('b');
    expect(taken.acquireTime!.getTime()).toBeLessThan(oldExpiryMs);
    await b.manager.stop();
  });

  it('runs shutdown hooks after the Lease was handled; a failing hook is logged, not fatal', async () => {
    const clock = new FakeClock(0);
    const store = new FakeLeaseStore();
    const r = replica('a', clock, store, async () => undefined);
    const seen: Array<string | undefined> = [];
    r.manager.addShutdownHook('close target clients', () => void seen.push(holder(store)));
    r.manager.addShutdownHook('broken', async () => {
      throw new Error('boom');
    });
    await r.manager.start();
    await clock.advance(2000);
    expect(r.manager.isLeader()).toBe(true);
    expect((await r.manager.stop()).code).toBe(0);
    expect(seen).toEqual(['']);
    expect(r.entries.find((e) => e.message === 'shutdown hook failed')).toMatchObject({ level: 'warn', hook: 'broken' });
  });
});

describe('runUntilStopped grace period', () => {
  it('exits 1, logged, when the graceful stop overruns the grace period', async () => {
    const clock = new FakeClock(0);
    const store = new FakeLeaseStore();
    const r = replica('a', clock, store, async () => undefined);
    // A shutdown step that never ends (a close that hangs).
    r.manager.addShutdownHook('hangs', () => new Promise<void>(() => undefined));
    const { logger, entries } = memoryLogger();
    const proc = new EventEmitter();
    const exits: number[] = [];
    void runUntilStopped(r.manager, logger, proc, (code) => exits.push(code), { clock, graceMs: 25_000 });
    await clock.advance(2000);
    proc.emit('SIGTERM');
    await clock.advance(24_999);
    expect(exits).toEqual([]);
    // Everything but the hook is done: the Lease went back at once.
    expect(holder(store)).toBe('');
    await clock.advance(1);
    expect(exits).toEqual([1]);
    expect(entries.some((e) => e.level === 'error' && e.message.startsWith('graceful shutdown did not finish'))).toBe(true);
  });

  it('cancels the grace timer when the stop finishes in time', async () => {
    const clock = new FakeClock(0);
    const r = replica('a', clock, new FakeLeaseStore(), async () => undefined);
    const proc = new EventEmitter();
    const exits: number[] = [];
    const running = runUntilStopped(r.manager, memoryLogger().logger, proc, (code) => exits.push(code), { clock, graceMs: 25_000 });
    await clock.advance(2000);
    proc.emit('SIGTERM');
    expect((await running).code).toBe(0);
    await clock.advance(60_000);
    expect(exits).toEqual([0]);
  });
});

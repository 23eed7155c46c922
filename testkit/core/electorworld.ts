/**
 * The lease elector's unit-test world (lib/core/leaderelection*.test.ts): candidates over one in-memory
 * Lease store on a fake clock, with a timeline of their callbacks.
 */
import { FakeClock } from './fakeclock.js';
import { RecordingLogger } from './fakelogger.js';
import { FakeLeaseClient, FakeLeaseStore } from './fakelease.js';
import { LeaderElector, type LeaderElectorOptions } from '../../lib/core/leaderelection.js';

/** A RecordingLogger and its entries (the shape the operator's memoryLogger returned). */
export function memoryLogger() {
  const logger = new RecordingLogger();
  return { logger, entries: logger.entries };
}

/** The Lease the tests campaign for. */
export const NS = 'operators';
export const NAME = 'telemetry-rollout-leader';

/** A timeline of callbacks across electors, with the fake time they happened at. */
export type Timeline = Array<{ t: number; who: string; what: string }>;

/** One candidate elector over `store`, recording its callbacks in `timeline`. */
export function candidate(who: string, clock: FakeClock, store: FakeLeaseStore, timeline: Timeline, extra: Partial<LeaderElectorOptions> = {}) {
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

/** A fake clock at 0, an empty Lease store and an empty timeline. */
export function world() {
  return { clock: new FakeClock(0), store: new FakeLeaseStore(), timeline: [] as Timeline };
}

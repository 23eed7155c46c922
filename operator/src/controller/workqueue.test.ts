import { describe, expect, it } from '@jest/globals';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import { TerminalError } from '../util/errors.js';
import { memoryLogger } from '../../../testkit/operator/util/logging.js';
import { ExponentialRateLimiter, WorkQueue, runWorkers } from './workqueue.js';
import type { ReconcileOutcome, ReconcileResult } from './workqueue.js';

function newQueue(clock = new FakeClock(0)): { clock: FakeClock; queue: WorkQueue } {
  return { clock, queue: new WorkQueue({ clock, name: 'test' }) };
}

/** A promise with its resolve exposed, to hold a reconcile open. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('ExponentialRateLimiter', () => {
  it('doubles from 5 ms and caps at 1000 s, per key, until forgotten', () => {
    const rl = new ExponentialRateLimiter();
    expect([rl.when('a'), rl.when('a'), rl.when('a'), rl.when('b')]).toEqual([5, 10, 20, 5]);
    expect(rl.numRequeues('a')).toBe(3);
    for (let i = 0; i < 100; i++) rl.when('a');
    expect(rl.when('a')).toBe(1_000_000);
    rl.forget('a');
    expect(rl.numRequeues('a')).toBe(0);
    expect(rl.when('a')).toBe(5);
  });

  it('is configurable and rejects nonsense', () => {
    const rl = new ExponentialRateLimiter({ baseDelayMs: 100, maxDelayMs: 300 });
    expect([rl.when('k'), rl.when('k'), rl.when('k')]).toEqual([100, 200, 300]);
    expect(() => new ExponentialRateLimiter({ baseDelayMs: 0 })).toThrow('baseDelayMs');
    expect(() => new ExponentialRateLimiter({ baseDelayMs: 10, maxDelayMs: 5 })).toThrow();
  });
});

describe('WorkQueue', () => {
  it('merges duplicate adds and hands keys out in order', async () => {
    const { queue } = newQueue();
    queue.add('ns/a');
    queue.add('ns/b');
    queue.add('ns/a');
    expect(queue.len()).toBe(2);
    expect(await queue.get()).toBe('ns/a');
    expect(await queue.get()).toBe('ns/b');
    expect(queue.len()).toBe(0);
    expect(queue.processingLen()).toBe(2);
  });

  it('never hands out a key being processed; a re-add waits for done()', async () => {
    const { queue } = newQueue();
    queue.add('k');
    expect(await queue.get()).toBe('k');
    queue.add('k');
    queue.add('k');
    expect(queue.len()).toBe(0);
    let next: string | undefined;
    const waiting = queue.get().then((k) => (next = k));
    await Promise.resolve();
    expect(next).toBeUndefined();
    queue.done('k');
    await waiting;
    expect(next).toBe('k');
    queue.done('k');
    expect(queue.len()).toBe(0);
    expect(queue.processingLen()).toBe(0);
  });

  it('hands a new key straight to a waiting getter', async () => {
    const { queue } = newQueue();
    const p = queue.get();
    queue.add('x');
    expect(await p).toBe('x');
    expect(queue.len()).toBe(0);
  });

  it('addAfter uses the clock and keeps only the earliest pending delay per key', async () => {
    const { clock, queue } = newQueue();
    queue.addAfter('k', 1000);
    queue.addAfter('k', 5000);
    queue.addAfter('k', 300);
    expect(queue.waitingLen()).toBe(1);
    expect(clock.pendingTimers()).toBe(1);
    await clock.advance(299);
    expect(queue.len()).toBe(0);
    await clock.advance(1);
    expect(queue.len()).toBe(1);
    expect(queue.waitingLen()).toBe(0);
    await clock.advance(10_000);
    expect(queue.len()).toBe(1);
    queue.addAfter('now', 0);
    expect(queue.len()).toBe(2);
  });

  it('addRateLimited backs off exponentially per key and forget resets it', async () => {
    const { clock, queue } = newQueue();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      queue.addRateLimited('k');
      delays.push(clock.nextTimerInMs()!);
      await clock.advance(delays[i]!);
      expect(await queue.get()).toBe('k');
      queue.done('k');
    }
    expect(delays).toEqual([5, 10, 20, 40]);
    expect(queue.numRequeues('k')).toBe(4);
    queue.forget('k');
    queue.addRateLimited('k');
    expect(clock.nextTimerInMs()).toBe(5);
  });

  it('get(signal) resolves undefined on abort and never takes a later key', async () => {
    const { queue } = newQueue();
    const ac = new AbortController();
    const p = queue.get(ac.signal);
    ac.abort();
    expect(await p).toBeUndefined();
    queue.add('k');
    expect(queue.len()).toBe(1);
    expect(await queue.get(ac.signal)).toBeUndefined();
  });

  it('shutDown stops handing out and accepting keys, cancels delays and waits for in-flight keys', async () => {
    const { clock, queue } = newQueue();
    queue.add('inflight');
    queue.add('queued');
    queue.addAfter('later', 1000);
    expect(await queue.get()).toBe('inflight');
    const blocked = queue.get();
    let drained = false;
    // The second get took 'queued'; release it so only 'inflight' remains in flight.
    queue.done((await blocked)!);
    const waiter = queue.get();
    const shut = queue.shutDown().then(() => (drained = true));
    expect(await waiter).toBeUndefined();
    expect(await queue.get()).toBeUndefined();
    queue.add('new');
    queue.addRateLimited('new');
    expect(queue.len()).toBe(0);
    expect(clock.pendingTimers()).toBe(0);
    await clock.flush();
    expect(drained).toBe(false);
    queue.done('inflight');
    await shut;
    expect(drained).toBe(true);
    expect(queue.isShuttingDown()).toBe(true);
    await queue.shutDown();
  });
});

describe('runWorkers', () => {
  function setup(workers: number, reconcile: (key: string, signal: AbortSignal) => Promise<ReconcileResult | void>) {
    const { clock, queue } = newQueue();
    const { logger, entries } = memoryLogger();
    const outcomes: Array<[string, ReconcileOutcome]> = [];
    const running = runWorkers(queue, workers, reconcile, {
      clock,
      logger,
      onResult: (key, outcome) => outcomes.push([key, outcome]),
    });
    return { clock, queue, entries, outcomes, running };
  }

  it('retries plain errors with backoff, forgets on success', async () => {
    let calls = 0;
    const { clock, queue, outcomes, running, entries } = setup(1, async () => {
      calls++;
      if (calls < 3) throw new Error('transient');
    });
    queue.add('ns/a');
    await clock.flush();
    expect(calls).toBe(1);
    expect(clock.nextTimerInMs()).toBe(5);
    await clock.advance(5);
    expect(calls).toBe(2);
    expect(clock.nextTimerInMs()).toBe(10);
    await clock.advance(10);
    expect(calls).toBe(3);
    expect(queue.numRequeues('ns/a')).toBe(0);
    expect(outcomes).toEqual([
      ['ns/a', 'error'],
      ['ns/a', 'error'],
      ['ns/a', 'success'],
    ]);
    expect(entries.filter((e) => e.level === 'error')).toHaveLength(2);
    await queue.shutDown();
    await running;
  });

  it('does not retry a TerminalError', async () => {
    let calls = 0;
    const { clock, queue, outcomes, running } = setup(1, async () => {
      calls++;
      throw new TerminalError('InvalidSpec', 'bad spec');
    });
    queue.add('ns/a');
    await clock.advance(10_000_000);
    expect(calls).toBe(1);
    expect(outcomes).toEqual([['ns/a', 'terminal']]);
    expect(queue.numRequeues('ns/a')).toBe(0);
    expect(clock.pendingTimers()).toBe(0);
    await queue.shutDown();
    await running;
  });

  it('requeues after the requested delay', async () => {
    let calls = 0;
    const { clock, queue, outcomes, running } = setup(1, async () => {
      calls++;
      return { requeueAfterMs: 30_000 };
    });
    queue.add('ns/a');
    await clock.advance(29_999);
    expect(calls).toBe(1);
    await clock.advance(1);
    expect(calls).toBe(2);
    expect(outcomes.map(([, o]) => o)).toEqual(['requeue', 'requeue']);
    await queue.shutDown();
    await running;
  });

  it('runs different keys in parallel but never one key twice at once', async () => {
    const active = new Set<string>();
    const gates = new Map<string, { promise: Promise<void>; resolve: () => void }>();
    let overlap = false;
    let runs = 0;
    const { clock, queue, running } = setup(3, async (key) => {
      if (active.has(key)) overlap = true;
      active.add(key);
      runs++;
      const gate = deferred();
      gates.set(key, gate);
      await gate.promise;
      active.delete(key);
    });
    queue.add('a');
    queue.add('b');
    await clock.flush();
    expect([...active].sort()).toEqual(['a', 'b']);
    queue.add('a');
    await clock.flush();
    expect(runs).toBe(2);
    gates.get('a')!.resolve();
    await clock.flush();
    expect(runs).toBe(3);
    expect(active.has('a')).toBe(true);
    gates.get('a')!.resolve();
    gates.get('b')!.resolve();
    await clock.flush();
    expect(overlap).toBe(false);
    await queue.shutDown();
    await running;
  });

  it('stops when the signal aborts and leaves queued keys alone', async () => {
    const { clock, queue } = newQueue();
    const { logger } = memoryLogger();
    const ac = new AbortController();
    const seen: string[] = [];
    const running = runWorkers(queue, 2, async (key) => void seen.push(key), { clock, logger, signal: ac.signal });
    queue.add('a');
    await clock.flush();
    ac.abort();
    await running;
    queue.add('b');
    expect(seen).toEqual(['a']);
    expect(queue.len()).toBe(1);
  });

  it('passes the signal to reconcile and rejects a bad worker count', async () => {
    const { queue, clock } = newQueue();
    const { logger } = memoryLogger();
    await expect(runWorkers(queue, 0, async () => undefined, { clock, logger })).rejects.toThrow('worker count');
    const ac = new AbortController();
    let got: AbortSignal | undefined;
    const running = runWorkers(queue, 1, async (_k, s) => void (got = s), { clock, logger, signal: ac.signal });
    queue.add('k');
    await clock.flush();
    expect(got).toBe(ac.signal);
    ac.abort();
    await running;
  });
});

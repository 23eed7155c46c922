import { describe, it, expect } from '@jest/globals';
import { TokenBucket } from './ratelimit.js';
import { FakeClock, flushAsync } from '../../testkit/core/fakeclock.js';

/** Starts `n` take() calls and records (in fake ms since start) when each one is granted. */
function startTakes(bucket: TokenBucket, clock: FakeClock, n: number, signal?: AbortSignal): { granted: (number | undefined)[]; errors: unknown[] } {
  const t0 = clock.nowMs();
  const granted: (number | undefined)[] = new Array<number | undefined>(n).fill(undefined);
  const errors: unknown[] = [];
  for (let i = 0; i < n; i++) {
    bucket.take(signal).then(
      () => (granted[i] = clock.nowMs() - t0),
      (err: unknown) => errors.push(err),
    );
  }
  return { granted, errors };
}

describe('TokenBucket', () => {
  it('grants a burst at once, then one token every 1/qps seconds, in call order', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 2, burst: 5, clock });
    const { granted } = startTakes(bucket, clock, 9, undefined);
    await flushAsync();
    expect(granted.slice(0, 5)).toEqual([0, 0, 0, 0, 0]);
    expect(granted.slice(5)).toEqual([undefined, undefined, undefined, undefined]);
    await clock.advance(2000);
    expect(granted).toEqual([0, 0, 0, 0, 0, 500, 1000, 1500, 2000]);
  });

  it('sustains exactly qps over a long run', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 10, burst: 1, clock });
    let done = 0;
    for (let i = 0; i < 1000; i++) void bucket.take().then(() => done++);
    await clock.advance(10_000);
    // 1 initial token + 10 per second for 10 s.
    expect(done).toBe(101);
  });

  it('refills up to burst only, never beyond', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 100, burst: 3, clock });
    expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).toEqual([true, true, true, false]);
    await clock.advance(3_600_000);
    expect(bucket.available()).toBe(3);
  });

  it('a cancelled wait rejects with the abort reason and returns its token', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 1, burst: 1, clock });
    await bucket.take();
    const ac = new AbortController();
    const { granted, errors } = startTakes(bucket, clock, 2, ac.signal);
    await flushAsync();
    ac.abort(new Error('stop'));
    await flushAsync();
    expect(errors.map((e) => (e as Error).message)).toEqual(['stop', 'stop']);
    expect(granted).toEqual([undefined, undefined]);
    // Both reservations were refunded: the next caller waits one token time, not three.
    const next = startTakes(bucket, clock, 1);
    await clock.advance(1000);
    expect(next.granted).toEqual([1000]);
  });

  it('rejects at once on an already aborted signal without consuming', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 1, burst: 1, clock });
    const ac = new AbortController();
    ac.abort(new Error('gone'));
    await expect(bucket.take(ac.signal)).rejects.toThrow('gone');
    expect(bucket.tryTake()).toBe(true);
  });

  it('a wall-clock step backwards neither mints nor burns tokens', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 1, burst: 2, clock });
    bucket.tryTake();
    bucket.tryTake();
    clock.set(clock.nowMs() - 60_000);
    expect(bucket.available()).toBe(0);
    await clock.advance(1000);
    expect(bucket.available()).toBe(1);
  });

  it('rejects nonsensical parameters', () => {
    const clock = new FakeClock();
    expect(() => new TokenBucket({ qps: 0, burst: 1, clock })).toThrow(RangeError);
    expect(() => new TokenBucket({ qps: 1, burst: 0, clock })).toThrow(RangeError);
    expect(() => new TokenBucket({ qps: Number.NaN, burst: 1, clock })).toThrow(RangeError);
  });
});

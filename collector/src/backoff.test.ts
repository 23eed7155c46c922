import { describe, it, expect } from '@jest/globals';
import { Backoff, backoffDelayMs, isRetryable, retryAfterMs, retryDelayMs, withBackoff, type BackoffPolicy } from './backoff.js';
import { ApiError, NetworkError, StoppedError } from './errors.js';
import { FakeClock, flushAsync } from '../../testkit/core/fakeclock.js';

const policy: BackoffPolicy = { initialMs: 1000, maxMs: 300_000, jitter: 0.5 };
const api = (code: number, headers: Record<string, string> = {}): ApiError => new ApiError(code, `HTTP ${code}`, {}, headers);

describe('backoff delays', () => {
  it('doubles from initial up to max, jitter only shortening', () => {
    const noJitter = (r: number) => backoffDelayMs(r, policy, () => 0);
    expect([1, 2, 3, 4, 9, 10, 50, 5000].map(noJitter)).toEqual([1000, 2000, 4000, 8000, 256_000, 300_000, 300_000, 300_000]);
    // random → 1 gives the shortest delay: d × (1 − jitter).
    expect(backoffDelayMs(3, policy, () => 1)).toBe(2000);
    expect(backoffDelayMs(3, { ...policy, jitter: 1 }, () => 0.75)).toBe(1000);
  });

  it('spreads delays over [d(1-j), d] with Math.random', () => {
    const samples = Array.from({ length: 2000 }, () => backoffDelayMs(2, policy));
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(1000);
    expect(Math.max(...samples)).toBeLessThanOrEqual(2000);
    expect(new Set(samples.map((s) => Math.round(s / 100))).size).toBeGreaterThan(5);
  });

  it('honours Retry-After (seconds or HTTP date) as a lower bound, spread by jitter', () => {
    const now = Date.UTC(2026, 10, 25, 12, 0, 0);
    expect(retryAfterMs(api(429, { 'retry-after': '7' }), now)).toBe(7000);
    expect(retryAfterMs(api(503, { 'retry-after': new Date(now + 3000).toUTCString() }), now)).toBe(3000);
    expect(retryAfterMs(api(429, { 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(retryAfterMs(new Error('x'), now)).toBeUndefined();
    expect(retryDelayMs(1, api(429, { 'retry-after': '7' }), policy, now, () => 0)).toBe(7000);
    expect(retryDelayMs(1, api(429, { 'retry-after': '7' }), policy, now, () => 0.999)).toBeCloseTo(7000 * 1.4995, 3);
    // A Retry-After shorter than the backoff does not shorten it.
    expect(retryDelayMs(5, api(429, { 'retry-after': '1' }), policy, now, () => 0)).toBe(16_000);
  });

  it.each([
    [api(429), true],
    [api(500), true],
    [api(503), true],
    [api(400), false],
    [api(403), false],
    [api(404), false],
    [api(409), false],
    [api(410), false],
    [new NetworkError('reset'), true],
    [Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) }), true],
    // The transient network codes are the core's, shared with the operator (which also retried these).
    [Object.assign(new Error('aborted by peer'), { code: 'ECONNABORTED' }), true],
    [Object.assign(new Error('network down'), { code: 'ENETDOWN' }), true],
    [Object.assign(new Error('permission'), { code: 'EACCES' }), false],
    [new StoppedError(), false],
    [new DOMException('aborted', 'AbortError'), false],
    [new Error('bug'), false],
  ])('isRetryable(%s) = %s', (err, expected) => {
    expect(isRetryable(err)).toBe(expected);
  });
});

describe('withBackoff', () => {
  it('retries 429/5xx/network errors with growing delays on the clock, then succeeds', async () => {
    const clock = new FakeClock();
    const times: number[] = [];
    const errors = [api(503), api(429), new NetworkError('reset')];
    const t0 = clock.nowMs();
    const p = withBackoff(
      async () => {
        times.push(clock.nowMs() - t0);
        const e = errors.shift();
        if (e) throw e;
        return 'ok';
      },
      { policy, clock, random: () => 0 },
    );
    await clock.advance(10_000);
    await expect(p).resolves.toBe('ok');
    expect(times).toEqual([0, 1000, 3000, 7000]);
  });

  it('does not retry a non-retryable error', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const p = withBackoff(
      async () => {
        calls++;
        throw api(403);
      },
      { policy, clock },
    );
    await expect(p).rejects.toMatchObject({ code: 403 });
    expect(calls).toBe(1);
  });

  it('gives up after `retries` and rejects with the last error', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const p = withBackoff(
      async () => {
        calls++;
        throw api(500);
      },
      { policy, clock, retries: 2, random: () => 0 },
    );
    const settled = p.catch((e: unknown) => e);
    await clock.advance(60_000);
    expect(await settled).toMatchObject({ code: 500 });
    expect(calls).toBe(3);
  });

  it('an abort interrupts the backoff wait at once with the abort reason', async () => {
    const clock = new FakeClock();
    const ac = new AbortController();
    let calls = 0;
    const p = withBackoff(
      async () => {
        calls++;
        throw api(503);
      },
      { policy, clock, signal: ac.signal },
    );
    const settled = p.catch((e: unknown) => e);
    await flushAsync();
    expect(clock.pendingTimers()).toBe(1);
    ac.abort(new StoppedError('stop file'));
    expect(await settled).toBeInstanceOf(StoppedError);
    expect(calls).toBe(1);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('reports each retry with its delay', async () => {
    const clock = new FakeClock();
    const seen: number[] = [];
    let n = 0;
    const p = withBackoff(
      async () => {
        if (n++ < 2) throw api(429, { 'retry-after': '5' });
        return n;
      },
      { policy, clock, random: () => 0, onRetry: (i) => seen.push(i.delayMs) },
    );
    await clock.advance(20_000);
    await expect(p).resolves.toBe(3);
    expect(seen).toEqual([5000, 5000]);
  });
});

describe('Backoff (loop form)', () => {
  it('grows per consecutive failure and resets after success', async () => {
    const clock = new FakeClock();
    const b = new Backoff(policy, clock, () => 0);
    expect([b.next(), b.next(), b.next()]).toEqual([1000, 2000, 4000]);
    b.reset();
    const t0 = clock.nowMs();
    const waited = b.wait();
    await clock.advance(999);
    expect(clock.pendingTimers()).toBe(1);
    await clock.advance(1);
    await expect(waited).resolves.toBe(1000);
    expect(clock.nowMs() - t0).toBe(1000);
    expect(b.attempts).toBe(1);
  });
});

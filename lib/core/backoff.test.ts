import { describe, expect, it } from '@jest/globals';
import { backoffDelayMs, hasTransientNetworkCode, parseRetryAfter, retryDelayMs, type BackoffPolicy } from './backoff.js';

const policy: BackoffPolicy = { initialMs: 1000, maxMs: 8000, jitter: 0.5 };

describe('backoffDelayMs', () => {
  it('grows by the factor up to the cap before jitter', () => {
    expect([1, 2, 3, 4, 5, 100].map((r) => backoffDelayMs(r, policy, () => 0))).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect(backoffDelayMs(3, { ...policy, factor: 3 }, () => 0)).toBe(8000);
    expect(backoffDelayMs(2, { ...policy, factor: 3 }, () => 0)).toBe(3000);
  });

  it('moves the delay down, up or around it as the jitter mode says', () => {
    expect(backoffDelayMs(2, policy, () => 0.5)).toBe(1500);
    expect(backoffDelayMs(2, { ...policy, jitterMode: 'up' }, () => 0.5)).toBe(2500);
    expect(backoffDelayMs(2, { ...policy, jitterMode: 'around' }, () => 0)).toBe(1000);
    expect(backoffDelayMs(2, { ...policy, jitterMode: 'around' }, () => 0.5)).toBe(2000);
    expect(backoffDelayMs(2, { ...policy, jitterMode: 'around' }, () => 0.75)).toBe(2500);
  });

  it('stays finite for very long outages', () => {
    expect(backoffDelayMs(1e9, policy, () => 0)).toBe(8000);
  });
});

describe('parseRetryAfter and retryDelayMs', () => {
  const now = Date.UTC(2026, 10, 25, 12, 0, 0);

  it('reads delta-seconds and HTTP dates, ignores the rest', () => {
    expect(parseRetryAfter(' 7 ', now)).toBe(7000);
    expect(parseRetryAfter(new Date(now + 3000).toUTCString(), now)).toBe(3000);
    expect(parseRetryAfter(new Date(now - 3000).toUTCString(), now)).toBe(0);
    expect([parseRetryAfter('soon', now), parseRetryAfter('', now), parseRetryAfter(undefined, now)]).toEqual([undefined, undefined, undefined]);
  });

  it('raises the delay to the Retry-After the caller reads from its error, spread by jitter', () => {
    const asked = (): number => 7000;
    expect(retryDelayMs(1, new Error('x'), policy, now, () => 0, asked)).toBe(7000);
    expect(retryDelayMs(1, new Error('x'), policy, now, () => 0.5, asked)).toBe(7000 * 1.25);
    expect(retryDelayMs(4, new Error('x'), policy, now, () => 0, asked)).toBe(8000);
    expect(retryDelayMs(1, new Error('x'), policy, now, () => 0)).toBe(1000);
  });
});

describe('hasTransientNetworkCode', () => {
  it('finds a socket error code through a chain of causes, within the depth', () => {
    const socket = Object.assign(new Error('reset'), { code: 'ECONNRESET' });
    const wrapped = new Error('outer', { cause: new TypeError('fetch failed', { cause: socket }) });
    expect(hasTransientNetworkCode(socket)).toBe(true);
    expect(hasTransientNetworkCode(wrapped)).toBe(true);
    expect(hasTransientNetworkCode(wrapped, 2)).toBe(false);
    expect(hasTransientNetworkCode(Object.assign(new Error('denied'), { code: 'EACCES' }))).toBe(false);
    expect(hasTransientNetworkCode('ECONNRESET')).toBe(false);
  });
});

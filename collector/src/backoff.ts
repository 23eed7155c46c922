/**
 * Jittered exponential backoff, built on p-retry, for every API server call of the collector.
 *
 * What is retried: HTTP 429 and 5xx (`ApiError.code`) and network errors (no HTTP status at all).
 * Nothing else: a 4xx other than 429 will not change by retrying, and a cancellation (kill switch,
 * shutdown) must stop at once. A `Retry-After` header is honoured as a lower bound.
 *
 * p-retry drives the attempts, but its own timer is switched off (`minTimeout: 0`) and the delay is slept
 * on the injected Clock inside `shouldRetry`, so tests drive backoff with a fake clock and a kill-switch
 * abort interrupts a backoff wait immediately.
 */
import pRetry from 'p-retry';
import type { Clock } from '#core/clock.js';
import { isAbortError } from '#core/clock.js';
import { ApiError, NetworkError } from './errors.js';
import type { CollectorConfig } from './config.js';

/** Shape of the exponential backoff, in milliseconds. */
export interface BackoffPolicy {
  /** Delay before the first retry (before jitter). */
  initialMs: number;
  /** Cap of the un-jittered delay; jitter only shortens, so no delay ever exceeds it (bar Retry-After). */
  maxMs: number;
  /** 0..1: a delay d is drawn uniformly from [d × (1 − jitter), d]. 1 is "full jitter". */
  jitter: number;
  /** Growth factor per retry; 2 unless set. */
  factor?: number;
}

/** Converts the `backoff` section of the config (seconds) into a policy (milliseconds). */
export function backoffPolicyFromConfig(backoff: CollectorConfig['backoff']): BackoffPolicy {
  return { initialMs: backoff.initialSeconds * 1000, maxMs: backoff.maxSeconds * 1000, jitter: backoff.jitter };
}

/**
 * Delay in ms before retry number `retry` (1 for the first retry): min(max, initial × factor^(retry−1)),
 * then shortened by up to `jitter` of itself with `random()` in [0, 1). Spreading the delays is what stops
 * a fleet of agents that failed together from retrying together.
 */
export function backoffDelayMs(retry: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const factor = policy.factor ?? 2;
  const exp = Math.max(0, retry - 1);
  // Math.min first: factor^exp overflows to Infinity for long outages, and Infinity × 0 would be NaN.
  const base = Math.min(policy.maxMs, policy.initialMs * Math.pow(factor, Math.min(exp, 1000)));
  return base * (1 - policy.jitter * random());
}

/** HTTP status codes that are worth retrying: throttling and server-side failures. */
export function isRetryableStatus(code: number): boolean {
  return code === 429 || (code >= 500 && code <= 599);
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/** True for errors that never got an HTTP status: our NetworkError, or a raw socket/DNS/undici error. */
export function isNetworkError(err: unknown): boolean {
  if (err instanceof NetworkError) return true;
  let e: unknown = err;
  // undici reports `TypeError: fetch failed` with the socket error as `cause`.
  for (let depth = 0; depth < 4 && e instanceof Error; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    e = e.cause;
  }
  return false;
}

/**
 * The retry decision of the collector: ApiError 429/5xx and network errors are retryable;
 * cancellations and everything else are not.
 */
export function isRetryable(err: unknown): boolean {
  if (isAbortError(err)) return false;
  if (err instanceof ApiError) return isRetryableStatus(err.code);
  return isNetworkError(err);
}

/**
 * The server's `Retry-After` (delta-seconds or HTTP-date) in ms, or undefined when absent or unparsable.
 * Only ApiErrors carry headers.
 */
export function retryAfterMs(err: unknown, nowMs: number): number | undefined {
  if (!(err instanceof ApiError)) return undefined;
  const headers: Record<string, string | undefined> = err.headers;
  const raw = headers['retry-after'] ?? headers['Retry-After'];
  if (raw === undefined) return undefined;
  const trimmed = String(raw).trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

/**
 * Delay before retry `retry` after `err`: the jittered exponential delay, raised to the server's
 * Retry-After when that is longer. A Retry-After is itself spread over [ra, ra × (1 + jitter)) so that
 * agents told "retry after 1 s" by API Priority and Fairness do not all come back in the same instant.
 */
export function retryDelayMs(
  retry: number,
  err: unknown,
  policy: BackoffPolicy,
  nowMs: number,
  random: () => number = Math.random,
): number {
  const backoff = backoffDelayMs(retry, policy, random);
  const ra = retryAfterMs(err, nowMs);
  if (ra === undefined) return backoff;
  return Math.max(backoff, ra * (1 + policy.jitter * random()));
}

/** Information passed to `onRetry` before each backoff wait. */
export interface RetryInfo {
  error: Error;
  /** The attempt that just failed (1-based). */
  attempt: number;
  /** The wait before the next attempt, ms. */
  delayMs: number;
}

/** Options of withBackoff. */
export interface WithBackoffOptions {
  policy: BackoffPolicy;
  clock: Clock;
  /** Aborting rejects at once with `signal.reason`, also during a backoff wait. */
  signal?: AbortSignal;
  /** Maximum number of retries after the first attempt; Infinity (the default) retries until success. */
  retries?: number;
  /** Defaults to isRetryable. */
  shouldRetry?: (err: Error) => boolean;
  /** Called before each wait, e.g. to log; must not throw. */
  onRetry?: (info: RetryInfo) => void;
  random?: () => number;
}

/**
 * Runs `fn` until it succeeds, retrying retryable failures after a jittered exponential delay slept on
 * the injected clock. Rejects with the last error once it is not retryable or retries are exhausted, and
 * with the abort reason when `signal` aborts.
 */
export async function withBackoff<T>(fn: (attempt: number) => Promise<T>, options: WithBackoffOptions): Promise<T> {
  const shouldRetry = options.shouldRetry ?? isRetryable;
  const random = options.random ?? Math.random;
  return pRetry(fn, {
    retries: options.retries ?? Infinity,
    // p-retry's own setTimeout-based wait is disabled; the wait happens on our Clock in shouldRetry.
    minTimeout: 0,
    ...(options.signal ? { signal: options.signal } : {}),
    shouldRetry: async ({ error, attemptNumber, retriesConsumed }) => {
      if (!shouldRetry(error)) return false;
      const delayMs = retryDelayMs(retriesConsumed + 1, error, options.policy, options.clock.nowMs(), random);
      options.onRetry?.({ error, attempt: attemptNumber, delayMs });
      await options.clock.sleep(delayMs, options.signal);
      return true;
    },
  });
}

/**
 * Stateful backoff for loops that are not a single call: the list/watch loops. Every failed (or
 * suspiciously short) list/watch cycle calls `wait()` before the next attempt, which is what prevents a
 * relist storm; a healthy cycle calls `reset()`.
 */
export class Backoff {
  private failures = 0;
  private readonly policy: BackoffPolicy;
  private readonly clock: Clock;
  private readonly random: () => number;
  constructor(
    policy: BackoffPolicy,
    clock: Clock,
    random: () => number = Math.random,
  ) {
    this.policy = policy;
    this.clock = clock;
    this.random = random;
  }

  /** Consecutive failures since the last reset. */
  get attempts(): number {
    return this.failures;
  }

  /** Records a failure and returns the delay that should precede the next attempt. */
  next(err?: unknown): number {
    this.failures++;
    return retryDelayMs(this.failures, err, this.policy, this.clock.nowMs(), this.random);
  }

  /** Records a failure and sleeps the corresponding delay; rejects with `signal.reason` on abort. */
  async wait(signal?: AbortSignal, err?: unknown): Promise<number> {
    const delay = this.next(err);
    await this.clock.sleep(delay, signal);
    return delay;
  }

  /** Forgets past failures after a healthy cycle. */
  reset(): void {
    this.failures = 0;
  }
}

/**
 * Jittered exponential backoff, the one computation behind every retry of the operator and the agent,
 * and a retry loop around p-retry that sleeps on an injected {@link Clock}.
 *
 * Spreading the delays is what stops a fleet of agents (or an operator's many clusters) that failed
 * together from retrying together. A server's `Retry-After` is honoured as a lower bound; how each side
 * reads it from its own error types is its business ({@link RetryAfterOf}).
 *
 * p-retry drives the attempts, but its own timer is switched off (`minTimeout: 0`) and the delay is
 * slept on the injected Clock inside `shouldRetry`, so tests drive backoff with a fake clock and an
 * abort (kill switch, shutdown) interrupts a backoff wait immediately.
 */
import pRetry from 'p-retry';
import type { Clock } from './clock.js';

/**
 * How jitter moves a delay d, with `random()` = r in [0, 1):
 * - `down`: d × (1 − jitter × r), within [d × (1 − jitter), d]: no delay ever exceeds the cap.
 * - `up`: d × (1 + jitter × r), within [d, d × (1 + jitter)) (client-go's wait.Jitter).
 * - `around`: d × (1 + 2 × jitter × (r − 0.5)), within [d × (1 − jitter), d × (1 + jitter)).
 */
export type JitterMode = 'down' | 'up' | 'around';

/** Shape of the exponential backoff, in milliseconds. */
export interface BackoffPolicy {
  /** Delay before the first retry (before jitter). */
  initialMs: number;
  /** Cap of the un-jittered delay. */
  maxMs: number;
  /** 0..1: how far jitter may move a delay (see {@link JitterMode}); 1 with `down` is "full jitter". */
  jitter: number;
  /** Growth factor per retry; 2 unless set. */
  factor?: number;
  /** Direction of the jitter; `down` unless set. */
  jitterMode?: JitterMode;
}

/**
 * Delay in ms before retry number `retry` (1 for the first retry): min(max, initial × factor^(retry−1)),
 * then moved by jitter as the policy's {@link JitterMode} says, with `random()` in [0, 1).
 */
export function backoffDelayMs(retry: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const factor = policy.factor ?? 2;
  const exp = Math.max(0, retry - 1);
  // Math.min first: factor^exp overflows to Infinity for long outages, and Infinity × 0 would be NaN.
  const base = Math.min(policy.maxMs, policy.initialMs * Math.pow(factor, Math.min(exp, 1000)));
  switch (policy.jitterMode ?? 'down') {
    case 'down':
      return base * (1 - policy.jitter * random());
    case 'up':
      return base * (1 + policy.jitter * random());
    case 'around':
      return base * (1 + 2 * policy.jitter * (random() - 0.5));
  }
}

/**
 * A `Retry-After` header value (delta-seconds or an HTTP-date, relative to `nowMs`) in ms; undefined
 * when absent or unparsable. A date in the past is 0.
 */
export function parseRetryAfter(raw: string | undefined, nowMs: number): number | undefined {
  const trimmed = raw?.trim();
  if (trimmed === undefined || trimmed === '') return undefined;
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

/** Reads the delay a server asked for (ms) from an error of the caller's HTTP client, if any. */
export type RetryAfterOf = (err: unknown, nowMs: number) => number | undefined;

/**
 * Delay before retry `retry` after `err`: the jittered exponential delay, raised to the server's
 * Retry-After (read by `retryAfterOf`) when that is longer. A Retry-After is itself spread over
 * [ra, ra × (1 + jitter)) so that agents told "retry after 1 s" by API Priority and Fairness do not all
 * come back in the same instant.
 */
export function retryDelayMs(
  retry: number,
  err: unknown,
  policy: BackoffPolicy,
  nowMs: number,
  random: () => number = Math.random,
  retryAfterOf?: RetryAfterOf,
): number {
  const backoff = backoffDelayMs(retry, policy, random);
  const ra = retryAfterOf?.(err, nowMs);
  if (ra === undefined) return backoff;
  return Math.max(backoff, ra * (1 + policy.jitter * random()));
}

/**
 * Socket, DNS and undici error codes of a request that never got an HTTP answer because the server or
 * the path to it is (maybe briefly) unavailable: worth retrying.
 */
export const TRANSIENT_NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

/**
 * True when `err` or one of its first `depth` causes carries a {@link TRANSIENT_NETWORK_CODES} code:
 * undici reports `TypeError: fetch failed` with the socket error as `cause`, and callers wrap errors
 * with context.
 */
export function hasTransientNetworkCode(err: unknown, depth = 5): boolean {
  let e: unknown = err;
  for (let i = 0; i < depth && typeof e === 'object' && e !== null; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TRANSIENT_NETWORK_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** Information passed to `onRetry` before each backoff wait. */
export interface RetryInfo {
  error: Error;
  /** The attempt that just failed (1-based). */
  attempt: number;
  /** The wait before the next attempt, ms. */
  delayMs: number;
}

/** Options of {@link withBackoff}. */
export interface WithBackoffOptions {
  policy: BackoffPolicy;
  clock: Clock;
  /** Which failures are worth another attempt; cancellations never are. */
  shouldRetry: (err: Error) => boolean;
  /** Aborting rejects at once with `signal.reason`, also during a backoff wait. */
  signal?: AbortSignal;
  /** Maximum number of retries after the first attempt; Infinity (the default) retries until success. */
  retries?: number;
  /** The server's Retry-After, honoured as a lower bound by the default delay ({@link retryDelayMs}). */
  retryAfterOf?: RetryAfterOf;
  /** Replaces the default delay before retry `retry` (1-based) after `err`. */
  delayMs?: (retry: number, err: Error) => number;
  /** Called before each wait, e.g. to log; must not throw. */
  onRetry?: (info: RetryInfo) => void;
  random?: () => number;
}

/**
 * Runs `fn` until it succeeds, retrying failures that `shouldRetry` accepts after a jittered
 * exponential delay slept on the injected clock. Rejects with the last error, unchanged, once it is
 * not retryable or retries are exhausted, and with the abort reason when `signal` aborts.
 */
export async function withBackoff<T>(fn: (attempt: number) => Promise<T>, options: WithBackoffOptions): Promise<T> {
  const random = options.random ?? Math.random;
  const delayOf =
    options.delayMs ?? ((retry: number, err: Error) => retryDelayMs(retry, err, options.policy, options.clock.nowMs(), random, options.retryAfterOf));
  return pRetry(fn, {
    retries: options.retries ?? Infinity,
    // p-retry's own setTimeout-based wait is disabled; the wait happens on our Clock in shouldRetry.
    minTimeout: 0,
    ...(options.signal ? { signal: options.signal } : {}),
    shouldRetry: async ({ error, attemptNumber, retriesConsumed }) => {
      if (!options.shouldRetry(error)) return false;
      const delayMs = delayOf(retriesConsumed + 1, error);
      options.onRetry?.({ error, attempt: attemptNumber, delayMs });
      await options.clock.sleep(delayMs, options.signal);
      return true;
    },
  });
}

/**
 * Stateful backoff for loops that are not a single call (list/watch loops, periodic work): every failed
 * (or suspiciously short) cycle calls `wait()` before the next attempt, which is what prevents a relist
 * storm; a healthy cycle calls `reset()`.
 */
export class Backoff {
  private failures = 0;
  private readonly policy: BackoffPolicy;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly retryAfterOf: RetryAfterOf | undefined;
  constructor(policy: BackoffPolicy, clock: Clock, random: () => number = Math.random, retryAfterOf?: RetryAfterOf) {
    this.policy = policy;
    this.clock = clock;
    this.random = random;
    this.retryAfterOf = retryAfterOf;
  }

  /** Consecutive failures since the last reset. */
  get attempts(): number {
    return this.failures;
  }

  /** Records a failure and returns the delay that should precede the next attempt. */
  next(err?: unknown): number {
    this.failures++;
    return retryDelayMs(this.failures, err, this.policy, this.clock.nowMs(), this.random, this.retryAfterOf);
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

/**
 * The collector's retry policy for every API server call, on the shared core's backoff
 * (`#core/backoff.js`: the delay computation, the retry loop and the loop-form Backoff).
 *
 * What is retried: HTTP 429 and 5xx (`ApiError.code`) and network errors (no HTTP status at all).
 * Nothing else: a 4xx other than 429 will not change by retrying, and a cancellation (kill switch,
 * shutdown) must stop at once. A `Retry-After` header is honoured as a lower bound.
 */
import { isAbortError, type Clock } from '#core/clock.js';
import {
  Backoff as CoreBackoff,
  hasTransientNetworkCode,
  parseRetryAfter,
  retryDelayMs as coreRetryDelayMs,
  withBackoff as coreWithBackoff,
  type BackoffPolicy,
  type WithBackoffOptions as CoreWithBackoffOptions,
} from '#core/backoff.js';
import { ApiError, NetworkError } from './errors.js';
import type { CollectorConfig } from './config.js';

export { backoffDelayMs, type BackoffPolicy, type RetryInfo } from '#core/backoff.js';

/** Converts the `backoff` section of the config (seconds) into a policy (milliseconds). */
export function backoffPolicyFromConfig(backoff: CollectorConfig['backoff']): BackoffPolicy {
  return { initialMs: backoff.initialSeconds * 1000, maxMs: backoff.maxSeconds * 1000, jitter: backoff.jitter };
}

/** HTTP status codes that are worth retrying: throttling and server-side failures. */
export function isRetryableStatus(code: number): boolean {
  return code === 429 || (code >= 500 && code <= 599);
}

/** True for errors that never got an HTTP status: our NetworkError, or a raw socket/DNS/undici error. */
export function isNetworkError(err: unknown): boolean {
  return err instanceof NetworkError || hasTransientNetworkCode(err, 4);
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
  return raw === undefined ? undefined : parseRetryAfter(String(raw), nowMs);
}

/** The core's retry delay with the collector's Retry-After ({@link retryAfterMs}). */
export function retryDelayMs(retry: number, err: unknown, policy: BackoffPolicy, nowMs: number, random: () => number = Math.random): number {
  return coreRetryDelayMs(retry, err, policy, nowMs, random, retryAfterMs);
}

/** Options of withBackoff: the core's, with the collector's retry decision as the default. */
export type WithBackoffOptions = Omit<CoreWithBackoffOptions, 'shouldRetry' | 'retryAfterOf' | 'delayMs'> & {
  /** Defaults to isRetryable. */
  shouldRetry?: (err: Error) => boolean;
};

/**
 * Runs `fn` until it succeeds, retrying retryable failures ({@link isRetryable} unless told) after a
 * jittered exponential delay, at least the server's Retry-After, slept on the injected clock.
 */
export async function withBackoff<T>(fn: (attempt: number) => Promise<T>, options: WithBackoffOptions): Promise<T> {
  return coreWithBackoff(fn, { ...options, shouldRetry: options.shouldRetry ?? isRetryable, retryAfterOf: retryAfterMs });
}

/** The core's loop-form Backoff, honouring the collector's Retry-After. */
export class Backoff extends CoreBackoff {
  constructor(policy: BackoffPolicy, clock: Clock, random: () => number = Math.random) {
    super(policy, clock, random, retryAfterMs);
  }
}

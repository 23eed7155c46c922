/**
 * Time, behind a narrow interface so that every timing decision of the collector (token bucket refill,
 * backoff delays, kill-switch polling, leader-election deadlines, collection intervals) can be driven by a
 * fake clock in tests instead of by real waiting.
 */

/** Source of time and of cancellable waits. */
export interface Clock {
  /**
   * Milliseconds since the Unix epoch (wall clock). Callers only rely on differences and must tolerate a
   * step backwards (NTP): none of them may compute a negative wait from it.
   */
  now(): number;
  /**
   * Resolves after `ms` milliseconds (immediately for `ms <= 0`, but always asynchronously). Rejects with
   * `signal.reason` as soon as `signal` aborts, and at once if it is already aborted.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The real clock: `Date.now()` and `setTimeout`. Its timers keep the process alive while they wait. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(abortReason(signal));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, Math.max(0, ms));
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

/**
 * The reason a signal was aborted with, as an Error (AbortSignal allows any value; our code always aborts
 * with Errors, but a foreign signal might not).
 */
export function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error) return reason;
  const err = new Error(reason === undefined ? 'aborted' : `aborted: ${JSON.stringify(reason) ?? typeof reason}`);
  err.name = 'AbortError';
  return err;
}

/**
 * True when `err` is a cancellation (our StoppedError/ShutdownError, a DOM AbortError or TimeoutError)
 * rather than a failure: cancellations are never retried and never logged as errors.
 */
export function isAbortError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return err.name === 'AbortError' || err.name === 'StoppedError' || err.name === 'ShutdownError';
}

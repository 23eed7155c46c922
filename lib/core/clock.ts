/**
 * Time as a narrow interface, so every component of the operator and the agent that waits, times out,
 * backs off or polls can be driven by a fake clock in unit tests (no real sleeps, no timed assertions)
 * and by {@link SystemClock} in production.
 */

/** Largest delay a Node timer can hold; longer delays would fire immediately, so they are clamped. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The source of time and timers. Implementations must fire timers in due order and never synchronously
 * from inside {@link Clock.setTimer}.
 */
export interface Clock {
  /** The current wall-clock time. */
  now(): Date;
  /**
   * The current wall-clock time in milliseconds since the Unix epoch. Callers only rely on differences
   * and must tolerate a step backwards (NTP): none of them may compute a negative wait from it.
   */
  nowMs(): number;
  /**
   * Resolves after `ms` milliseconds (`ms <= 0` resolves on the next turn, always asynchronously). When
   * `signal` aborts first, rejects with `signal.reason` (see {@link abortReason}) and cancels the timer;
   * an already aborted signal rejects at once.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Calls `fn` once after `ms` milliseconds. Returns a cancel function; cancelling a fired or cancelled
   * timer is a no-op. An exception thrown by `fn` is the caller's bug and propagates like any timer's.
   */
  setTimer(ms: number, fn: () => void): () => void;
}

/**
 * The abort reason as an Error (AbortSignal allows any value; our code always aborts with Errors, but a
 * foreign signal might not). `abort()` without a reason gives a DOMException already; a non-Error reason
 * is wrapped in an Error named `AbortError`, so {@link isAbortError} still sees a cancellation.
 */
export function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error) return reason;
  if (reason === undefined) return new DOMException('The operation was aborted', 'AbortError');
  const err = new Error(`aborted: ${typeof reason === 'string' ? reason : (JSON.stringify(reason) ?? typeof reason)}`, { cause: reason });
  err.name = 'AbortError';
  return err;
}

/**
 * True when `err` is a cancellation (the agent's StoppedError/ShutdownError, a DOM AbortError) rather
 * than a failure: cancellations are never retried and never logged as errors.
 */
export function isAbortError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return err.name === 'AbortError' || err.name === 'StoppedError' || err.name === 'ShutdownError';
}

/**
 * {@link Clock.sleep} on top of {@link Clock.setTimer}, for implementations of Clock: one place that
 * gets the abort bookkeeping right (listener removed on fire, timer cancelled on abort).
 */
export function sleepOn(clock: Pick<Clock, 'setTimer'>, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      cancel();
      reject(abortReason(signal));
    };
    const cancel = clock.setTimer(ms, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The real clock: `Date` and Node timers. Timers keep the process alive (they are not unref'd). */
export class SystemClock implements Clock {
  now(): Date {
    return new Date();
  }

  nowMs(): number {
    return Date.now();
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  setTimer(ms: number, fn: () => void): () => void {
    const handle = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    return () => clearTimeout(handle);
  }
}

/** A shared {@link SystemClock}: it holds no state, so one instance serves every caller. */
export const systemClock: Clock = new SystemClock();

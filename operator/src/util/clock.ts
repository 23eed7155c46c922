/**
 * Time as a narrow interface, so every component that waits, times out or backs off can be driven by a
 * {@link FakeClock} in unit tests (no real sleeps, no timed assertions) and by {@link SystemClock} in
 * production.
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
   * Resolves after `ms` milliseconds (`ms <= 0` resolves on the next turn). When `signal` aborts first,
   * rejects with `signal.reason` (see {@link abortReason}) and cancels the timer; an already aborted
   * signal rejects at once.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Calls `fn` once after `ms` milliseconds. Returns a cancel function; cancelling a fired or cancelled
   * timer is a no-op. An exception thrown by `fn` is the caller's bug and propagates like any timer's.
   */
  setTimer(ms: number, fn: () => void): () => void;
}

/** The abort reason as an Error: `abort()` without a reason gives a DOMException already; a non-Error reason is wrapped. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  if (reason === undefined) return new DOMException('The operation was aborted', 'AbortError');
  return new Error(`aborted: ${typeof reason === 'string' ? reason : JSON.stringify(reason)}`, { cause: reason });
}

/** Shared implementation of {@link Clock.sleep} on top of {@link Clock.setTimer}. */
function sleepOn(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      cancel();
      reject(abortReason(signal!));
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

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  setTimer(ms: number, fn: () => void): () => void {
    const handle = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    return () => clearTimeout(handle);
  }
}

interface FakeTimer {
  due: number;
  seq: number;
  fn: () => void;
}

/**
 * A manual clock for tests. Time only moves through {@link FakeClock.advance}, which fires every timer
 * that falls due, in due order (ties in creation order), setting `now()` to each timer's due time first.
 * Between timers it lets pending promise continuations run, so async code that re-arms a timer inside
 * the advanced window (a retry loop, a backoff) is fired in the same `advance` call. Work that waits on
 * real I/O is not covered: await that separately.
 */
export class FakeClock implements Clock {
  private current: number;
  private seq = 0;
  private timers: FakeTimer[] = [];

  /** Starts at `start` (default 2026-01-01T00:00:00Z) so timestamps in test output are stable. */
  constructor(start: Date | number = Date.UTC(2026, 0, 1)) {
    this.current = typeof start === 'number' ? start : start.getTime();
  }

  now(): Date {
    return new Date(this.current);
  }

  /** The current time in epoch milliseconds. */
  nowMs(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  setTimer(ms: number, fn: () => void): () => void {
    const timer: FakeTimer = { due: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Number of timers not yet fired or cancelled. */
  pendingTimers(): number {
    return this.timers.length;
  }

  /** Milliseconds until the next timer is due, or undefined when none is pending. */
  nextTimerInMs(): number | undefined {
    const next = this.earliest();
    return next === undefined ? undefined : next.due - this.current;
  }

  /**
   * Moves time forward by `ms`, firing due timers in order and letting promise continuations run
   * after each one. Resolves when time has reached `now + ms` and the continuations have settled.
   */
  async advance(ms: number): Promise<void> {
    if (ms < 0) throw new Error(`FakeClock.advance: negative duration ${ms}`);
    const target = this.current + ms;
    await this.flush();
    for (;;) {
      const next = this.earliest();
      if (next === undefined || next.due > target) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.current = Math.max(this.current, next.due);
      next.fn();
      await this.flush();
    }
    this.current = target;
    await this.flush();
  }

  /**
   * Lets pending promise continuations run without moving time. A macrotask turn drains the whole
   * microtask queue, including microtasks queued while draining; a second turn covers callbacks
   * that were deferred once more through setImmediate (streams, event emitters).
   */
  async flush(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  private earliest(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.timers) {
      if (best === undefined || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

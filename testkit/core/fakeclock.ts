/**
 * The one manual clock for the unit tests of the operator and the agent: time only moves when the test
 * calls {@link FakeClock.advance}, which fires every timer that falls due in due order and lets the code
 * under test run between timers. Not for production use.
 */
import { abortReason, sleepOn, type Clock } from '#core/clock.js';

interface FakeTimer {
  due: number;
  seq: number;
  fn: () => void;
}

/**
 * Lets pending promise chains (and setImmediate-scheduled work: streams, event emitters, work deferred
 * more than once) run without moving time. Each round is a macrotask turn, which drains the whole
 * microtask queue including microtasks queued while draining.
 */
export async function flushAsync(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

/**
 * A manual clock. {@link FakeClock.advance} fires due timers in due order (ties in creation order),
 * setting the time to each timer's due time first; between timers it lets pending promise continuations
 * run, so async code that re-arms a timer inside the advanced window (a retry loop, a backoff) is fired
 * in the same `advance` call. Work that waits on real I/O is not covered: await that separately.
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

  nowMs(): number {
    return this.current;
  }

  /** Like setTimeout(0) for `ms <= 0`: no time needs to pass, but the caller still yields. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (ms <= 0) {
      if (signal?.aborted) return Promise.reject(abortReason(signal));
      return new Promise<void>((resolve) => setImmediate(resolve));
    }
    return sleepOn(this, ms, signal);
  }

  setTimer(ms: number, fn: () => void): () => void {
    const timer: FakeTimer = { due: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Number of timers (and sleeps) not yet fired or cancelled. */
  pendingTimers(): number {
    return this.timers.length;
  }

  /** Milliseconds until the next timer is due, or undefined when none is pending. */
  nextTimerInMs(): number | undefined {
    const next = this.earliest();
    return next === undefined ? undefined : next.due - this.current;
  }

  /** Due times (ms since epoch) of the pending timers and sleeps, earliest first. */
  deadlines(): number[] {
    return this.timers.map((t) => t.due).sort((a, b) => a - b);
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

  /** Lets pending promise continuations run without moving time (see {@link flushAsync}). */
  async flush(): Promise<void> {
    await flushAsync();
  }

  /** Sets the wall clock (may go backwards, to test clock-step handling). Fires nothing. */
  set(ms: number): void {
    this.current = ms;
  }

  private earliest(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.timers) {
      if (best === undefined || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

/**
 * Waits (in real time, for real I/O such as a localhost HTTP round trip) until `cond()` holds; rejects
 * after `timeoutMs`. Not a timing assertion: the deadline only turns a hang into a clear failure.
 */
export async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((r) => setTimeout(r, 2));
  }
}

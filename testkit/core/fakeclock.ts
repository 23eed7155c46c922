/**
 * A manual clock for unit tests: time only moves when the test calls `advance`, and every `sleep` whose
 * deadline is reached is resolved in deadline order, letting the code under test run between timers.
 */
import { abortReason, type Clock } from '../../collector/src/clock.js';

interface Timer {
  at: number;
  seq: number;
  resolve: () => void;
  cleanup: () => void;
}

/** Lets pending promise chains (and setImmediate-scheduled work) run. */
export async function flushAsync(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

/** A Clock whose time is set by the test. Not for production use. */
export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: Timer[] = [];

  constructor(startMs = Date.UTC(2026, 10, 25, 12, 0, 0)) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      // Like setTimeout(0): no time needs to pass, but the caller still yields.
      if (ms <= 0) {
        setImmediate(resolve);
        return;
      }
      const onAbort = (): void => {
        this.timers = this.timers.filter((x) => x !== timer);
        reject(abortReason(signal));
      };
      const timer: Timer = {
        at: this.t + Math.max(0, ms),
        seq: this.seq++,
        resolve,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      this.timers.push(timer);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Number of sleeps waiting on this clock. */
  pendingTimers(): number {
    return this.timers.length;
  }

  /** Deadlines (ms since epoch) of the waiting sleeps, earliest first. */
  deadlines(): number[] {
    return this.timers.map((t) => t.at).sort((a, b) => a - b);
  }

  /**
   * Moves time forward by `ms`, firing due timers one at a time in deadline order, and letting the
   * code they wake run (including new sleeps that fall within the window) before the next one fires.
   */
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    await flushAsync();
    for (;;) {
      const due = this.timers
        .filter((x) => x.at <= target)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = Math.max(this.t, due.at);
      due.cleanup();
      due.resolve();
      await flushAsync();
    }
    this.t = target;
    await flushAsync();
  }

  /** Sets the wall clock (may go backwards, to test clock-step handling). Fires nothing. */
  set(ms: number): void {
    this.t = ms;
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

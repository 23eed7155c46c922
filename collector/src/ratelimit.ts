/**
 * Client-side token bucket, the first defence of the API server against one agent: whatever the agent's
 * loops do (retries, rewatches, relists), it cannot send more than `burst` requests back to back nor more
 * than `qps` per second on average.
 */
import { abortReason, type Clock } from '#core/clock.js';

/** Parameters of a TokenBucket. */
export interface TokenBucketOptions {
  /** Refill rate, tokens per second; > 0. */
  qps: number;
  /** Capacity (and initial content), >= 1. */
  burst: number;
  clock: Clock;
}

/**
 * A token bucket with reservation semantics, like Go's `golang.org/x/time/rate` limiter used by client-go:
 * `take()` reserves a token at once (the balance may go negative) and then waits until the reservation
 * matures. Waiters are therefore served in call order (FIFO) without a queue, and the wait is computed
 * from the clock, so a fake clock drives it exactly. Cancelling a wait returns its token.
 *
 * Limits: not shared between processes or agents (each agent has its own bucket, so the fleet-wide limit is
 * qps × agents); wall-clock steps backwards are ignored rather than refunded.
 */
export class TokenBucket {
  readonly qps: number;
  readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private last: number;

  constructor(options: TokenBucketOptions) {
    if (!(options.qps > 0) || !Number.isFinite(options.qps)) {
      throw new RangeError(`token bucket qps must be a finite number > 0, got ${options.qps}`);
    }
    if (!(options.burst >= 1) || !Number.isFinite(options.burst)) {
      throw new RangeError(`token bucket burst must be a finite number >= 1, got ${options.burst}`);
    }
    this.qps = options.qps;
    this.burst = options.burst;
    this.clock = options.clock;
    this.tokens = options.burst;
    this.last = options.clock.nowMs();
  }

  private refill(): void {
    const now = this.clock.nowMs();
    const elapsed = now - this.last;
    // A backwards clock step must not mint or burn tokens; just re-anchor.
    if (elapsed > 0) this.tokens = Math.min(this.burst, this.tokens + (elapsed / 1000) * this.qps);
    this.last = now;
  }

  /** Tokens available right now (negative when callers are waiting on reservations). */
  available(): number {
    this.refill();
    return this.tokens;
  }

  /** Takes a token if one is available now, without waiting. Never overdraws. */
  tryTake(): boolean {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /**
   * Resolves when a token has been granted. Rejects with `signal.reason` (and gives the token back) if
   * `signal` aborts first, or at once if it is already aborted.
   */
  async take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw abortReason(signal);
    this.refill();
    this.tokens -= 1;
    if (this.tokens >= 0) return;
    const waitMs = (-this.tokens / this.qps) * 1000;
    try {
      await this.clock.sleep(waitMs, signal);
    } catch (err) {
      // The reservation was never used: refund it so later callers are not delayed by a cancelled one.
      this.refill();
      this.tokens = Math.min(this.burst, this.tokens + 1);
      throw err;
    }
  }
}

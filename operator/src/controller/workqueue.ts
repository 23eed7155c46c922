/**
 * A rate-limited work queue keyed by string (`namespace/name`), after client-go's workqueue, plus the
 * worker loop that drives a level-triggered reconciler from it.
 *
 * Guarantees:
 * - a key waiting in the queue is held once, however often it is added (duplicates merge);
 * - a key is never handed to two workers at once: a key added while it is being processed is parked
 *   and queued again only when the worker calls `done(key)`;
 * - failures back off per key, exponentially, until `forget(key)`.
 */
import { backoffDelayMs } from '#core/backoff.js';
import type { Clock } from '#core/clock.js';
import { TerminalError, errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logging.js';

/** Decides how long a key waits before it is retried. */
export interface RateLimiter {
  /** The delay before the next retry of `key`; each call counts one more failure. */
  when(key: string): number;
  /** Resets the failure count of `key` (after a success or a terminal error). */
  forget(key: string): void;
  /** How many failures of `key` have been counted since the last `forget`. */
  numRequeues(key: string): number;
}

/** Options of {@link ExponentialRateLimiter}. */
export interface ExponentialRateLimiterOptions {
  /** Delay after the first failure (default 5 ms, as client-go). */
  baseDelayMs?: number;
  /** Upper bound of the delay (default 1000 s, as client-go). */
  maxDelayMs?: number;
}

/**
 * client-go's ItemExponentialFailureRateLimiter: `base * 2^failures`, capped at `max`, per key. Delays
 * are deterministic (no jitter): the queue already spreads keys, and tests stay exact.
 */
export class ExponentialRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(opts: ExponentialRateLimiterOptions = {}) {
    this.baseDelayMs = opts.baseDelayMs ?? 5;
    this.maxDelayMs = opts.maxDelayMs ?? 1_000_000;
    if (!(this.baseDelayMs > 0) || !(this.maxDelayMs >= this.baseDelayMs)) {
      throw new Error(`ExponentialRateLimiter: need 0 < baseDelayMs <= maxDelayMs, got ${this.baseDelayMs}, ${this.maxDelayMs}`);
    }
  }

  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    // The shared backoff computation without jitter (random pinned to 0).
    return backoffDelayMs(n + 1, { initialMs: this.baseDelayMs, maxMs: this.maxDelayMs, jitter: 0 }, () => 0);
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

/** Options of {@link WorkQueue}. */
export interface WorkQueueOptions {
  /** Timers for `addAfter`/`addRateLimited`. */
  clock: Clock;
  /** Backoff per key (default {@link ExponentialRateLimiter} 5 ms → 1000 s). */
  rateLimiter?: RateLimiter;
  /** Name used in logs and metrics. */
  name?: string;
}

/**
 * The work queue. All methods are synchronous except {@link WorkQueue.get} (waits for a key) and
 * {@link WorkQueue.shutDown} (waits for in-flight keys). Not safe to share a key space between two
 * queues: each controller owns one.
 */
export class WorkQueue {
  /** Name used in logs and metrics. */
  readonly name: string;
  private readonly clock: Clock;
  private readonly limiter: RateLimiter;
  /** Keys ready to hand out, in order. Every key here is also in `dirty`. */
  private readonly queue: string[] = [];
  /** Keys that need processing (queued, or parked because they are being processed). */
  private readonly dirty = new Set<string>();
  /** Keys handed out and not yet `done`. */
  private readonly processing = new Set<string>();
  /** Delayed adds: the earliest due time per key and its timer. */
  private readonly waiting = new Map<string, { dueMs: number; cancel: () => void }>();
  private readonly getters: Array<(key: string | undefined) => void> = [];
  private drainWaiters: Array<() => void> = [];
  private shuttingDown = false;

  constructor(opts: WorkQueueOptions) {
    this.clock = opts.clock;
    this.limiter = opts.rateLimiter ?? new ExponentialRateLimiter();
    this.name = opts.name ?? 'default';
  }

  /**
   * Marks `key` as needing work. A key already queued is not queued twice; a key being processed is
   * queued again after its `done`. Ignored after {@link WorkQueue.shutDown}.
   */
  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const getter = this.getters.shift();
    if (getter !== undefined) {
      // A worker is already waiting: hand the key straight over.
      this.dirty.delete(key);
      this.processing.add(key);
      getter(key);
      return;
    }
    this.queue.push(key);
  }

  /**
   * Adds `key` after `delayMs` (at once when `delayMs <= 0`). While a delayed add of the same key is
   * pending, only the earlier of the two due times is kept, so repeated polls never pile up timers.
   */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (!(delayMs > 0)) {
      this.add(key);
      return;
    }
    const dueMs = this.clock.now().getTime() + delayMs;
    const existing = this.waiting.get(key);
    if (existing !== undefined) {
      if (existing.dueMs <= dueMs) return;
      existing.cancel();
    }
    const cancel = this.clock.setTimer(delayMs, () => {
      this.waiting.delete(key);
      this.add(key);
    });
    this.waiting.set(key, { dueMs, cancel });
  }

  /** Adds `key` after the rate limiter's backoff for it (one more failure counted). */
  addRateLimited(key: string): void {
    if (this.shuttingDown) return;
    this.addAfter(key, this.limiter.when(key));
  }

  /** Resets the backoff of `key`. Does not remove it from the queue. */
  forget(key: string): void {
    this.limiter.forget(key);
  }

  /** Failures counted for `key` since its last `forget`. */
  numRequeues(key: string): number {
    return this.limiter.numRequeues(key);
  }

  /**
   * The next key to process; waits until one is available. Resolves `undefined` once the queue is shut
   * down (keys still queued then are not handed out: reconciliation is level-triggered, so the next
   * leader or the next start lists them again) or when `signal` aborts while waiting. Every key
   * returned must be passed to `done`.
   */
  get(signal?: AbortSignal): Promise<string | undefined> {
    if (this.shuttingDown || signal?.aborted) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => {
      const getter = (k: string | undefined): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(k);
      };
      // Withdraw the getter on abort, so no key is ever handed to a worker that has gone away.
      const onAbort = (): void => {
        const i = this.getters.indexOf(getter);
        if (i >= 0) this.getters.splice(i, 1);
        resolve(undefined);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.getters.push(getter);
    });
  }

  /** Ends the processing of `key`; if it was added meanwhile, it is queued again now. */
  done(key: string): void {
    if (!this.processing.delete(key)) return;
    if (this.dirty.has(key) && !this.shuttingDown) {
      this.dirty.delete(key);
      this.add(key);
    }
    if (this.shuttingDown && this.processing.size === 0) this.wakeDrainWaiters();
  }

  /**
   * Stops the queue: no key is handed out or accepted any more, pending delayed adds are cancelled and
   * waiting `get()` calls resolve `undefined`. Resolves when every key handed out before has been
   * `done` (callers bound that wait with their own deadline). Idempotent.
   */
  shutDown(): Promise<void> {
    if (!this.shuttingDown) {
      this.shuttingDown = true;
      for (const w of this.waiting.values()) w.cancel();
      this.waiting.clear();
      this.queue.length = 0;
      this.dirty.clear();
      for (const getter of this.getters.splice(0)) getter(undefined);
    }
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Whether {@link WorkQueue.shutDown} was called. */
  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Keys ready to be handed out (the queue depth metric; excludes in-flight and delayed keys). */
  len(): number {
    return this.queue.length;
  }

  /** Keys handed out and not yet done. */
  processingLen(): number {
    return this.processing.size;
  }

  /** Keys waiting for a delayed add (`addAfter`/`addRateLimited`). */
  waitingLen(): number {
    return this.waiting.size;
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}

/** What a reconcile may ask for: `requeueAfterMs` polls the key again after that delay. */
export interface ReconcileResult {
  /** Reconcile the key again after this many ms (resets its backoff first). */
  requeueAfterMs?: number;
}

/**
 * A level-triggered reconciler: given a key, move the world one step towards the desired state. A
 * thrown {@link TerminalError} means "do not retry"; any other throw is retried with backoff. `signal`
 * aborts when the process must stop acting (leadership lost, shutting down): cancel API calls with it
 * and end the pass without writing anything further (whoever leads next reconciles the key again).
 */
export type ReconcileFn = (key: string, signal: AbortSignal) => Promise<ReconcileResult | void>;

/** How one reconcile ended, for metrics. */
export type ReconcileOutcome = 'success' | 'requeue' | 'error' | 'terminal';

/** Options of {@link runWorkers}. */
export interface RunWorkersOptions {
  /** Measures reconcile durations. */
  clock: Clock;
  /** Logs failures (with `key`). */
  logger: Logger;
  /** Passed to every reconcile; when it aborts, workers stop taking keys (in-flight ones end as their reconcile honours it). */
  signal?: AbortSignal;
  /** Called after each reconcile, for metrics. Must not throw. */
  onResult?: (key: string, outcome: ReconcileOutcome, durationSeconds: number, error?: unknown) => void;
}

/**
 * Runs `n` workers that take keys from `queue` and reconcile them until the queue is shut down or
 * `signal` aborts; resolves when every worker has returned. Per key outcome:
 * - success: backoff forgotten; with `requeueAfterMs > 0`, the key is added again after that delay;
 * - {@link TerminalError}: backoff forgotten, no retry (logged as a warning);
 * - any other error: `addRateLimited(key)` (logged as an error).
 * Only queue keys are logged, never the objects.
 */
export async function runWorkers(queue: WorkQueue, n: number, reconcile: ReconcileFn, opts: RunWorkersOptions): Promise<void> {
  if (!Number.isInteger(n) || n < 1) throw new Error(`runWorkers: need a positive worker count, got ${n}`);
  const signal = opts.signal ?? new AbortController().signal;
  const worker = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get(signal);
      if (key === undefined) return;
      await processOne(queue, key, reconcile, signal, opts);
    }
  };
  await Promise.all(Array.from({ length: n }, () => worker()));
}

async function processOne(queue: WorkQueue, key: string, reconcile: ReconcileFn, signal: AbortSignal, opts: RunWorkersOptions): Promise<void> {
  const started = opts.clock.now().getTime();
  const seconds = (): number => (opts.clock.now().getTime() - started) / 1000;
  try {
    const result = await reconcile(key, signal);
    queue.forget(key);
    const after = result?.requeueAfterMs;
    if (after !== undefined && after > 0) {
      queue.addAfter(key, after);
      opts.onResult?.(key, 'requeue', seconds());
    } else {
      opts.onResult?.(key, 'success', seconds());
    }
  } catch (err) {
    if (err instanceof TerminalError) {
      queue.forget(key);
      opts.logger.warn('reconcile failed terminally; not retrying', { key, reason: err.reason, error: errorMessage(err) });
      opts.onResult?.(key, 'terminal', seconds(), err);
    } else if (signal.aborted) {
      // Told to stop acting (shutdown, lost leadership): the pass ended early on purpose, which is no
      // failure of the object; an error-level line per interrupted key would only alarm.
      queue.addRateLimited(key);
      opts.logger.info('reconcile interrupted: the process stops acting', { key, reason: errorMessage(signal.reason), error: errorMessage(err) });
      opts.onResult?.(key, 'error', seconds(), err);
    } else {
      queue.addRateLimited(key);
      opts.logger.error('reconcile failed; retrying with backoff', {
        key,
        attempt: queue.numRequeues(key),
        error: err,
      });
      opts.onResult?.(key, 'error', seconds(), err);
    }
  } finally {
    queue.done(key);
  }
}

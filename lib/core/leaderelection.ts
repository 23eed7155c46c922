/**
 * Lease-based leader election on `coordination.k8s.io/v1`, after client-go's leaderelection package
 * (client-node has none, and the agent must not load client-node anyway): the one elector of the
 * operator and the collector's cluster watcher. It reasons about a {@link LeaseRecord} in a
 * {@link LeaseStore}; each component supplies the store over its own API client.
 *
 * How it decides, in short:
 * - A Lease that is absent, released (empty holder) or not renewed for `leaseDurationSeconds` of *local*
 *   observation time is free. Expiry is measured from when this process last saw the record change,
 *   never by comparing the remote `renewTime` with the local clock, so clock skew between replicas
 *   cannot make two of them lead.
 * - Every write carries the observed `resourceVersion`; a 409 means another candidate wrote first and
 *   this attempt lost.
 * - Candidates retry every retryPeriod × [1, 2.2) (client-go's JitterUntil with factor 1.2).
 * - The leader renews every `retryPeriodSeconds`. If it has not renewed for `renewDeadlineSeconds`, or
 *   it sees another holder, it stops leading at once: the leading signal aborts and
 *   `onStoppedLeading` runs. Because renewDeadline < leaseDuration, it stops before anyone else may
 *   take over. An elector leads at most once: after losing, the process is expected to exit and
 *   start clean (controller-runtime's behaviour), or to campaign again with a new elector.
 * - On a graceful stop the leader releases the Lease (empty holder, 1 s duration, as client-go's
 *   ReleaseOnCancel), so a successor takes over at once instead of after the lease duration.
 */
import type { Logger } from './logger.js';
import { errorChain } from './logger.js';
import { isLeaseConflict, LEASE_DURATION_SECONDS, RENEW_DEADLINE_SECONDS, RETRY_PERIOD_SECONDS, type LeaderElectorOptions, type LeaseRecord } from './lease.js';

// The record, the store, the timings and the options live in lease.ts; importers keep taking them here.
export {
  defaultIdentity,
  isLeaseConflict,
  LEASE_DURATION_SECONDS,
  RENEW_DEADLINE_SECONDS,
  RETRY_PERIOD_SECONDS,
  type LeaderCallbacks,
  type LeaderElectorOptions,
  type LeaseRecord,
  type LeaseStore,
} from './lease.js';

/** client-go's JitterFactor: acquire attempts wait retryPeriod × (1 + 1.2 × random). */
const JITTER_FACTOR = 1.2;

type Attempt = 'acquired' | 'held' | 'failed';

/** Why leading ended: stopped on request, lost the lease, or the leader's own work failed. */
type LeadEnd = { kind: 'stopped' } | { kind: 'lost' | 'fatal'; reason: string };

/** `logger.child(fields)` when the logger has children (winston, JsonLogger), else fields merged in. */
function withFields(logger: Logger, fields: Record<string, unknown>): Logger {
  const child = (logger as { child?: unknown }).child;
  if (typeof child === 'function') return (child as (f: Record<string, unknown>) => Logger).call(logger, fields);
  return {
    error: (m, meta) => logger.error(m, { ...fields, ...meta }),
    warn: (m, meta) => logger.warn(m, { ...fields, ...meta }),
    info: (m, meta) => logger.info(m, { ...fields, ...meta }),
    debug: (m, meta) => logger.debug(m, { ...fields, ...meta }),
  };
}

/**
 * Campaigns for a Lease and keeps it while it can. Use: `const done = elector.run();` ... on shutdown
 * `await elector.stop()`. `run()` resolves when this elector is done for good: it lost the lease, was
 * stopped, or `onStartedLeading` failed. One-shot: create a new elector to campaign again.
 */
export class LeaderElector {
  /** This process's identity in the Lease. */
  readonly identity: string;
  private readonly o: Required<Omit<LeaderElectorOptions, 'random'>> & { random: () => number };
  private readonly log: Logger;
  private observed: LeaseRecord | undefined;
  private observedAtMs = 0;
  private reportedLeader: string | undefined;
  private leading = false;
  private leadingController: AbortController | undefined;
  private work: Promise<void> | undefined;
  private readonly stopController = new AbortController();
  private releaseOnStop = true;
  private fatal: string | undefined;
  private running: Promise<void> | undefined;

  constructor(opts: LeaderElectorOptions) {
    const leaseDurationSeconds = opts.leaseDurationSeconds ?? LEASE_DURATION_SECONDS;
    const renewDeadlineSeconds = opts.renewDeadlineSeconds ?? RENEW_DEADLINE_SECONDS;
    const retryPeriodSeconds = opts.retryPeriodSeconds ?? RETRY_PERIOD_SECONDS;
    // client-go's invariants: the leader must give up before a follower may take over, and must get
    // more than one jittered retry within the renew deadline.
    if (!(leaseDurationSeconds > renewDeadlineSeconds)) throw new RangeError('leaseDurationSeconds must be greater than renewDeadlineSeconds');
    if (!(renewDeadlineSeconds > JITTER_FACTOR * retryPeriodSeconds)) throw new RangeError('renewDeadlineSeconds must exceed 1.2 × retryPeriodSeconds');
    if (!(retryPeriodSeconds > 0)) throw new RangeError('retryPeriodSeconds must be positive');
    if (opts.identity === '') throw new RangeError('identity must not be empty');
    this.identity = opts.identity;
    const requestTimeoutMs = opts.requestTimeoutMs ?? (renewDeadlineSeconds * 1000) / 2;
    this.o = {
      ...opts,
      leaseDurationSeconds,
      renewDeadlineSeconds,
      retryPeriodSeconds,
      requestTimeoutMs,
      releaseTimeoutMs: opts.releaseTimeoutMs ?? requestTimeoutMs,
      renewFromLastWrite: opts.renewFromLastWrite ?? true,
      awaitLeaderWork: opts.awaitLeaderWork ?? false,
      random: opts.random ?? Math.random,
    };
    this.log = withFields(opts.logger, { component: 'leader-election', lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
  }

  /** Whether this process leads right now. */
  isLeader(): boolean {
    return this.leading;
  }

  /** The last observed holder, if any. */
  getLeader(): string | undefined {
    return this.reportedLeader;
  }

  /** The holder of the last observed record: '' when free, undefined before the first read. */
  observedHolder(): string | undefined {
    return this.observed === undefined ? undefined : (this.observed.holderIdentity ?? '');
  }

  /** Starts campaigning (see the class comment). Calling it twice returns the same promise. */
  run(): Promise<void> {
    this.running ??= this.loop();
    return this.running;
  }

  /**
   * Stops campaigning or leading and waits until `run()` has finished. A leader first aborts its
   * leading signal, then (unless `release` is false) releases the Lease, then calls
   * `onStoppedLeading`. Pass `release: false` when leader-only work may still be running, so the
   * lease expires normally instead of letting a successor overlap with it.
   */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.releaseOnStop = opts.release ?? true;
    this.stopController.abort(new Error('leader election stopped'));
    await this.running;
  }

  /**
   * One acquire-or-renew attempt outside `run()` (client-go's tryAcquireOrRenew), bounded by the
   * request timeout: true when this process holds the lease afterwards.
   */
  async tryAcquireOrRenew(): Promise<boolean> {
    return (await this.attempt(this.o.requestTimeoutMs)) === 'acquired';
  }

  private async loop(): Promise<void> {
    const stop = this.stopController.signal;
    // Campaign.
    for (;;) {
      if (stop.aborted) return;
      if ((await this.attempt(this.o.requestTimeoutMs)) === 'acquired') break;
      const wait = this.o.retryPeriodSeconds * 1000 * (1 + JITTER_FACTOR * this.o.random());
      if (!(await this.sleep(wait))) return;
    }
    if (stop.aborted) {
      // Stopped while the winning write was in flight: give it back without ever acting on it.
      if (this.releaseOnStop) await this.release();
      return;
    }
    const end = await this.lead();
    await this.stepDown(end);
  }

  /** Leads until stopped, lost or failed. */
  private async lead(): Promise<LeadEnd> {
    this.leading = true;
    const leadingController = new AbortController();
    this.leadingController = leadingController;
    this.log.info('became leader');
    this.work = Promise.resolve()
      .then(() => this.o.callbacks.onStartedLeading(leadingController.signal))
      .catch((err: unknown) => {
        if (leadingController.signal.aborted) {
          // Leading had already ended: the work stopping with an error is its way of ending.
          this.log.debug('leader work ended with an error after leading stopped', { error: errorChain(err) });
          return;
        }
        // The leader's work failed: stand down so a healthy replica can take over.
        this.fatal = `onStartedLeading failed: ${err instanceof Error ? err.message : String(err)}`;
        this.log.error('leader work failed; stepping down', { error: err });
        this.stopController.abort(new Error(this.fatal));
      });

    const stopped = (): LeadEnd => (this.fatal !== undefined ? { kind: 'fatal', reason: this.fatal } : { kind: 'stopped' });
    let lastRenewMs = this.o.clock.now().getTime();
    const deadlineMs = this.o.renewDeadlineSeconds * 1000;
    for (;;) {
      if (!(await this.sleep(this.o.retryPeriodSeconds * 1000))) return stopped();
      for (;;) {
        const left = lastRenewMs + deadlineMs - this.o.clock.now().getTime();
        if (left <= 0) return { kind: 'lost', reason: `failed to renew for ${this.o.renewDeadlineSeconds}s` };
        const result = await this.attempt(Math.min(this.o.requestTimeoutMs, left));
        if (this.stopController.signal.aborted) return stopped();
        if (result === 'acquired') {
          lastRenewMs = this.o.clock.now().getTime();
          break;
        }
        if (result === 'held') return { kind: 'lost', reason: `lease taken by ${this.observed?.holderIdentity ?? 'another holder'}` };
        // Failed: retry one retry period later, or at the deadline if that comes first.
        const now = this.o.clock.now().getTime();
        if (!(await this.sleep(Math.min(this.o.retryPeriodSeconds * 1000, Math.max(0, lastRenewMs + deadlineMs - now))))) return stopped();
      }
    }
  }

  private async stepDown(end: LeadEnd): Promise<void> {
    this.leading = false;
    // Abort first, release second: leader-only work is told to stop before a successor can start.
    this.leadingController?.abort(new Error(end.kind === 'stopped' ? 'leader election stopped' : `stopped leading: ${end.reason}`));
    if (this.o.awaitLeaderWork) await this.work;
    if (end.kind === 'lost') {
      // Not released: it either is someone else's now, or the API server could not be reached.
      this.log.error('stopped leading: lost the lease', { reason: end.reason });
    } else if (end.kind === 'fatal' || this.releaseOnStop) {
      await this.release();
    }
    this.log.info('stopped leading');
    this.o.callbacks.onStoppedLeading();
  }

  /** Gives the lease up: empty holder and 1 s duration, so a candidate may take it at once. */
  private async release(): Promise<void> {
    const timeoutMs = this.o.releaseTimeoutMs;
    for (let tries = 0; tries < 2; tries++) {
      let current = this.observed;
      if (tries > 0 || current?.resourceVersion === undefined) {
        try {
          current = await this.withTimeout((s) => this.o.leaseClient.get(this.o.namespace, this.o.name, s), timeoutMs);
        } catch (err) {
          this.log.warn('could not read the lease to release it; it will expire', { error: errorChain(err) });
          return;
        }
      }
      if (current === undefined || current.holderIdentity !== this.identity) return;
      const now = this.o.clock.now();
      try {
        const released = await this.withTimeout(
          (s) => this.o.leaseClient.replace({ ...current, holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now }, s),
          timeoutMs,
        );
        this.setObserved(released);
        this.log.info('released the lease');
        return;
      } catch (err) {
        if (!isLeaseConflict(err)) {
          this.log.warn('could not release the lease; it will expire', { error: errorChain(err) });
          return;
        }
        // Stale resourceVersion (e.g. an aborted renew succeeded on the server): read and try once more.
      }
    }
  }

  /**
   * One try to acquire or renew (client-go's tryAcquireOrRenew), bounded by `timeoutMs`. Returns
   * `held` when another holder's lease is still valid.
   */
  private async attempt(timeoutMs: number): Promise<Attempt> {
    try {
      return await this.withTimeout((signal) => this.acquireOrRenew(signal), timeoutMs);
    } catch (err) {
      if (isLeaseConflict(err)) {
        this.log.debug('lost a lease write race (409)');
      } else {
        this.log.warn('lease request failed', { error: errorChain(err) });
      }
      return 'failed';
    }
  }

  private async acquireOrRenew(signal: AbortSignal): Promise<Attempt> {
    const client = this.o.leaseClient;
    const now = this.o.clock.now();
    // Fast path: a leader renews with the record it wrote last (one request instead of two). A 409
    // means someone else wrote; fall back to reading the current record.
    if (this.o.renewFromLastWrite && this.leading && this.observed?.resourceVersion !== undefined && this.observed.holderIdentity === this.identity) {
      try {
        this.setObserved(await client.replace({ ...this.observed, leaseDurationSeconds: this.o.leaseDurationSeconds, renewTime: now }, signal));
        return 'acquired';
      } catch (err) {
        if (!isLeaseConflict(err)) throw err;
      }
    }

    const current = await client.get(this.o.namespace, this.o.name, signal);
    if (current === undefined) {
      const created = await client.create(
        {
          namespace: this.o.namespace,
          name: this.o.name,
          holderIdentity: this.identity,
          leaseDurationSeconds: this.o.leaseDurationSeconds,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: 0,
        },
        signal,
      );
      this.setObserved(created);
      return 'acquired';
    }
    this.setObserved(current);

    const holder = current.holderIdentity ?? '';
    const durationMs = (current.leaseDurationSeconds ?? this.o.leaseDurationSeconds) * 1000;
    if (holder !== '' && holder !== this.identity && this.observedAtMs + durationMs > this.o.clock.now().getTime()) {
      return 'held';
    }
    const taking = holder !== this.identity;
    const next: LeaseRecord = {
      ...current,
      holderIdentity: this.identity,
      leaseDurationSeconds: this.o.leaseDurationSeconds,
      renewTime: now,
      acquireTime: taking ? now : (current.acquireTime ?? now),
      leaseTransitions: taking ? (current.leaseTransitions ?? 0) + 1 : (current.leaseTransitions ?? 0),
    };
    this.setObserved(await client.replace(next, signal));
    if (taking && holder !== '') this.log.info('took over an expired lease', { previousHolder: holder });
    return 'acquired';
  }

  /** Records what the server holds; resets the local observation time when the record changed. */
  private setObserved(record: LeaseRecord): void {
    const before = this.observed;
    const changed =
      before === undefined ||
      before.resourceVersion !== record.resourceVersion ||
      before.holderIdentity !== record.holderIdentity ||
      before.renewTime?.getTime() !== record.renewTime?.getTime();
    this.observed = record;
    if (changed) this.observedAtMs = this.o.clock.now().getTime();
    const holder = record.holderIdentity ?? '';
    if (holder !== '' && holder !== this.reportedLeader) {
      this.reportedLeader = holder;
      if (holder !== this.identity) this.log.info('new leader observed', { leader: holder });
      try {
        this.o.callbacks.onNewLeader?.(holder);
      } catch (err) {
        // A notification callback must not break the election loop; report it loudly instead.
        this.log.error('onNewLeader callback threw', { error: err });
      }
    }
  }

  /**
   * Runs `fn` with a signal that aborts after `timeoutMs` or on stop, and stops waiting for it then
   * (a client that ignores the signal cannot hold the loop past the renew deadline).
   */
  private withTimeout<T>(fn: (signal: AbortSignal) => Promise<T>, timeoutMs: number): Promise<T> {
    const controller = new AbortController();
    const signal = AbortSignal.any([controller.signal, this.stopController.signal]);
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        cancelTimer();
        reject(new DOMException(`lease request timed out or was cancelled`, 'TimeoutError'));
      };
      const cancelTimer = this.o.clock.setTimer(timeoutMs, () => controller.abort());
      // Release is attempted after stop aborted; only the timer bounds it then.
      const watched = this.stopController.signal.aborted ? controller.signal : signal;
      watched.addEventListener('abort', onAbort, { once: true });
      fn(watched).then(
        (v) => {
          cancelTimer();
          watched.removeEventListener('abort', onAbort);
          resolve(v);
        },
        (err: unknown) => {
          cancelTimer();
          watched.removeEventListener('abort', onAbort);
          reject(err instanceof Error ? err : new Error(`lease request failed: ${String(err)}`));
        },
      );
    });
  }

  /** Sleeps on the clock; false when stop was requested meanwhile. */
  private async sleep(ms: number): Promise<boolean> {
    try {
      await this.o.clock.sleep(ms, this.stopController.signal);
      return true;
    } catch {
      // The only rejection is the stop signal: report it as "stop".
      return false;
    }
  }
}

/**
 * Lease-based leader election (coordination.k8s.io/v1), after client-go's leaderelection package, so
 * that of the cluster-mode replicas exactly one runs the cluster-wide watches: their cost is O(1) per
 * cluster, not O(replicas).
 *
 * Semantics (client-go's, with its default timings 15 s / 10 s / 2 s):
 * - a lease is free when it has no holder, or when its record has not changed for leaseDuration as
 *   measured on OUR clock since we last saw it change (never by comparing the remote renewTime with our
 *   clock: that would depend on clock skew between replicas);
 * - every write is an optimistic-concurrency update on metadata.resourceVersion: of two replicas racing
 *   for the same lease one gets 409 Conflict and stays a follower;
 * - the leader renews every retryPeriod; if it cannot renew for renewDeadline it stops leading (its
 *   watches are cancelled) before the lease can expire for others (renewDeadline < leaseDuration);
 * - followers retry every retryPeriod × [1, 2.2) (JitterUntil with factor 1.2);
 * - on shutdown a leader releases the lease (empty holder, 1 s duration) so a successor takes over at once.
 * - when the kill switch engages, leadership is dropped at once: no renewals are possible without API
 *   calls, and the lease expires for a replica of another revision to take over.
 */
import type { Clock } from '#core/clock.js';
import { isAbortError } from '#core/clock.js';
import type { ApiClient, KubeObject } from '../apiclient.js';
import { RESOURCES } from '../apiclient.js';
import { ApiError, StoppedError } from '../errors.js';
import type { KillSwitch } from '../killswitch.js';
import type { Logger } from '#core/logger.js';
import { serializeError } from '#core/logger.js';
import { linkSignals } from '../signals.js';

/** client-go's LeaseDuration default. */
export const LEASE_DURATION_MS = 15_000;
/** client-go's RenewDeadline default. */
export const RENEW_DEADLINE_MS = 10_000;
/** client-go's RetryPeriod default. */
export const RETRY_PERIOD_MS = 2_000;
/** client-go's JitterFactor for followers. */
const JITTER_FACTOR = 1.2;

/** The spec of a coordination.k8s.io/v1 Lease. */
export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

/** A Lease object. */
export interface Lease extends KubeObject {
  spec?: LeaseSpec;
}

/** Dependencies and timings of a LeaderElector. */
export interface LeaderElectorOptions {
  api: ApiClient;
  killSwitch: KillSwitch;
  clock: Clock;
  logger: Logger;
  namespace: string;
  name: string;
  /** Unique per replica: the pod name. */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  random?: () => number;
  /**
   * Called when this replica becomes leader; `signal` aborts when leadership ends (lost, kill switch,
   * shutdown). Should resolve once the signal aborts; a rejection is logged and ends leadership (the
   * lease is then released so another replica can try).
   */
  onStartedLeading: (signal: AbortSignal) => Promise<void>;
  /** Called whenever the observed holder changes (including to ourselves). */
  onNewLeader?: (identity: string) => void;
}

/** RFC 3339 with microseconds, the MicroTime format of Lease timestamps. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** See the file comment. */
export class LeaderElector {
  private readonly o: Required<Omit<LeaderElectorOptions, 'onNewLeader'>> & Pick<LeaderElectorOptions, 'onNewLeader'>;
  private observed: LeaseSpec | undefined;
  private observedRaw = '';
  private observedAt = 0;
  private lastLease: Lease | undefined;
  private leading = false;
  private reportedHolder: string | undefined;

  constructor(options: LeaderElectorOptions) {
    this.o = {
      leaseDurationMs: LEASE_DURATION_MS,
      renewDeadlineMs: RENEW_DEADLINE_MS,
      retryPeriodMs: RETRY_PERIOD_MS,
      random: Math.random,
      ...options,
    };
    if (!(this.o.leaseDurationMs > this.o.renewDeadlineMs && this.o.renewDeadlineMs > JITTER_FACTOR * this.o.retryPeriodMs)) {
      throw new RangeError('leader election timings must satisfy leaseDuration > renewDeadline > 1.2 × retryPeriod');
    }
  }

  /** True while this replica holds the lease. */
  isLeader(): boolean {
    return this.leading;
  }

  /** The holder we last observed ('' when free, undefined before the first read). */
  holder(): string | undefined {
    return this.observed?.holderIdentity;
  }

  /**
   * Campaigns, leads, and campaigns again after losing, until `signal` aborts; then releases the lease
   * if held. Resolves after shutdown.
   */
  async run(signal: AbortSignal): Promise<void> {
    const { clock, killSwitch, logger } = this.o;
    while (!signal.aborted) {
      try {
        await killSwitch.waitUntilRunning(signal);
        await this.acquire(signal);
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof StoppedError) continue;
        throw err;
      }
      this.leading = true;
      logger.info('became leader', { lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity });
      const leadership = new AbortController();
      const leadLink = linkSignals([signal, killSwitch.signal, leadership.signal]);
      const work = this.o.onStartedLeading(leadLink.signal).catch((err: unknown) => {
        if (!leadLink.signal.aborted) {
          logger.error('leader work failed; giving up leadership', { err: serializeError(err) });
          leadership.abort(new Error('leader work failed'));
        }
      });
      await this.renewLoop(leadLink.signal);
      leadership.abort(new Error('leadership lost'));
      await work;
      leadLink.dispose();
      this.leading = false;
      if (signal.aborted) {
        await this.release();
        break;
      }
      logger.warn('stopped leading', { lease: `${this.o.namespace}/${this.o.name}`, reason: killSwitch.isStopped() ? 'kill switch' : 'renewal failed' });
      if (!killSwitch.isStopped()) {
        // Do not hammer the lease right after losing it: wait one retry period like a follower.
        await clock.sleep(this.o.retryPeriodMs, signal).catch(() => undefined);
      }
    }
  }

  /** Retries tryAcquireOrRenew every retryPeriod × [1, 2.2) until it succeeds. */
  private async acquire(signal: AbortSignal): Promise<void> {
    for (;;) {
      if (await this.tryAcquireOrRenew(signal)) return;
      const wait = this.o.retryPeriodMs * (1 + this.o.random() * JITTER_FACTOR);
      await this.o.clock.sleep(wait, signal);
    }
  }

  /**
   * Renews every retryPeriod; a renewal that keeps failing for renewDeadline ends leadership. Returns
   * when leadership ends (including when `signal` aborts).
   */
  private async renewLoop(signal: AbortSignal): Promise<void> {
    const { clock } = this.o;
    let lastRenew = clock.nowMs();
    while (!signal.aborted) {
      try {
        await clock.sleep(this.o.retryPeriodMs, signal);
      } catch {
        return; // leadership signal aborted: shutdown, kill switch, or failed leader work
      }
      const ok = await this.tryAcquireOrRenew(signal).catch((err: unknown) => {
        if (!(isAbortError(err) || signal.aborted)) this.o.logger.warn('lease renewal failed', { err: serializeError(err) });
        return false;
      });
      if (ok) lastRenew = clock.nowMs();
      else if (signal.aborted || clock.nowMs() - lastRenew >= this.o.renewDeadlineMs) return;
    }
  }

  /**
   * One attempt to acquire or renew the lease; true when we hold it afterwards. Conflicts and
   * "held by someone else" are false; other API failures are logged and false, cancellations reject.
   */
  async tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const { api, clock, namespace, name, identity } = this.o;
    const where = { namespace, name };
    const now = clock.nowMs();
    const desired: LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.round(this.o.leaseDurationMs / 1000),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    let current: Lease;
    try {
      current = await api.get<Lease>(RESOURCES.leases, where, { signal, retries: 0 });
    } catch (err) {
      if (err instanceof ApiError && err.code === 404) {
        try {
          const created = await api.create<Lease>(
            RESOURCES.leases,
            namespace,
            { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec: desired },
            { signal, retries: 0 },
          );
          this.observe(created, clock.nowMs());
          return true;
        } catch (createErr) {
          return this.failure(createErr, 'create lease');
        }
      }
      return this.failure(err, 'get lease');
    }
    const spec = current.spec ?? {};
    this.observe(current, now);
    const holder = spec.holderIdentity ?? '';
    if (holder !== '' && holder !== identity && this.observedAt + (spec.leaseDurationSeconds ?? 15) * 1000 > now) {
      return false; // held by another replica and not expired (on our clock)
    }
    if (holder === identity) {
      desired.acquireTime = spec.acquireTime ?? desired.acquireTime;
      desired.leaseTransitions = spec.leaseTransitions ?? 0;
    } else {
      desired.leaseTransitions = (spec.leaseTransitions ?? 0) + 1;
    }
    try {
      const updated = await api.replace<Lease>(RESOURCES.leases, where, { ...current, spec: desired }, { signal, retries: 0 });
      this.observe(updated, clock.nowMs());
      return true;
    } catch (err) {
      return this.failure(err, 'update lease');
    }
  }

  private failure(err: unknown, what: string): false {
    if (isAbortError(err)) throw err;
    if (err instanceof ApiError && err.code === 409) {
      this.o.logger.debug(`${what}: conflict, another replica won`, {});
      return false;
    }
    this.o.logger.warn(`${what} failed`, { err: serializeError(err) });
    return false;
  }

  private observe(lease: Lease, now: number): void {
    const spec = lease.spec ?? {};
    const raw = JSON.stringify(spec);
    this.lastLease = lease;
    if (raw !== this.observedRaw) {
      this.observedRaw = raw;
      this.observed = spec;
      this.observedAt = now;
    }
    const holder = spec.holderIdentity ?? '';
    if (holder !== this.reportedHolder) {
      this.reportedHolder = holder;
      if (holder !== '') this.o.onNewLeader?.(holder);
    }
  }

  /** Gives the lease up on shutdown (best effort, one attempt, bounded by the retry period). */
  private async release(): Promise<void> {
    const lease = this.lastLease;
    if (!lease || lease.spec?.holderIdentity !== this.o.identity || this.o.killSwitch.isStopped()) return;
    const now = this.o.clock.nowMs();
    const timeout = new AbortController();
    const timer = this.o.clock.sleep(this.o.retryPeriodMs, timeout.signal).then(() => timeout.abort(new Error('lease release timed out')), () => undefined);
    try {
      await this.o.api.replace<Lease>(
        RESOURCES.leases,
        { namespace: this.o.namespace, name: this.o.name },
        { ...lease, spec: { holderIdentity: '', leaseDurationSeconds: 1, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: lease.spec?.leaseTransitions ?? 0 } },
        { signal: timeout.signal, retries: 0 },
      );
      this.o.logger.info('released leader lease', { lease: `${this.o.namespace}/${this.o.name}` });
    } catch (err) {
      this.o.logger.warn('could not release leader lease; it will expire', { err: serializeError(err) });
    } finally {
      timeout.abort(new Error('done'));
      await timer;
    }
  }
}

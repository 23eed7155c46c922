/**
 * Lease-based leader election (coordination.k8s.io/v1) for cluster mode, so that of the replicas
 * exactly one runs the cluster-wide watches: their cost is O(1) per cluster, not O(replicas).
 *
 * The election itself is the shared core's elector (lib/core/leaderelection.ts: client-go's semantics
 * and default timings 15 s / 10 s / 2 s, local-clock expiry, resourceVersion conflicts, jittered
 * retries, release on shutdown). This module adds what the agent needs around it:
 * - {@link ApiLeaseStore}, the core's LeaseStore over the agent's own API client (no client-node), with
 *   MicroTime timestamps and one GET + one PUT per renewal (what the API load estimate models);
 * - a replica campaigns again after losing (one retry period later), for as long as it runs;
 * - when the kill switch engages, leadership is dropped at once: no renewals are possible without API
 *   calls, and the lease expires for a replica of another revision to take over; it campaigns again
 *   after the switch resumes;
 * - on shutdown the lease is released only after the leader's watches have ended, bounded by a retry
 *   period, and not while the kill switch forbids API calls.
 */
import type { Clock } from '#core/clock.js';
import { abortReason } from '#core/clock.js';
import { LeaderElector as CoreLeaderElector, type LeaseRecord, type LeaseStore } from '#core/leaderelection.js';
import type { ApiClient, KubeObject } from '../apiclient.js';
import { RESOURCES } from '../apiclient.js';
import { ApiError } from '../errors.js';
import type { KillSwitch } from '../killswitch.js';
import type { Logger } from '#core/logger.js';

/** client-go's LeaseDuration default. */
export const LEASE_DURATION_MS = 15_000;
/** client-go's RenewDeadline default. */
export const RENEW_DEADLINE_MS = 10_000;
/** client-go's RetryPeriod default. */
export const RETRY_PERIOD_MS = 2_000;
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
   * shutdown). Should resolve once the signal aborts (the lease is released on shutdown only after
   * that); a rejection while leading is logged and ends leadership (the lease is then released so
   * another replica can try).
   */
  onStartedLeading: (signal: AbortSignal) => Promise<void>;
  /** Called whenever the observed holder changes (including to ourselves). */
  onNewLeader?: (identity: string) => void;
}

/** RFC 3339 with microseconds, the MicroTime format of Lease timestamps. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Parses a Lease timestamp (MicroTime or Time); undefined when absent or unparsable. */
function parseTime(v: string | undefined): Date | undefined {
  if (v === undefined || v === '') return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/**
 * The core's {@link LeaseStore} over the agent's {@link ApiClient}: requests without retries (the
 * elector has its own cadence), 404 as "absent", and the ApiError's `code` carrying 409 for the
 * core's conflict check. A replace keeps the metadata of the object last read or written (labels,
 * annotations), as a PUT of the whole object did before.
 */
export class ApiLeaseStore implements LeaseStore {
  private readonly api: ApiClient;
  private readonly seen = new Map<string, Lease>();

  constructor(api: ApiClient) {
    this.api = api;
  }

  async get(namespace: string, name: string, signal?: AbortSignal): Promise<LeaseRecord | undefined> {
    try {
      return this.remember(await this.api.get<Lease>(RESOURCES.leases, { namespace, name }, { signal, retries: 0 }));
    } catch (err) {
      if (err instanceof ApiError && err.code === 404) return undefined;
      throw err;
    }
  }

  async create(lease: LeaseRecord, signal?: AbortSignal): Promise<LeaseRecord> {
    const body: Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: lease.name, namespace: lease.namespace },
      spec: toSpec(lease),
    };
    return this.remember(await this.api.create<Lease>(RESOURCES.leases, lease.namespace, body, { signal, retries: 0 }));
  }

  async replace(lease: LeaseRecord, signal?: AbortSignal): Promise<LeaseRecord> {
    const prior = this.seen.get(`${lease.namespace}/${lease.name}`);
    const body: Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      ...prior,
      metadata: { ...prior?.metadata, name: lease.name, namespace: lease.namespace, resourceVersion: lease.resourceVersion },
      spec: toSpec(lease),
    };
    const where = { namespace: lease.namespace, name: lease.name };
    return this.remember(await this.api.replace<Lease>(RESOURCES.leases, where, body, { signal, retries: 0 }));
  }

  private remember(lease: Lease): LeaseRecord {
    const record = fromLease(lease);
    this.seen.set(`${record.namespace}/${record.name}`, lease);
    return record;
  }
}

/** The spec written for a record: whole seconds, MicroTime timestamps. */
function toSpec(lease: LeaseRecord): LeaseSpec {
  return {
    holderIdentity: lease.holderIdentity,
    leaseDurationSeconds: lease.leaseDurationSeconds === undefined ? undefined : Math.round(lease.leaseDurationSeconds),
    acquireTime: lease.acquireTime && microTime(lease.acquireTime.getTime()),
    renewTime: lease.renewTime && microTime(lease.renewTime.getTime()),
    leaseTransitions: lease.leaseTransitions,
  };
}

/** The record of a Lease object. */
function fromLease(lease: Lease): LeaseRecord {
  const spec = lease.spec ?? {};
  return {
    namespace: lease.metadata?.namespace ?? '',
    name: lease.metadata?.name ?? '',
    resourceVersion: lease.metadata?.resourceVersion,
    holderIdentity: spec.holderIdentity,
    leaseDurationSeconds: spec.leaseDurationSeconds,
    acquireTime: parseTime(spec.acquireTime),
    renewTime: parseTime(spec.renewTime),
    leaseTransitions: spec.leaseTransitions,
  };
}

/** See the file comment: one core elector per term, for as long as `run`'s signal allows. */
export class LeaderElector {
  private readonly o: Required<Omit<LeaderElectorOptions, 'onNewLeader'>> & Pick<LeaderElectorOptions, 'onNewLeader'>;
  private readonly store: ApiLeaseStore;
  /** The elector of the current (or last) term. */
  private term: CoreLeaderElector;
  /** The observed holder at the end of the previous term, until the new one has read the Lease. */
  private lastHolder: string | undefined;

  constructor(options: LeaderElectorOptions) {
    this.o = {
      leaseDurationMs: LEASE_DURATION_MS,
      renewDeadlineMs: RENEW_DEADLINE_MS,
      retryPeriodMs: RETRY_PERIOD_MS,
      random: Math.random,
      ...options,
    };
    this.store = new ApiLeaseStore(options.api);
    // Also checks the timings (RangeError), at construction as before.
    this.term = this.newTerm();
  }

  /** True while this replica holds the lease. */
  isLeader(): boolean {
    return this.term.isLeader();
  }

  /** The holder we last observed ('' when free, undefined before the first read). */
  holder(): string | undefined {
    return this.term.observedHolder() ?? this.lastHolder;
  }

  /**
   * Campaigns, leads, and campaigns again after losing, until `signal` aborts; then releases the lease
   * if held. Resolves after shutdown.
   */
  async run(signal: AbortSignal): Promise<void> {
    const { clock, killSwitch, logger } = this.o;
    let first = true;
    while (!signal.aborted) {
      try {
        await killSwitch.waitUntilRunning(signal);
      } catch {
        break; // it only rejects when `signal` aborts
      }
      if (!first) {
        this.lastHolder = this.holder();
        this.term = this.newTerm();
      }
      first = false;
      const term = this.term;
      const killed = killSwitch.signal;
      const onKill = (): void => {
        logger.warn('kill switch engaged: leaving leader election', { lease: `${this.o.namespace}/${this.o.name}` });
        void term.stop({ release: false });
      };
      // No release while the kill switch forbids API calls.
      const onShutdown = (): void => void term.stop({ release: !killSwitch.isStopped() });
      killed.addEventListener('abort', onKill, { once: true });
      signal.addEventListener('abort', onShutdown, { once: true });
      if (killed.aborted) onKill();
      else if (signal.aborted) onShutdown();
      try {
        await term.run();
      } finally {
        killed.removeEventListener('abort', onKill);
        signal.removeEventListener('abort', onShutdown);
      }
      if (signal.aborted) break;
      if (!killSwitch.isStopped()) {
        // Do not hammer the lease right after losing it: wait one retry period like a follower.
        await clock.sleep(this.o.retryPeriodMs, signal).catch(() => undefined);
      }
    }
  }

  /**
   * One attempt to acquire or renew the lease outside `run` (bounded by half the renew deadline);
   * true when we hold it afterwards. Conflicts, "held by someone else" and API failures are false.
   */
  async tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) throw abortReason(signal);
    return this.term.tryAcquireOrRenew();
  }

  private newTerm(): CoreLeaderElector {
    return new CoreLeaderElector({
      namespace: this.o.namespace,
      name: this.o.name,
      identity: this.o.identity,
      leaseDurationSeconds: this.o.leaseDurationMs / 1000,
      renewDeadlineSeconds: this.o.renewDeadlineMs / 1000,
      retryPeriodSeconds: this.o.retryPeriodMs / 1000,
      // Bounded by one retry period, so a shutdown is not held up by an unreachable API server.
      releaseTimeoutMs: this.o.retryPeriodMs,
      renewFromLastWrite: false,
      awaitLeaderWork: true,
      clock: this.o.clock,
      leaseClient: this.store,
      logger: this.o.logger,
      random: this.o.random,
      callbacks: {
        onStartedLeading: (signal) => this.o.onStartedLeading(signal),
        onStoppedLeading: () => undefined,
        ...(this.o.onNewLeader ? { onNewLeader: this.o.onNewLeader } : {}),
      },
    });
  }
}

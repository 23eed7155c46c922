/**
 * What the Lease elector (leaderelection.ts) reasons about and is configured with: the timings, the
 * record, the store each component supplies over its own API client, conflict detection, the identity,
 * the callbacks and the options.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';

/** client-go's LeaseDuration default. */
export const LEASE_DURATION_SECONDS = 15;
/** client-go's RenewDeadline default. */
export const RENEW_DEADLINE_SECONDS = 10;
/** client-go's RetryPeriod default. */
export const RETRY_PERIOD_SECONDS = 2;

/** The fields of a Lease that leader election reads and writes. */
export interface LeaseRecord {
  namespace: string;
  name: string;
  /** Set by the server; required for `replace` (optimistic concurrency). */
  resourceVersion?: string;
  /** Empty or absent: nobody holds the lease. */
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: Date;
  renewTime?: Date;
  leaseTransitions?: number;
}

/**
 * Storage of the Lease. Implementations must apply optimistic concurrency: `replace` fails with a 409
 * error (see {@link isLeaseConflict}) when `resourceVersion` is stale, `create` with a 409 when the Lease
 * exists. Calls should give up when `signal` aborts.
 */
export interface LeaseStore {
  /** The Lease, or undefined when it does not exist. */
  get(namespace: string, name: string, signal?: AbortSignal): Promise<LeaseRecord | undefined>;
  /** Creates the Lease; the result carries the new resourceVersion. */
  create(lease: LeaseRecord, signal?: AbortSignal): Promise<LeaseRecord>;
  /** Replaces the Lease if `lease.resourceVersion` is current; the result carries the new one. */
  replace(lease: LeaseRecord, signal?: AbortSignal): Promise<LeaseRecord>;
}

const isHttpStatus = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 100 && v <= 599;

/**
 * Whether a {@link LeaseStore} call lost an optimistic-concurrency race: HTTP 409 as a numeric `code`
 * or `statusCode` on the error or one of its `cause`s. Both API clients' errors carry it that way
 * (client-node's ApiException and the agent's ApiError as `code`), so the elector needs neither.
 * DOMExceptions are skipped: their legacy numeric `code` is no HTTP status.
 */
export function isLeaseConflict(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++) {
    if (e instanceof DOMException) return false;
    const { code, statusCode, cause } = e as { code?: unknown; statusCode?: unknown; cause?: unknown };
    if (isHttpStatus(code)) return code === 409;
    if (isHttpStatus(statusCode)) return statusCode === 409;
    e = cause;
  }
  return false;
}

/**
 * A unique identity for this process: the pod name (or host name) plus a random suffix, so a restarted
 * pod with the same name is never mistaken for the old holder still inside its lease.
 */
export function defaultIdentity(podName: string | undefined = process.env.POD_NAME): string {
  return `${podName && podName !== '' ? podName : hostname()}_${randomUUID().slice(0, 8)}`;
}

/** Callbacks of {@link LeaderElector}. They must return quickly; long work belongs in what they start. */
export interface LeaderCallbacks {
  /**
   * This process became the leader. `signal` aborts the moment it stops leading (lost or stopping):
   * all leader-only work must stop acting then. A returned promise that rejects while leading is
   * treated as fatal: the elector stops leading and releases the Lease, so another replica can take
   * over. A rejection after `signal` aborted is the work ending, not a failure.
   */
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  /** This process stopped leading (after `signal` aborted). Called once, only if it led. */
  onStoppedLeading(): void;
  /** The observed holder changed (including to this process). */
  onNewLeader?(identity: string): void;
}

/** Options of {@link LeaderElector}. */
export interface LeaderElectorOptions {
  /** Namespace of the Lease. */
  namespace: string;
  /** Name of the Lease. */
  name: string;
  /** Unique per process (see {@link defaultIdentity}). */
  identity: string;
  /** How long a non-leader waits after the last observed change before taking over (default 15). */
  leaseDurationSeconds?: number;
  /** How long the leader keeps trying to renew before it gives up leading (default 10). */
  renewDeadlineSeconds?: number;
  /** Interval between attempts (default 2). */
  retryPeriodSeconds?: number;
  /** Timeout of each Lease request (default half the renew deadline). */
  requestTimeoutMs?: number;
  /** Timeout of each request of the release on stop (default `requestTimeoutMs`). */
  releaseTimeoutMs?: number;
  /**
   * Whether the leader renews by replacing the record it wrote last, one request instead of a GET and
   * a PUT (default true). The collector keeps GET+PUT, the request pattern its API load estimate models.
   */
  renewFromLastWrite?: boolean;
  /**
   * Whether stepping down waits for the promise of `onStartedLeading` to settle (after aborting its
   * signal) before the Lease is released and `onStoppedLeading` runs (default false). Set it when the
   * leader work ends promptly on the signal, so a successor never overlaps with it; leave it off when
   * the caller bounds that wait itself (the operator's manager drains, then chooses `release`).
   */
  awaitLeaderWork?: boolean;
  clock: Clock;
  leaseClient: LeaseStore;
  /** Gets a child with `component`, `lease` and `identity` fields when it can make children. */
  logger: Logger;
  callbacks: LeaderCallbacks;
  /** Jitter source in [0, 1) for the acquire loop (default Math.random). */
  random?: () => number;
}

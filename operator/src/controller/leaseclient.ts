/**
 * The Lease storage of leader election: the {@link LeaseRecord} the elector reasons about, the
 * {@link LeaseClient} contract it needs (optimistic concurrency, cancellable calls), and its
 * implementation on client-node's `CoordinationV1Api`. Kept apart from the election loop so the loop
 * can be read (and tested with a fake store) without client-node's wire details.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { CoordinationV1Api, KubeConfig, V1MicroTime } from '@kubernetes/client-node';
import type { V1Lease } from '@kubernetes/client-node';
import { isNotFound, requestOptions } from './kube.js';

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
 * error (see `isConflict`) when `resourceVersion` is stale, `create` with a 409 when the Lease exists.
 * Calls should give up when `signal` aborts.
 */
export interface LeaseClient {
  /** The Lease, or undefined when it does not exist. */
  get(namespace: string, name: string, signal?: AbortSignal): Promise<LeaseRecord | undefined>;
  /** Creates the Lease; the result carries the new resourceVersion. */
  create(lease: LeaseRecord, signal?: AbortSignal): Promise<LeaseRecord>;
  /** Replaces the Lease if `lease.resourceVersion` is current; the result carries the new one. */
  replace(lease: LeaseRecord, signal?: AbortSignal): Promise<LeaseRecord>;
}

/** The subset of client-node's CoordinationV1Api that {@link KubeLeaseClient} uses. */
export type LeaseApi = Pick<CoordinationV1Api, 'readNamespacedLease' | 'createNamespacedLease' | 'replaceNamespacedLease'>;

/**
 * {@link LeaseClient} on client-node's `CoordinationV1Api`. Times are written as `V1MicroTime` (the API
 * server rejects millisecond precision for MicroTime fields) and read back from strings (client-node
 * 2.0.1 does not deserialise MicroTime into Date). Errors are rethrown with the Lease named and the
 * original as `cause`, so `isConflict`/`isNotFound` still see their status.
 */
export class KubeLeaseClient implements LeaseClient {
  private readonly api: LeaseApi;

  constructor(kcOrApi: KubeConfig | LeaseApi) {
    this.api = kcOrApi instanceof KubeConfig ? kcOrApi.makeApiClient(CoordinationV1Api) : kcOrApi;
  }

  async get(namespace: string, name: string, signal?: AbortSignal): Promise<LeaseRecord | undefined> {
    try {
      return fromV1Lease(await this.api.readNamespacedLease({ name, namespace }, signal && requestOptions(signal)));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new Error(`get Lease ${namespace}/${name}`, { cause: err });
    }
  }

  async create(lease: LeaseRecord, signal?: AbortSignal): Promise<LeaseRecord> {
    try {
      return fromV1Lease(await this.api.createNamespacedLease({ namespace: lease.namespace, body: toV1Lease(lease) }, signal && requestOptions(signal)));
    } catch (err) {
      throw new Error(`create Lease ${lease.namespace}/${lease.name}`, { cause: err });
    }
  }

  async replace(lease: LeaseRecord, signal?: AbortSignal): Promise<LeaseRecord> {
    try {
      return fromV1Lease(
        await this.api.replaceNamespacedLease(
          { name: lease.name, namespace: lease.namespace, body: toV1Lease(lease) },
          signal && requestOptions(signal),
        ),
      );
    } catch (err) {
      throw new Error(`replace Lease ${lease.namespace}/${lease.name}`, { cause: err });
    }
  }
}

/** Converts a record to the client-node object, with MicroTime-precision timestamps. */
export function toV1Lease(lease: LeaseRecord): V1Lease {
  const micro = (d: Date | undefined): V1MicroTime | undefined => (d === undefined ? undefined : new V1MicroTime(d.getTime()));
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: lease.name, namespace: lease.namespace, resourceVersion: lease.resourceVersion },
    spec: {
      holderIdentity: lease.holderIdentity,
      leaseDurationSeconds: lease.leaseDurationSeconds,
      acquireTime: micro(lease.acquireTime),
      renewTime: micro(lease.renewTime),
      leaseTransitions: lease.leaseTransitions,
    },
  };
}

/** Converts a client-node Lease to a record; timestamps may arrive as strings or Dates. */
export function fromV1Lease(lease: V1Lease): LeaseRecord {
  const time = (v: unknown): Date | undefined => {
    if (v === undefined || v === null || v === '') return undefined;
    if (!(v instanceof Date) && typeof v !== 'string' && typeof v !== 'number') return undefined;
    const d = new Date(v instanceof Date ? v.getTime() : v);
    return Number.isNaN(d.getTime()) ? undefined : d;
  };
  return {
    namespace: lease.metadata?.namespace ?? '',
    name: lease.metadata?.name ?? '',
    resourceVersion: lease.metadata?.resourceVersion,
    holderIdentity: lease.spec?.holderIdentity ?? undefined,
    leaseDurationSeconds: lease.spec?.leaseDurationSeconds,
    acquireTime: time(lease.spec?.acquireTime),
    renewTime: time(lease.spec?.renewTime),
    leaseTransitions: lease.spec?.leaseTransitions,
  };
}

/**
 * A unique identity for this process: the pod name (or host name) plus a random suffix, so a restarted
 * pod with the same name is never mistaken for the old holder still inside its lease.
 */
export function defaultIdentity(podName: string | undefined = process.env.POD_NAME): string {
  return `${podName && podName !== '' ? podName : hostname()}_${randomUUID().slice(0, 8)}`;
}

/**
 * The Lease storage of the operator's leader election: the shared core's {@link LeaseStore} contract
 * (optimistic concurrency, cancellable calls) implemented on client-node's `CoordinationV1Api`. Kept
 * apart from the election loop (in the core) so the loop can be read and tested with a fake store
 * without client-node's wire details.
 */
import { CoordinationV1Api, KubeConfig, V1MicroTime } from '@kubernetes/client-node';
import type { V1Lease } from '@kubernetes/client-node';
import type { LeaseRecord, LeaseStore } from '#core/leaderelection.js';
import { isNotFound, requestOptions } from './kube.js';

export type { LeaseRecord } from '#core/leaderelection.js';
export { defaultIdentity } from '#core/leaderelection.js';

/**
 * The operator's name for the core's {@link LeaseStore}: `replace` rejects with a 409 (see `isConflict`)
 * on a stale `resourceVersion`, `create` with a 409 when the Lease exists.
 */
export type LeaseClient = LeaseStore;

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
        await this.api.replaceNamespacedLease({ name: lease.name, namespace: lease.namespace, body: toV1Lease(lease) }, signal && requestOptions(signal)),
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

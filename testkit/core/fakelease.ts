/**
 * An in-memory {@link LeaseStore} for unit tests of leader election anywhere in the project: one shared
 * store (the API server) and per-replica clients with their own faults. It behaves like the API server
 * where the elector cares: a global resourceVersion counter, 409 on a stale `resourceVersion` or an
 * existing Lease, 404 on replacing a missing one. Its errors carry the status as a numeric `code`, as
 * both API clients' errors do, so the core's `isLeaseConflict` and the operator's `isConflict` see it.
 */
import { abortReason } from '#core/clock.js';
import type { LeaseRecord, LeaseStore } from '#core/leaderelection.js';

/** An API-server-like error: `code` is the HTTP status, `reason` the Status reason. */
export function leaseApiError(code: number, reason: string, message = reason): Error & { code: number; reason: string } {
  return Object.assign(new Error(message), { code, reason });
}

function copyLease(l: LeaseRecord): LeaseRecord {
  return {
    ...l,
    acquireTime: l.acquireTime && new Date(l.acquireTime.getTime()),
    renewTime: l.renewTime && new Date(l.renewTime.getTime()),
  };
}

/** The shared state of fake Leases: one per `namespace/name`, with a global resourceVersion counter. */
export class FakeLeaseStore {
  private readonly leases = new Map<string, LeaseRecord>();
  private rv = 0;
  /** Every successful write, in order (for asserting who wrote what when). */
  readonly writes: Array<{ op: 'create' | 'replace' | 'set'; lease: LeaseRecord }> = [];

  /** A copy of the stored Lease. */
  peek(namespace: string, name: string): LeaseRecord | undefined {
    const l = this.leases.get(`${namespace}/${name}`);
    return l && copyLease(l);
  }

  /** Writes directly, as another actor would (bumps the resourceVersion, no conflict check). */
  set(lease: LeaseRecord): LeaseRecord {
    return this.store('set', lease);
  }

  /** @internal used by {@link FakeLeaseClient}. */
  create(lease: LeaseRecord): LeaseRecord {
    if (this.leases.has(`${lease.namespace}/${lease.name}`)) throw leaseApiError(409, 'AlreadyExists');
    return this.store('create', lease);
  }

  /** @internal used by {@link FakeLeaseClient}. */
  replace(lease: LeaseRecord): LeaseRecord {
    const current = this.leases.get(`${lease.namespace}/${lease.name}`);
    if (current === undefined) throw leaseApiError(404, 'NotFound');
    if (lease.resourceVersion !== current.resourceVersion) throw leaseApiError(409, 'Conflict', 'the object has been modified');
    return this.store('replace', lease);
  }

  private store(op: 'create' | 'replace' | 'set', lease: LeaseRecord): LeaseRecord {
    const stored = { ...copyLease(lease), resourceVersion: String(++this.rv) };
    this.leases.set(`${lease.namespace}/${lease.name}`, stored);
    this.writes.push({ op, lease: copyLease(stored) });
    return copyLease(stored);
  }
}

/**
 * A {@link LeaseStore} over a {@link FakeLeaseStore}. Several clients may share one store (several
 * replicas, one API server), each with its own faults: `failWith` makes every call reject (the API
 * server unreachable from this replica), `hang` makes calls wait until their signal aborts (a stalled
 * connection), `beforeCall` runs before each call (to interleave another actor's write).
 */
export class FakeLeaseClient implements LeaseStore {
  failWith: Error | undefined;
  hang = false;
  beforeCall: ((op: 'get' | 'create' | 'replace') => void) | undefined;
  /** Calls made, in order. */
  readonly calls: Array<'get' | 'create' | 'replace'> = [];

  readonly store: FakeLeaseStore;
  constructor(store: FakeLeaseStore = new FakeLeaseStore()) {
    this.store = store;
  }

  get(namespace: string, name: string, signal?: AbortSignal): Promise<LeaseRecord | undefined> {
    return this.call('get', signal, () => this.store.peek(namespace, name));
  }

  create(lease: LeaseRecord, signal?: AbortSignal): Promise<LeaseRecord> {
    return this.call('create', signal, () => this.store.create(lease));
  }

  replace(lease: LeaseRecord, signal?: AbortSignal): Promise<LeaseRecord> {
    return this.call('replace', signal, () => this.store.replace(lease));
  }

  private async call<T>(op: 'get' | 'create' | 'replace', signal: AbortSignal | undefined, fn: () => T): Promise<T> {
    this.calls.push(op);
    this.beforeCall?.(op);
    if (this.hang) {
      await new Promise<never>((_resolve, reject) => {
        if (signal?.aborted) reject(abortReason(signal));
        signal?.addEventListener('abort', () => reject(abortReason(signal)), { once: true });
      });
    }
    if (this.failWith !== undefined) throw this.failWith;
    return fn();
  }
}

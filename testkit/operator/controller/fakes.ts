/**
 * In-memory fakes of the controller layer's narrow interfaces, for unit tests anywhere in the project:
 * a Lease store with per-client fault injection, and a scriptable list/watch source for informers.
 * They behave like the API server where it matters (resourceVersion conflicts, 404/409 statuses).
 */
import { ApiException } from '@kubernetes/client-node';
import type { KubernetesObject } from '@kubernetes/client-node';
import { abortReason } from '#core/clock.js';
import type { ListWatchSource } from '../../../operator/src/controller/informer.js';
import type { LeaseClient, LeaseRecord } from '../../../operator/src/controller/leaderelection.js';

/** The events a {@link ListWatchSource} emits. */
type SourceEvent = 'add' | 'update' | 'delete' | 'error' | 'connect';

/** An ApiException with a Kubernetes Status body, as client-node throws it. */
export function apiError(code: number, reason: string, message = reason): ApiException<unknown> {
  return new ApiException(code, message, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code }, {});
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
    if (this.leases.has(`${lease.namespace}/${lease.name}`)) throw apiError(409, 'AlreadyExists');
    return this.store('create', lease);
  }

  /** @internal used by {@link FakeLeaseClient}. */
  replace(lease: LeaseRecord): LeaseRecord {
    const current = this.leases.get(`${lease.namespace}/${lease.name}`);
    if (current === undefined) throw apiError(404, 'NotFound');
    if (lease.resourceVersion !== current.resourceVersion) throw apiError(409, 'Conflict', 'the object has been modified');
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
 * A {@link LeaseClient} over a {@link FakeLeaseStore}. Several clients may share one store (several
 * replicas, one API server), each with its own faults: `failWith` makes every call reject (the API
 * server unreachable from this replica), `hang` makes calls wait until their signal aborts (a stalled
 * connection), `beforeCall` runs before each call (to interleave another actor's write).
 */
export class FakeLeaseClient implements LeaseClient {
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

/**
 * A scriptable {@link ListWatchSource}, as client-node's ListWatch would behave: `start()` emits
 * `connect`, then (unless told to fail or hang) "lists" `items` into its cache, emitting `add` for
 * each, and resolves. Tests then push watch events with {@link FakeListWatch.emit} or fail it with
 * {@link FakeListWatch.fail}. `stop()` emits an AbortError on `error`, as client-node 2.0.1 does.
 */
export class FakeListWatch<T extends KubernetesObject> implements ListWatchSource<T> {
  started = 0;
  stopped = false;
  /** How often stop() was called. */
  stopCalls = 0;
  private release: (() => void) | undefined;
  private readonly handlers = new Map<string, Array<(arg: never) => void>>();
  private readonly cache = new Map<string, T>();

  /**
   * @param items what the list returns
   * @param behaviour `ok` lists and connects; `fail` emits `error` instead of listing; `hang` never
   *   finishes the list (start() never resolves); `manual` finishes it when the test calls
   *   {@link FakeListWatch.finishStart}
   */
  private readonly items: T[];
  private readonly behaviour: 'ok' | 'fail' | 'hang' | 'manual';
  constructor(
    items: T[],
    behaviour: 'ok' | 'fail' | 'hang' | 'manual' = 'ok') {
    this.items = items;
    this.behaviour = behaviour;
  }

  /** Completes a `manual` start: lists the items and resolves start(). */
  finishStart(): void {
    this.release?.();
  }

  on(verb: 'add' | 'update' | 'delete', cb: (obj: T) => void): void;
  on(verb: 'error' | 'connect', cb: (err?: unknown) => void): void;
  on(verb: SourceEvent, cb: ((obj: T) => void) | ((err?: unknown) => void)): void {
    const list = this.handlers.get(verb) ?? [];
    list.push(cb);
    this.handlers.set(verb, list);
  }

  off(verb: 'add' | 'update' | 'delete', cb: (obj: T) => void): void;
  off(verb: 'error' | 'connect', cb: (err?: unknown) => void): void;
  off(verb: SourceEvent, cb: ((obj: T) => void) | ((err?: unknown) => void)): void {
    const list = this.handlers.get(verb) ?? [];
    this.handlers.set(
      verb,
      list.filter((h) => h !== cb),
    );
  }

  async start(): Promise<void> {
    this.started++;
    this.stopped = false;
    this.fire('connect', undefined);
    if (this.behaviour === 'hang') return new Promise<void>(() => undefined);
    if (this.behaviour === 'manual') await new Promise<void>((resolve) => (this.release = resolve));
    if (this.behaviour === 'fail') {
      this.fire('error', apiError(500, 'InternalError', 'list failed'));
      return;
    }
    for (const item of this.items) this.apply('add', item);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopCalls++;
    // client-node aborts the watch request, and the abort surfaces as an error event.
    this.fire('error', new DOMException('This operation was aborted', 'AbortError'));
  }

  list(): ReadonlyArray<T> {
    return [...this.cache.values()];
  }

  /** Delivers a watch event (updates the cache first, as client-node does). */
  emit(verb: 'add' | 'update' | 'delete', obj: T): void {
    this.apply(verb, obj);
  }

  /** Emits `error` (the watch or list failed; client-node stops there). */
  fail(err: unknown): void {
    this.fire('error', err);
  }

  /** Emits `connect` (client-node does on every watch (re)connect). */
  reconnect(): void {
    this.fire('connect', undefined);
  }

  private apply(verb: 'add' | 'update' | 'delete', obj: T): void {
    const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
    if (verb === 'delete') this.cache.delete(key);
    else this.cache.set(key, obj);
    this.fire(verb, obj);
  }

  private fire(verb: SourceEvent, arg: unknown): void {
    for (const h of [...(this.handlers.get(verb) ?? [])]) (h as (a: unknown) => void)(arg);
  }
}

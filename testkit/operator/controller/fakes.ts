/**
 * In-memory fakes of the controller layer's narrow interfaces, for unit tests anywhere in the project:
 * the core's Lease store (re-exported), a client-node API error, and a scriptable list/watch source
 * for informers. They behave like the API server where it matters (404/409 statuses).
 */
import { ApiException } from '@kubernetes/client-node';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ListWatchSource } from '../../../operator/src/controller/informer.js';

// The in-memory Lease store is the shared core's (its conflicts carry status 409 as `code`, which
// the operator's isConflict reads too); re-exported so the operator's tests keep one import.
export { FakeLeaseClient, FakeLeaseStore } from '../../core/fakelease.js';

/** The events a {@link ListWatchSource} emits. */
type SourceEvent = 'add' | 'update' | 'delete' | 'error' | 'connect';

/** An ApiException with a Kubernetes Status body, as client-node throws it. */
export function apiError(code: number, reason: string, message = reason): ApiException<unknown> {
  return new ApiException(code, message, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code }, {});
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
  constructor(items: T[], behaviour: 'ok' | 'fail' | 'hang' | 'manual' = 'ok') {
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

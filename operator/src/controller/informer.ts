/**
 * A robust informer over client-node's list/watch (`makeInformer`/`ListWatch`), fixing what client-node
 * 2.0.1 leaves to the caller:
 * - an `error` stops client-node's informer for good: here it is restarted after a backoff;
 * - a watch can go quiet without failing: a watchdog restarts it when neither an event nor a
 *   (re)connect was seen for `watchdogSeconds` (client-node reconnects an idle watch about every 30 s,
 *   so a healthy quiet watch keeps the watchdog fed);
 * - there is no resync: every `resyncSeconds` it relists from scratch and then reports every cached
 *   object as a `resync` event, so missed events cannot leave an object unreconciled;
 * - a throwing event handler would become an unhandled rejection inside client-node: handlers here
 *   are isolated, and should only enqueue keys anyway;
 * - `stop()` makes client-node emit an AbortError: ignored.
 *
 * Every (re)start uses a fresh source object, because restarting a stopped ListWatch lets the late
 * completion of its old watch abort the new one. The informer keeps its own cache across restarts and,
 * when a relist completes, removes (and reports as `delete`) objects the new list no longer has.
 *
 * The sources for real API objects (client-node list/watches) are made by informersources.ts.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { backoffDelayMs, type BackoffPolicy } from '#core/backoff.js';
import type { Clock } from '#core/clock.js';
import type { Logger } from '../util/logging.js';
import { errorChain } from './kube.js';

/**
 * What the informer needs from a list/watch: the shape of client-node's `ListWatch` (which
 * `makeInformer` returns), so the real one plugs in unchanged and tests use a fake.
 * Contract (as client-node): `start()` emits `connect`, lists (emitting `add`/`update`/`delete` against
 * its own cache) and resolves once the watch is open, or emits `error` and stops; `list()` is its cache.
 */
export interface ListWatchSource<T extends KubernetesObject> {
  on(verb: 'add' | 'update' | 'delete', cb: (obj: T) => void): void;
  on(verb: 'error' | 'connect', cb: (err?: unknown) => void): void;
  off(verb: 'add' | 'update' | 'delete', cb: (obj: T) => void): void;
  off(verb: 'error' | 'connect', cb: (err?: unknown) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  list(): ReadonlyArray<T>;
}

/** What happened to an object. `resync` is the periodic re-report of every cached object. */
export type InformerEventType = 'add' | 'update' | 'delete' | 'resync';

/** An event given to handlers: the object's cache key and the object (last known state for `delete`). */
export interface InformerEvent<T> {
  type: InformerEventType;
  key: string;
  obj: T;
}

/** A handler. It must only enqueue (work happens in the reconciler); a throw is logged and dropped. */
export type InformerHandler<T> = (event: InformerEvent<T>) => void;

/** The cache key of an object: `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(obj: KubernetesObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? '';
  return ns ? `${ns}/${name}` : name;
}

/** Splits a key made by {@link objectKey}. */
export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** Options of {@link Informer}. */
export interface InformerOptions<T extends KubernetesObject> {
  /** Resource name for logs (e.g. `telemetryrollouts`). */
  name: string;
  /** Makes a fresh list/watch; called on every (re)start. */
  newSource: () => ListWatchSource<T>;
  clock: Clock;
  logger: Logger;
  /** Restart when nothing (event or connect) was seen for this long (default 120; 0 disables). */
  watchdogSeconds?: number;
  /** Relist and report every object this often (default 600; 0 disables). */
  resyncSeconds?: number;
  /** Backoff of restarts after errors: first delay (default 1000 ms)... */
  restartBaseMs?: number;
  /** ...doubling up to this (default 60 s). */
  restartMaxMs?: number;
  /** Jitter source in [0, 1) (default Math.random); restart delays are scaled by 1 + 0.2 × random. */
  random?: () => number;
}

/**
 * The informer: a cache of one resource kept current by list/watch, plus event handlers. Read the
 * cache with {@link Informer.get}/{@link Informer.list}; only trust it after {@link Informer.hasSynced}.
 */
export class Informer<T extends KubernetesObject> {
  /** Resource name for logs. */
  readonly name: string;
  private readonly opts: InformerOptions<T>;
  private readonly log: Logger;
  private readonly cache = new Map<string, T>();
  private readonly handlers: Array<InformerHandler<T>> = [];
  private source: ListWatchSource<T> | undefined;
  /** start() calls still in flight, per source (see stopSource). */
  private readonly starting = new Map<ListWatchSource<T>, Promise<void>>();
  private generation = 0;
  private running = false;
  private synced = false;
  private syncWaiters: Array<() => void> = [];
  private lastActivityMs = 0;
  private failures = 0;
  private resyncPending = false;
  private cancelRestart: (() => void) | undefined;
  private cancelWatchdog: (() => void) | undefined;
  private cancelResync: (() => void) | undefined;
  private restartCount = 0;

  constructor(opts: InformerOptions<T>) {
    this.opts = opts;
    this.name = opts.name;
    this.log = opts.logger.child({ component: 'informer', resource: opts.name });
  }

  /** Adds a handler for future events. Add handlers before `start()` to see the initial list. */
  addHandler(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  /** Starts list/watch, the watchdog and the resync timer. Returns at once; see {@link Informer.waitForSync}. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.startSource('start');
    this.armWatchdog();
    this.armResync();
  }

  /** Stops everything; no handler runs afterwards. The cache stays readable. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.cancelRestart?.();
    this.cancelWatchdog?.();
    this.cancelResync?.();
    this.generation++;
    const old = this.source;
    this.source = undefined;
    if (old !== undefined) await this.stopSource(old);
  }

  /** Whether a list has completed at least once (the cache is then a valid view, though maybe stale). */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once synced; rejects with the abort reason if `signal` aborts first. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(signal?.reason instanceof Error ? signal.reason : new Error(`waiting for ${this.name} cache sync aborted`));
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  /** The cached object with this key (`namespace/name` or `name`). */
  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  /** Cached objects, optionally of one namespace. */
  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  /** Cached keys. */
  keys(): string[] {
    return [...this.cache.keys()];
  }

  /** How often the source was restarted (errors, watchdog, resync), for tests and diagnostics. */
  restarts(): number {
    return this.restartCount;
  }

  private startSource(reason: string): void {
    const gen = ++this.generation;
    const source = this.opts.newSource();
    this.source = source;
    this.lastActivityMs = this.now();
    let failed = false;
    const current = (): boolean => gen === this.generation && this.running;
    const onObject = (type: 'add' | 'update' | 'delete') => (obj: T) => {
      if (current()) this.onObject(type, obj);
    };
    source.on('add', onObject('add'));
    source.on('update', onObject('update'));
    source.on('delete', onObject('delete'));
    source.on('connect', () => {
      if (current()) this.lastActivityMs = this.now();
    });
    source.on('error', (err?: unknown) => {
      // Errors of a replaced or stopped source include client-node's AbortError from stop().
      if (!current() || failed) return;
      failed = true;
      this.onSourceError(err);
    });
    this.log.debug('starting list/watch', { reason });
    const starting = source.start();
    this.starting.set(source, starting);
    starting
      .finally(() => this.starting.delete(source))
      .then(
        () => {
          if (current() && !failed) this.onListed(source);
        },
        (err: unknown) => {
          if (!current() || failed) return;
          failed = true;
          this.onSourceError(err);
        },
      );
  }

  private onObject(type: 'add' | 'update' | 'delete', obj: T): void {
    this.lastActivityMs = this.now();
    const key = objectKey(obj);
    const known = this.cache.get(key);
    if (type === 'delete') {
      if (!this.cache.delete(key)) return;
      this.dispatch({ type: 'delete', key, obj });
      return;
    }
    this.cache.set(key, obj);
    if (known === undefined) {
      this.dispatch({ type: 'add', key, obj });
    } else if (known.metadata?.resourceVersion === undefined || known.metadata.resourceVersion !== obj.metadata?.resourceVersion) {
      // A fresh source re-adds everything it lists; an unchanged object is not news.
      this.dispatch({ type: 'update', key, obj });
    }
  }

  /** A (re)list completed: drop what the new list does not have, mark synced, finish a resync. */
  private onListed(source: ListWatchSource<T>): void {
    this.lastActivityMs = this.now();
    this.failures = 0;
    const present = new Set(source.list().map(objectKey));
    for (const [key, obj] of [...this.cache]) {
      if (!present.has(key)) {
        this.cache.delete(key);
        this.dispatch({ type: 'delete', key, obj });
      }
    }
    if (!this.synced) {
      this.synced = true;
      this.log.info('cache synced', { objects: this.cache.size });
      for (const w of this.syncWaiters.splice(0)) w();
    }
    if (this.resyncPending) {
      this.resyncPending = false;
      for (const [key, obj] of this.cache) this.dispatch({ type: 'resync', key, obj });
    }
  }

  private onSourceError(err: unknown): void {
    const policy: BackoffPolicy = { initialMs: this.opts.restartBaseMs ?? 1000, maxMs: this.opts.restartMaxMs ?? 60_000, jitter: 0.2, jitterMode: 'up' };
    const delayMs = Math.round(backoffDelayMs(this.failures + 1, policy, this.opts.random ?? Math.random));
    this.failures++;
    this.log.warn('list/watch failed; restarting after backoff', { error: errorChain(err), delayMs, failures: this.failures });
    const failedSource = this.source;
    // Detach it now: its later events (including the AbortError of stop()) must not count.
    this.generation++;
    this.source = undefined;
    if (failedSource !== undefined) void this.stopSource(failedSource);
    this.scheduleRestart(delayMs, 'error');
  }

  private scheduleRestart(delayMs: number, reason: string): void {
    this.cancelRestart?.();
    this.cancelRestart = this.opts.clock.setTimer(delayMs, () => {
      this.cancelRestart = undefined;
      if (this.running) this.restart(reason);
    });
  }

  private restart(reason: string): void {
    this.restartCount++;
    this.cancelRestart?.();
    this.cancelRestart = undefined;
    const old = this.source;
    this.generation++;
    this.source = undefined;
    if (old !== undefined) void this.stopSource(old);
    this.startSource(reason);
  }

  private async stopSource(source: ListWatchSource<T>): Promise<void> {
    const stop = async (): Promise<void> => {
      try {
        await source.stop();
      } catch (err) {
        // Nothing depends on it any more; still say so, a failing stop may leak a connection.
        this.log.warn('stopping list/watch failed', { error: errorChain(err) });
      }
    };
    await stop();
    // client-node 2.0.1 only aborts a watch it has already opened: stopped during its list or while the
    // watch request is connecting, a ListWatch still opens the watch afterwards and keeps it. So stop
    // it once more when its start() completes, which aborts that late watch.
    const starting = this.starting.get(source);
    if (starting !== undefined) {
      void starting.then(stop, () => undefined);
    }
  }

  private armWatchdog(): void {
    const watchdogMs = (this.opts.watchdogSeconds ?? 120) * 1000;
    if (!(watchdogMs > 0)) return;
    const check = (): void => {
      if (!this.running) return;
      // A pending error restart is already the remedy; the watchdog is for silent stalls.
      const idleMs = this.now() - this.lastActivityMs;
      if (this.cancelRestart === undefined && idleMs >= watchdogMs) {
        this.log.warn('no list/watch activity; restarting', { idleSeconds: Math.round(idleMs / 1000) });
        this.restart('watchdog');
      }
      this.cancelWatchdog = this.opts.clock.setTimer(Math.max(1000, watchdogMs / 4), check);
    };
    this.cancelWatchdog = this.opts.clock.setTimer(Math.max(1000, watchdogMs / 4), check);
  }

  private armResync(): void {
    const resyncMs = (this.opts.resyncSeconds ?? 600) * 1000;
    if (!(resyncMs > 0)) return;
    const tick = (): void => {
      if (!this.running) return;
      this.resyncPending = true;
      // During an error backoff the pending restart will relist and finish the resync.
      if (this.cancelRestart === undefined) this.restart('resync');
      this.cancelResync = this.opts.clock.setTimer(resyncMs, tick);
    };
    this.cancelResync = this.opts.clock.setTimer(resyncMs, tick);
  }

  private dispatch(event: InformerEvent<T>): void {
    for (const handler of this.handlers) {
      try {
        handler(event);
      } catch (err) {
        // Isolated so one bad handler cannot break the cache or the other handlers; logged loudly
        // because a handler that throws is a bug (handlers must only enqueue).
        this.log.error('informer event handler threw', { key: event.key, type: event.type, error: err });
      }
    }
  }

  private now(): number {
    return this.opts.clock.now().getTime();
  }
}

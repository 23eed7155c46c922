/**
 * The manager ties the controller layer together, in the spirit of controller-runtime's Manager:
 * - informers run on every replica (warm caches make a failover fast);
 * - reconcile workers run only on the leader, and only once every informer has synced;
 * - `/healthz` (alive, event loop not blocked), `/readyz` (caches synced; leadership does not matter,
 *   a follower is ready too), `/metrics` (its own registry);
 * - graceful shutdown: stop taking work, abort the signal of in-flight reconciles at once (their API
 *   calls are cancelled and a pass ends at its next safe point), wait for them up to a deadline,
 *   release the Lease only if they ended (otherwise it expires, so a successor never overlaps a
 *   straggler that ignores its signal), run the shutdown hooks, stop the informers and servers, and
 *   report an exit code;
 * - losing leadership ends the manager with exit code 1: the process exits and its Deployment
 *   restarts it clean, rather than trying to resume with state that may be stale.
 */
import type { AddressInfo } from 'node:net';
import { SystemClock, type Clock } from '#core/clock.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logging.js';
import { Endpoints, EventLoopMonitor, type HealthResult } from './endpoints.js';
import { errorChain } from './kube.js';
import { LeaderElector, type LeaderElectorOptions } from './leaderelection.js';
import { ControllerMetrics } from './metrics.js';
import { runWorkers, type ReconcileFn, type WorkQueue } from './workqueue.js';

// The HTTP endpoints and the process main loop live in their own files; re-exported so callers keep
// importing the manager's surface from one place.
export { EventLoopMonitor, type DelayHistogram, type HealthResult } from './endpoints.js';
export { runUntilStopped, type ProcessLike } from './process.js';

/** What the manager needs of an informer (see `Informer`). */
export interface ManagedInformer {
  readonly name: string;
  start(): void;
  stop(): Promise<void>;
  hasSynced(): boolean;
  waitForSync(signal?: AbortSignal): Promise<void>;
}

/** A controller: a queue fed by informer handlers, and the reconciler its workers run. */
export interface ControllerSpec {
  /** Name for logs. */
  name: string;
  /** The queue its informer handlers add keys to. */
  queue: WorkQueue;
  reconcile: ReconcileFn;
  /** Concurrent workers (default 1). Different keys run in parallel; one key never does. */
  workers?: number;
}

/** Leader election settings; the manager supplies clock, logger and callbacks. */
export type ManagerLeaderElection = Omit<LeaderElectorOptions, 'clock' | 'logger' | 'callbacks'>;

/** Options of {@link Manager}. */
export interface ManagerOptions {
  logger: Logger;
  /** Default: the system clock. */
  clock?: Clock;
  /** Default: a fresh {@link ControllerMetrics} (own registry). */
  metrics?: ControllerMetrics;
  /** Lease-based election. Absent: this process always leads (one replica, development). */
  leaderElection?: ManagerLeaderElection;
  /** Port for `/healthz` and `/readyz` (0: any free port). Absent: no health server. */
  healthPort?: number;
  /** Port for `/metrics` (0: any free port); the same non-zero port as health serves everything on one server. Absent: none. */
  metricsPort?: number;
  /** Address to bind (default all interfaces). */
  host?: string;
  /**
   * How long in-flight reconciles may take to end on shutdown once their signal is aborted (default
   * 20 s, within a 30 s grace period). Work that honours its signal ends in milliseconds; the deadline
   * is for work that does not.
   */
  shutdownTimeoutMs?: number;
  /** Liveness check (default: event loop delay below {@link EventLoopMonitor}'s threshold). */
  livenessCheck?: () => HealthResult;
}

/** How the manager ended: the process should exit with `code`. */
export interface ManagerExit {
  /** 0 for a requested stop, 1 when leadership was lost or leader work failed. */
  code: number;
  reason: string;
}

/** See the module comment. */
export class Manager {
  /** The metrics this manager exposes; give it to the components that record into it. */
  readonly metrics: ControllerMetrics;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly opts: ManagerOptions;
  private readonly informers: ManagedInformer[] = [];
  private readonly controllers: ControllerSpec[] = [];
  private readonly endpoints: Endpoints;
  private readonly monitor: EventLoopMonitor | undefined;
  private elector: LeaderElector | undefined;
  private leading = false;
  private started = false;
  private stopping: Promise<ManagerExit> | undefined;
  /** Aborted when the manager starts shutting down: reconciles stop acting at once. */
  private readonly workAbort = new AbortController();
  private readonly shutdownHooks: Array<{ name: string; run: () => Promise<void> | void }> = [];
  private workers: Promise<void> | undefined;
  private resolveDone!: (exit: ManagerExit) => void;
  private readonly donePromise: Promise<ManagerExit>;

  constructor(opts: ManagerOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'manager' });
    this.clock = opts.clock ?? new SystemClock();
    this.metrics = opts.metrics ?? new ControllerMetrics();
    this.monitor = opts.livenessCheck ? undefined : new EventLoopMonitor();
    this.donePromise = new Promise((resolve) => (this.resolveDone = resolve));
    this.endpoints = new Endpoints({ healthz: () => this.healthz(), readyz: () => this.readyz(), metrics: this.metrics }, opts, this.log);
  }

  /** Registers an informer; it is started by {@link Manager.start} on every replica. */
  addInformer(informer: ManagedInformer): void {
    if (this.started) throw new Error('addInformer after start');
    this.informers.push(informer);
  }

  /** Registers a controller; its workers run while this replica leads. */
  addController(spec: ControllerSpec): void {
    if (this.started) throw new Error('addController after start');
    this.controllers.push(spec);
    this.metrics.trackQueue(spec.queue);
  }

  /**
   * Registers cleanup for shutdown (closing target-cluster clients and their watches, say). Hooks run
   * after the reconciles have ended and the Lease was handled, alongside the informers' stop; a hook
   * that fails is logged, never fatal.
   */
  addShutdownHook(name: string, run: () => Promise<void> | void): void {
    this.shutdownHooks.push({ name, run });
  }

  /** Whether this replica currently runs the reconcilers. */
  isLeader(): boolean {
    return this.leading;
  }

  /** Starts servers, informers and leader election (or the workers, without election). */
  async start(): Promise<void> {
    if (this.started) throw new Error('manager already started');
    this.started = true;
    this.monitor?.start();
    await this.endpoints.listen();
    for (const informer of this.informers) informer.start();
    const election = this.opts.leaderElection;
    if (election === undefined) {
      this.log.info('starting without leader election');
      this.onStartedLeading(new AbortController().signal).catch((err: unknown) => this.fail(err));
      return;
    }
    this.elector = new LeaderElector({
      ...election,
      clock: this.clock,
      logger: this.opts.logger,
      callbacks: {
        onStartedLeading: (signal) => this.onStartedLeading(signal),
        onStoppedLeading: () => this.onStoppedLeading(),
        onNewLeader: (identity) => this.log.info('leader is', { leader: identity }),
      },
    });
    const elector = this.elector;
    void elector.run().then(() => {
      // run() ends by itself only when leadership was lost or leader work failed.
      if (this.stopping === undefined) void this.stop('leader election ended', 1);
    });
  }

  /** Resolves when the manager has stopped, with the exit code the process should use. */
  done(): Promise<ManagerExit> {
    return this.donePromise;
  }

  /**
   * Stops the manager (see the module comment for the order). Idempotent: later calls return the
   * first call's result.
   */
  stop(reason = 'stop requested', code = 0): Promise<ManagerExit> {
    this.stopping ??= this.shutdown(reason, code);
    return this.stopping;
  }

  /** The bound addresses, health server first (for tests using port 0). */
  addresses(): AddressInfo[] {
    return this.endpoints.addresses();
  }

  /** Liveness as `/healthz` reports it. */
  healthz(): HealthResult {
    return this.opts.livenessCheck?.() ?? this.monitor!.check();
  }

  /** Readiness as `/readyz` reports it: every informer synced, and not shutting down. */
  readyz(): HealthResult {
    if (this.stopping !== undefined) return { ok: false, message: 'shutting down' };
    const waiting = this.informers.filter((i) => !i.hasSynced()).map((i) => i.name);
    return waiting.length > 0 ? { ok: false, message: `caches not synced: ${waiting.join(', ')}` } : { ok: true, message: 'ok' };
  }

  private async onStartedLeading(signal: AbortSignal): Promise<void> {
    this.leading = true;
    this.metrics.setLeader(true);
    this.log.info('leading: waiting for caches before starting workers');
    try {
      await Promise.all(this.informers.map((i) => i.waitForSync(signal)));
    } catch (err) {
      // Leadership ended (or we are stopping) before the caches synced: nothing was started.
      if (signal.aborted || this.stopping !== undefined) return;
      throw err;
    }
    if (signal.aborted || this.stopping !== undefined) return;
    const workSignal = AbortSignal.any([signal, this.workAbort.signal]);
    this.log.info('caches synced; starting workers', { controllers: this.controllers.map((c) => c.name) });
    this.workers = Promise.all(
      this.controllers.map((c) =>
        runWorkers(c.queue, c.workers ?? 1, c.reconcile, {
          clock: this.clock,
          logger: this.opts.logger.child({ controller: c.name }),
          signal: workSignal,
          onResult: (_key, outcome, seconds) => this.metrics.observeReconcile(outcome, seconds),
        }),
      ),
    ).then(() => undefined);
    await this.workers;
  }

  private onStoppedLeading(): void {
    this.leading = false;
    this.metrics.setLeader(false);
    if (this.stopping === undefined) {
      this.log.error('lost leadership; stopping so the process restarts clean');
      void this.stop('lost leadership', 1);
    }
  }

  private fail(err: unknown): void {
    this.log.error('controller workers failed', { error: err });
    void this.stop(`workers failed: ${errorMessage(err)}`, 1);
  }

  private async shutdown(reason: string, code: number): Promise<ManagerExit> {
    this.log.info('shutting down', { reason });
    // 1. Stop taking work, abort in-flight reconciles and wait (bounded) for them to end.
    const drained = await this.drainQueues(reason);
    // 2. Leave the election: release only if nothing of ours still acts.
    if (this.elector !== undefined) {
      await this.elector.stop({ release: drained });
    } else {
      this.leading = false;
      this.metrics.setLeader(false);
    }
    // 3. Shutdown hooks, informers, servers, monitors.
    const settle = (failed: string, what: Record<string, string>, step: () => Promise<void> | void): Promise<void> =>
      Promise.resolve()
        .then(step)
        .catch((err: unknown) => void this.log.warn(failed, { ...what, error: errorChain(err) }));
    await Promise.all([
      ...this.shutdownHooks.map((h) => settle('shutdown hook failed', { hook: h.name }, h.run)),
      ...this.informers.map((i) => settle('stopping informer failed', { informer: i.name }, () => i.stop())),
    ]);
    await this.endpoints.close();
    this.monitor?.stop();
    const exit = { code, reason };
    this.log.info('stopped', { ...exit });
    this.resolveDone(exit);
    return exit;
  }

  /**
   * Shuts the queues down (no key is handed out any more), then aborts the reconciles' signal so their
   * API calls are cancelled and each pass ends at its next safe point; true if they all ended before
   * the deadline. The queues go first so no worker picks up a key with an already aborted signal.
   */
  private async drainQueues(reason: string): Promise<boolean> {
    const timeoutMs = this.opts.shutdownTimeoutMs ?? 20_000;
    const drained = Promise.all(this.controllers.map((c) => c.queue.shutDown())).then(() => true);
    const inFlight = (): number => this.controllers.reduce((n, c) => n + c.queue.processingLen(), 0);
    if (inFlight() > 0) this.log.info('aborting in-flight reconciles', { inFlight: inFlight() });
    // An Error named AbortError, as fetch's own: not retryable (isRetryable), and an Error in every realm.
    this.workAbort.abort(Object.assign(new Error(`shutting down: ${reason}`), { name: 'AbortError' }));
    let cancel = (): void => undefined;
    const deadline = new Promise<boolean>((resolve) => {
      cancel = this.clock.setTimer(timeoutMs, () => resolve(false));
    });
    const finished = await Promise.race([drained, deadline]);
    cancel();
    if (!finished) {
      this.log.error('in-flight reconciles did not finish before the shutdown deadline although aborted; keeping the lease until it expires', {
        inFlight: inFlight(),
        timeoutMs,
      });
    }
    return finished;
  }
}

/**
 * The manager ties the controller layer together, in the spirit of controller-runtime's Manager:
 * - informers run on every replica (warm caches make a failover fast);
 * - reconcile workers run only on the leader, and only once every informer has synced;
 * - `/healthz` (alive, event loop not blocked), `/readyz` (caches synced; leadership does not matter,
 *   a follower is ready too), `/metrics` (its own registry);
 * - graceful shutdown: stop taking work, let in-flight reconciles finish up to a deadline, release the
 *   Lease only if they did (otherwise it expires, so a successor never overlaps a straggler), stop the
 *   informers and servers, and report an exit code;
 * - losing leadership ends the manager with exit code 1: the process exits and its Deployment
 *   restarts it clean, rather than trying to resume with state that may be stale.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { SystemClock, type Clock } from '#core/clock.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logging.js';
import { errorChain } from './kube.js';
import { LeaderElector, type LeaderElectorOptions } from './leaderelection.js';
import { ControllerMetrics } from './metrics.js';
import { runWorkers, type ReconcileFn, type WorkQueue } from './workqueue.js';

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

/** A health check result. */
export interface HealthResult {
  ok: boolean;
  message: string;
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
  /** How long in-flight reconciles may take to finish on shutdown (default 20 s, within a 30 s grace period). */
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

/** The part of `monitorEventLoopDelay`'s histogram the monitor reads (injectable for tests). */
export interface DelayHistogram {
  /** Largest delay recorded since the last reset, in nanoseconds. */
  readonly max: number;
  reset(): void;
  enable(): boolean;
  disable(): boolean;
}

/**
 * Liveness from event loop delay: unhealthy when, since the previous check, the loop was blocked for
 * longer than `thresholdMs`. A loop blocked right now cannot answer the probe at all, which the kubelet
 * counts as a failure too; this check catches the long stalls between probes.
 */
export class EventLoopMonitor {
  private readonly histogram: DelayHistogram;

  private readonly thresholdMs;
  constructor(
    thresholdMs = 5000,
    histogram?: DelayHistogram) {
    this.thresholdMs = thresholdMs;
    this.histogram = histogram ?? monitorEventLoopDelay({ resolution: 20 });
  }

  start(): void {
    this.histogram.enable();
  }

  stop(): void {
    this.histogram.disable();
  }

  /** Reads and resets the maximum delay. */
  check(): HealthResult {
    const maxMs = this.histogram.max / 1e6;
    this.histogram.reset();
    return maxMs > this.thresholdMs
      ? { ok: false, message: `event loop blocked for ${Math.round(maxMs)} ms (limit ${this.thresholdMs} ms)` }
      : { ok: true, message: 'ok' };
  }
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
  private readonly servers: http.Server[] = [];
  private readonly monitor: EventLoopMonitor | undefined;
  private elector: LeaderElector | undefined;
  private leading = false;
  private started = false;
  private stopping: Promise<ManagerExit> | undefined;
  /** Aborted when in-flight reconciles overran the shutdown deadline. */
  private readonly workAbort = new AbortController();
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

  /** Whether this replica currently runs the reconcilers. */
  isLeader(): boolean {
    return this.leading;
  }

  /** Starts servers, informers and leader election (or the workers, without election). */
  async start(): Promise<void> {
    if (this.started) throw new Error('manager already started');
    this.started = true;
    this.monitor?.start();
    await this.listen();
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
    return this.servers.map((s) => s.address() as AddressInfo);
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
    // 1. Stop taking work and wait (bounded) for in-flight reconciles.
    const drained = await this.drainQueues();
    // 2. Leave the election: release only if nothing of ours still acts.
    if (this.elector !== undefined) {
      await this.elector.stop({ release: drained });
    } else {
      this.leading = false;
      this.metrics.setLeader(false);
    }
    // 3. Informers, servers, monitors.
    await Promise.all(
      this.informers.map((i) =>
        i.stop().catch((err: unknown) => this.log.warn('stopping informer failed', { informer: i.name, error: errorChain(err) })),
      ),
    );
    await this.closeServers();
    this.monitor?.stop();
    const exit = { code, reason };
    this.log.info('stopped', { ...exit });
    this.resolveDone(exit);
    return exit;
  }

  /** Shuts the queues down; true if in-flight work finished before the deadline. */
  private async drainQueues(): Promise<boolean> {
    const timeoutMs = this.opts.shutdownTimeoutMs ?? 20_000;
    const drained = Promise.all(this.controllers.map((c) => c.queue.shutDown())).then(() => true);
    let cancel = (): void => undefined;
    const deadline = new Promise<boolean>((resolve) => {
      cancel = this.clock.setTimer(timeoutMs, () => resolve(false));
    });
    const finished = await Promise.race([drained, deadline]);
    cancel();
    if (!finished) {
      const inFlight = this.controllers.reduce((n, c) => n + c.queue.processingLen(), 0);
      this.log.error('in-flight reconciles did not finish before the shutdown deadline; aborting them and keeping the lease until it expires', {
        inFlight,
        timeoutMs,
      });
      this.workAbort.abort(new Error('shutdown deadline passed'));
    }
    return finished;
  }

  private async listen(): Promise<void> {
    const { healthPort, metricsPort, host } = this.opts;
    const health = (req: http.IncomingMessage, res: http.ServerResponse): boolean => this.serveHealth(req, res);
    const metrics = (req: http.IncomingMessage, res: http.ServerResponse): boolean => this.serveMetrics(req, res);
    const plans: Array<{ port: number; routes: Array<typeof health> }> = [];
    // Port 0 means "any free port", so two zeros are two servers.
    if (healthPort !== undefined && healthPort !== 0 && healthPort === metricsPort) {
      plans.push({ port: healthPort, routes: [health, metrics] });
    } else {
      if (healthPort !== undefined) plans.push({ port: healthPort, routes: [health] });
      if (metricsPort !== undefined) plans.push({ port: metricsPort, routes: [metrics] });
    }
    for (const plan of plans) {
      const server = http.createServer((req, res) => {
        if (!plan.routes.some((route) => route(req, res))) {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        }
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(plan.port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      // Errors after listening (rare: EMFILE...) must not crash the process via an 'error' event.
      server.on('error', (err) => this.log.error('http server error', { error: err }));
      this.servers.push(server);
      this.log.info('listening', { address: server.address() });
    }
  }

  private serveHealth(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const path = (req.url ?? '').split('?')[0];
    let result: HealthResult;
    if (path === '/healthz' || path === '/livez') result = this.healthz();
    else if (path === '/readyz') result = this.readyz();
    else return false;
    res.writeHead(result.ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' }).end(`${result.message}\n`);
    return true;
  }

  private serveMetrics(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if ((req.url ?? '').split('?')[0] !== '/metrics') return false;
    this.metrics.metrics().then(
      (text) => res.writeHead(200, { 'content-type': this.metrics.contentType }).end(text),
      (err: unknown) => {
        this.log.error('collecting metrics failed', { error: err });
        res.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n');
      },
    );
    return true;
  }

  private async closeServers(): Promise<void> {
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            // Keep-alive connections (Prometheus, probes) would hold close() open until they idle out.
            s.closeAllConnections();
          }),
      ),
    );
  }
}

/** The process bits {@link runUntilStopped} uses (injectable for tests). */
export interface ProcessLike {
  on(signal: 'SIGTERM' | 'SIGINT', handler: () => void): unknown;
  off(signal: 'SIGTERM' | 'SIGINT', handler: () => void): unknown;
}

/**
 * Runs a manager as the process's main loop: starts it, stops it gracefully on the first SIGTERM or
 * SIGINT, exits at once (code 1) on a second one, and calls `exit` with the manager's exit code when
 * it has stopped for any reason (including lost leadership). A failing start stops what was started
 * and exits 1.
 */
export async function runUntilStopped(
  manager: Manager,
  logger: Logger,
  proc: ProcessLike = process,
  exit: (code: number) => void = (code) => process.exit(code),
): Promise<ManagerExit> {
  let signals = 0;
  const onSignal = (name: 'SIGTERM' | 'SIGINT') => (): void => {
    signals++;
    if (signals === 1) {
      logger.info('signal received; shutting down gracefully', { signal: name });
      void manager.stop(`received ${name}`, 0);
    } else {
      logger.warn('second signal received; exiting now', { signal: name });
      exit(1);
    }
  };
  const onTerm = onSignal('SIGTERM');
  const onInt = onSignal('SIGINT');
  proc.on('SIGTERM', onTerm);
  proc.on('SIGINT', onInt);
  try {
    await manager.start();
  } catch (err) {
    logger.error('manager failed to start', { error: err });
    void manager.stop(`start failed: ${errorMessage(err)}`, 1);
  }
  const result = await manager.done();
  proc.off('SIGTERM', onTerm);
  proc.off('SIGINT', onInt);
  exit(result.code);
  return result;
}

/**
 * The manager's HTTP side: liveness from event loop delay ({@link EventLoopMonitor}) and the
 * `/healthz`, `/livez`, `/readyz` and `/metrics` endpoints ({@link Endpoints}). The manager decides
 * what healthy and ready mean; this file only measures the event loop and serves the answers.
 */
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startHttpServer, type HttpReply, type RouteHandler, type RunningServer } from '#core/httpserver.js';
import type { Logger } from '../util/logging.js';
import type { ControllerMetrics } from './metrics.js';

/** A health check result. */
export interface HealthResult {
  ok: boolean;
  message: string;
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
  constructor(thresholdMs = 5000, histogram?: DelayHistogram) {
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

/** What {@link Endpoints} serve: the manager's own answers. */
export interface EndpointSources {
  /** Liveness, for `/healthz` and `/livez`. */
  healthz(): HealthResult;
  /** Readiness, for `/readyz`. */
  readyz(): HealthResult;
  /** The registry `/metrics` exposes. */
  metrics: ControllerMetrics;
}

/** Where {@link Endpoints} listen (the manager's options of the same names). */
export interface EndpointOptions {
  /** Port for `/healthz` and `/readyz` (0: any free port). Absent: no health server. */
  healthPort?: number;
  /** Port for `/metrics` (0: any free port); the same non-zero port as health serves everything on one server. Absent: none. */
  metricsPort?: number;
  /** Address to bind (default all interfaces). */
  host?: string;
}

/** The HTTP servers of the health and metrics endpoints (the shared core's GET-only server). */
export class Endpoints {
  private readonly sources: EndpointSources;
  private readonly opts: EndpointOptions;
  private readonly log: Logger;
  private readonly servers: RunningServer[] = [];

  constructor(sources: EndpointSources, opts: EndpointOptions, log: Logger) {
    this.sources = sources;
    this.opts = opts;
    this.log = log;
  }

  /** Starts the configured servers; rejects when a port cannot be bound. */
  async listen(): Promise<void> {
    const { healthPort, metricsPort, host } = this.opts;
    const health = (result: () => HealthResult) => (): HttpReply => {
      const r = result();
      return { status: r.ok ? 200 : 503, body: `${r.message}\n` };
    };
    const healthRoutes: Record<string, RouteHandler> = {
      '/healthz': health(() => this.sources.healthz()),
      '/livez': health(() => this.sources.healthz()),
      '/readyz': health(() => this.sources.readyz()),
    };
    const metricsRoutes: Record<string, RouteHandler> = { '/metrics': () => this.serveMetrics() };
    const plans: Array<{ port: number; routes: Record<string, RouteHandler> }> = [];
    // Port 0 means "any free port", so two zeros are two servers.
    if (healthPort !== undefined && healthPort !== 0 && healthPort === metricsPort) {
      plans.push({ port: healthPort, routes: { ...healthRoutes, ...metricsRoutes } });
    } else {
      if (healthPort !== undefined) plans.push({ port: healthPort, routes: healthRoutes });
      if (metricsPort !== undefined) plans.push({ port: metricsPort, routes: metricsRoutes });
    }
    for (const plan of plans) {
      // GET routes by path, 404/405 otherwise; errors after listening are logged, never thrown.
      const server = await startHttpServer({ host, port: plan.port, routes: plan.routes, logger: this.log });
      this.servers.push(server);
      this.log.info('listening', { address: server.address });
    }
  }

  /** The bound addresses, health server first. */
  addresses(): AddressInfo[] {
    return this.servers.map((s) => s.address);
  }

  /** Closes every server; the core's close also drops keep-alive connections (Prometheus, probes). */
  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.close().catch(() => undefined)));
  }

  private async serveMetrics(): Promise<HttpReply> {
    const metrics = this.sources.metrics;
    try {
      return { status: 200, body: await metrics.metrics(), contentType: metrics.contentType };
    } catch (err) {
      this.log.error('collecting metrics failed', { error: err });
      return { status: 500, body: 'collecting metrics failed\n' };
    }
  }
}

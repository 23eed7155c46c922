/**
 * The manager's HTTP side: liveness from event loop delay ({@link EventLoopMonitor}) and the
 * `/healthz`, `/livez`, `/readyz` and `/metrics` endpoints ({@link Endpoints}). The manager decides
 * what healthy and ready mean; this file only measures the event loop and serves the answers.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
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

type Route = (req: http.IncomingMessage, res: http.ServerResponse) => boolean;

/** The HTTP servers of the health and metrics endpoints. */
export class Endpoints {
  private readonly sources: EndpointSources;
  private readonly opts: EndpointOptions;
  private readonly log: Logger;
  private readonly servers: http.Server[] = [];

  constructor(sources: EndpointSources, opts: EndpointOptions, log: Logger) {
    this.sources = sources;
    this.opts = opts;
    this.log = log;
  }

  /** Starts the configured servers; rejects when a port cannot be bound. */
  async listen(): Promise<void> {
    const { healthPort, metricsPort, host } = this.opts;
    const health: Route = (req, res) => this.serveHealth(req, res);
    const metrics: Route = (req, res) => this.serveMetrics(req, res);
    const plans: Array<{ port: number; routes: Route[] }> = [];
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

  /** The bound addresses, health server first. */
  addresses(): AddressInfo[] {
    return this.servers.map((s) => s.address() as AddressInfo);
  }

  /** Closes every server, including idle keep-alive connections. */
  async close(): Promise<void> {
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

  private serveHealth(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const path = (req.url ?? '').split('?')[0];
    let result: HealthResult;
    if (path === '/healthz' || path === '/livez') result = this.sources.healthz();
    else if (path === '/readyz') result = this.sources.readyz();
    else return false;
    res.writeHead(result.ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' }).end(`${result.message}\n`);
    return true;
  }

  private serveMetrics(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if ((req.url ?? '').split('?')[0] !== '/metrics') return false;
    const metrics = this.sources.metrics;
    metrics.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
      (err: unknown) => {
        this.log.error('collecting metrics failed', { error: err });
        res.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n');
      },
    );
    return true;
  }
}

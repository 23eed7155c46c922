/**
 * The agent's own Prometheus metrics. Every agent owns a separate prom-client Registry (never the global
 * default one), so many agents can run in one process (the e2e node runtime) without clashing, and each
 * agent's /metrics shows only its own requests.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** Sampling period of the process metrics' event-loop delay histogram (nodejs_eventloop_lag_*). */
export const EVENT_LOOP_SAMPLE_MS = 1000;

/** The metric objects of one agent. */
export class CollectorMetrics {
  readonly registry: Registry;
  /** Every request sent to the API server, by Kubernetes verb, resource and HTTP code ("error" when no status). */
  readonly apiRequests: Counter<'verb' | 'resource' | 'code'>;
  /** Response bytes received from the API server (watch streams included). */
  readonly apiResponseBytes: Counter<'verb' | 'resource'>;
  /** API calls refused locally because the kill switch was engaged (they never reached the server). */
  readonly apiBlocked: Counter<'verb' | 'resource'>;
  /** Retries after a retryable failure. */
  readonly apiRetries: Counter<'verb' | 'resource'>;
  /** Requests to the local kubelet, by HTTP code ("error" when no status). */
  readonly kubeletRequests: Counter<'code'>;
  /** Response bytes received from the kubelet. */
  readonly kubeletResponseBytes: Counter;
  /** 1 while the stop file forbids API calls. */
  readonly stopped: Gauge;
  /** 1 per file that says stop right now: which file (its path as the agent sees it) and why. */
  readonly stopFiles: Gauge<'file' | 'reason'>;
  /** Always 1; the labels identify the agent. */
  readonly info: Gauge<'mode' | 'metadata_mode' | 'node' | 'revision'>;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registry = new Registry();
    this.registry = registry;
    const registers = [registry];
    this.apiRequests = new Counter({
      name: 'collector_api_requests_total',
      help: 'Requests sent to the Kubernetes API server, by verb, resource and HTTP status code.',
      labelNames: ['verb', 'resource', 'code'],
      registers,
    });
    this.apiResponseBytes = new Counter({
      name: 'collector_api_response_bytes_total',
      help: 'Bytes received from the Kubernetes API server (response bodies and watch streams).',
      labelNames: ['verb', 'resource'],
      registers,
    });
    this.apiBlocked = new Counter({
      name: 'collector_api_requests_blocked_total',
      help: 'API calls refused locally because the stop file is engaged (never sent).',
      labelNames: ['verb', 'resource'],
      registers,
    });
    this.apiRetries = new Counter({
      name: 'collector_api_retries_total',
      help: 'API call retries after a retryable failure (429, 5xx, network).',
      labelNames: ['verb', 'resource'],
      registers,
    });
    this.kubeletRequests = new Counter({
      name: 'collector_kubelet_requests_total',
      help: 'Requests sent to the local kubelet read-only API, by HTTP status code.',
      labelNames: ['code'],
      registers,
    });
    this.kubeletResponseBytes = new Counter({
      name: 'collector_kubelet_response_bytes_total',
      help: 'Bytes received from the local kubelet.',
      registers,
    });
    this.stopped = new Gauge({
      name: 'collector_stopped',
      help: '1 while the node-local stop file forbids API calls (agent idle), else 0.',
      registers,
    });
    this.stopFiles = new Gauge({
      name: 'collector_stop_files',
      help: '1 per node-local stop file that forbids API calls right now, by file and reason (revision-match, wildcard, malformed, unreadable, too-many).',
      labelNames: ['file', 'reason'],
      registers,
    });
    this.info = new Gauge({
      name: 'collector_info',
      help: 'Identity of the collector agent (value always 1).',
      labelNames: ['mode', 'metadata_mode', 'node', 'revision'],
      registers,
    });
    // Process metrics describe the whole process: right for a standalone agent, misleading when many
    // agents share one process, hence opt-in. The event-loop delay is sampled every second, not every
    // 10 ms (prom-client's default): 100 timer wake-ups a second cost an idle agent ~0.5 % of a core, a
    // quarter of its CPU budget, and a per-second sample still shows a blocked loop.
    if (options.processMetrics) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }

  /**
   * Shows exactly `stops` in {@link stopFiles} (a lifted stop disappears). Bounded: the kill switch
   * reads at most 64 files, so at most that many series.
   */
  setStopFiles(stops: ReadonlyArray<{ source: string; reason: string }>): void {
    this.stopFiles.reset();
    for (const s of stops) this.stopFiles.set({ file: s.source, reason: s.reason }, 1);
  }
}
